"""In-process fake of a *chat app under test*, speaking the dialects HTTP connectors target.

Tests start a :class:`FakeChatApp`, script its replies, point a connector (or
``requests`` / the ``openai`` SDK) at it and inspect what it received::

    with FakeChatApp() as app:
        app.issue_session = "header"
        app.script("Hello!", AppReply.rate_limited(0.01), lambda req: req.user_text.upper())
        requests.post(app.url + "/chat", json={"text": "hi"})
        assert app.requests[0].issued_session == "sess-1"
        assert app.transcripts["sess-1"] == ["hi"]

Routes (``POST`` unless noted; the reply text is ``<reply>``):

* ``/promptflow`` -- body ``{"question": str, "chat_history": [...]}`` -> ``{"answer": <reply>}``
  (400 when ``question`` is missing);
* ``/v1/chat/completions`` -- OpenAI chat completions, ``"stream": true`` gives SSE
  ``chat.completion.chunk`` events and ``data: [DONE]``;
* ``/chat`` -- any JSON -> ``{"data": {"reply": {"text": <reply>}}, "session": <id or null>}``;
* ``/sse`` -- ``text/event-stream`` of ``data: {"delta": "<piece>"}`` events and ``data: [DONE]``;
* ``/multi`` -- ``{"messages": [{"text": <part>}, ...]}``, the reply split on ``"\\n\\n"``;
* ``/gradio_api/run/chat`` -- a Gradio app's run route: body ``{"data": [<message>, <history>],
  ...}`` -> ``{"data": [<reply>, null], "is_generating": false}`` (400 without the ``data`` list;
  ``tests.servers.gradio_app`` speaks Gradio's other routes and keeps its sessions);
* ``GET /health`` -- ``{"ok": true}`` (never needs auth, never consumes a scripted reply);
* ``GET``/``PUT``/``DELETE /orders/<id>`` -- the app's state (:attr:`FakeChatApp.orders`, see
  ``tests.servers.orders``): read, seed or remove an order; :meth:`FakeChatApp.order_desk` is a
  reply factory that changes them as a conversation asks. Needs the auth header too; never
  consumes a scripted reply; :attr:`FakeChatApp.orders_fault` replaces every answer while set.

With :attr:`FakeChatApp.mount` set (e.g. ``"/t/abc"``), the routes live under that prefix
(``/t/abc/chat``), as an app deployed under a sub-path; the recorded ``path`` is the full one.

Streamed answers (``/sse`` and streamed ``/v1/chat/completions``) use
``Transfer-Encoding: chunked`` and are written piece by piece, flushing and
sleeping :attr:`FakeChatApp.sse_piece_delay` between pieces, so a client has to
read until the terminating zero-size chunk; the connection stays usable
(keep-alive) afterwards. HTTP/1.0 clients get the stream with ``Connection:
close`` instead.

Every request is recorded, whatever its outcome. Only requests to a chat route
that pass the method check, the auth hook and body validation get a session,
add to :attr:`FakeChatApp.transcripts` and consume a scripted reply.
Standard library only.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, Literal

from tests.servers.base import (
    ChatRecordedRequest,
    LocalHandler,
    ScriptedServer,
    chat_completion,
    chat_completion_chunks,
    count_words,
    split_text,
    sse_event,
)
from tests.servers.orders import OrderBook, order_id_of

__all__ = [
    "ROUTES",
    "SESSION_COOKIE",
    "SESSION_HEADER",
    "AppReply",
    "AppReplyFactory",
    "AppReplyLike",
    "FakeChatApp",
    "RecordedRequest",
    "SessionMode",
    "echo_reply",
]

ROUTES: dict[str, str] = {
    "/promptflow": "promptflow",
    "/v1/chat/completions": "openai",
    "/chat": "chat",
    "/sse": "sse",
    "/multi": "multi",
    "/gradio_api/run/chat": "gradio",
    "/health": "health",
}
"""Path -> route name."""

SESSION_HEADER = "X-Session-Id"
SESSION_COOKIE = "session"
SessionMode = Literal["header", "cookie", "body"]

# Body keys that hold ids, not user text: skipped when looking for "the first string value".
_ID_KEYS = frozenset({"session_id", "session", "conversation_id", "model", "role"})


@dataclass
class RecordedRequest(ChatRecordedRequest):
    """One HTTP request received by the fake app."""

    raw_body: bytes
    received_at: float
    """``time.monotonic()`` when the request was received."""
    issued_session: str | None = None
    """Session id the app issued in its answer to this request (``None`` if none)."""
    mount: str = ""
    """The app's :attr:`FakeChatApp.mount` when the request came in."""

    @property
    def route(self) -> str | None:
        """Route name (see :data:`ROUTES`), ``None`` for an unknown path."""
        return ROUTES.get(_route_path(self.path, self.mount))

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent in the ``Cookie`` header."""
        cookies: dict[str, str] = {}
        for part in self.headers.get("cookie", "").split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name:
                cookies.setdefault(name.strip(), value.strip().strip('"'))
        return cookies

    @property
    def session(self) -> str | None:
        """Session id sent by the client: header ``X-Session-Id``, cookie ``session``,
        body ``session_id`` or body ``session`` (first found)."""
        header = self.headers.get(SESSION_HEADER.lower())
        if header:
            return header
        cookie = self.cookies.get(SESSION_COOKIE)
        if cookie:
            return cookie
        return self._body_id("session_id") or self._body_id("session")

    @property
    def conversation_id(self) -> str | None:
        """The ``conversation_id`` body field, if the client supplies one."""
        return self._body_id("conversation_id")

    @property
    def user_text(self) -> str | None:
        """What the user said: ``question`` (promptflow), the last ``user`` message
        (openai) or the first string value of the body, ignoring id-like keys (others)."""
        route = self.route
        if route == "promptflow":
            question = self.body.get("question") if isinstance(self.body, dict) else None
            return question if isinstance(question, str) else None
        if route == "gradio":
            data = self.body.get("data") if isinstance(self.body, dict) else None
            return data[0] if isinstance(data, list) and data and isinstance(data[0], str) else None
        if route == "openai":
            for message in reversed(self.messages):
                if isinstance(message, dict) and message.get("role") == "user":
                    return _message_text(message.get("content"))
            return None
        return _first_string(self.body)

    def _body_id(self, key: str) -> str | None:
        if not isinstance(self.body, dict):
            return None
        value = self.body.get(key)
        if isinstance(value, bool):
            return None
        if isinstance(value, int):
            return str(value)
        return value if isinstance(value, str) and value else None


@dataclass
class AppReply:
    """A scripted answer of the fake app.

    Without ``body`` the route's normal answer is built from ``text`` (status < 400)
    or a JSON error ``{"error": {"message": text, "status": status}}`` is sent
    (status >= 400). ``body`` is a raw override sent as-is: dict/list -> JSON,
    str/bytes -> sent with ``content_type`` (default ``text/plain``).
    ``content_type`` also overrides the content type of generated answers, and a
    ``Content-Type`` in ``headers`` overrides both.
    """

    text: str = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | list[Any] | str | bytes | None = None
    content_type: str | None = None
    delay: float = 0.0
    """Seconds to wait before answering (or before dropping the connection)."""
    close_connection: bool = False
    """Drop the socket with an RST instead of answering."""
    truncate: bool = False
    """Send about half the body under a larger ``Content-Length`` (for streams: half
    the events, no terminating chunk), then close the connection."""
    set_cookie: str | None = None
    """Raw ``Set-Cookie`` header value to add to the answer."""
    chunks: Callable[[], Iterable[bytes]] | None = None
    """Makes the body lazily, piece by piece, instead of ``text``/``body`` (which it overrides):
    an endless or huge answer costs the server no memory. Sent chunked, or under
    ``content_length`` when given; the writing stops when the client goes away."""
    content_length: int | None = None
    """The ``Content-Length`` claimed for ``chunks`` (None: ``Transfer-Encoding: chunked``)."""

    @classmethod
    def error(cls, status: int, message: str = "boom", headers: dict[str, str] | None = None) -> AppReply:
        """An error answer with a ``{"error": {"message": ..., "status": ...}}`` body."""
        return cls(text=message, status=status, headers=dict(headers or {}))

    @classmethod
    def rate_limited(cls, retry_after: float | str | None = 1) -> AppReply:
        """A 429 answer with a ``Retry-After`` header unless ``retry_after`` is None
        (a number is seconds, a str is sent verbatim, e.g. an HTTP date)."""
        headers = {} if retry_after is None else {"Retry-After": _format_retry_after(retry_after)}
        return cls.error(429, "rate limited, slow down", headers=headers)

    @classmethod
    def not_json(cls, text: str = "<html>oops</html>") -> AppReply:
        """A 200 answer whose body is HTML instead of JSON."""
        return cls(text=text, body=text, content_type="text/html; charset=utf-8")

    @classmethod
    def empty(cls) -> AppReply:
        """A 200 answer with the route's normal shape but an empty reply text."""
        return cls(text="")


AppReplyFactory = Callable[[RecordedRequest], str | AppReply]
"""A callable producing a reply for a request."""
AppReplyLike = str | AppReply | AppReplyFactory
"""Anything :meth:`FakeChatApp.script` accepts."""


def echo_reply(request: RecordedRequest) -> AppReply:
    """The built-in default reply: ``"You said: <last user text>"``."""
    return AppReply(text=f"You said: {request.user_text or ''}")


class FakeChatApp(ScriptedServer[RecordedRequest, AppReply]):
    """Scriptable fake chat app running in a daemon thread (one thread per connection).

    Use as a context manager or call :meth:`start` / :meth:`close`. :meth:`script`
    takes replies as str, :class:`AppReply` or callable (see :data:`AppReplyLike`); the
    :attr:`default` reply factory starts as :func:`echo_reply`. :meth:`reset` also
    forgets the transcripts and resets the in-flight peak.
    """

    reply_type = AppReply

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare the app; nothing is bound until :meth:`start`."""
        super().__init__(host, port, _Handler, echo_reply)
        self._session_counter = 0
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self.issue_session: SessionMode | None = None
        """How to hand a new ``sess-<n>`` id to a request that has no session (None: don't)."""
        self.require_header: tuple[str, str] | None = None
        """``(name, value)`` every chat request must carry, else 401 (``/health`` is exempt)."""
        self.transcripts: dict[str, list[str]] = {}
        """User texts received per conversation: keyed by the body ``conversation_id`` if
        given, else by the session id (sent by the client or just issued)."""
        self.sse_piece_delay: float = 0.01
        """Seconds slept between the pieces of a streamed answer."""
        self.max_in_flight = 0
        """Peak number of requests being handled at the same time."""
        self.mount = ""
        """Path prefix the routes live under (``""``: at the root); other paths get 404."""
        self.orders = OrderBook()
        """The app's state behind ``/orders/<id>``; :meth:`order_desk` changes it as a conversation asks."""
        self.orders_fault: AppReply | None = None
        """Sent instead of every ``/orders/...`` answer while set: an error status (the state endpoint
        is down), :meth:`AppReply.not_json`, or ``AppReply(close_connection=True)``."""

    # -- counters ------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Number of requests being handled right now."""
        with self._lock:
            return self._in_flight

    def wait_idle(self, timeout: float = 5.0) -> None:
        """Wait until no request is being handled.

        A client has its answer before the handler thread returns, so a count read right after
        the last answer can still see that handler; tests that assert on it wait here first.
        """
        with self._idle:
            if not self._idle.wait_for(lambda: self._in_flight == 0, timeout):
                raise TimeoutError(f"{self._in_flight} request(s) still being handled after {timeout} s")

    # -- state -------------------------------------------------------------

    def order_desk(self, request: RecordedRequest) -> AppReply:
        """A reply factory (``app.default = app.order_desk``) for an app that acts on orders (see
        ``OrderBook.desk``); the JSON answer lists the tools it called under ``tools``."""
        text, tools = self.orders.desk(request.user_text or "")
        called = [{"name": name} for name in tools]
        if request.route == "promptflow":
            return AppReply(text=text, body={"answer": text, "tools": called})
        return AppReply(text=text, body={"data": {"reply": {"text": text}}, "tools": called})

    # -- inspection --------------------------------------------------------

    def transcript(self, key: str) -> list[str]:
        """A copy of the user texts recorded under ``key`` (empty if unknown)."""
        with self._lock:
            return list(self.transcripts.get(key, []))

    # -- internals used by the handler ----------------------------------------

    def _forget(self) -> None:
        """Drop unconsumed replies and transcripts, reset the peak (lock held)."""
        super()._forget()
        self.transcripts.clear()
        self.max_in_flight = self._in_flight

    def _enter(self) -> None:
        with self._lock:
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)

    def _leave(self) -> None:
        with self._idle:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._idle.notify_all()

    def _open_turn(self, request: RecordedRequest) -> SessionMode | None:
        """Issue a session if needed and add the user text to the transcript.

        Returns the issuing mode when a session was issued for this request.
        """
        with self._lock:
            sent = request.session
            mode = self.issue_session
            if sent is None and mode is not None:
                self._session_counter += 1
                request.issued_session = f"sess-{self._session_counter}"
            key = request.conversation_id or sent or request.issued_session
            text = request.user_text
            if key is not None and text is not None:
                self.transcripts.setdefault(key, []).append(text)
            return mode if request.issued_session is not None else None


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


Headers = list[tuple[str, str]]


class _Handler(LocalHandler):
    server_version = "FakeChatApp/1.0"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    dropped_headers = frozenset({"content-length", "transfer-encoding"})

    def version_string(self) -> str:
        """``Server`` header value."""
        return self.server_version

    def _handle(self) -> None:
        fake: FakeChatApp = self.server.fake
        fake._enter()
        try:
            self._handle_request(fake)
        finally:
            fake._leave()

    # -- request handling ----------------------------------------------------

    def _handle_request(self, fake: FakeChatApp) -> None:
        received_at = time.monotonic()
        incoming = self._read_request()
        path, headers, body, json_ok = incoming.path, incoming.headers, incoming.body, incoming.json_ok
        request = incoming.record(
            RecordedRequest, raw_body=incoming.raw_body, received_at=received_at, mount=fake.mount
        )
        fake._record(request)

        order_id = order_id_of(_route_path(path, fake.mount) or "")
        if order_id is not None:
            self._send_order(fake, request, order_id)
            return
        route = request.route
        if route is None:
            self._send_json(404, _error_body(f"no route for {self.command} {path}", 404))
            return
        allowed = "GET" if route == "health" else "POST"
        if self.command != allowed:
            message = f"method {self.command} not allowed for {path}"
            self._send_json(405, _error_body(message, 405), [("Allow", allowed)])
            return
        if route == "health":
            self._send_json(200, {"ok": True})
            return
        if fake.require_header is not None:
            name, expected = fake.require_header
            if headers.get(name.lower()) != expected:
                self._send_json(401, _error_body("unauthorized", 401))
                return
        if not json_ok:
            self._send_json(400, _error_body("request body is not valid JSON", 400))
            return
        problem = _validate(route, body)
        if problem is not None:
            self._send_json(400, _error_body(problem, 400))
            return

        issued_via = fake._open_turn(request)
        try:
            reply = fake._next_reply(request)
        except Exception as exc:  # a reply callable blew up: report it as a 500
            fake._record_error(exc)
            self._send_json(500, _error_body(f"fake chat app reply failed: {exc!r}", 500))
            return
        self._send_reply(route, request, reply, issued_via)

    def _send_order(self, fake: FakeChatApp, request: RecordedRequest, order_id: str) -> None:
        if fake.require_header is not None:
            name, expected = fake.require_header
            if request.headers.get(name.lower()) != expected:
                self._send_json(401, _error_body("unauthorized", 401))
                return
        fault = fake.orders_fault
        if fault is not None:
            self._send_reply("orders", request, fault, None)
            return
        status, payload = fake.orders.answer(self.command, order_id, request.body)
        self._send_json(status, payload)

    # -- response writing ----------------------------------------------------

    def _send_reply(
        self, route: str, request: RecordedRequest, reply: AppReply, issued_via: SessionMode | None
    ) -> None:
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.close_connection:
            self._reset_connection()
            return
        issued = request.issued_session
        headers: Headers = []
        if issued_via == "header" and issued:
            headers.append((SESSION_HEADER, issued))
        elif issued_via == "cookie" and issued:
            headers.append(("Set-Cookie", f"{SESSION_COOKIE}={issued}; Path=/; HttpOnly"))
        if reply.set_cookie:
            headers.append(("Set-Cookie", reply.set_cookie))
        headers.extend((str(k), str(v)) for k, v in reply.headers.items())

        if reply.chunks is not None:
            self._send_lazily(reply, headers)
            return
        if reply.body is not None:
            payload = reply.body
            if isinstance(payload, (dict, list)):
                data, ctype = json.dumps(payload).encode(), reply.content_type or "application/json"
            else:
                data = payload.encode() if isinstance(payload, str) else payload
                ctype = reply.content_type or "text/plain; charset=utf-8"
            self._send(reply.status, data, ctype, headers, truncate=reply.truncate)
            return
        if reply.status >= 400:
            message = reply.text or HTTPStatus(reply.status).phrase
            self._send_json(reply.status, _error_body(message, reply.status), headers, reply)
            return
        if route == "sse":
            self._send_stream(reply, _sse_events(reply.text), headers)
            return
        if route == "openai" and request.stream:
            events = _openai_chunks(self.server.fake._next_completion_id(), request, reply.text)
            self._send_stream(reply, events, headers)
            return
        payload = self._route_payload(route, request, reply.text, issued_via == "body")
        self._send_json(reply.status, payload, headers, reply)

    def _route_payload(self, route: str, request: RecordedRequest, text: str, session_in_body: bool) -> Any:
        if route == "promptflow":
            payload: dict[str, Any] = {"answer": text}
        elif route == "chat":
            session = request.session or request.issued_session
            payload = {"data": {"reply": {"text": text}}, "session": session}
        elif route == "multi":
            return {"messages": [{"text": part} for part in text.split("\n\n")]}
        elif route == "gradio":
            return {"data": [text, None], "is_generating": False}
        else:  # openai
            return _openai_completion(self.server.fake._next_completion_id(), request, text)
        if session_in_body:
            payload["session_id"] = request.issued_session
        return payload

    def _send_json(
        self, status: int, payload: Any, headers: Headers | None = None, reply: AppReply | None = None
    ) -> None:
        ctype = (reply.content_type if reply else None) or "application/json"
        truncate = bool(reply and reply.truncate)
        self._send(status, json.dumps(payload).encode(), ctype, headers, truncate=truncate)

    def _send(
        self, status: int, data: bytes, content_type: str, headers: Headers | None = None, *, truncate: bool = False
    ) -> None:
        if not truncate:
            super()._send(status, data, content_type, headers)
            return
        data = data[: len(data) // 2]
        super()._send(status, data, content_type, headers, content_length=max(2 * len(data), len(data) + 1))
        self.close_connection = True

    def _send_lazily(self, reply: AppReply, headers: Headers) -> None:
        """Write the pieces of ``reply.chunks()`` as they are made, until they end or the client leaves."""
        assert reply.chunks is not None
        self._start_response(reply.status, reply.content_type or "application/json", headers)
        chunked = reply.content_length is None
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(reply.content_length))
        self.end_headers()
        try:
            for piece in reply.chunks():
                if piece:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            if chunked:
                self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:  # the client stopped reading and closed the connection
            self.close_connection = True

    def _send_stream(self, reply: AppReply, events: list[bytes], headers: Headers) -> None:
        """Write ``events`` one at a time (chunked), flushing and pausing between them."""
        self._start_response(reply.status, reply.content_type or "text/event-stream; charset=utf-8", headers)
        self.send_header("Cache-Control", "no-cache")
        chunked = self.request_version != "HTTP/1.0"
        if chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.flush()
        if reply.truncate:
            events = events[: max(1, len(events) // 2)]
        pause = self.server.fake.sse_piece_delay
        for index, event in enumerate(events):
            if index and pause > 0:
                time.sleep(pause)
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event) if chunked else event)
            self.wfile.flush()
        if reply.truncate or not chunked:
            self.close_connection = True
            return
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _route_path(path: str, mount: str) -> str | None:
    """``path`` without the ``mount`` prefix, ``None`` when it lies outside it."""
    mount = mount.rstrip("/")
    if not mount:
        return path
    return path[len(mount) :] if path.startswith(mount + "/") else None


def _validate(route: str, body: Any) -> str | None:
    """Return an error message when ``body`` does not fit ``route``."""
    if route == "promptflow":
        if not isinstance(body, dict) or not isinstance(body.get("question"), str):
            return "field 'question' (string) is required"
        history = body.get("chat_history")
        if history is not None and not isinstance(history, list):
            return "field 'chat_history' must be a list"
    elif route == "openai" and (not isinstance(body, dict) or not isinstance(body.get("messages"), list)):
        return "field 'messages' (list) is required"
    elif route == "gradio" and (not isinstance(body, dict) or not isinstance(body.get("data"), list)):
        return "field 'data' (list) is required"
    return None


def _error_body(message: str, status: int) -> dict[str, Any]:
    return {"error": {"message": message, "status": status}}


def _format_retry_after(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _message_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: keep the text ones
        texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "".join(texts) if texts else None
    return None


def _first_string(value: Any) -> str | None:
    """First string found depth-first in a JSON value, skipping id-like keys."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        items = [v for k, v in value.items() if k not in _ID_KEYS]
    elif isinstance(value, list):
        items = value
    else:
        return None
    for item in items:
        found = _first_string(item)
        if found is not None:
            return found
    return None


def _sse_events(text: str) -> list[bytes]:
    return [sse_event({"delta": piece}) for piece in split_text(text)] + [sse_event("[DONE]")]


def _usage(request: RecordedRequest, text: str) -> dict[str, int]:
    prompt = sum(count_words(_message_text(m.get("content"))) for m in request.messages if isinstance(m, dict))
    completion = count_words(text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _model(request: RecordedRequest) -> str:
    model = request.body.get("model") if isinstance(request.body, dict) else None
    return model if isinstance(model, str) and model else "fake-chat-app"


def _openai_completion(completion_id: str, request: RecordedRequest, text: str) -> dict[str, Any]:
    return chat_completion(completion_id, _model(request), text, "stop", _usage(request, text))


def _openai_chunks(completion_id: str, request: RecordedRequest, text: str) -> list[bytes]:
    options = request.body.get("stream_options") if isinstance(request.body, dict) else None
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    usage = _usage(request, text) if include_usage else None
    return chat_completion_chunks(
        completion_id, _model(request), {"role": "assistant", "content": ""}, text, "stop", usage
    )
