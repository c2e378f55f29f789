"""Lone surrogates (`"\\ud800"`: valid in JSON and YAML escapes and in a Python string, never in UTF-8)
wherever text enters: real HTTP against the test chat app on 127.0.0.1, no mocks.

A value a request does not use can never fail it (a URL template encodes only the placeholders it
uses), and every field that enters (a persona, a task, a manifest, an app's answer) has its lone
surrogates replaced with U+FFFD where it enters, with a note.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator import Persona, ScriptedUser, Simulator, validate_result
from simulator.cli import EXIT_OK, main
from simulator.results.folder import read_results
from simulator.state.client import Call, StateClient
from simulator.state.requests import StateRequest
from simulator.targets.base import AppReply as TargetReply
from simulator.targets.http import HttpTarget
from tests.servers.chat_app import AppReply, FakeChatApp

LONE = "\ud800"


@pytest.fixture
def app() -> Iterator[FakeChatApp]:
    with FakeChatApp() as server:
        yield server


def chat_target(url: str) -> HttpTarget:
    return HttpTarget.from_config(
        {
            "url": url,
            "format": "http",
            "request": {"body": {"text": "{{question}}", "conversation_id": "{{conversation_id}}"}},
            "response": "data.reply.text",
            "retry": {"attempts": 0},
        }
    )


def ask(target: HttpTarget, meta: dict[str, Any]) -> TargetReply:
    async def run() -> TargetReply:
        try:
            return await target.respond("hello", [], meta)
        finally:
            await target.aclose()

    return asyncio.run(run())


# --- a value the template does not use ------------------------------------------------------------


def test_a_value_the_url_does_not_use_never_fails_the_turn(app: FakeChatApp) -> None:
    target = chat_target(app.url + "/chat?c={{conversation_id}}")
    reply = ask(target, {"conversation_id": "c1", "turn_number": 1, "persona": LONE, "task": f"t{LONE}"})
    assert reply.text == "You said: hello"
    assert [(r.path, r.query) for r in app.requests] == [("/chat", {"c": "c1"})]


def test_a_value_a_state_request_does_not_use_never_fails_it(app: FakeChatApp) -> None:
    app.orders.put("c1", {"status": "delivered"})
    request = StateRequest.from_config({"url": app.url + "/orders/{{conversation_id}}"}, "teardown")
    call = Call(target=None, values={"conversation_id": "c1", "persona": LONE, "task": LONE, "simulation": "s"})
    client = StateClient()

    async def send() -> Any:
        try:
            return await client.send(request, call, json_answer=True)
        finally:
            await client.aclose()

    exchange = asyncio.run(send())
    assert exchange.error is None
    assert exchange.document == {"status": "delivered", "id": "c1"}


# --- every field that enters: a persona, a task, a manifest, an app's answer ----------------------

#: URL templates of the app: one uses other placeholders only, one the persona's name and the task too
OTHERS = "/chat?c={{conversation_id}}&n={{turn_number}}"
EVERYTHING = "/chat?c={{conversation_id}}&n={{turn_number}}&who={{persona}}&task={{task}}"
PERSONA_YAML = r"""name: "Jo\ud800"
profile: "A customer \udfff"
tone: "calm \ud800"
meta_data: {order: "5\ud800", "k\udc00": ["\ud800"]}
"""


def personas(tmp_path: Path) -> dict[str, tuple[Persona, str]]:
    """A persona and a task, with a lone surrogate in one field each."""
    (tmp_path / "jo.yaml").write_text(PERSONA_YAML)
    return {
        "name": (Persona(name=f"Jo{LONE}", profile="A customer"), "Return a tent"),
        "meta_data": (Persona(name="Jo", profile="A customer", meta_data={"order": f"5{LONE}"}), "Return a tent"),
        "meta_data key": (Persona(name="Jo", profile="A customer", meta_data={f"o{LONE}": {"n": [1]}}), "Return"),
        "tone": (Persona(name="Jo", profile="A customer", tone=f"calm{LONE}"), "Return a tent"),
        "task": (Persona(name="Jo", profile="A customer"), f"Return {LONE} a tent"),
        "yaml file": (Persona.load(tmp_path / "jo.yaml"), "Return a tent"),
    }


@pytest.mark.parametrize("template", [OTHERS, EVERYTHING])
@pytest.mark.parametrize("case", ["name", "meta_data", "meta_data key", "tone", "task", "yaml file"])
def test_a_lone_surrogate_in_a_persona_or_task_still_reaches_the_app(
    app: FakeChatApp, tmp_path: Path, case: str, template: str
) -> None:
    persona, task = personas(tmp_path)[case]
    sim = Simulator(systemConnection=chat_target(app.url + template), userConnection=ScriptedUser(["hi", "again"]))
    result = sim.simulate(persona, task, max_conversation_turns=4)
    validate_result(result)
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # valid UTF-8 throughout
    assert result["meta_data"]["stop_reason"] == "max_turns", result["meta_data"].get("error")
    assert [t["response"] for t in result["conversation"]] == ["hi", "You said: hi", "again", "You said: again"]
    assert len(app.requests) == 2
    assert any("lone surrogates" in note for note in result["meta_data"]["notes"])
    if template == EVERYTHING:
        sent = app.requests[0].query
        assert sent["who"] == result["meta_data"]["persona"]["name"] and sent["task"] == result["meta_data"]["task"]
        assert LONE not in sent["who"] + sent["task"]


def test_a_persona_keeps_no_lone_surrogate_in_any_field() -> None:
    persona = Persona(
        name=f"Jo{LONE}",
        profile=f"p{LONE}",
        tone=f"t{LONE}",
        meta_data={f"k{LONE}": [f"v{LONE}", {"n": f"\udfff{LONE}"}]},
        prompt_template=f"You are {{{{name}}}} {LONE}. {{{{task}}}} {{{{city}}}}",
        template_vars={"city": f"Oslo{LONE}"},
    )
    assert persona.to_dict() == {
        "name": "Jo\ufffd",
        "profile": "p\ufffd",
        "tone": "t\ufffd",
        "meta_data": {"k\ufffd": ["v\ufffd", {"n": "\ufffd\ufffd"}]},
        "prompt_template": "You are {{name}} \ufffd. {{task}} {{city}}",
        "template_vars": {"city": "Oslo\ufffd"},
    }
    assert persona.notes == [
        "9 character(s) in the persona 'Jo\ufffd' were not valid Unicode (lone surrogates) "
        "and were replaced with U+FFFD"
    ]
    persona.render("a task").encode("utf-8")
    assert persona.copy().notes == persona.with_template("{{name}} {{task}}").notes == persona.notes


MANIFEST = r"""version: 1
target:
  url: "{url}/chat?c={{{{conversation_id}}}}&who={{{{persona}}}}&task={{{{task}}}}"
  format: http
  headers: {{X-Who: "${{WHO}}"}}
  request: {{body: {{text: "{{{{question}}}}", conversation_id: "{{{{conversation_id}}}}"}}}}
  response: data.reply.text
  retry: {{attempts: 0}}
simulations:
  - name: inline
    persona: {{name: "Jo\ud800", profile: "A customer", meta_data: {{order: "5\udfff"}}}}
    task: "Return \ud800 a tent"
    turns: ["hi \ud800", "again"]
  - name: file
    persona: jo.yaml
    task: Return a tent
    turns: [hi, again]
"""


def test_a_manifest_with_lone_surrogates_runs_every_turn_and_says_where_they_were(
    app: FakeChatApp, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WHO", "\udcff-tester")  # a variable's bytes that are no UTF-8 come as lone surrogates
    (tmp_path / "jo.yaml").write_text(PERSONA_YAML)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(MANIFEST.format(url=app.url))
    assert main(["validate", str(manifest)]) == EXIT_OK
    warned = capsys.readouterr().err
    for field in ("target.headers.X-Who", "simulations[0].persona.name", "simulations[0].task"):
        assert f"{field}: 1 character(s) in its text were not valid Unicode" in warned, warned

    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "1"]) == EXIT_OK
    (out / "conversations.jsonl").read_bytes().decode("utf-8")  # valid UTF-8 throughout
    results = {r["meta_data"]["simulation"]: r for r in read_results(out / "conversations.jsonl")}
    assert set(results) == {"inline", "file"}
    for result in results.values():
        assert result["meta_data"]["stop_reason"] == "user_done", result["meta_data"].get("error")
        assert any("lone surrogates" in note for note in result["meta_data"]["notes"]), result["meta_data"]
    inline = results["inline"]
    assert inline["meta_data"]["task"] == "Return \ufffd a tent"
    assert inline["meta_data"]["persona"]["meta_data"] == {"order": "5\ufffd"}
    assert [t["response"] for t in inline["conversation"]][:2] == ["hi \ufffd", "You said: hi \ufffd"]
    assert len(app.requests) == 4  # every turn reached the app
    assert {r.query["who"] for r in app.requests} == {"Jo\ufffd"}
    assert all(r.headers["x-who"].encode("latin-1").decode("utf-8") == "\ufffd-tester" for r in app.requests)


# --- an app's answer ---------------------------------------------------------------------------------


def test_an_app_answer_with_lone_surrogates_gives_a_usable_session_reply_and_state(app: FakeChatApp) -> None:
    """The session id in a JSON answer and in a header (bytes that are no UTF-8), the reply, and the
    answer of a state request: U+FFFD where each is read, so the next request can carry them."""
    app.script(
        AppReply(
            body=b'{"data": {"reply": {"text": "hi \\ud800"}}, "session": "s\\ud800"}', content_type="application/json"
        ),
        "second",
    )
    app.orders.put("s%EF%BF%BD", {"status": f"x{LONE}"})  # sent as the JSON escape "x\ud800"
    target = HttpTarget.from_config(
        {
            "url": app.url + "/chat",
            "format": "http",
            "headers": {"X-Session-Id": "{{session_id}}"},
            "request": {"body": {"text": "{{question}}"}},
            "response": "data.reply.text",
            "session": {"read": "json:session"},
            "retry": {"attempts": 0},
        }
    )
    order = StateRequest.from_config({"url": "{{base}}/orders/{{session_id}}"}, "expect.outcome")
    client = StateClient()

    async def play() -> tuple[list[TargetReply], Any]:
        try:
            replies = [await target.respond(q, [], {"conversation_id": "c1", "turn_number": 1}) for q in ("a", "b")]
            call = Call.of(target, "c1", {"simulation": "s"}, target.conversation_state("c1"))
            return replies, await client.send(order, call, json_answer=True)
        finally:
            await target.aclose()
            await client.aclose()

    (first, second), exchange = asyncio.run(play())
    assert first.text == "hi \ufffd" and first.raw["body"]["session"] == "s\ufffd"
    assert first.notes == [
        "2 character(s) in the app's answer were not valid Unicode (lone surrogates) and were replaced with U+FFFD"
    ]
    assert second.text == "second" and app.requests[1].headers["x-session-id"].encode("latin-1").decode() == "s\ufffd"
    assert exchange.error is None and exchange.document == {"status": "x\ufffd", "id": "s%EF%BF%BD"}
    assert exchange.record["notes"] == [
        "1 character(s) in the answer were not valid Unicode (lone surrogates) and were replaced with U+FFFD"
    ]


def test_a_session_header_that_is_no_utf8_is_sent_back(app: FakeChatApp) -> None:
    app.script(AppReply(text="first", headers={"X-Session-Id": "s\xff"}), "second")  # the byte 0xff, alone
    target = HttpTarget.from_config(
        {
            "url": app.url + "/chat?s={{session_id}}",
            "format": "http",
            "headers": {"X-Session-Id": "{{session_id}}"},
            "request": {"body": {"text": "{{question}}"}},
            "response": "data.reply.text",
            "session": {"read": "header:X-Session-Id"},
            "retry": {"attempts": 0},
        }
    )

    async def play() -> list[str]:
        try:
            return [(await target.respond(q, [], {"conversation_id": "c1"})).text for q in ("a", "b")]
        finally:
            await target.aclose()

    assert asyncio.run(play()) == ["first", "second"]
    assert [r.query for r in app.requests] == [{"s": ""}, {"s": "s\ufffd"}]
    assert app.requests[1].headers["x-session-id"].encode("latin-1").decode("utf-8") == "s\ufffd"
