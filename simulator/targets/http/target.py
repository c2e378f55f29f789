"""`HttpTarget`: an app behind an HTTP endpoint, whatever format it speaks.

Each turn is one request (retried on 429/503/5xx, timeouts and dropped connections), or the few
its format's `exchange` makes; the reply text is read from the JSON answer with a path, or
assembled from a `text/event-stream`, never past `max_reply_bytes`. The format (`HttpFormat`)
decides the address, the body and where the text is; everything here is the same for all formats.
"""

from __future__ import annotations

import contextlib
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
from ...errors import TurnError
from ...parsing import strict_json
from ...parsing.json_path import PathError, extract, format_path, parse_path
from ...text import known_secrets
from ...text.known_secrets import scrub, scrub_text
from ...text.unicode_safety import replace_lone_surrogates, surrogate_note
from ..base import AppReply, Target
from ..redaction import credential_values, redact_body, safe_url
from ..retry import RetryLater, parse_retry_after, retry_async
from . import errors
from .answer import Answer, StreamReply, snippet
from .bounded import read_body
from .config import load_settings
from .format import MissingReply, UnusableAnswer
from .registry import DEFAULT_FORMAT
from .rendering import recorded_headers, render_headers, render_url
from .session import Conversation
from .sse import read_events

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

#: an error answer (4xx/5xx, a redirect) is read to at most this many bytes: only a snippet of it is kept
ERROR_BODY_BYTES = 64 * 1024
#: what a reading of the reply gives: the text, the usage, and the parts of a multi-part reply
Reading = tuple[str, dict[str, Any] | None, list[str] | None]


def encode_body(body: Any) -> bytes:
    """A JSON request body as the connector sends it (and as `expand_request` gives it back)."""
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")


def _kind(value: Any) -> str:
    return "objects" if isinstance(value, dict) else "lists"


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
            if answer.status in (429, 503) or answer.status >= 500:
                wait = parse_retry_after(answer.headers.get("retry-after")) if answer.status in (429, 503) else None
                raise RetryLater(self._status_error(answer, record), retry_after=wait)
            return answer

        answer = await retry_async(attempt, self.retry)
        if answer.status >= 300:
            raise self._status_error(answer, record)
        return self._reply(answer, record, state)

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
                answer.stream = self._new_stream()
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

    # --- reading the answer ----------------------------------------------------------------------

    def _reply(self, answer: Answer, record: dict[str, Any], state: Conversation) -> AppReply:
        raw: dict[str, Any] = {"status": answer.status}
        if answer.retries:
            raw["retries"] = answer.retries
        notes: list[str] = []
        if answer.stream is not None:
            text, usage, parts = self._read_stream(answer.stream, answer, record, raw, notes)
            session = answer.stream.session
            replaced = answer.stream.replaced
        else:
            # lone surrogates (a `"\\ud800"` escape) become U+FFFD as the answer is read: its session id,
            # reply and raw answer never hold text UTF-8 cannot hold
            document, replaced = replace_lone_surrogates(self._document(answer, record))
            raw["body"] = document
            text, usage, parts = self._text_from_document(document, answer, record)
            session = None
            if self.session is not None and self.session.json_path is not None:
                with contextlib.suppress(PathError):
                    session = extract(document, self.session.json_path)
        if parts is not None:
            raw["parts"] = parts
        if replaced:
            notes.append(surrogate_note(replaced, "the app's answer"))
        if not text.strip():
            place = "the stream" if answer.stream is not None else f"path {self.settings.response_path()!r}"
            raise errors.app_error(f"gave an empty reply (the text at {place} is empty)", answer, record)
        state.learn(self.session, answer.headers, session)
        return AppReply(
            text=scrub_text(text),
            raw=scrub(raw),
            request=dict(record),
            usage=usage,
            notes=notes,
            latency_ms=answer.latency_ms,
            connect_ms=answer.connect_ms,
        )

    def _over_limit(self) -> str:
        return f"sent more than {self.max_reply_bytes:,} bytes ({self.source}.max_reply_bytes)"

    def _raise_limit(self) -> str:
        return f"raise {self.source}.max_reply_bytes if the app's answers are that big"

    def _document(self, answer: Answer, record: dict[str, Any]) -> Any:
        """The JSON answer, read whole; a cut, empty or non-JSON answer is an app error."""
        if answer.cut:
            raise errors.app_error(
                f"{self._over_limit()}; the connection was closed there and the cut JSON cannot be parsed: "
                f"{self._raise_limit()}",
                answer,
                record,
            )
        try:
            document = (
                strict_json.loads(answer.content, max_depth=strict_json.EMBEDDED_MAX_DEPTH)
                if answer.content.strip()
                else None
            )
        except strict_json.NotJSON:
            document = None
        except strict_json.JSONError as exc:  # JSON, but which value is meant, or what a number is, cannot be known
            raise errors.app_error(
                f"answered with JSON that cannot be used: {exc}", answer, record, mistake=True
            ) from None
        if document is None:
            what = "an empty body" if not answer.content.strip() else "a body that is not JSON"
            ctype = answer.headers.get("content-type", "no content type")
            raise errors.app_error(f"answered with {what} ({ctype})", answer, record, mistake=True)
        return document

    def _text_from_document(self, document: Any, answer: Answer, record: dict[str, Any]) -> Reading:
        usage = self.dialect.usage(document)
        if self.dialect.withheld(document):
            raise errors.withheld_error(answer, record)
        path = self.settings.response_path()
        try:
            value = self.dialect.reply(extract(document, self.settings.path or path))
        except (PathError, MissingReply) as exc:
            fix = self.dialect.missing_reply(self.source) if self.response is None else ""
            raise errors.app_error(
                f"answered without the reply text: {exc}{fix}", answer, record, mistake=True
            ) from None
        if isinstance(value, list):
            parts = []
            for index, part in enumerate(value):
                if isinstance(part, (dict, list)):
                    raise errors.app_error(
                        f"answered with {_kind(part)} at path {path!r} (item {index}), not text; "
                        f"point {self.source}.response at the text inside, e.g. messages[*].text",
                        answer,
                        record,
                        mistake=True,
                    )
                if part is not None:
                    parts.append(part if isinstance(part, str) else str(part))
            return "\n\n".join(parts), usage, parts
        if isinstance(value, dict):
            keys = ", ".join(map(str, list(value)[:12]))
            raise errors.app_error(
                f"answered with an object at path {path!r} (keys: {keys}), not text; point {self.source}.response "
                "at the text inside it",
                answer,
                record,
                mistake=True,
            )
        return ("" if value is None else value if isinstance(value, str) else str(value)), usage, None

    def _new_stream(self) -> StreamReply:
        session = self.session.json_path if self.session is not None else None
        return StreamReply(parse_path(self.settings.response_path(stream=True)), self.dialect, session)

    def _read_stream(
        self, stream: StreamReply, answer: Answer, record: dict[str, Any], raw: dict[str, Any], notes: list[str]
    ) -> Reading:
        """The reply an event stream added up to; the first events go to `raw`."""
        if answer.cut and not stream.count:
            raise errors.app_error(
                f"{self._over_limit()}; no event was complete by then: {self._raise_limit()}", answer, record
            )
        raw["events"] = stream.events
        if stream.count > len(stream.events):
            raw["events_total"] = stream.count  # only the first ones are kept
        if not stream.count:
            raise errors.app_error("sent an event stream with no events", answer, record, mistake=True)
        if stream.filtered is not None:
            raise errors.withheld_error(answer, record)
        if not stream.found:
            raise errors.app_error(self._no_reply_in(stream), answer, record, mistake=True)
        if answer.cut:
            raw["cut_at_bytes"] = self.max_reply_bytes
            notes.append(
                f"the app {self._over_limit()}: the connection was closed there and the {stream.count:,} "
                "events completed before are the reply"
            )
        return stream.text, stream.usage, None

    def _no_reply_in(self, stream: StreamReply) -> str:
        """What a JSON event stream with no reply text at the path means, and what to set."""
        complete = stream.count == len(stream.events)
        said = self.dialect.stream_without_reply(stream.events, self.source) if complete else None
        if said is not None:
            return said
        path = format_path(stream.path)
        first = snippet(json.dumps(stream.events[0]), 120)
        found = f"sent {stream.count} events but none has the reply text at path {path!r} (first event: {first})"
        if self.dialect.stream_response_fixed:  # `response` does not apply to this format's events
            return (
                f"{found}; format {self.format} reads each event's text there: for an app whose events have a "
                f"shape of their own, use format: http with {self.source}.response"
            )
        return f"{found}; set {self.source}.response to the path of the text piece in each event"
