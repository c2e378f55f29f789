"""`HttpTarget`: an app behind an HTTP endpoint, whatever format it speaks.

Each turn is one request (retried on 429/503/5xx, timeouts and dropped connections), or the few
its format's `exchange` makes; the reply text is read from the JSON answer with a path, or
assembled from a `text/event-stream`, never past `max_reply_bytes`. The format (`HttpFormat`)
decides the address, the body and where the text is; everything here (and in `reply`, which reads
the answer) is the same for all formats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...aio.event_loops import PerLoop
from ...aio.http_sessions import (
    FATAL,
    MAX_CONNECTIONS,
    TIMEOUT,
    UNREACHABLE,
    ExchangeClock,
    ExchangeFailed,
    new_session,
    proxy_for,
    within,
)
from ...aio.rate_headers import over_the_limit
from ...errors import TurnError
from ...text import known_secrets
from ...text.known_secrets import scrub
from ..base import AppReply, Target
from ..redaction import credential_values, redact_body, safe_url
from ..retry import RetryLater, parse_retry_after, retry_async
from . import errors
from .answer import Answer
from .bounded import read_body
from .config import load_settings
from .format import UnusableAnswer
from .registry import DEFAULT_FORMAT
from .rendering import recorded_headers, render_headers, render_url
from .reply import ReplyReader
from .session import Conversation
from .sse import read_events

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

#: an error answer (4xx/5xx, a redirect) is read to at most this many bytes: only a snippet of it is kept
ERROR_BODY_BYTES = 64 * 1024


def encode_body(body: Any) -> bytes:
    """A JSON request body as the connector sends it (and as `expand_request` gives it back)."""
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")


class HttpTarget(Target):
    """An app under test behind an HTTP endpoint; one instance serves many concurrent conversations.

    Keyword options are the manifest's target fields (headers, timeout, history, response, ...);
    every problem with them is raised at once (`TargetConfigError`).
    """

    def __init__(self, url: str, format: str = DEFAULT_FORMAT, *, source: str = "target", **options: Any) -> None:
        settings = load_settings({"url": url, "format": format, **options}, source)
        self.source = source
        self.settings = settings
        self.url = settings.url
        #: what sets this target's format apart (`format` is its name)
        self.dialect = settings.format
        self.format = settings.format.name
        self.headers = settings.headers
        self.timeout = settings.timeout
        self.history = settings.history
        self.response = settings.response
        self.session = settings.session
        self.retry = settings.retry
        self.max_reply_bytes = settings.max_reply_bytes
        query, body = self.dialect.sent_values()
        known_secrets.register_all(credential_values(self.url, self.headers, query, body))
        known_secrets.register_url(self.url)
        #: one session per event loop: its connections are kept alive between turns and shared by
        #: conversations; cookies are kept per conversation, never in the session
        self._connections = MAX_CONNECTIONS  # raised by `warm` for a run with more conversations at a time
        self._sessions: PerLoop[aiohttp.ClientSession] = PerLoop(
            lambda: new_session(limit=self._connections, timed=True)
        )
        self._conversations: dict[str, Conversation] = {}
        self._reader = ReplyReader(settings, source)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str = "target") -> HttpTarget:
        """Build from the manifest's `target` mapping (validated, `${ENV}` already filled in)."""
        load_settings(config, source)  # every problem at once, before the mapping becomes keywords
        return cls(**config, source=source)

    # --- description and lifecycle ----------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"kind": "http", "format": self.format, "url": safe_url(self.url)}

    def __repr__(self) -> str:
        return f"HttpTarget(format={self.format!r}, url={safe_url(self.url)!r})"

    async def warm(self, concurrency: int = 1) -> None:
        # each conversation may have a turn in flight: as many connections, or turns would wait for one
        self._connections = max(MAX_CONNECTIONS, concurrency)
        # the session, then what the format learns from the app (a flow's names)
        await self.dialect.prepare(self._sessions.get(), self.settings)

    async def aclose(self) -> None:
        session = self._sessions.pop()
        if session is not None:
            await session.close()

    def conversation_state(self, conversation_id: str) -> Conversation | None:
        return self._conversations.get(conversation_id)

    async def end_conversation(self, conversation_id: str) -> None:
        self._conversations.pop(conversation_id, None)

    # --- building the request ------------------------------------------------------------------

    def _values(self, question: str, meta_data: Mapping[str, Any], state: Conversation) -> dict[str, Any]:
        return {
            "question": question,
            "conversation_id": meta_data.get("conversation_id") or "",
            "session_id": state.session_id or "",
            "turn_number": meta_data.get("turn_number", ""),
            "persona": meta_data.get("persona") or "",
            "task": meta_data.get("task") or "",
        }

    def _build(
        self, question: str, history: list[dict[str, str]], meta_data: Mapping[str, Any], state: Conversation
    ) -> tuple[str, dict[str, str], dict[str, str], Any]:
        """Method-less parts of the request: URL, query, headers and JSON body, all rendered."""
        known = state.session_id is not None
        values = self._values(question, meta_data, state)
        url = render_url(self.url, values, f"{self.source}.url")
        query = self.dialect.query(values, known)
        headers = render_headers(self.headers, values, f"{self.source}.headers")
        sent_history = history if self.history == "full" else []
        body = self.dialect.body(question, sent_history, values, known)
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        for name, value in self.dialect.default_headers().items():
            if not any(k.lower() == name.lower() for k in headers):
                headers[name] = value
        return url, query, headers, body

    def _record(
        self, url: URL, headers: Mapping[str, str], body: Any, cookie: bool, method: str | None = None
    ) -> dict[str, Any]:
        """The request as results keep it: no credential in headers, query or body."""
        shown = recorded_headers(headers, self.headers, cookie=cookie)
        record: dict[str, Any] = {"method": method or self.dialect.method, "url": safe_url(str(url)), "headers": shown}
        if body is not None:
            record["body"] = scrub(redact_body(body))
        return record

    # --- one turn ------------------------------------------------------------------------------

    async def respond(self, question: str, history: list[dict[str, str]], meta_data: dict[str, Any]) -> AppReply:
        session = self._sessions.get()
        await self.dialect.prepare(session, self.settings)  # done by `warm`, unless used without it
        conversation_id = str(meta_data.get("conversation_id") or "")
        state = self._conversations.setdefault(conversation_id, Conversation())
        url, query, headers, body = self._build(question, history, meta_data, state)
        from yarl import URL  # with aiohttp, on first use (validate never needs it)

        # sent as rendered (encoded: normalising it again would resolve a `..` value); query values
        # are merged into the URL's own query (params= would replace it)
        address = URL(url, encoded=True)
        full_url = address.update_query(query) if query else address
        proxy = proxy_for(url)
        record: dict[str, Any] = {}

        async def send(method: str, url: URL, body: Any = None, *, raw: bool = False) -> Answer:
            """One request of the turn; one with a body is the turn's recorded request."""
            sent = (
                dict(headers) if body is not None else {k: v for k, v in headers.items() if k.lower() != "content-type"}
            )
            cookie = state.cookie_header(url)
            if cookie:
                sent["Cookie"] = cookie
            if body is not None:
                record.clear()
                record.update(self._record(url, headers, body, cookie=bool(cookie), method=method))
            content = None if body is None else encode_body(body)
            return await self._exchange(session, method, url, sent, content, proxy, state, raw=raw)

        async def attempt(retry: int) -> Answer:
            record.clear()  # the request as built, until the format sends one with a body
            record.update(self._record(full_url, headers, body, cookie=bool(state.cookie_header(full_url))))
            try:
                answer = await within(self.dialect.exchange(send, full_url, body), self.timeout)
            except UnusableAnswer as unusable:
                unusable.answer.retries = retry
                error = errors.app_error(unusable.what, unusable.answer, record, fatal=unusable.fatal)
                if unusable.retry:
                    raise RetryLater(error) from None
                raise error from None
            except ExchangeFailed as failed:
                exc, kind = failed.cause, failed.kind
                if kind == TIMEOUT:
                    raise RetryLater(errors.timeout_error(record, retry, self.timeout)) from None
                if kind == UNREACHABLE:
                    raise RetryLater(errors.unreachable_error(record, exc, retry, self.source)) from None
                if kind == FATAL:
                    raise errors.transport_error(record, exc, retry, fatal=True) from None
                raise RetryLater(errors.transport_error(record, exc, retry)) from None
            answer.retries = retry
            if answer.status == 429 and over_the_limit(answer.text):
                raise self._status_error(answer, record)  # never passes: not waited for, not retried
            if answer.status in (429, 503) or answer.status >= 500:
                wait = parse_retry_after(answer.headers.get("retry-after")) if answer.status in (429, 503) else None
                raise RetryLater(self._status_error(answer, record), retry_after=wait)
            return answer

        answer = await retry_async(attempt, self.retry)
        if answer.status >= 300:
            raise self._status_error(answer, record)
        return self._reader.reply(answer, record, state)

    async def _exchange(
        self,
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: dict[str, str],
        content: bytes | None,
        proxy: str | None,
        state: Conversation,
        raw: bool = False,
    ) -> Answer:
        """Send and read the answer, to its end or `max_reply_bytes`; a stream until `[DONE]` (with
        `raw`, its bytes to the end, for the format to read).

        An answer cut at the limit has its connection closed, never drained.
        """
        clock = ExchangeClock()
        response = await session.request(
            method,
            url,
            headers=headers,
            data=content,
            proxy=proxy,
            allow_redirects=False,
            trace_request_ctx=clock,
        )
        try:
            state.keep_cookies(response)
            answer = Answer(status=response.status, headers=response.headers)
            if not 200 <= response.status < 300:
                answer.content, answer.cut = await read_body(response, min(self.max_reply_bytes, ERROR_BODY_BYTES))
            elif not raw and "text/event-stream" in response.headers.get("content-type", "").lower():
                answer.stream = self._reader.new_stream()
                answer.cut = await read_events(response, self.max_reply_bytes, answer.stream.add, parse=False)
            else:
                answer.content, answer.cut = await read_body(response, self.max_reply_bytes)
            answer.latency_ms, answer.connect_ms = clock.latency_ms(), clock.connect_ms
            if answer.cut:
                response.close()  # the rest is never read: the connection cannot be reused
            return answer
        finally:
            response.release()

    def _status_error(self, answer: Answer, record: dict[str, Any]) -> TurnError:
        return errors.status_error(answer, record, self.source, self.dialect)
