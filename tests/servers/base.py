"""Plumbing shared by the in-process fake servers of the test suite.

:class:`LocalServer` owns the HTTP server, its serving thread, the lifecycle
(``start()`` / ``close()`` / context manager), the addresses and the thread-safe
request recording; :class:`ScriptedServer` adds a FIFO queue of scripted replies.
:class:`LocalHandler` is the request handler base, with the request reading and
response writing helpers. A fake subclasses them and keeps only what is specific to
it (routes, reply types, state)::

    @dataclass
    class RecordedRequest(BaseRecordedRequest):
        route: str = ""


    class FakeThing(LocalServer[RecordedRequest]):
        def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
            super().__init__(host, port, _Handler)


    class _Handler(LocalHandler):
        server_version = "FakeThing/1.0"

        def _handle(self) -> None:
            incoming = self._read_request()
            self.server.fake._record(incoming.record(RecordedRequest, route=incoming.path))
            self._send_json(200, {"ok": True})

The helpers at the end build OpenAI chat-completions answers, which both
``FakeOpenAIServer`` and ``FakeChatApp`` (its ``/v1/chat/completions`` route) send.
Standard library only.
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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, TypeVar
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "BaseRecordedRequest",
    "ChatRecordedRequest",
    "HeaderItems",
    "IncomingRequest",
    "LocalHTTPServer",
    "LocalHandler",
    "LocalServer",
    "ScriptedServer",
    "chat_completion",
    "chat_completion_chunks",
    "count_words",
    "split_text",
    "sse_event",
]

RecordT = TypeVar("RecordT")
RecordedT = TypeVar("RecordedT", bound="BaseRecordedRequest")
ReplyT = TypeVar("ReplyT")
ServerT = TypeVar("ServerT", bound="LocalServer[Any]")
ScriptedT = TypeVar("ScriptedT", bound="ScriptedServer[Any, Any]")

HeaderItems = Mapping[str, str] | Iterable[tuple[str, str]]
"""Extra response headers: a mapping, or ``(name, value)`` pairs (for repeated names)."""


class LocalServer(Generic[RecordT]):
    """An HTTP server on a local port, serving in a daemon thread (one thread per connection).

    Use as a context manager or call :meth:`start` / :meth:`close`. Every request a
    handler passes to :meth:`_record` lands in :attr:`requests`.
    """

    requests: list[RecordT]
    """Every request received, in arrival order."""
    errors: list[BaseException]
    """Exceptions raised while handling requests."""

    def __init__(self, host: str, port: int, handler: type[LocalHandler]) -> None:
        """Prepare the server; nothing is bound until :meth:`start`."""
        self._host = host
        self._port = port
        self._handler = handler
        self._lock = threading.Lock()
        """Guards :attr:`requests`, :attr:`errors` and the subclass's state."""
        self._request_added = threading.Condition(self._lock)
        self._httpd: LocalHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self.requests = []
        self.errors = []

    # -- lifecycle ---------------------------------------------------------

    def start(self: ServerT) -> ServerT:
        """Bind the socket and start serving in a daemon thread."""
        name = type(self).__name__
        if self._closed:
            raise RuntimeError(f"{name} cannot be restarted after close()")
        if self._httpd is not None:
            raise RuntimeError(f"{name} already started")
        httpd = LocalHTTPServer((self._host, self._port), self._handler)
        httpd.fake = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{name}:{httpd.server_address[1]}",
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

    def __enter__(self: ServerT) -> ServerT:
        """Start the server (if needed) and return it."""
        if self._httpd is None:
            self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the server."""
        self.close()

    # -- addresses & counters ------------------------------------------------

    @property
    def port(self) -> int:
        """The bound TCP port."""
        if self._httpd is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        return f"http://{self._host}:{self.port}"

    @property
    def connection_count(self) -> int:
        """Number of TCP connections accepted so far (to check keep-alive)."""
        return 0 if self._httpd is None else self._httpd.accepted

    def reset(self) -> None:
        """Forget recorded requests and errors, and what :meth:`_forget` drops (replies
        not consumed yet, pending failures, ...); the rest of the fake's state is kept."""
        with self._lock:
            self.requests.clear()
            self.errors.clear()
            self._forget()

    # -- inspection --------------------------------------------------------

    @property
    def last_request(self) -> RecordT | None:
        """The most recent request, or ``None``."""
        with self._lock:
            return self.requests[-1] if self.requests else None

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[RecordT]:
        """Block until at least ``count`` requests were recorded; return a snapshot."""
        with self._request_added:
            if not self._request_added.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {len(self.requests)}")
            return list(self.requests)

    # -- internals used by the handler ----------------------------------------

    def _forget(self) -> None:
        """What :meth:`reset` drops besides the records; called with the lock held."""

    def _record(self, request: RecordT) -> None:
        with self._request_added:
            self.requests.append(request)
            self._request_added.notify_all()

    def _record_error(self, exc: BaseException) -> None:
        with self._lock:
            self.errors.append(exc)


class ScriptedServer(LocalServer[RecordT], Generic[RecordT, ReplyT]):
    """A :class:`LocalServer` answering from a FIFO queue of scripted replies.

    A scripted item is a reply (an instance of :attr:`reply_type`), a str (the text of a
    ``reply_type(text)`` reply) or a callable given the recorded request and returning
    either. :attr:`default` is called when the queue is empty.
    """

    reply_type: ClassVar[type[Any]]
    """The reply class; its first field holds the reply text."""
    errors: list[BaseException]
    """Exceptions raised while producing replies (e.g. by a reply callable)."""
    default: Callable[[RecordT], str | ReplyT]
    """Reply factory used when the script queue is empty."""

    def __init__(
        self, host: str, port: int, handler: type[LocalHandler], default: Callable[[RecordT], str | ReplyT]
    ) -> None:
        """Prepare the server; nothing is bound until :meth:`start`."""
        super().__init__(host, port, handler)
        self._queue: deque[Any] = deque()
        self._completion_counter = 0
        self.default = default

    def script(self: ScriptedT, *replies: Any) -> ScriptedT:
        """Append replies (str, reply or callable, see :attr:`reply_type`) to the FIFO queue."""
        for reply in replies:
            if not (isinstance(reply, (str, self.reply_type)) or callable(reply)):
                raise TypeError(f"unsupported reply type: {type(reply).__name__}")
        with self._lock:
            self._queue.extend(replies)
        return self

    @property
    def pending(self) -> int:
        """Number of scripted replies not consumed yet."""
        with self._lock:
            return len(self._queue)

    def _forget(self) -> None:
        """Drop the replies not consumed yet (lock held)."""
        self._queue.clear()

    def _next_reply(self, request: RecordT) -> ReplyT:
        """Pop the next scripted reply (or ask :attr:`default`), calling it if it is a callable."""
        with self._lock:
            item = self._queue.popleft() if self._queue else self.default
        if isinstance(item, (str, self.reply_type)):
            return self._coerce_reply(item)
        return self._coerce_reply(item(request))

    def _coerce_reply(self, value: object) -> ReplyT:
        if isinstance(value, self.reply_type):
            return value
        if isinstance(value, str):
            return self.reply_type(value)
        name = self.reply_type.__name__
        raise TypeError(f"reply callable must return str or {name}, got {type(value).__name__}")

    def _next_completion_id(self) -> str:
        """A fresh ``chatcmpl-<n>`` id for an OpenAI-style completion."""
        with self._lock:
            self._completion_counter += 1
            return f"chatcmpl-{self._completion_counter}"


class LocalHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that tracks its connections and handler threads.

    ``close_connections()`` shuts down idle keep-alive sockets (which would otherwise
    keep their handler threads blocked in a read) and ``join_handlers()`` joins the
    handler threads with a deadline.
    """

    daemon_threads = True
    block_on_close = False  # we join handler threads ourselves, with a timeout
    request_queue_size = 128  # many clients connect at once; the default backlog of 5 would refuse or stall some
    fake: Any
    """The :class:`LocalServer` that owns this server."""

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


@dataclass
class BaseRecordedRequest:
    """One HTTP request received by a fake server; each fake's ``RecordedRequest`` adds fields."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Request headers; names are lower-cased."""
    body: Any
    """Parsed JSON body, or ``None`` when empty or not valid JSON."""


@dataclass
class ChatRecordedRequest(BaseRecordedRequest):
    """A recorded request whose JSON body may be an OpenAI chat-completions request."""

    @property
    def messages(self) -> list[Any]:
        """The ``messages`` field of the JSON body (empty list if absent)."""
        if isinstance(self.body, dict) and isinstance(self.body.get("messages"), list):
            return self.body["messages"]
        return []

    @property
    def stream(self) -> bool:
        """True when the body asks for a streamed (SSE) answer (``"stream": true``)."""
        return isinstance(self.body, dict) and self.body.get("stream") is True


@dataclass
class IncomingRequest(BaseRecordedRequest):
    """What :meth:`LocalHandler._read_request` read off the wire."""

    raw_body: bytes = b""
    json_ok: bool = True
    """False when the body is not empty and not valid JSON (an empty body is OK)."""

    def record(self, cls: type[RecordedT], **extra: Any) -> RecordedT:
        """A ``cls`` record carrying the :class:`BaseRecordedRequest` fields and ``extra``."""
        return cls(method=self.method, path=self.path, query=self.query, headers=self.headers, body=self.body, **extra)


class LocalHandler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: every method goes to :meth:`_handle`."""

    protocol_version = "HTTP/1.1"
    sys_version = ""
    json_content_type = "application/json"
    """Content type of :meth:`_send_json` answers."""
    dropped_headers: frozenset[str] = frozenset({"content-length"})
    """Lower-cased names of extra headers never sent (the handler writes its own)."""
    server: LocalHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Silence the default per-request logging."""

    def do_GET(self) -> None:
        self._handle()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = do_GET

    def _handle(self) -> None:
        raise NotImplementedError

    # -- request reading -----------------------------------------------------

    def _read_request(self) -> IncomingRequest:
        """Split the target, collect the headers and read (and JSON-parse) the body."""
        split = urlsplit(self.path)
        headers: dict[str, str] = {}  # names lower-cased, repeated ones joined with ", "
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raw = self._read_body()
        body: Any = None
        json_ok = True
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                json_ok = False
        return IncomingRequest(
            method=self.command,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            headers=headers,
            raw_body=raw,
            body=body,
            json_ok=json_ok,
        )

    def _read_body(self) -> bytes:
        """The request body, by ``Content-Length`` or ``Transfer-Encoding: chunked``."""
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

    def _send_json(self, status: int, payload: Any, extra_headers: HeaderItems | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), self.json_content_type, extra_headers)

    def _start_response(self, status: int, content_type: str, headers: HeaderItems | None = None) -> None:
        """Send the status line and the extra headers (``content_type`` unless they set one)."""
        items = headers.items() if isinstance(headers, Mapping) else headers or ()
        extra = [(k, v) for k, v in items if k.lower() not in self.dropped_headers]
        if not any(k.lower() == "content-type" for k, _ in extra):
            extra.append(("Content-Type", content_type))
        self.send_response(status)
        for name, value in extra:
            self.send_header(name, str(value))

    def _send(
        self,
        status: int,
        data: bytes,
        content_type: str,
        headers: HeaderItems | None = None,
        *,
        content_length: int | None = None,
    ) -> None:
        """Send a whole answer; ``content_length`` claims another length than ``len(data)``."""
        self._start_response(status, content_type, headers)
        self.send_header("Content-Length", str(len(data) if content_length is None else content_length))
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
# OpenAI chat-completions wire format (FakeOpenAIServer and FakeChatApp's
# /v1/chat/completions route both speak it)
# --------------------------------------------------------------------------


def count_words(text: str | None) -> int:
    """Whitespace-separated words in ``text`` (the fakes' token count)."""
    return len(text.split()) if text else 0


def split_text(text: str, parts: int = 3) -> list[str]:
    """Split ``text`` into up to ``parts`` non-empty pieces that join back to it."""
    if not text:
        return []
    n = min(parts, len(text))
    size, extra = divmod(len(text), n)
    pieces, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        pieces.append(text[start:end])
        start = end
    return pieces


def sse_event(data: Any) -> bytes:
    """One server-sent event: ``data: <str or JSON>`` and a blank line."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n".encode()


def chat_completion(
    completion_id: str, model: str, content: str | None, finish_reason: str, usage: dict[str, Any]
) -> dict[str, Any]:
    """A ``chat.completion`` object with one assistant choice."""
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": usage,
        "system_fingerprint": None,
    }


def chat_completion_chunks(
    completion_id: str,
    model: str,
    first_delta: dict[str, Any],
    content: str,
    finish_reason: str,
    usage: dict[str, Any] | None,
) -> list[bytes]:
    """The SSE events of a streamed completion: ``first_delta`` (the role chunk), ``content``
    in pieces, the ``finish_reason`` chunk, a usage chunk unless ``usage`` is None (every chunk
    then carries a ``usage`` key) and ``data: [DONE]``."""
    created = int(time.time())

    def chunk(choices: list[dict[str, Any]], chunk_usage: dict[str, Any] | None = None) -> bytes:
        obj: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "system_fingerprint": None,
            "choices": choices,
        }
        if usage is not None:
            obj["usage"] = chunk_usage
        return sse_event(obj)

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    events = [chunk(choice(first_delta))]
    events.extend(chunk(choice({"content": piece})) for piece in split_text(content))
    events.append(chunk(choice({}, finish_reason)))
    if usage is not None:
        events.append(chunk([], usage))
    events.append(sse_event("[DONE]"))
    return events
