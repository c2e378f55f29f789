"""Recorded requests refer to the history instead of repeating it, yet expand to exactly what was sent.

Real HTTP on 127.0.0.1: the app and the user model are the test servers, and what they received is
compared with what `expand_request` rebuilds from the result.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from simulator import (
    OpenAIChatCompletionsModel,
    Persona,
    PlainTokenManager,
    ScriptedUser,
    Simulator,
    expand_request,
    validate_result,
)
from simulator.conversation.loop import MAX_REPLY_CHARS
from simulator.targets.http import HttpTarget, encode_body
from tests.faults.harness import play, read_back
from tests.servers.chat_app import AppReply, FakeChatApp
from tests.servers.openai_server import FakeOpenAIServer

USER_LINES = ["Hi there", "Where is order 5?", "And order 6?", 'Ünïcode ✓ and "quotes"', "Thanks ###STOP###"]

#: name -> (route, target settings)
FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "promptflow": ("/promptflow", {"format": "promptflow"}),
    "openai": ("/v1/chat/completions", {"format": "openai", "model": "shop", "system_prompt": "Be brief."}),
    "openai-stream": ("/v1/chat/completions", {"format": "openai", "stream": True}),
    "http-history-value": (
        "/chat",
        {
            "format": "http",
            "request": {"body": {"text": "{{question}}", "history": "{{history}}", "id": "{{conversation_id}}"}},
            "response": "data.reply.text",
        },
    ),
    "http-history-in-text": (
        "/chat",
        {
            "format": "http",
            "request": {"body": {"prompt": "{{question}}", "context": "Earlier: {{history}} (turn {{turn_number}})"}},
            "response": "data.reply.text",
        },
    ),
    "gradio": ("", {"format": "gradio", "api": "/chat"}),
    "http-latest": (
        "/chat",
        {
            "format": "http",
            "history": "latest",
            "request": {"body": {"t": "{{question}}"}},
            "response": "data.reply.text",
        },
    ),
}


def numbered_replies(app: FakeChatApp) -> None:
    """Each reply is different and long enough to be worth not repeating."""
    count = iter(range(1000))
    app.default = lambda request: AppReply(
        text=f"REPLY-{next(count)} " + "blah " * 50 + f"(you said {request.user_text})"
    )


@pytest.mark.parametrize("name", list(FORMATS))
def test_expanded_requests_are_the_bytes_the_app_received(name: str) -> None:
    route, settings = FORMATS[name]
    with FakeChatApp() as app:
        numbered_replies(app)
        app.sse_piece_delay = 0
        target = HttpTarget.from_config({"url": app.url + route, **settings})
        sim = Simulator(systemConnection=target, userConnection=ScriptedUser(USER_LINES))
        result = sim.simulate(Persona.load("jane"), "check orders", max_conversation_turns=20)
        received = [r for r in app.requests if r.route]  # not the GET of a flow's swagger
    validate_result(result)
    assert result["meta_data"]["stop_reason"] == "user_done"
    app_turns = [t for t in result["conversation"] if t["actor"] == "assistant"]
    assert len(app_turns) == len(received) == 4
    for turn, request in zip(app_turns, received, strict=True):
        expanded = expand_request(result, turn["turn_number"])
        assert encode_body(expanded["body"]) == request.raw_body
        recorded = json.dumps(turn["request"], ensure_ascii=False)
        assert "REPLY-" not in recorded, "an earlier reply is repeated in the recorded request"
        question = result["conversation"][turn["turn_number"] - 1]["response"]
        assert json.dumps(question, ensure_ascii=False)[1:-1] in recorded, "the new message is shown in full"
    last = app_turns[-1]["request"]["body"]
    if name == "promptflow":
        assert last["chat_history"] == {"$turns": [0, 5], "$as": "promptflow"}
    elif name.startswith("openai"):
        messages = last["messages"]
        assert {"$turns": [0, 5]} in messages and messages[-1] == {"role": "user", "content": USER_LINES[3]}
    elif name == "http-history-value":
        assert last["history"] == {"$turns": [0, 5]}
    elif name == "gradio":
        assert last["data"] == [USER_LINES[3], [{"$turns": [0, 5]}]]
    elif name == "http-history-in-text":
        assert last["context"] == {"$text": ["Earlier: ", {"$turns": [0, 5]}, " (turn 7)"]}


def test_callback_and_model_targets_and_the_user_model(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    """The user model's prompt repeats the conversation with the roles swapped; both sides refer to it."""
    llm.script("I need a refund.", "Order 5.", "Great ###STOP###")
    llm_app.script("Which order?", "Refunded: " + "order 5 " * 40)

    def model(server: FakeOpenAIServer) -> OpenAIChatCompletionsModel:
        return OpenAIChatCompletionsModel(
            endpoint_url=server.openai_base_url, token_manager=PlainTokenManager("k"), name="gpt-test"
        )

    result = Simulator(systemConnection=model(llm_app), userConnection=model(llm)).simulate(
        Persona.load("jane"), "refund", max_conversation_turns=10
    )
    validate_result(result)
    turns = result["conversation"]
    users, apps = turns[0::2], turns[1::2]
    for turn, sent in zip(users, llm.chat_requests, strict=True):
        assert expand_request(result, turn)["messages"] == sent.messages
    for turn, sent in zip(apps, llm_app.chat_requests, strict=True):
        assert expand_request(result, turn)["messages"] == sent.messages
    assert users[2]["request"]["messages"][2] == {"$turns": [0, 3], "$as": "swapped"}
    assert apps[1]["request"]["messages"] == [{"$turns": [0, 1]}, {"role": "user", "content": "Order 5."}]

    seen: list[list[dict[str, str]]] = []

    def respond(question: str, history: list[dict[str, str]], meta: dict[str, Any]) -> str:
        seen.append([dict(m) for m in history])
        return f"answer {len(seen)} " + "x" * 100

    result = Simulator(simulate_callback=respond, userConnection=ScriptedUser(USER_LINES)).simulate(
        Persona.load("jane"), "t", max_conversation_turns=20
    )
    apps = [t for t in result["conversation"] if t["actor"] == "assistant"]
    assert [expand_request(result, t)["conversation_history"] for t in apps] == seen
    assert apps[-1]["request"]["conversation_history"] == {"$turns": [0, 5]}


def test_a_failed_turn_keeps_its_request_compact_too() -> None:
    with FakeChatApp() as app:
        app.script("first answer " * 20, AppReply.error(400, "no more"))
        target = HttpTarget.from_config({"url": app.url + "/promptflow", "retry": {"attempts": 0}})
        result = Simulator(systemConnection=target, userConnection=ScriptedUser(USER_LINES)).simulate(
            Persona.load("jane"), "t", max_conversation_turns=10
        )
        received = [r for r in app.requests if r.route]  # not the GET of a flow's swagger
    failed = result["conversation"][-1]
    assert failed["error"] and failed["request"]["body"]["chat_history"] == {"$turns": [0, 1], "$as": "promptflow"}
    assert encode_body(expand_request(result, failed)["body"]) == received[-1].raw_body


# --- a long conversation of long replies ------------------------------------------------------------

REPLY_CHARS = 150_000


def long_conversation(folder: Path, replies: int) -> tuple[int, dict[str, Any], list[bytes]]:
    """`replies` app replies of 150,000 characters through the runner: the JSONL line's size, the result
    and the bodies the app received."""
    with FakeChatApp() as app:
        app.default = lambda request: AppReply(text=f"{request.user_text}: " + "y" * REPLY_CHARS)
        manifest = {
            "version": 1,
            "target": {"url": app.url + "/promptflow", "format": "promptflow", "timeout": 30},
            "defaults": {"max_turns": 2 * replies},
            "simulations": [
                {"name": "long", "persona": "jane", "task": "t", "turns": [f"message {i}" for i in range(replies)]}
            ],
        }
        outcome, crash = play(manifest, folder)
        received = [r.raw_body for r in app.requests if r.route]  # not the GET of the flow's swagger
    assert crash is None and outcome is not None
    line = (folder / "out" / "conversations.jsonl").read_bytes().splitlines()[0]
    results, _, problems = read_back(folder / "out")
    assert not problems
    return len(line), results[0], received


def test_a_result_line_grows_linearly_with_the_turns(tmp_path: Path) -> None:
    """20 replies of 150,000 characters made a 23 MB line when every request repeated the history."""
    size, result, received = long_conversation(tmp_path / "twenty", 20)
    turns = result["conversation"]
    assert len(turns) == 40 and result["meta_data"]["stop_reason"] == "max_turns"
    kept = sum(len(t["response"]) for t in turns if t["actor"] == "assistant")
    assert kept == 20 * MAX_REPLY_CHARS  # each reply is cut; the response and the raw answer hold it once each
    assert size < 2 * kept + 100_000, f"the line holds {size:,} bytes for {kept:,} characters of replies"
    half, _, _ = long_conversation(tmp_path / "ten", 10)
    assert size < 2.2 * half, f"10 replies: {half:,} bytes, 20 replies: {size:,} bytes"
    for turn, body in zip(turns[1::2], received, strict=True):
        assert encode_body(expand_request(result, turn)["body"]) == body
