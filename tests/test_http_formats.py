"""The HTTP formats behind their registry: the schema lists the same names and fields, each one talks
to the test chat app, and a new one is a class and a registry entry.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from simulator.parsing.schema_check import load_schema
from simulator.targets import HttpTarget
from simulator.targets.http import CONFIG_KEYS, FORMATS, HttpFormat, Problems, config_keys, target_problems
from tests.servers.chat_app import FakeChatApp


def test_the_schema_lists_the_registered_formats_and_their_fields() -> None:
    url_target = load_schema("manifest")["$defs"]["url_target"]
    assert url_target["properties"]["format"]["enum"] == list(FORMATS)
    assert set(url_target["properties"]) == CONFIG_KEYS == config_keys()


#: per format: the chat app's route and the fields that make a target talk to it
ROUND_TRIPS: dict[str, tuple[str, dict[str, Any]]] = {
    "promptflow": ("/promptflow", {}),
    "openai": ("/v1/chat/completions", {"format": "openai", "model": "m"}),
    "http": (
        "/chat",
        {
            "format": "http",
            "request": {"body": {"text": "{{question}}", "h": "{{history}}"}},
            "response": "data.reply.text",
        },
    ),
    "gradio": ("", {"format": "gradio", "api": "/chat"}),
}
HISTORY = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "first answer"}]


@pytest.fixture
def app() -> Iterator[FakeChatApp]:
    with FakeChatApp() as server:
        yield server


def talk(target: HttpTarget, question: str) -> str:
    async def run() -> str:
        try:
            reply = await target.respond(question, list(HISTORY), {"conversation_id": "c1", "turn_number": 3})
            return reply.text
        finally:
            await target.aclose()

    return asyncio.run(run())


def test_every_registered_format_has_a_round_trip() -> None:
    assert set(ROUND_TRIPS) == set(FORMATS)


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_registered_format_talks_to_the_chat_app(app: FakeChatApp, name: str) -> None:
    route, fields = ROUND_TRIPS[name]
    target = HttpTarget.from_config({"url": app.url + route, "retry": {"attempts": 0}, **fields})
    assert target.describe()["format"] == name
    assert talk(target, "where is my tent?") == "You said: where is my tent?"
    assert app.last_request.route == {"http": "chat"}.get(name, name)
    assert "first answer" in json.dumps(app.last_request.body)  # the history went along, in the format's shape


def test_openai_streams_through_its_format(app: FakeChatApp) -> None:
    target = HttpTarget.from_config({"url": app.url + "/v1/chat/completions", "format": "openai", "stream": True})
    assert talk(target, "a streamed reply") == "You said: a streamed reply"
    assert app.last_request.headers["accept"] == "text/event-stream"


class ShoutFormat(HttpFormat):
    """A format of the test's own: `{"text": ..., "volume": ...}` to the chat app's /chat route."""

    name = "shout"
    keys = ("volume",)
    default_response = "data.reply.text"

    def __init__(self, volume: int) -> None:
        self.volume = volume

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str, problems: Problems) -> HttpFormat | None:
        volume = config.get("volume", 1)
        if not isinstance(volume, int):
            problems.add(("volume",), f"{source}.volume: must be a whole number")
            return None
        return cls(volume)

    def body(self, question: str, history: list[dict[str, str]], values: Mapping[str, Any], session: bool) -> Any:
        return {"text": question.upper(), "volume": self.volume, "turns": len(history)}


def test_a_new_format_is_one_class_and_one_registry_entry(app: FakeChatApp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FORMATS, "shout", ShoutFormat)
    target = HttpTarget.from_config({"url": app.url + "/chat", "format": "shout", "volume": 11})
    assert talk(target, "hello") == "You said: HELLO"
    assert app.last_request.body == {"text": "HELLO", "volume": 11, "turns": 2}
    assert target_problems({"url": app.url, "volume": 3}) == [
        "target.volume: only applies to format: shout (format is promptflow)"
    ]
    assert target_problems({"url": app.url, "format": "shout", "volume": "loud"}) == [
        "target.volume: must be a whole number"
    ]
