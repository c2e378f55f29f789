"""format: gradio against a replay of Gradio's routes on 127.0.0.1 (tests/servers/gradio_app.py): the
run route with a session per conversation, the queue where the app refuses that route or streams,
the reply in what the app returns, and its errors. Against a real Gradio app too, when `gradio` is
installed (tests/test_gradio_real.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from simulator import TurnError
from simulator.targets.base import AppReply
from simulator.targets.http import HttpTarget, target_problems
from tests.servers.gradio_app import FakeGradioApp, GradioError, Outputs

NO_RETRY = {"attempts": 0}


def counting(message: str, history: list[dict[str, Any]]) -> str:
    """A ChatInterface function whose reply shows how much history the app kept for the session."""
    return f"turn {len(history) // 2 + 1}: {message}"


def streaming(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
    reply = counting(message, history)
    for end in range(4, len(reply) + 4, 4):
        yield reply[:end]


def gradio(app: FakeGradioApp, **config: Any) -> HttpTarget:
    return HttpTarget.from_config({"url": app.url, "format": "gradio", "api": "/chat", "retry": NO_RETRY, **config})


def converse(target: HttpTarget, conversations: dict[str, list[str]]) -> dict[str, list[AppReply]]:
    """The conversations at once, each turn sending the history so far, as the simulator does."""

    async def one(conversation_id: str, questions: list[str]) -> list[AppReply]:
        history: list[dict[str, str]] = []
        replies = []
        for turn, question in enumerate(questions):
            meta = {"conversation_id": conversation_id, "turn_number": 2 * turn + 1}
            reply = await target.respond(question, list(history), meta)
            history += [{"role": "user", "content": question}, {"role": "assistant", "content": reply.text}]
            replies.append(reply)
        return replies

    async def run() -> list[list[AppReply]]:
        try:
            return await asyncio.gather(*(one(cid, questions) for cid, questions in conversations.items()))
        finally:
            await target.aclose()

    return dict(zip(conversations, asyncio.run(run()), strict=True))


def texts(replies: dict[str, list[AppReply]]) -> dict[str, list[str]]:
    return {cid: [reply.text for reply in turns] for cid, turns in replies.items()}


def fails(target: HttpTarget, question: str = "hi") -> TurnError:
    with pytest.raises(TurnError) as caught:
        converse(target, {"c1": [question]})
    return caught.value


def test_each_conversation_keeps_one_session_of_its_own_on_the_run_route() -> None:
    with FakeGradioApp({"chat": counting}) as app:
        replies = converse(gradio(app), {"a": ["a1", "a2", "a3"], "b": ["b1", "b2"]})
        assert texts(replies) == {"a": ["turn 1: a1", "turn 2: a2", "turn 3: a3"], "b": ["turn 1: b1", "turn 2: b2"]}
        runs = app.calls("run")
        assert len(runs) == len(app.requests) == 5  # one request a turn, never the queue
        sessions = {cid: {r.session_hash for r in runs if r.data and r.data[0].startswith(cid)} for cid in "ab"}
        assert all(len(hashes) == 1 and None not in hashes for hashes in sessions.values())
        assert sessions["a"] != sessions["b"]
        # the message, then the history as {role, content} messages (a Blocks app's Chatbot input reads it)
        last = next(r for r in runs if r.data and r.data[0] == "a3")
        assert last.data == [
            "a3",
            [
                {"role": "user", "content": "a1"},
                {"role": "assistant", "content": "turn 1: a1"},
                {"role": "user", "content": "a2"},
                {"role": "assistant", "content": "turn 2: a2"},
            ],
        ]
        reply = replies["a"][2]
        assert reply.request["url"] == f"{app.url}/gradio_api/run/chat"
        assert reply.raw["body"]["data"] == ["turn 3: a3", None]
        # another run meets the same app in fresh sessions, not in the earlier run's conversations
        assert texts(converse(gradio(app), {"a": ["again"]})) == {"a": ["turn 1: again"]}


def test_the_app_root_may_sit_under_a_path_and_history_latest_sends_none() -> None:
    with FakeGradioApp({"chat": counting}) as app:
        target = HttpTarget.from_config(
            {"url": app.url + "/?lang=en", "format": "gradio", "api": "chat", "history": "latest"}
        )
        assert texts(converse(target, {"c": ["one", "two"]})) == {"c": ["turn 1: one", "turn 2: two"]}
        assert [r.path for r in app.requests] == ["/gradio_api/run/chat"] * 2
        assert [r.query for r in app.requests] == [{"lang": "en"}] * 2
        assert app.requests[1].data == ["two", []]


def test_an_app_that_refuses_the_run_route_is_called_through_its_queue() -> None:
    with FakeGradioApp({"chat": counting}) as app:
        app.queue_only = True
        app.heartbeats = 2
        replies = converse(gradio(app), {"c": ["one", "two"]})
        assert texts(replies) == {"c": ["turn 1: one", "turn 2: two"]}
        # refused once; from then on each turn joins the queue and reads its result
        assert [r.route for r in app.requests] == ["run", "call", "result", "call", "result"]
        calls = app.calls("call")
        assert calls[0].session_hash == calls[1].session_hash is not None
        assert all(r.method == "GET" and r.body is None for r in app.calls("result"))
        second = replies["c"][1]
        assert second.request["url"] == f"{app.url}/gradio_api/call/chat"
        assert second.request["body"]["data"][0] == "two"
        assert second.raw["body"] == {
            "event_id": app.calls("result")[1].event_id,
            "event": "complete",
            "data": [
                "turn 2: two",
                None,
            ],
        }


def test_a_streaming_app_is_read_to_its_complete_event_in_a_session_its_first_piece_never_reached() -> None:
    with FakeGradioApp({"chat": streaming}) as app:
        replies = converse(gradio(app), {"c": ["a long question", "and another"]})
        # the run route gave "turn" and left it in its session's history: the queue's session is another
        assert texts(replies) == {"c": ["turn 1: a long question", "turn 2: and another"]}
        run, *rest = app.requests
        assert run.route == "run" and [r.route for r in rest] == ["call", "result", "call", "result"]
        assert run.session_hash not in {r.session_hash for r in app.calls("call")}
        assert app.histories[run.session_hash][1]["content"] == "turn"


@pytest.mark.parametrize("queued", [False, True], ids=["run", "queue"])
@pytest.mark.parametrize(
    ("returned", "reply"),
    [
        ("plain text", "plain text"),
        ({"role": "assistant", "content": "a message"}, "a message"),
        (
            [
                {"role": "assistant", "content": "first"},
                {"content": "second", "role": "assistant", "metadata": {}, "options": []},
            ],
            "second",
        ),
        (
            {
                "role": "assistant",
                "content": [{"type": "text", "text": "part one"}, {"type": "file", "file": {"path": "a.png"}}, "two"],
            },
            "part one\n\ntwo",
        ),
        (
            [{"role": "assistant", "content": "the chart:"}, {"role": "assistant", "content": {"path": "c.png"}}],
            "the chart:",
        ),
        (
            Outputs(["", [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "from the chatbot"}]]),
            "from the chatbot",
        ),
        (Outputs([7, None]), "7"),
    ],
    ids=["text", "message", "messages", "parts", "file-last", "blocks-outputs", "number"],
)
def test_the_reply_is_the_last_assistant_message_with_text_in_what_the_app_returns(
    returned: Any, reply: str, queued: bool
) -> None:
    with FakeGradioApp({"chat": lambda message, history: returned}) as app:
        app.queue_only = queued
        assert texts(converse(gradio(app), {"c": ["hi"]})) == {"c": [reply]}


def test_response_points_at_the_output_that_holds_the_reply() -> None:
    chatbot = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "from the chatbot"}]
    with FakeGradioApp({"chat": lambda message, history: Outputs(["a status line", chatbot])}) as app:
        assert texts(converse(gradio(app), {"c": ["hi"]})) == {"c": ["a status line"]}
        assert texts(converse(gradio(app, response="data.1"), {"c": ["hi"]})) == {"c": ["from the chatbot"]}


def test_outputs_without_a_reply_name_what_to_set() -> None:
    with FakeGradioApp({"chat": lambda message, history: Outputs([None, {"path": "a.png"}])}) as app:
        error = fails(gradio(app))
    assert error.reason == "app_error"
    assert "answered without the reply text: no output is text or an assistant message" in str(error)
    assert "set target.response to the output that holds the reply, e.g. data.1" in str(error)


def test_an_app_error_names_the_route_and_says_what_the_app_said() -> None:
    def failing(message: str, history: list[dict[str, Any]]) -> str:
        raise GradioError("no such order") if message == "shown" else ValueError("hidden")

    with FakeGradioApp({"chat": failing}) as app:
        target = gradio(app)
        error = fails(target, "shown")
        assert error.reason == "app_error" and not error.fatal
        assert f"the app at {app.url}/gradio_api/run/chat failed (HTTP 500)" in str(error)
        assert "no such order" in str(error)

        app.queue_only = True
        error = fails(target, "shown")
        assert f"the app at {app.url}/gradio_api/call/chat answered the call with an error: no such order" in str(error)
        assert not error.fatal
        hidden = fails(target, "other")
        assert "the app hides its errors' messages (launch it with show_error=True" in str(hidden)
        app.show_error = True
        assert "answered the call with an error: hidden" in str(fails(target, "other"))


def test_an_error_event_is_retried_as_a_failed_request_is() -> None:
    calls = []

    def flaky(message: str, history: list[dict[str, Any]]) -> str:
        calls.append(message)
        if len(calls) == 1:
            raise GradioError("upstream busy")
        return "fine"

    with FakeGradioApp({"chat": flaky}) as app:
        app.queue_only = True
        target = gradio(app, retry={"attempts": 1, "backoff": 0.01})
        replies = converse(target, {"c": ["hi"]})
        assert texts(replies) == {"c": ["fine"]}
        assert replies["c"][0].raw["retries"] == 1


def test_a_full_queue_stops_the_run_saying_what_to_change() -> None:
    with FakeGradioApp({"chat": counting}) as app:
        app.queue_only = app.queue_full = True
        error = fails(gradio(app))
    assert error.fatal and error.reason == "app_error"
    assert f"the app at {app.url}/gradio_api/call/chat rejected the request: its queue is full (Queue is full." in str(
        error
    )
    assert "run fewer conversations at a time (--concurrency) or let the app queue more" in str(error)


def test_an_unknown_endpoint_or_a_url_that_is_not_the_app_root_names_the_setting() -> None:
    with FakeGradioApp({"chat": counting}) as app:
        error = fails(gradio(app, api="/chta"))
        assert error.fatal
        assert (
            f"the app at {app.url}/gradio_api/run/chta rejected the request: no endpoint answers to the name /chta"
            in str(error)
        )
        assert "set target.api to one the app's 'Use via API' page (its /gradio_api/info) lists" in str(error)

        wrong = HttpTarget.from_config({"url": app.url + "/ui", "format": "gradio", "api": "chat", "retry": NO_RETRY})
        error = fails(wrong)
        assert error.fatal
        assert (
            f"the app at {app.url}/ui/gradio_api/call/chat rejected the request: no Gradio app serves its API there"
            in str(error)
        )
        assert "set target.url to the app's root, the address its page is served at" in str(error)


def test_a_result_stream_that_ends_early_or_runs_past_the_limit_is_an_app_error() -> None:
    with FakeGradioApp({"chat": counting}) as app:
        app.queue_only = app.cut_stream = True
        app.heartbeats = 1
        error = fails(gradio(app))
        assert "ended the call's result stream at" in str(error)
        assert "before its complete or error event (events: heartbeat)" in str(error)

        app.cut_stream = False
        app.heartbeats = 100
        error = fails(gradio(app, max_reply_bytes=1024))
        assert "sent more than 1,024 bytes of events at" in str(error)
        assert "raise target.max_reply_bytes if the app's answers are that big" in str(error)


def test_api_is_required_and_is_one_endpoint_name() -> None:
    url = "http://127.0.0.1:7860"
    [required] = target_problems({"url": url, "format": "gradio"})
    assert required.startswith("target.api: required for format gradio: the name of the app's endpoint, e.g. /chat")
    for bad in ("", "/", "a b", "chat/extra", 5):
        [problem] = target_problems({"url": url, "format": "gradio", "api": bad})
        assert problem.startswith("target.api: must be the name of the app's endpoint"), problem
    assert target_problems({"url": url, "format": "gradio", "api": "/chat"}) == []
    assert target_problems({"url": url, "api": "/chat"}) == [
        "target.api: only applies to format: gradio (format is promptflow)"
    ]
