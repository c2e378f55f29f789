"""Every recipe of the documentation site's "Your app" (docs/guides/your-app.md) and "Local models"
(docs/guides/local-models.md) runs as written, against a local server that speaks that kind's wire
format: a JSON endpoint, the same streaming plain-text Server-Sent Events, Prompt flow's `/score`
with its swagger, a Gradio app's API, an OpenAI-compatible server, a Python callback, and
llama.cpp's server as the simulated user and the judge. (The README's own walkthrough runs in
tests/test_readme_walkthrough.py.)

Only the user model's line changes: `user: {model: gpt-4o-mini}` would call OpenAI, so it is given
the local fake's endpoint; everything else is the page's text.
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
#: the recipes of "Your app", the page a reader points a manifest at their server from
RECIPES = dict(RECIPE.findall((REPO / "docs/guides/your-app.md").read_text(encoding="utf-8")))
#: the pages with recipes, and every page's recipes by (page, name)
PAGES = ("docs/guides/your-app.md", "docs/guides/local-models.md")
ALL_RECIPES = {
    (page, name): text
    for page in PAGES
    if (REPO / page).is_file()
    for name, text in RECIPE.findall((REPO / page).read_text(encoding="utf-8"))
}


def on_pages(name: str) -> pytest.MarkDecorator:
    """Run a recipe's test once for each page that shows it."""
    pages = [page for page, recipe in ALL_RECIPES if recipe == name]
    return pytest.mark.parametrize("page", pages)


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


def play(
    tmp_path: Path,
    name: str,
    env: dict[str, str],
    llm: FakeOpenAIServer,
    monkeypatch,
    page: str = "docs/guides/your-app.md",
) -> dict[str, Any]:
    """Run the recipe `name` of `page` ("Your app" by default) with `env`; its summary."""
    text = ALL_RECIPES[(page, name)]
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


def test_your_app_has_a_recipe_for_each_kind_of_server() -> None:
    assert set(RECIPES) == {"json", "sse", "promptflow", "gradio", "openai", "callback"}


def test_the_docs_have_a_recipe_for_each_kind_of_server_and_local_models() -> None:
    assert set(ALL_RECIPES) == {("docs/guides/your-app.md", name) for name in RECIPES} | {
        ("docs/guides/local-models.md", "local-models")
    }


@on_pages("json")
def test_the_json_recipe(page: str, tmp_path: Path, llm: FakeOpenAIServer, fastapi_like, monkeypatch) -> None:
    url, bodies = fastapi_like
    llm.default = user_then_stop
    play(tmp_path, "json", {"APP_URL": url}, llm, monkeypatch, page)
    assert bodies == [{"message": "I want a refund for order 5", "history": []}]


@on_pages("sse")
def test_the_sse_recipe_keeps_every_token(
    page: str, tmp_path: Path, llm: FakeOpenAIServer, fastapi_like, monkeypatch
) -> None:
    url, bodies = fastapi_like
    llm.default = user_then_stop
    play(tmp_path, "sse", {"APP_URL": url}, llm, monkeypatch, page)
    (result,) = [json.loads(line) for line in (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()]
    assert result["conversation"][1]["response"] == REPLY  # " 5" and the spaces are text, kept


@on_pages("promptflow")
def test_the_promptflow_recipe(page: str, tmp_path: Path, llm: FakeOpenAIServer, monkeypatch) -> None:
    llm.default = user_then_stop
    with FakePromptflow("chat_io", reply=lambda inputs: REPLY) as flow:
        play(tmp_path, "promptflow", {"FLOW_URL": flow.url}, llm, monkeypatch, page)
        assert flow.scores[0].body["chat_input"] == "I want a refund for order 5"


@on_pages("gradio")
def test_the_gradio_recipe(page: str, tmp_path: Path, llm: FakeOpenAIServer, monkeypatch) -> None:
    llm.default = user_then_stop
    chat: Callable[[str, list[dict[str, Any]]], str] = lambda message, history: REPLY  # noqa: E731
    with FakeGradioApp({"shop_assistant": chat}) as gradio:
        play(tmp_path, "gradio", {"GRADIO_URL": gradio.url}, llm, monkeypatch, page)
        assert gradio.calls("run")[0].body["data"][0] == "I want a refund for order 5"


@on_pages("openai")
def test_the_openai_compatible_recipe(page: str, tmp_path: Path, llm: FakeOpenAIServer, monkeypatch) -> None:
    llm.default = user_then_stop
    with FakeChatApp() as app:
        app.default = lambda request: REPLY
        play(tmp_path, "openai", {"APP_URL": app.url}, llm, monkeypatch, page)
        (chat,) = [r for r in app.requests if r.route == "openai"]
        assert chat.body["model"] == "shop-assistant" and chat.path == "/v1/chat/completions"


@on_pages("local-models")
def test_the_local_models_recipe(page: str, tmp_path: Path, llm: FakeOpenAIServer, fastapi_like, monkeypatch) -> None:
    url, _ = fastapi_like
    llm.dialect = LLAMA_SERVER
    llm.default = user_then_stop
    summary = play(tmp_path, "local-models", {"APP_URL": url, "LLAMA_URL": llm.url}, llm, monkeypatch, page)
    assert summary["gate"]["passes"] == 1
    judged = [r for r in llm.chat_requests if isinstance(r.body, dict) and r.body.get("response_format")]
    assert judged and judged[0].body["response_format"]["type"] == "json_schema"  # llama-server takes it
    assert all(r.path == "/v1/chat/completions" for r in llm.chat_requests)


@on_pages("callback")
def test_the_callback_recipe(page: str, tmp_path: Path, llm: FakeOpenAIServer, monkeypatch) -> None:
    """The bundled store assistant as a Python callback: no server at all."""
    llm.default = user_then_stop
    play(tmp_path, "callback", {}, llm, monkeypatch, page)
    (result,) = [json.loads(line) for line in (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()]
    assert "full refund" in result["conversation"][1]["response"]
    assert result["meta_data"]["app"]["kind"] == "callback"
