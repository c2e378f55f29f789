"""Every "Your app" recipe of the README runs as written, against a local server that speaks that
kind's wire format: a JSON endpoint, the same streaming plain-text Server-Sent Events, Prompt flow's
`/score` with its swagger, a Gradio app's API, an OpenAI-compatible server, and llama.cpp's
server as the simulated user and the judge.

Only the user model's line changes: `user: {model: gpt-4o-mini}` would call OpenAI, so it is given
the local fake's endpoint; everything else is the README's text.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from simulator.cli import main
from tests.servers.chat_app import FakeChatApp
from tests.servers.gradio_app import FakeGradioApp
from tests.servers.openai_server import FakeOpenAIServer
from tests.servers.promptflow_server import FakePromptflow
from tests.servers.structured_output import LLAMA_SERVER

REPO = Path(__file__).resolve().parent.parent
RECIPE = re.compile(r"^```yaml\n# recipe: (\S+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
RECIPES = dict(RECIPE.findall((REPO / "README.md").read_text(encoding="utf-8")))
REPLY = "Your refund for order 5 is on its way."
OPENAI_USER = "user: {model: gpt-4o-mini}"


class _App(BaseHTTPRequestHandler):
    """A FastAPI-shaped app: POST /chat answers `{"reply": ...}`; POST /chat/stream streams the
    reply as sse-starlette does by default, plain-text `data:` tokens, and closes."""

    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    bodies: list[Any]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.bodies.append(body)
        if self.path == "/chat":
            data = json.dumps({"reply": REPLY}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for token in re.findall(r"\S+|\s\S+", REPLY):  # " refund", " 5": tokens with their spaces
            self.wfile.write(f"data: {token}\r\n\r\n".encode())
            self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fastapi_like() -> Iterator[tuple[str, list[Any]]]:
    bodies: list[Any] = []
    handler = type("Handler", (_App,), {"bodies": bodies})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", bodies
    finally:
        server.shutdown()
        server.server_close()


def user_then_stop(request: Any) -> str:
    if isinstance(request.body, dict) and request.body.get("response_format"):  # the judge
        return json.dumps({"verdict": "pass", "reason": "The assistant confirmed the refund."})
    sent = sum(1 for m in request.messages if m["role"] == "assistant")
    return "I want a refund for order 5" if sent == 0 else "Thanks! ###STOP###"


def play(tmp_path: Path, name: str, env: dict[str, str], llm: FakeOpenAIServer, monkeypatch) -> dict[str, Any]:
    """Run the README's recipe `name` with `env`; its summary."""
    text = RECIPES[name]
    if name != "local-models":
        assert text.count(OPENAI_USER) == 1, f"recipe {name} no longer names the user model as expected"
        text = text.replace(OPENAI_USER, f"user: {{model: gpt-4o-mini, endpoint: '{llm.openai_base_url}'}}")
    manifest = tmp_path / "m.yml"
    manifest.write_text(text, encoding="utf-8")
    for key, value in {"OPENAI_API_KEY": "sk-recipe-key", **env}.items():
        monkeypatch.setenv(key, value)
    assert main(["validate", str(manifest)]) == 0
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0, summary["gate"]
    return summary


def test_the_readme_has_a_recipe_for_each_kind_of_server() -> None:
    assert set(RECIPES) == {"json", "sse", "promptflow", "gradio", "openai", "local-models"}


def test_the_json_recipe(tmp_path: Path, llm: FakeOpenAIServer, fastapi_like, monkeypatch) -> None:
    url, bodies = fastapi_like
    llm.default = user_then_stop
    play(tmp_path, "json", {"APP_URL": url}, llm, monkeypatch)
    assert bodies == [{"message": "I want a refund for order 5", "history": []}]


def test_the_sse_recipe_keeps_every_token(tmp_path: Path, llm: FakeOpenAIServer, fastapi_like, monkeypatch) -> None:
    url, bodies = fastapi_like
    llm.default = user_then_stop
    play(tmp_path, "sse", {"APP_URL": url}, llm, monkeypatch)
    (result,) = [json.loads(line) for line in (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()]
    assert result["conversation"][1]["response"] == REPLY  # " 5" and the spaces are text, kept


def test_the_promptflow_recipe(tmp_path: Path, llm: FakeOpenAIServer, monkeypatch) -> None:
    llm.default = user_then_stop
    with FakePromptflow("chat_io", reply=lambda inputs: REPLY) as flow:
        play(tmp_path, "promptflow", {"FLOW_URL": flow.url}, llm, monkeypatch)
        assert flow.scores[0].body["chat_input"] == "I want a refund for order 5"


def test_the_gradio_recipe(tmp_path: Path, llm: FakeOpenAIServer, monkeypatch) -> None:
    llm.default = user_then_stop
    chat: Callable[[str, list[dict[str, Any]]], str] = lambda message, history: REPLY  # noqa: E731
    with FakeGradioApp({"shop_assistant": chat}) as gradio:
        play(tmp_path, "gradio", {"GRADIO_URL": gradio.url}, llm, monkeypatch)
        assert gradio.calls("run")[0].body["data"][0] == "I want a refund for order 5"


def test_the_openai_compatible_recipe(tmp_path: Path, llm: FakeOpenAIServer, monkeypatch) -> None:
    llm.default = user_then_stop
    with FakeChatApp() as app:
        app.default = lambda request: REPLY
        play(tmp_path, "openai", {"APP_URL": app.url}, llm, monkeypatch)
        (chat,) = [r for r in app.requests if r.route == "openai"]
        assert chat.body["model"] == "shop-assistant" and chat.path == "/v1/chat/completions"


def test_the_local_models_recipe(tmp_path: Path, llm: FakeOpenAIServer, fastapi_like, monkeypatch) -> None:
    url, _ = fastapi_like
    llm.dialect = LLAMA_SERVER
    llm.default = user_then_stop
    summary = play(tmp_path, "local-models", {"APP_URL": url, "LLAMA_URL": llm.url}, llm, monkeypatch)
    assert summary["gate"]["passes"] == 1
    judged = [r for r in llm.chat_requests if isinstance(r.body, dict) and r.body.get("response_format")]
    assert judged and judged[0].body["response_format"]["type"] == "json_schema"  # llama-server takes it
    assert all(r.path == "/v1/chat/completions" for r in llm.chat_requests)
