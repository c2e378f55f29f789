"""Lone surrogates (`"\\ud800"`: valid in JSON and YAML escapes and in a Python string, never in UTF-8)
wherever text enters: real HTTP against the test chat app on 127.0.0.1, no mocks.

A value a request does not use can never fail it (a URL template encodes only the placeholders it
uses), and every field that enters (a persona, a task, a manifest, an app's answer) has its lone
surrogates replaced with U+FFFD where it enters, with a note.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from simulator.state_client import Call, StateClient
from simulator.state_requests import StateRequest
from simulator.targets.base import AppReply as TargetReply
from simulator.targets.http import HttpTarget
from tests.servers.chat_app import FakeChatApp

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
