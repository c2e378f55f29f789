"""A value put into a URL stays where the template put it: real HTTP to an app on 127.0.0.1 that
hands out hostile session ids and records the request lines it receives, as they came.

A session id of `..` (or one holding `/`, `?`, `#`, `%`, `\\`, white space) in `{{session_id}}`
would otherwise leave its path segment, and the request would carry the target's auth to another
path of the app.
"""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs, unquote, urlsplit

from simulator.state.client import Call, StateClient
from simulator.state.requests import StateRequest
from simulator.targets.http import HttpTarget
from tests.servers.json_answer import serving

HOSTILE = [
    ".",
    "..",
    "...",
    "../admin",
    "../../etc/passwd",
    "a/b",
    "a?admin=1",
    "a#b",
    "100%",
    "%2e%2e",
    "%2E%2E%2Fadmin",
    "..\\admin",
    "a b",
    "\t..",
]


def test_a_hostile_session_id_stays_inside_its_path_segment() -> None:
    def answer(body: bytes) -> dict[str, str]:
        sent = json.loads(body) if body else {}
        return {"reply": "ok", "session": HOSTILE[int(sent.get("conversation", 0))]}

    with serving(answer) as (base, seen):
        target = HttpTarget.from_config(
            {
                "url": base + "/api/chats/{{session_id}}/messages?sid={{session_id}}",
                "format": "http",
                "headers": {"Authorization": "Bearer t0ken"},
                "request": {"body": {"conversation": "{{conversation_id}}", "text": "{{question}}"}},
                "response": "reply",
                "session": {"read": "json:session"},
                "retry": {"attempts": 0},
            }
        )
        close = StateRequest.from_config({"method": "POST", "url": "{{base}}/api/chats/{{session_id}}/close"}, "t")
        client = StateClient()

        async def converse(index: int) -> str | None:
            conversation = str(index)
            for _ in range(2):
                await target.respond("hi", [], {"conversation_id": conversation, "turn_number": 1})
            call = Call.of(target, conversation, {"simulation": "s"}, target.conversation_state(conversation))
            return (await client.send(close, call)).error

        async def play() -> list[str | None]:
            try:
                return [await converse(index) for index in range(len(HOSTILE))]
            finally:
                await target.aclose()
                await client.aclose()

        assert asyncio.run(play()) == [None] * len(HOSTILE)

    lines = [line.split(" ")[1] for line in seen]  # "POST <target> HTTP/1.1": the target as it was sent
    assert len(lines) == 3 * len(HOSTILE)
    for index, session in enumerate(HOSTILE):
        first, second, teardown = lines[3 * index : 3 * index + 3]
        assert first == "/api/chats//messages?sid=", first  # no session yet
        for sent, last in ((second, "messages"), (teardown, "close")):
            parts = urlsplit(sent)
            segments = parts.path.split("/")
            assert segments[:3] == ["", "api", "chats"] and segments[4:] == [last], (session, sent)
            value = segments[3]
            assert unquote(value) == session.strip(), (session, sent)
            if unquote(value) in (".", ".."):  # encoded, so that no normaliser resolves it
                assert value == "%2E" * len(unquote(value)), (session, sent)
        assert parse_qs(urlsplit(second).query) == {"sid": [session.strip()]}, second
