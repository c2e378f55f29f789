"""In-process fake of Prompt flow's serving app (`pf flow serve`), for one of the flows in
``promptflow_flows/``.

Each flow there is a folder with its ``flow.dag.yaml`` and the tool it runs (``reply.py``), and
``<flow>.swagger.json`` is the document `pf flow serve` (promptflow 1.18.5) published for it at
``/swagger.json``; ``exchanges.json`` holds answers that server gave (``tests/test_promptflow.py``
checks the fake gives the same). The fake reads the flow's inputs and outputs from its
``flow.dag.yaml`` and answers as Prompt flow does:

* ``GET /swagger.json`` -- the flow's swagger document, as published (404 with ``swagger=False``);
* ``POST /score`` -- a flow input without a default that the body lacks is a 400
  ``{"error": {"code": "UserError", "message": "Required input fields [...] are missing in request
  data {...}"}}``; other fields are ignored; otherwise ``{<output>: <reply>}`` for every output,
  the reply being what the flow's tool returns (``reply``, default: the tool's own echo of the
  chat input and the chat history it was given); asked for ``Accept: text/event-stream``, the
  answer streams as Prompt flow's documented streaming mode does: the other outputs whole in a
  first event, then ``data: {<chat output>: <piece>}`` events from ``""`` to ``""``, and the
  connection closed at the end;
* anything else -- a 404 with Flask's text.

Every request is recorded. Standard library and PyYAML only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tests.servers.base import BaseRecordedRequest, LocalHandler, LocalServer

FLOWS = Path(__file__).parent / "promptflow_flows"
NOT_SUPPORTED = (
    "The requested api '{name}' with {method} is not supported by current app, if you entered the URL manually "
    "please check your spelling and try again."
)


@dataclass
class RecordedRequest(BaseRecordedRequest):
    """A request to the fake flow."""

    raw_body: bytes = b""
    """The body's bytes as received."""


@dataclass(frozen=True)
class Flow:
    """A flow's inputs (name -> definition) and outputs, as its flow.dag.yaml declares them."""

    name: str
    inputs: dict[str, dict[str, Any]]
    outputs: dict[str, dict[str, Any]]

    @classmethod
    def load(cls, name: str) -> Flow:
        dag = yaml.safe_load((FLOWS / name / "flow.dag.yaml").read_text())
        return cls(name, dict(dag.get("inputs") or {}), dict(dag.get("outputs") or {}))

    def marked(self, flag: str) -> str | None:
        """The input or output carrying `flag` (is_chat_input, ...), as Prompt flow finds it."""
        fields = self.outputs if flag == "is_chat_output" else self.inputs
        return next((name for name, spec in fields.items() if spec.get(flag)), None)

    @property
    def swagger(self) -> Any:
        return json.loads((FLOWS / f"{self.name}.swagger.json").read_text())

    def echo(self, data: dict[str, Any]) -> str:
        """What the flow's reply.py tool returns for `data`."""
        chat_input = self.marked("is_chat_input")
        history_name = self.marked("is_chat_history")
        if chat_input is None:  # the flow with no chat fields: "about <topic>"
            return "about " + str(data[next(iter(self.inputs))])
        history = data.get(history_name, self.inputs[history_name].get("default")) if history_name else []
        return "echo: " + str(data[chat_input]) + " | history=" + json.dumps(history)


class FakePromptflow(LocalServer[RecordedRequest]):
    """`pf flow serve` of one flow of ``promptflow_flows/`` (``chat_io``: chat_input/chat_history/
    chat_output; ``qa``: question/chat_history/answer; ``nomark``: a flow with no chat fields;
    ``standard_qa``: a standard flow, no chat fields, its input ``question`` and output ``answer``)."""

    def __init__(
        self,
        flow: str = "chat_io",
        *,
        swagger: bool = True,
        reply: Callable[[dict[str, Any]], str] | None = None,
        swagger_delay: float = 0.0,
        token: str | None = None,
    ) -> None:
        super().__init__("127.0.0.1", 0, _Handler)
        self.flow = Flow.load(flow)
        #: False: no /swagger.json (a 404), as behind a gateway that only routes /score
        self.swagger = swagger
        self.reply = reply or self.flow.echo
        #: seconds the swagger takes to answer
        self.swagger_delay = swagger_delay
        #: when set, every request needs `Authorization: Bearer <token>` (401 otherwise)
        self.token = token
        #: the swagger document served instead of the flow's own (a test's variation of it)
        self.swagger_document: Any = None

    @property
    def score_url(self) -> str:
        return self.url + "/score"

    @property
    def scores(self) -> list[RecordedRequest]:
        """The POSTs to /score, in order."""
        return [r for r in self.requests if r.path == "/score"]

    @property
    def swagger_gets(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/swagger.json"]


class _Handler(LocalHandler):
    server_version = "Werkzeug/3.1.9"
    disable_nagle_algorithm = True

    def _handle(self) -> None:
        incoming = self._read_request()
        fake: FakePromptflow = self.server.fake
        fake._record(incoming.record(RecordedRequest, raw_body=incoming.raw_body))
        if fake.token is not None and incoming.headers.get("authorization") != f"Bearer {fake.token}":
            self._send_json(401, {"error": {"code": "UserError", "message": "no valid token"}})
            return
        if incoming.method == "GET" and incoming.path == "/swagger.json" and fake.swagger:
            time.sleep(fake.swagger_delay)
            self._send_json(200, fake.flow.swagger if fake.swagger_document is None else fake.swagger_document)
        elif incoming.method == "POST" and incoming.path == "/score":
            self._score(fake, incoming.body, "text/event-stream" in incoming.headers.get("accept", ""))
        else:
            text = NOT_SUPPORTED.format(name=incoming.path.lstrip("/"), method=incoming.method)
            self._send(404, text.encode(), "text/html; charset=utf-8")

    def _score(self, fake: FakePromptflow, data: Any, stream: bool = False) -> None:
        flow = fake.flow
        data = data if isinstance(data, dict) else {}
        # promptflow.core._serving.utils.validate_request_data
        required = [name for name, spec in flow.inputs.items() if spec.get("default") is None]
        missing = [name for name in required if name not in data]
        if missing:
            message = f"Required input fields {missing} are missing in request data {data!r}"
            self._send_json(400, {"error": {"code": "UserError", "message": message}})
            return
        reply = fake.reply(data)
        if stream:
            self._stream(flow, reply)
            return
        self._send_json(200, {name: reply for name in sorted(flow.outputs)})

    def _stream(self, flow: Flow, reply: str) -> None:
        chat_output = flow.marked("is_chat_output") or next(iter(flow.outputs))
        others = {name: reply for name in sorted(flow.outputs) if name != chat_output}
        pieces = ["", *[word + " " for word in reply.split(" ")[:-1]], reply.split(" ")[-1], ""]
        events = ([others] if others else []) + [{chat_output: piece} for piece in pieces]
        self.close_connection = True
        self._start_response(200, "text/event-stream; charset=utf-8", [("Connection", "close")])
        self.end_headers()
        for event in events:
            self.wfile.write(f"data: {json.dumps(event)}\n\n".encode())
            self.wfile.flush()
