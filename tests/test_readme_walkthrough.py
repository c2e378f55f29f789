"""The README's walkthrough ("Your app in five minutes") runs end to end, as written.

A small JSON-over-HTTP app (`POST /chat` with `{"message", "history"}` answers `{"reply"}`) runs
on 127.0.0.1; the walkthrough's manifest is saved where the README says, and every command of its
shell blocks is run in order, with only `APP_URL`'s value swapped for the app's address. What the
README shows the commands print is what they print (latencies aside), and the claims around the
blocks hold: the body the app receives, the files of the results folder, the warning of a script
too long for `max_turns`, the comparison after the app changed, an LLM playing the persona (a local
fake) and `--replay`, and `--app-url` as the workflow's `app-url` uses it.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.cli import main
from tests.servers.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)

#: what the app answers before and after the change the walkthrough makes (step 4)
FIRST_REPLY = "Sorry to hear that. What can I do for you?"
REFUND_REPLY = "Your refund for order 5 is on its way."
CHANGED_REPLY = "I can only help with new orders."


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


WALKTHROUGH = _section("Your app in five minutes")
BLOCKS = [(lang, body) for lang, body in FENCE.findall(WALKTHROUGH)]


def blocks(lang: str) -> list[str]:
    return [body for kind, body in BLOCKS if kind == lang]


def says(text: str, phrase: str) -> bool:
    """`phrase` is in the prose `text`, however its lines are wrapped."""
    return " ".join(phrase.split()) in " ".join(text.split())


def test_the_walkthrough_has_its_blocks_in_order() -> None:
    """A manifest, the first run and what it prints, the second run and what it prints, the user model."""
    assert [lang for lang, _ in BLOCKS] == ["yaml", "bash", "text", "bash", "text", "yaml"]
    assert "simulations" in yaml.safe_load(blocks("yaml")[0])
    assert set(yaml.safe_load(blocks("yaml")[1])) == {"user"}
    assert says(WALKTHROUGH, CHANGED_REPLY)  # the change the prose describes is the one made here


class _App(BaseHTTPRequestHandler):
    """The app under test: a reply to a refund question (which the test changes), another reply to
    anything else. Any path answers, so that `--app-url` with a path of its own can be seen."""

    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    state: dict[str, Any]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)))
        self.state["received"].append((self.path, body))
        reply = self.state["refund_reply"] if "refund" in body["message"].lower() else FIRST_REPLY
        data = json.dumps({"reply": reply}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def json_app() -> Iterator[tuple[str, dict[str, Any]]]:
    state: dict[str, Any] = {"received": [], "refund_reply": REFUND_REPLY}
    server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_App,), {"state": state}))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()


def run_block(body: str, app_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    """Each line of a shell block, in order: `export APP_URL=...` (pointed at the local app) or a
    `simulator` command, which must exit as the walkthrough says (0, or 1 once the app changed).
    What the commands printed on stdout."""
    printed = []
    for line in body.strip().splitlines():
        words = shlex.split(line)
        if words[0] == "export":
            name, _, _ = words[1].partition("=")
            assert name == "APP_URL", line
            monkeypatch.setenv(name, app_url)
            continue
        assert words[0] == "simulator", f"the walkthrough's shell blocks hold only simulator commands: {line}"
        code = main(words[1:])
        out = capsys.readouterr().out
        assert code == (1 if "--baseline" in words else 0), f"`{line}` exited {code}:\n{out}"
        printed.append(out)
    return "".join(printed)


def _latencies(text: str) -> str:
    """Latencies as `N ms`; a latency that moved since the base run (a loaded machine: "p95 1 → 9
    ms" in a change's line) is left out, as the README's app answers in no time."""
    text = re.sub(r" · p(50|95) [\d,]+ → [\d,]+ ms", "", text)
    return re.sub(r"\d+(\.\d+)? ms\b", "N ms", text)


def assert_prints(output: str, shown: str) -> None:
    """Every line the README shows is a line of the output (latencies aside)."""
    lines = _latencies(output).splitlines()
    for line in _latencies(shown).splitlines():
        assert not line or line in lines, f"the README shows {line!r}, which the command no longer prints:\n{output}"


def test_the_walkthrough_runs_as_written(
    tmp_path: Path, json_app: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    url, app = json_app
    manifest, _user = blocks("yaml")
    first_run, second_run = blocks("bash")
    first_output, second_output = blocks("text")
    monkeypatch.chdir(tmp_path)
    assert says(WALKTHROUGH, "Save this as `.github/simulations.yml`")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "simulations.yml").write_text(manifest, encoding="utf-8")

    # 2. Run it: validate, then run; it prints what the README shows
    assert_prints(run_block(first_run, url, monkeypatch, capsys), first_output)
    script = yaml.safe_load(manifest)["simulations"][0]["turns"]
    assert app["received"] == [
        ("/chat", {"message": script[0], "history": []}),
        (
            "/chat",
            {
                "message": script[1],
                "history": [{"role": "user", "content": script[0]}, {"role": "assistant", "content": FIRST_REPLY}],
            },
        ),
    ], "the stop message is not sent, and the history is the conversation before the new message"

    # 3. Read the results: the files the README lists, and the verdict
    results = tmp_path / "results"
    for name in ("report.html", "conversations.jsonl", "summary.json", "report.md"):
        assert says(WALKTHROUGH, f"`{name}`") and (results / name).is_file(), name
    (line,) = (results / "conversations.jsonl").read_text(encoding="utf-8").splitlines()
    result = json.loads(line)
    assert result["evaluation"]["status"] == "pass" and result["meta_data"]["turn_count"] == 5

    # 4. Change the app, see what changed: a regression caused by the changed reply, and exit code 1
    app["refund_reply"] = CHANGED_REPLY
    assert_prints(run_block(second_run, url, monkeypatch, capsys), second_output)
    assert (tmp_path / "results-2" / "report.html").is_file()


def test_validate_warns_as_shown_when_the_script_does_not_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A fourth scripted message: 7 messages with the replies, one more than max_turns' default 6."""
    manifest = blocks("yaml")[0]
    stop = '      - "Thanks! ###STOP###"'
    assert manifest.count(stop) == 1
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "simulations.yml").write_text(
        manifest.replace(stop, "      - Order 5, the TrailMaster tent.\n" + stop), encoding="utf-8"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_URL", "http://127.0.0.1:9")
    assert main(["validate"]) == 0
    shown = re.search(r"a fourth\s+message here would give `(warning:.*?)`", WALKTHROUGH, re.DOTALL)
    assert shown, "the README no longer quotes the warning"
    assert " ".join(shown.group(1).split()) in capsys.readouterr().err


def _user_then_stop(request: Any) -> str:
    """The simulated user: asks for the refund, then says the task is done."""
    sent = sum(1 for m in request.messages if m["role"] == "assistant")
    return "Hi, I'd like a refund for order 5." if sent == 0 else "Thank you! ###STOP###"


def test_an_llm_plays_the_persona_and_replay_makes_no_call_against_an_unchanged_app(
    tmp_path: Path,
    json_app: tuple[str, dict[str, Any]],
    llm: FakeOpenAIServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Step 5: the README's `user` block added at the top level and `turns` deleted; the model is a
    local fake (the README's names OpenAI), so only its endpoint is added."""
    url, app = json_app
    manifest, user = (yaml.safe_load(body) for body in blocks("yaml"))
    manifest |= yaml.safe_load(blocks("yaml")[1])
    manifest["user"] = {**manifest["user"], "endpoint": llm.openai_base_url}
    del manifest["simulations"][0]["turns"]
    assert user == {"user": {"model": "gpt-4o-mini"}}
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "simulations.yml").write_text(yaml.safe_dump(manifest), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_URL", url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-walkthrough")
    llm.default = _user_then_stop

    assert says(WALKTHROUGH, "`simulator run --out results`")
    assert main(["run", "--out", "results"]) == 0
    calls = len(llm.chat_requests)
    assert calls == 2 and app["received"][0][1]["message"] == "Hi, I'd like a refund for order 5."

    assert says(WALKTHROUGH, "add `--replay results` beside `--baseline results`")
    capsys.readouterr()
    assert main(["run", "--out", "results-2", "--baseline", "results", "--replay", "results"]) == 0
    assert len(llm.chat_requests) == calls, "an unchanged app: the user's messages come from the base run"
    assert "Replay: 1 conversation identical to base; 0 LLM calls" in capsys.readouterr().out


@pytest.mark.parametrize(("app_url", "path"), [("{origin}", "/chat"), ("{origin}/v2/chat", "/v2/chat")])
def test_app_url_keeps_the_path_of_target_url_or_replaces_it_whole(
    app_url: str,
    path: str,
    tmp_path: Path,
    json_app: tuple[str, dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The workflow's `app-url` (the action passes it as `simulator run --app-url`): an origin keeps
    `/chat` of `url: ${APP_URL}/chat`, and APP_URL need not be set; a URL with a path replaces it."""
    url, app = json_app
    section = _section("Gate pull requests")
    assert says(section, "with `url: ${APP_URL}/chat`, `app-url: https://pr-42.example.com` sends to")
    assert says(section, "`https://pr-42.example.com/chat`, and `APP_URL` need not be set")
    assert says(section, "A URL with a path replaces `target.url` whole")
    (tmp_path / ".github").mkdir()
    (tmp_path / ".github" / "simulations.yml").write_text(blocks("yaml")[0], encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("APP_URL", raising=False)
    assert main(["run", "--out", "results", "--quiet", "--app-url", app_url.format(origin=url)]) == 0
    assert {where for where, _ in app["received"]} == {path}
