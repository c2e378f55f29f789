"""In-process replay of a Gradio app's API (Gradio 6, a ``gr.ChatInterface`` per endpoint), answering
on the wire as the real routes do.

Each endpoint is a chat function ``fn(message, history)`` returning its new message (text, a message
``{"role", "content"}`` or a list of them; :class:`Outputs` for a Blocks app's outputs), or a
generator of the reply so far, or raising
:class:`GradioError` (Gradio's ``gr.Error``: its message is shown) or any other exception (hidden
unless :attr:`FakeGradioApp.show_error`). As a ``ChatInterface`` does, the app keeps each session's
history (``session_hash``) itself: ``fn`` gets that, never the ``data[1]`` a request carries, and
the new messages are added after each call (the first piece of a streamed reply too, when the run
route gave only that). Routes:

* ``POST /gradio_api/run/<api>`` -- ``{"data": [...], "session_hash": ...}`` -> ``{"data": [<output>,
  null], "is_generating": <false, or true with a generator's first piece>, ...}``; an error of
  ``fn`` -> 500 ``{"error": <message or null>, ...}``; with :attr:`FakeGradioApp.queue_only`, 404
  ``{"detail": "This API endpoint does not accept direct HTTP POST requests. ..."}``;
* ``POST /gradio_api/call/<api>`` -- ``{"event_id": <id>}``; with :attr:`FakeGradioApp.queue_full`,
  503 ``{"detail": "Queue is full. Max size is 1 and size is 1."}``;
* ``GET /gradio_api/call/<api>/<event_id>`` -- ``text/event-stream`` (chunked): :attr:`heartbeats`
  ``event: heartbeat`` events, an ``event: generating`` per piece of a generator, then ``event:
  complete`` (``data: [<output>, null]``) or ``event: error`` (``data: {"error": ...}``); with
  :attr:`FakeGradioApp.cut_stream`, the stream ends after the heartbeats;
* an unknown ``<api>`` -> 500 ``Internal Server Error`` (text/plain), as Gradio answers; any other
  path -> 404 ``{"detail": "Not Found"}``; a body without a ``data`` list -> 422.

Every request is recorded with its route, endpoint, ``session_hash`` and data items. Standard
library only.
"""

from __future__ import annotations

import inspect
import json
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from tests.servers.base import BaseRecordedRequest, LocalHandler, LocalServer

Chat = Callable[[str, list[dict[str, Any]]], Any]
QUEUE_ONLY = "This API endpoint does not accept direct HTTP POST requests. Please join the queue to use this API."


class GradioError(Exception):
    """`gr.Error`: its message reaches the client whatever `show_error` is."""


class Outputs(list[Any]):
    """What a chat function returns for an endpoint of a Blocks app instead: all of its outputs (e.g.
    ``Outputs(["", chat_history])``), kept in no session."""


def outputs(reply: Any) -> list[Any]:
    """The `data` of an answer: a ChatInterface's new message and its State's (hidden) value."""
    return list(reply) if isinstance(reply, Outputs) else [reply, None]


@dataclass
class RecordedRequest(BaseRecordedRequest):
    """A request to the fake app; `route` is "run", "call" or "result" (None: another path)."""

    route: str | None = None
    api: str | None = None
    event_id: str | None = None

    @property
    def session_hash(self) -> str | None:
        return self.body.get("session_hash") if isinstance(self.body, dict) else None

    @property
    def data(self) -> list[Any] | None:
        data = self.body.get("data") if isinstance(self.body, dict) else None
        return data if isinstance(data, list) else None


class FakeGradioApp(LocalServer[RecordedRequest]):
    """A Gradio app with one ChatInterface per endpoint name (``{"chat": fn}``)."""

    def __init__(self, endpoints: dict[str, Chat], host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port, _Handler)
        self.endpoints = endpoints
        #: the run route refuses calls past the queue (`demo.queue(api_open=False)`)
        self.queue_only = False
        #: the queue takes no more calls
        self.queue_full = False
        #: an error's own message is shown, not only a gr.Error's (`launch(show_error=True)`)
        self.show_error = False
        #: heartbeat events before a queued call's result
        self.heartbeats = 0
        #: a queued call's result stream ends before its result
        self.cut_stream = False
        #: session_hash -> the history the app keeps for it
        self.histories: dict[str, list[dict[str, Any]]] = {}
        self._pending: dict[str, tuple[str, str | None, Any]] = {}
        self._state = threading.Lock()

    def calls(self, route: str) -> list[RecordedRequest]:
        """The requests to `route` ("run", "call" or "result")."""
        return [request for request in self.requests if request.route == route]

    # --- what the app does with a call -------------------------------------------------------------

    def _history(self, session_hash: str | None) -> list[dict[str, Any]]:
        with self._state:
            return list(self.histories.get(session_hash or "", []))

    def _keep(self, session_hash: str | None, message: Any, reply: Any) -> None:
        """Add the exchange to the session's history, as ChatInterface does after a call."""
        if session_hash is None or isinstance(reply, Outputs):
            return
        with self._state:
            history = self.histories.setdefault(session_hash, [])
            history.append({"role": "user", "content": message})
            for item in reply if isinstance(reply, list) else [reply]:
                item = dict(item) if isinstance(item, dict) else {"content": item}
                history.append({**item, "role": "assistant"})

    def _error(self, exc: Exception) -> dict[str, Any]:
        if isinstance(exc, GradioError):
            return {"error": str(exc), "duration": 10, "visible": True, "title": "Error"}
        return {"error": str(exc), "visible": True} if self.show_error else {"error": None}

    def _run(self, api: str, session_hash: str | None, message: Any) -> Iterator[tuple[Any, bool]]:
        """The outputs (reply, done) of a call: one for a function, one per piece for a generator."""
        fn = self.endpoints[api]
        result = fn(message, self._history(session_hash))
        if not inspect.isgenerator(result):
            self._keep(session_hash, message, result)
            yield result, True
            return
        last = None
        for piece in result:
            last = piece
            yield piece, False
        self._keep(session_hash, message, last)
        yield last, True


class _Handler(LocalHandler):
    server_version = "uvicorn"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def _handle(self) -> None:
        fake: FakeGradioApp = self.server.fake
        incoming = self._read_request()
        parts = incoming.path.strip("/").split("/")
        route = api = event_id = None
        if len(parts) >= 3 and parts[0] == "gradio_api" and parts[1] in ("run", "call"):
            api = parts[2]
            if parts[1] == "run" and len(parts) == 3 and self.command == "POST":
                route = "run"
            elif parts[1] == "call" and len(parts) == 3 and self.command == "POST":
                route = "call"
            elif parts[1] == "call" and len(parts) == 4 and self.command == "GET":
                route, event_id = "result", parts[3]
        fake._record(incoming.record(RecordedRequest, route=route, api=api, event_id=event_id))
        if route is None or api is None:
            self._send_json(404, {"detail": "Not Found"})
        elif api not in fake.endpoints:
            self._send(500, b"Internal Server Error", "text/plain; charset=utf-8")
        elif route == "result":
            self._result(fake, api, event_id or "")
        elif not isinstance(incoming.body, dict) or not isinstance(incoming.body.get("data"), list):
            self._send_json(422, {"detail": [{"type": "missing", "loc": ["body", "data"], "msg": "Field required"}]})
        elif route == "run":
            self._run_route(fake, api, incoming.body)
        else:
            self._join(fake, api, incoming.body)

    def _run_route(self, fake: FakeGradioApp, api: str, body: dict[str, Any]) -> None:
        if fake.queue_only:
            self._send_json(404, {"detail": QUEUE_ONLY})
            return
        data = body["data"]
        try:
            reply, done = next(fake._run(api, body.get("session_hash"), data[0] if data else None))
        except Exception as exc:
            self._send_json(500, fake._error(exc))
            return
        if not done:  # the run route stops at a generator's first piece, which the session keeps
            fake._keep(body.get("session_hash"), data[0], reply)
        self._send_json(200, {"data": outputs(reply), "is_generating": not done, "duration": 0.001})

    def _join(self, fake: FakeGradioApp, api: str, body: dict[str, Any]) -> None:
        if fake.queue_full:
            self._send_json(503, {"detail": "Queue is full. Max size is 1 and size is 1."})
            return
        event_id = uuid.uuid4().hex
        data = body["data"]
        with fake._state:
            fake._pending[event_id] = (api, body.get("session_hash"), data[0] if data else None)
        self._send_json(200, {"event_id": event_id})

    def _result(self, fake: FakeGradioApp, api: str, event_id: str) -> None:
        with fake._state:
            pending = fake._pending.pop(event_id, None)
        if pending is None or pending[0] != api:
            self._send_json(404, {"detail": "Not Found"})
            return
        _, session_hash, message = pending
        self._start_response(200, "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for _ in range(fake.heartbeats):
            self._event("heartbeat", None)
        if not fake.cut_stream:
            try:
                for reply, done in fake._run(api, session_hash, message):
                    self._event("complete" if done else "generating", outputs(reply))
            except Exception as exc:
                self._event("error", fake._error(exc))
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _event(self, name: str, data: Any) -> None:
        chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
        self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        self.wfile.flush()
