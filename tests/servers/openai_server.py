"""In-process fake of the OpenAI / Azure OpenAI chat-completions HTTP API.

Tests start a :class:`FakeOpenAIServer`, script the replies it gives, point a
real client (the ``openai`` SDK, ``requests``, ...) at it and then inspect the
requests it recorded::

    with FakeOpenAIServer() as srv:
        srv.script("Hello!", Reply.rate_limited(0.01), lambda req: req.model or "")
        client = OpenAI(base_url=srv.openai_base_url, api_key="k")
        ...
        assert srv.last_request.headers["authorization"] == "Bearer k"

Routes (``POST``):

* ``/v1/chat/completions`` and ``/chat/completions`` (OpenAI style);
* ``/openai/deployments/{deployment}/chat/completions?api-version=...`` (Azure).

Every request is recorded, whatever its outcome. Only chat requests that pass
routing, the Azure ``api-version`` check, the auth hook and JSON parsing
consume a scripted reply. Standard library only.
"""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = [
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "ReplyFactory",
    "ReplyLike",
    "default_reply",
]

_OPENAI_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_AZURE_PREFIX = "/openai/deployments/"
_AZURE_SUFFIX = "/chat/completions"

CONTENT_FILTER_PROMPT_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our "
    "content filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766"
)


@dataclass
class RecordedRequest:
    """One HTTP request received by the fake server."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Request headers; names are lower-cased."""
    body: Any
    """Parsed JSON body, or ``None`` when empty or not valid JSON."""
    deployment: str | None = None
    """Azure deployment name taken from the URL, ``None`` for OpenAI-style paths."""

    @property
    def is_chat(self) -> bool:
        """True when the path is one of the chat-completions routes."""
        return _match_chat_path(self.path)[0]

    @property
    def model(self) -> str | None:
        """The ``model`` field of the JSON body, if any."""
        if isinstance(self.body, dict):
            model = self.body.get("model")
            return model if isinstance(model, str) else None
        return None

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The ``messages`` field of the JSON body (empty list if absent)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return self.body["messages"]
        return []

    @property
    def stream(self) -> bool:
        """True when the body asks for a streamed (SSE) answer."""
        return isinstance(self.body, dict) and self.body.get("stream") is True


@dataclass
class Reply:
    """A scripted answer of the fake server.

    With ``status`` 2xx and no ``body`` a full ``chat.completion`` (or SSE stream)
    is generated from ``content``; with ``status`` >= 400 and no ``body`` an
    OpenAI-shaped error whose message is ``content`` is sent. ``body`` is a raw
    override sent as-is (a dict is JSON-encoded; the content type defaults to
    ``application/json`` unless ``headers`` set one).
    """

    content: str | None = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | str | bytes | None = None
    delay: float = 0.0
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = None
    close_connection: bool = False

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        code: str | None = None,
        type: str | None = "invalid_request_error",  # noqa: A002 - mirrors the OpenAI field
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """An error reply with an OpenAI-shaped ``{"error": {...}}`` body."""
        return cls(
            content=None,
            status=status,
            headers=dict(headers or {}),
            body=_error_body(message, type=type, code=code),
        )

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1) -> Reply:
        """A 429 reply, with a ``Retry-After`` header (seconds) unless ``retry_after`` is None."""
        headers = {} if retry_after is None else {"Retry-After": _format_seconds(retry_after)}
        return cls.error(
            429,
            "Rate limit reached for requests. Please try again later.",
            code="rate_limit_exceeded",
            type="requests",
            headers=headers,
        )

    @classmethod
    def content_filter_prompt(cls) -> Reply:
        """Azure's 400 answer when the *prompt* trips the content filter."""
        not_filtered = {"filtered": False, "severity": "safe"}
        body = {
            "error": {
                "message": CONTENT_FILTER_PROMPT_MESSAGE,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": dict(not_filtered),
                        "self_harm": dict(not_filtered),
                        "sexual": dict(not_filtered),
                        "violence": {"filtered": True, "severity": "medium"},
                    },
                },
            }
        }
        return cls(content=None, status=400, body=body)

    @classmethod
    def content_filter_completion(cls) -> Reply:
        """A 200 completion whose output was filtered (``content: null``)."""
        return cls(content=None, finish_reason="content_filter")


ReplyFactory = Callable[[RecordedRequest], str | Reply]
"""A callable producing a reply for a request."""
ReplyLike = str | Reply | ReplyFactory
"""Anything :meth:`FakeOpenAIServer.script` accepts."""


def default_reply(request: RecordedRequest) -> Reply:
    """The built-in fallback used when the script queue is empty: content ``"ok"``."""
    return Reply(content="ok")


class FakeOpenAIServer:
    """OpenAI-compatible chat-completions server running in a daemon thread.

    Use as a context manager or call :meth:`start` / :meth:`close`.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare the server; nothing is bound until :meth:`start`."""
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._request_added = threading.Condition(self._lock)
        self._queue: deque[ReplyLike] = deque()
        self._completion_counter = 0
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.requests: list[RecordedRequest] = []
        """Every request received, in arrival order."""
        self.errors: list[BaseException] = []
        """Exceptions raised while producing replies (e.g. by a reply callable)."""
        self.default: ReplyFactory = default_reply
        """Reply factory used when the script queue is empty."""
        self.require_auth: Callable[[dict[str, str]], bool] | None = None
        """Optional auth hook given the lower-cased headers; False -> 401."""

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> FakeOpenAIServer:
        """Bind the socket and start serving in a daemon thread."""
        if self._closed:
            raise RuntimeError("FakeOpenAIServer cannot be restarted after close()")
        if self._httpd is not None:
            raise RuntimeError("FakeOpenAIServer already started")
        httpd = _HTTPServer((self._host, self._port), _Handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"FakeOpenAIServer:{httpd.server_address[1]}",
            daemon=True,
        )
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, close the listening socket and open connections, join threads."""
        if self._closed:
            return
        self._closed = True
        httpd = self._httpd
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        httpd.join_handlers(timeout=2)

    def __enter__(self) -> FakeOpenAIServer:
        """Start the server (if needed) and return it."""
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the server."""
        self.close()

    # -- addresses ---------------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError("FakeOpenAIServer is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` (``url + "/v1"``)."""
        return self.url + "/v1"

    @property
    def azure_endpoint(self) -> str:
        """``azure_endpoint`` for ``openai.AzureOpenAI`` (same as :attr:`url`)."""
        return self.url

    @property
    def connection_count(self) -> int:
        """Number of TCP connections accepted so far (to check keep-alive)."""
        return 0 if self._httpd is None else self._httpd.accepted

    # -- scripting ---------------------------------------------------------

    def script(self, *replies: ReplyLike) -> FakeOpenAIServer:
        """Append replies (str, :class:`Reply` or callable) to the FIFO queue."""
        for reply in replies:
            if not (isinstance(reply, (str, Reply)) or callable(reply)):
                raise TypeError(f"unsupported reply type: {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Number of scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget recorded requests/errors and drop unconsumed scripted replies."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.errors.clear()

    # -- inspection --------------------------------------------------------

    @property
    def last_request(self) -> RecordedRequest | None:
        """The most recent request, or ``None``."""
        with self._lock:
            return self.requests[-1] if self.requests else None

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded requests sent to a chat-completions route."""
        with self._lock:
            return [r for r in self.requests if r.is_chat]

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least ``count`` requests were recorded; return a snapshot."""
        with self._request_added:
            if not self._request_added.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self.requests)}")
            return list(self.requests)

    # -- internals used by the handler ----------------------------------------

    def _record(self, request: RecordedRequest) -> None:
        with self._request_added:
            self.requests.append(request)
            self._request_added.notify_all()

    def _next_reply(self, request: RecordedRequest) -> Reply:
        with self._lock:
            item: ReplyLike = self._queue.popleft() if self._queue else self.default
        if isinstance(item, (str, Reply)):
            return _coerce_reply(item)
        return _coerce_reply(item(request))

    def _next_completion_id(self) -> str:
        with self._lock:
            self._completion_counter += 1
            return f"chatcmpl-{self._completion_counter}"

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # we join handler threads ourselves, with a timeout
    request_queue_size = 128  # many clients connect at once; the default backlog of 5 would refuse some
    fake: FakeOpenAIServer

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._conn_lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._handler_threads: list[threading.Thread] = []
        self.accepted = 0
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread, args=(request, client_address), daemon=True)
        with self._conn_lock:
            self.accepted += 1
            self._connections.add(request)
            self._handler_threads = [t for t in self._handler_threads if t.is_alive()]
            self._handler_threads.append(thread)
        thread.start()

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)) or exc is None:
            return  # client went away; not interesting
        self.fake._record_error(exc)

    def close_connections(self) -> None:
        with self._conn_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def join_handlers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        with self._conn_lock:
            threads = list(self._handler_threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FakeOpenAI/1.0"
    sys_version = ""
    server: _HTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default per-request logging."""

    def do_POST(self) -> None:
        self._handle()

    do_GET = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_POST

    # -- request handling ----------------------------------------------------

    def _handle(self) -> None:
        fake = self.server.fake
        split = urlsplit(self.path)
        path = split.path
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raw = self._read_body()
        body: Any = None
        json_ok = False
        if raw:
            try:
                body = json.loads(raw)
                json_ok = True
            except ValueError:
                body = None
        is_chat, deployment = _match_chat_path(path)
        request = RecordedRequest(
            method=self.command,
            path=path,
            query=query,
            headers=headers,
            body=body,
            deployment=deployment,
        )
        fake._record(request)

        if not is_chat:
            self._send_json(404, _error_body(f"Invalid URL ({self.command} {path})", code=None))
            return
        if self.command != "POST":
            self._send_json(405, _error_body(f"Method {self.command} not allowed for {path}", code=None))
            return
        if deployment is not None and "api-version" not in query:
            message = "The api-version query parameter (?api-version=) is required for all requests."
            self._send_json(
                400,
                _error_body(message, code="MissingApiVersionParameter", param="api-version"),
            )
            return
        if fake.require_auth is not None and not fake.require_auth(headers):
            self._send_json(401, _error_body("Incorrect API key provided", code="invalid_api_key"))
            return
        if not json_ok or not isinstance(body, dict):
            message = (
                "We could not parse the JSON body of your request. The OpenAI API expects "
                "a JSON object payload, but what was sent was not valid JSON."
            )
            self._send_json(400, _error_body(message, code=None))
            return

        try:
            reply = fake._next_reply(request)
        except Exception as exc:  # a reply callable blew up: report it as a 500
            fake._record_error(exc)
            self._send_json(500, _error_body(f"fake server reply failed: {exc!r}", type="server_error"))
            return
        self._send_reply(request, reply)

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size_line = self.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # skip trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    # -- response writing ----------------------------------------------------

    def _send_reply(self, request: RecordedRequest, reply: Reply) -> None:
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.close_connection:
            self._reset_connection()
            return
        if reply.body is not None:
            payload = reply.body
            data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
            if isinstance(data, str):
                data = data.encode()
            self._send(reply.status, data, "application/json", reply.headers)
            return
        if reply.status >= 400:
            message = reply.content or HTTPStatus(reply.status).phrase
            err_type = "server_error" if reply.status >= 500 else "invalid_request_error"
            self._send_json(reply.status, _error_body(message, type=err_type), reply.headers)
            return
        model = request.deployment or request.model or "gpt-fake"
        usage = reply.usage if reply.usage is not None else _compute_usage(request, reply.content)
        completion_id = self.server.fake._next_completion_id()
        if request.stream:
            include_usage = bool(
                isinstance(request.body.get("stream_options"), dict)
                and request.body["stream_options"].get("include_usage")
            )
            data = _sse_body(completion_id, model, reply, usage if include_usage else None)
            self._send(reply.status, data, "text/event-stream; charset=utf-8", reply.headers)
            return
        completion = {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.content, "refusal": None},
                    "finish_reason": reply.finish_reason,
                    "logprobs": None,
                }
            ],
            "usage": usage,
            "system_fingerprint": None,
        }
        self._send_json(reply.status, completion, reply.headers)

    def _send_json(self, status: int, payload: Any, extra_headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", extra_headers)

    def _send(
        self,
        status: int,
        data: bytes,
        content_type: str,
        extra_headers: dict[str, str] | None = None,
    ) -> None:
        extra = {k: v for k, v in (extra_headers or {}).items() if k.lower() != "content-length"}
        if not any(k.lower() == "content-type" for k in extra):
            extra["Content-Type"] = content_type
        self.send_response(status)
        for name, value in extra.items():
            self.send_header(name, str(value))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _reset_connection(self) -> None:
        """Drop the socket with an RST and no answer."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _match_chat_path(path: str) -> tuple[bool, str | None]:
    """Return ``(is_chat_route, azure_deployment_or_None)``."""
    if path in _OPENAI_CHAT_PATHS:
        return True, None
    if path.startswith(_AZURE_PREFIX) and path.endswith(_AZURE_SUFFIX):
        deployment = path[len(_AZURE_PREFIX) : -len(_AZURE_SUFFIX)]
        if deployment and "/" not in deployment:
            return True, unquote(deployment)
    return False, None


def _error_body(
    message: str,
    *,
    type: str | None = "invalid_request_error",  # noqa: A002
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _coerce_reply(value: object) -> Reply:
    if isinstance(value, Reply):
        return value
    if isinstance(value, str):
        return Reply(content=value)
    raise TypeError(f"reply callable must return str or Reply, got {type(value).__name__}")


def _count_words(text: str | None) -> int:
    return len(text.split()) if text else 0


def _compute_usage(request: RecordedRequest, content: str | None) -> dict[str, int]:
    prompt_tokens = 0
    for message in request.messages:
        if not isinstance(message, dict):
            continue
        msg_content = message.get("content")
        if isinstance(msg_content, str):
            prompt_tokens += _count_words(msg_content)
        elif isinstance(msg_content, list):  # content parts: count the text ones
            for part in msg_content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    prompt_tokens += _count_words(part["text"])
    completion_tokens = _count_words(content)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _split_content(content: str, parts: int = 3) -> list[str]:
    """Split ``content`` into up to ``parts`` non-empty pieces that join back to it."""
    if not content:
        return []
    n = min(parts, len(content))
    size, extra = divmod(len(content), n)
    pieces, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append(content[start:end])
        start = end
    return pieces


def _sse_body(completion_id: str, model: str, reply: Reply, usage: dict[str, Any] | None) -> bytes:
    created = int(time.time())
    include_usage = usage is not None

    def chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
        }
        if include_usage:
            obj["usage"] = None
        return obj

    first_content = None if reply.content is None else ""
    events: list[dict[str, Any]] = [chunk({"role": "assistant", "content": first_content, "refusal": None}, None)]
    events.extend(chunk({"content": piece}, None) for piece in _split_content(reply.content or ""))
    events.append(chunk({}, reply.finish_reason))
    if include_usage:
        events.append(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "choices": [],
                "usage": usage,
            }
        )
    lines = [f"data: {json.dumps(event)}\n\n" for event in events]
    lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()
