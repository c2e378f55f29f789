"""Sending state requests (setup, teardown, outcome checks) the way the target sends its turns.

The target lends them what it knows: `{{base}}` (its URL's scheme, host and port, or a callback's
`base_url`), its headers (the auth, sent only to its own origin so a manifest cannot pass them to
another host), its timeout and retries, and an open conversation's session id and cookies. Answers
are read never past `ANSWER_BYTES`. Every exchange becomes a record with no credential in it (the
URL without secrets, headers as the target records them, the answer, the error); a failure is an
`Exchange` with `error` set, never an exception, since it must cost no finished result.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from ..aio.event_loops import PerLoop
from ..aio.http_sessions import (
    FATAL,
    MAX_CONNECTIONS,
    TIMEOUT,
    UNREACHABLE,
    ExchangeFailed,
    new_session,
    proxy_for,
    within,
)
from ..parsing import strict_json
from ..parsing.template import render
from ..records import StateRecord
from ..targets import CallbackTarget, HttpTarget, Target
from ..targets.http import encode_body, read_body
from ..targets.http.answer import snippet
from ..targets.http.errors import describe_transport
from ..targets.http.rendering import recorded_headers, render_headers, render_url
from ..targets.redaction import safe_url
from ..targets.retry import RetryLater, RetryPolicy, parse_retry_after, retry_async
from ..text.known_secrets import scrub, scrub_text
from ..text.unicode_safety import replace_lone_surrogates, surrogate_note
from .requests import StateRequest

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

#: a state answer is read to at most this many bytes (state endpoints answer small documents)
ANSWER_BYTES = 1024 * 1024
#: a JSON answer longer than this (as JSON text) is not kept whole in the results
KEPT_CHARS = 100_000
DEFAULT_TIMEOUT = 30.0


class StateError(Exception):
    """Why a state request got no usable answer."""


@dataclass
class Exchange:
    """A state request as sent and answered: the record results keep, the JSON answer, the error."""

    record: StateRecord
    document: Any = None
    error: str | None = None


def origin(url: str) -> str | None:
    """`scheme://[userinfo@]host[:port]` of an http(s) URL; None when it has none (or placeholders in it).

    Only the scheme and the host are case-insensitive: credentials in the URL stay as written."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or "{{" in parts.netloc:
        return None
    userinfo, at, host = parts.netloc.rpartition("@")
    return f"{parts.scheme.lower()}://{userinfo}{at}{host.lower()}"


def base_of(target: Target | None) -> tuple[str | None, str]:
    """Where `{{base}}` points for `target`, or None and why it has no value."""
    if isinstance(target, HttpTarget):
        found = origin(target.url)
        return (found, "") if found else (None, "the target's URL has placeholders in its host")
    if isinstance(target, CallbackTarget):
        base = getattr(target.fn, "base_url", None)
        base = base() if callable(base) else base
        if isinstance(base, str) and origin(base):
            return base.rstrip("/"), ""
        return None, f"the callback {target.name} has no base_url; write the full URL instead"
    return None, "there is no app target; write the full URL instead"


@dataclass
class Call:
    """What one conversation lends its state requests: the placeholders' values and the target."""

    target: Target | None
    values: dict[str, Any]
    #: the target's state for the open conversation (session id, cookies), if any
    state: Any = None
    #: why `{{session_id}}` has no value, when it has none
    session_note: str = "the app handed out no session id in this conversation"
    base_note: str = field(default="")

    @classmethod
    def of(cls, target: Target | None, conversation_id: str, meta: Mapping[str, Any], state: Any = None) -> Call:
        """The call of a conversation (`meta` is its result's meta_data, or what the runner knows)."""
        base, why = base_of(target)
        persona = meta.get("persona")
        values = {
            "base": base,
            "conversation_id": conversation_id,
            "session_id": getattr(state, "session_id", None),
            "simulation": meta.get("simulation") or "",
            "persona": persona.get("name", "") if isinstance(persona, Mapping) else str(persona or ""),
            "task": meta.get("task") or "",
        }
        return cls(target, values, state, base_note=why)


def _render_body(node: Any, values: Mapping[str, Any], where: str) -> Any:
    if isinstance(node, str):
        return render(node, values, where)
    if isinstance(node, dict):
        return {key: _render_body(value, values, f"{where}.{key}") for key, value in node.items()}
    if isinstance(node, list):
        return [_render_body(value, values, f"{where}[{i}]") for i, value in enumerate(node)]
    return node


class StateClient:
    """Sends state requests: one session per event loop, shared by every conversation."""

    def __init__(self) -> None:
        self._connections = MAX_CONNECTIONS  # raised by `warm` for a run with more conversations at a time
        self._sessions: PerLoop[aiohttp.ClientSession] = PerLoop(lambda: new_session(limit=self._connections))

    def warm(self, concurrency: int) -> None:
        """Keep as many connections as conversations at a time: each may have a request in flight, and
        one waiting for a free connection would count the wait in its timeout."""
        self._connections = max(MAX_CONNECTIONS, concurrency)

    async def aclose(self) -> None:
        session = self._sessions.pop()
        if session is not None:
            await session.close()

    async def send(self, request: StateRequest, call: Call, *, json_answer: bool = False) -> Exchange:
        """Send `request` for the conversation of `call`; `json_answer`: an answer that is not JSON is an error."""
        record: StateRecord = {"name": request.label, "key": request.key, "method": request.method, "url": None}
        started = time.monotonic()
        document, error = None, None
        try:
            url, headers, body, cookies = self._prepare(request, call, record)
            content = await self._exchange(request, call, url, headers, body, cookies, record)
            document = _answer(record["status"], content, json_answer, record)
        except StateError as exc:
            error = scrub_text(f"{request.method} {record.get('url') or request.url}: {exc}")
            record["error"] = error
        except Exception as exc:  # a URL or header that cannot be sent: this request's error, never a lost result
            error = scrub_text(f"{request.method} {record.get('url') or request.url}: {type(exc).__name__}: {exc}")
            record["error"] = error
        record["latency_ms"] = round((time.monotonic() - started) * 1000, 3)
        return Exchange(scrub(record), document, error)

    def _prepare(self, request: StateRequest, call: Call, record: StateRecord) -> tuple[str, dict[str, str], Any, bool]:
        """The URL, headers and body to send, and whether the conversation's cookies go along."""
        values = call.values
        if request.uses("base") and not values.get("base"):
            raise StateError(f"{{{{base}}}} has no value: {call.base_note}")
        if request.uses("session_id") and not values.get("session_id"):
            raise StateError(f"{{{{session_id}}}} has no value: {call.session_note}")
        filled = {k: ("" if v is None else v) for k, v in values.items()}
        url = render_url(request.url, filled, f"{request.source}.url", raw=("base",))
        record["url"] = safe_url(url)
        if not origin(url):
            raise StateError(f"{safe_url(url)!r} is not an http(s) URL ({request.source}.url)")
        headers: dict[str, str] = {}
        templates: dict[str, str] = {}
        own_origin = isinstance(call.target, HttpTarget) and origin(url) == origin(call.target.url)
        if own_origin and isinstance(call.target, HttpTarget):
            turn_values = {**filled, "question": "", "turn_number": ""}
            headers = render_headers(call.target.headers, turn_values, f"{call.target.source}.headers")
            templates = dict(call.target.headers)
        own = render_headers(request.headers, filled, f"{request.source}.headers")
        for name, value in own.items():
            for existing in [k for k in headers if k.lower() == name.lower()]:
                del headers[existing]
            headers[name] = value
        templates.update(request.headers)
        body = None if request.body is None else _render_body(request.body, filled, f"{request.source}.body")
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        cookies = bool(own_origin and call.state is not None and getattr(call.state, "cookies", None))
        record["headers"] = recorded_headers(headers, templates, cookie=cookies)
        return url, headers, body, cookies

    async def _exchange(
        self,
        request: StateRequest,
        call: Call,
        url: str,
        headers: dict[str, str],
        body: Any,
        cookies: bool,
        record: StateRecord,
    ) -> bytes:
        """Send with the target's retries (timeouts, dropped connections, 429 and 5xx); the answer, read
        to `ANSWER_BYTES` (its status and the retries it took go to `record`)."""
        target = call.target if isinstance(call.target, HttpTarget) else None
        timeout = request.timeout or (target.timeout if target else DEFAULT_TIMEOUT)
        # the target's retries, not its rate limiter: a setup or an outcome request is no turn
        policy = replace(target.retry, limiter=None) if target else RetryPolicy()
        content = None if body is None else encode_body(body)
        from yarl import URL  # with aiohttp, on first use

        session = self._sessions.get()
        address = URL(url, encoded=True)  # as rendered: normalising it again would resolve a `..` value
        proxy = proxy_for(url)

        async def attempt(retry: int) -> tuple[bytes, int]:
            sent = dict(headers)
            cookie = call.state.cookie_header(address) if cookies else None
            if cookie:
                sent["Cookie"] = cookie
            try:
                exchange = self._read(session, request.method, address, sent, content, proxy)
                status, answer, wait = await within(exchange, timeout)
            except ExchangeFailed as failed:
                exc, kind = failed.cause, failed.kind
                if kind == TIMEOUT:
                    raise RetryLater(StateError(f"no complete answer within {timeout:g} s{_after(retry)}")) from None
                if kind == UNREACHABLE:
                    raise RetryLater(StateError(f"unreachable: {describe_transport(exc)}{_after(retry)}")) from None
                if kind == FATAL:
                    raise StateError(f"cannot be sent: {describe_transport(exc)}") from None
                broke = f"the connection failed: {describe_transport(exc)}{_after(retry)}"
                raise RetryLater(StateError(broke)) from None
            record["status"] = status
            if status == 429 or status >= 500:
                text = snippet(scrub_text(answer.decode("utf-8", errors="replace")))
                raise RetryLater(StateError(f"answered HTTP {status}{_after(retry)}: {text}"), retry_after=wait)
            return answer, retry

        answer, retries = await retry_async(attempt, policy)
        if retries:
            record["retries"] = retries
        return answer

    @staticmethod
    async def _read(
        session: aiohttp.ClientSession,
        method: str,
        url: URL,
        headers: dict[str, str],
        content: bytes | None,
        proxy: str | None,
    ) -> tuple[int, bytes, float | None]:
        response = await session.request(method, url, headers=headers, data=content, proxy=proxy, allow_redirects=False)
        try:
            content, cut = await read_body(response, ANSWER_BYTES)
            if cut:
                response.close()  # the rest is never read: the connection cannot be reused
                raise StateError(
                    f"answered HTTP {response.status} with more than {ANSWER_BYTES:,} bytes; "
                    "a state answer is read to at most that, so point the request at a smaller document"
                )
            wait = parse_retry_after(response.headers.get("retry-after"))
            return response.status, content, wait
        finally:
            response.release()


def _after(retry: int) -> str:
    return f" (after {retry} {'retry' if retry == 1 else 'retries'})" if retry else ""


def _answer(status: int, content: bytes, json_answer: bool, record: StateRecord) -> Any:
    """The JSON answer (None for an empty or, where allowed, non-JSON one); kept in `record` when small."""
    text = content.decode("utf-8", errors="replace")
    if not 200 <= status < 300:
        raise StateError(f"answered HTTP {status}: {snippet(scrub_text(text)) or '(empty)'}")
    try:
        document = strict_json.loads(text, max_depth=strict_json.EMBEDDED_MAX_DEPTH) if text.strip() else None
        parsed = bool(text.strip())
    except strict_json.NotJSON:
        document, parsed = None, False
    except strict_json.JSONError as exc:
        raise StateError(f"answered HTTP {status} with JSON that cannot be used: {exc}") from None
    if json_answer and not parsed:
        what = "an empty body" if not text.strip() else f"a body that is not JSON: {snippet(scrub_text(text), 120)}"
        raise StateError(f"answered HTTP {status} with {what}")
    if parsed:
        document, replaced = replace_lone_surrogates(document)  # U+FFFD as it is read: results can hold it
        if replaced:
            record["notes"] = [surrogate_note(replaced, "the answer")]
        kept = json.dumps(document, ensure_ascii=False)
        if len(kept) <= KEPT_CHARS:
            record["answer"] = scrub(document)
        else:
            record["answer_cut"] = f"the answer was {len(kept):,} characters; results keep at most {KEPT_CHARS:,}"
    elif text.strip():
        record["answer_snippet"] = snippet(scrub_text(text))
    return document
