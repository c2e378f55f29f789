"""HttpTarget end to end: real HTTP against FakeChatApp on 127.0.0.1, no mocks."""

from __future__ import annotations

import asyncio
import email.utils
import gzip
import json
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import simulator
from simulator import ConfigError, TurnError, validate_result
from simulator.parsing.json_path import PathError, extract, parse_path
from simulator.targets.base import AppReply as TargetReply
from simulator.targets.http import DEFAULT_MAX_REPLY_BYTES, HttpTarget, _Lines
from simulator.targets.redaction import redact_headers, safe_url
from simulator.targets.retry import RetryLater, RetryPolicy, parse_retry_after, retry_async
from tests.servers.chat_app import AppReply, FakeChatApp

SECRET = "s3cr3t"
FAST_RETRY = {"attempts": 3, "backoff": 0.01, "max_backoff": 0.05}
HISTORY = [{"role": "user", "content": "first"}, {"role": "assistant", "content": "first answer"}]


@pytest.fixture
def app() -> Iterator[FakeChatApp]:
    with FakeChatApp() as server:
        yield server


def meta(conversation_id: str = "conv-1", turn_number: int = 2, **extra: Any) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "turn_number": turn_number,
        "persona": "Jane",
        "task": "return a tent",
        "persona_meta_data": {},
        **extra,
    }


def target(app: FakeChatApp, route: str, **config: Any) -> HttpTarget:
    config.setdefault("retry", FAST_RETRY)
    return HttpTarget.from_config({"url": app.url + route, **config})


def ask(
    t: HttpTarget, question: str = "hello", history: list[dict[str, str]] | None = None, **meta_kw: Any
) -> TargetReply:
    """One turn in a fresh event loop, closing that loop's client afterwards."""

    async def run() -> TargetReply:
        try:
            return await t.respond(question, list(history or []), meta(**meta_kw))
        finally:
            await t.aclose()

    return asyncio.run(run())


def fail(t: HttpTarget, question: str = "hello", **meta_kw: Any) -> TurnError:
    with pytest.raises(TurnError) as info:
        ask(t, question, **meta_kw)
    return info.value


def talk(t: HttpTarget, *turns: tuple[str, str]) -> None:
    """Send each (question, conversation id) in order, then close the target."""

    async def run() -> None:
        try:
            for question, conversation_id in turns:
                await t.respond(question, [], meta(conversation_id=conversation_id))
        finally:
            await t.aclose()

    asyncio.run(run())


def http_chat(app: FakeChatApp, **config: Any) -> HttpTarget:
    """The /chat route in the generic format, with the client's conversation id in the body."""
    config.setdefault("request", {"body": {"text": "{{question}}", "conversation_id": "{{conversation_id}}"}})
    config.setdefault("response", "data.reply.text")
    return target(app, "/chat", format="http", **config)


# --- formats -----------------------------------------------------------------------------------


def test_promptflow_sends_question_and_history_pairs(app: FakeChatApp) -> None:
    reply = ask(target(app, "/promptflow"), "where is my order?", HISTORY)
    assert reply.text == "You said: where is my order?"
    body = app.last_request.body
    assert body == {
        "question": "where is my order?",
        "chat_history": [{"inputs": {"question": "first"}, "outputs": {"answer": "first answer"}}],
    }
    assert reply.raw == {"status": 200, "body": {"answer": "You said: where is my order?"}}
    assert reply.request["method"] == "POST" and reply.request["body"] == body
    assert reply.usage is None


def test_openai_format_body_model_system_prompt_and_usage(app: FakeChatApp) -> None:
    t = target(app, "/v1/chat/completions", format="openai", model="shop-bot", system_prompt="Be brief.")
    reply = ask(t, "hi there", HISTORY)
    assert reply.text == "You said: hi there"
    assert app.last_request.body == {
        "model": "shop-bot",
        "messages": [
            {"role": "system", "content": "Be brief."},
            *HISTORY,
            {"role": "user", "content": "hi there"},
        ],
    }
    assert reply.usage == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert reply.raw["body"]["object"] == "chat.completion"
    assert t.describe() == {"kind": "http", "format": "openai", "url": app.url + "/v1/chat/completions"}


@pytest.mark.parametrize(
    ("route", "sent_to"),
    [
        ("/v1", "/v1/chat/completions"),
        ("/v1/", "/v1/chat/completions"),
        ("/v1?api-version=2024-06-01", "/v1/chat/completions?api-version=2024-06-01"),
        ("/v1/chat/completions", "/v1/chat/completions"),
        ("/v1/chat/completions?api-version=2024-06-01", "/v1/chat/completions?api-version=2024-06-01"),
    ],
)
def test_an_openai_target_takes_a_base_url_or_the_full_path(app: FakeChatApp, route: str, sent_to: str) -> None:
    t = target(app, route, format="openai")
    assert ask(t, "hi there").text == "You said: hi there"
    assert app.last_request.path == sent_to.split("?")[0] and app.last_request.route == "openai"
    assert t.describe()["url"] == app.url + sent_to and t.url == app.url + sent_to


def test_a_base_url_is_only_an_openai_targets(app: FakeChatApp) -> None:
    err = fail(target(app, "/v1", format="http", request={"body": {"q": "{{question}}"}}, response="a"))
    assert err.detail["status"] == 404 and app.last_request.path == "/v1"


def test_openai_stream_is_read_to_the_end_and_connection_reused(app: FakeChatApp) -> None:
    app.sse_piece_delay = 0.02
    t = target(app, "/v1/chat/completions", format="openai", stream=True)

    async def run() -> list[TargetReply]:
        try:
            return [await t.respond(q, [], meta()) for q in ("a long question here", "second")]
        finally:
            await t.aclose()

    first, second = asyncio.run(run())
    assert first.text == "You said: a long question here"
    assert second.text == "You said: second"
    assert app.requests[0].body["stream"] is True
    assert first.raw["events"][0]["object"] == "chat.completion.chunk"
    assert app.connection_count == 1  # the stream was read to its end, the connection went back to the pool


def test_http_format_renders_placeholders_everywhere(app: FakeChatApp) -> None:
    t = target(
        app,
        "/chat?cid={{conversation_id}}",
        format="http",
        headers={"X-Conversation": "{{conversation_id}}", "X-Turn": "{{turn_number}}"},
        request={
            "body": {
                "text": "{{question}}",
                "conversation_id": "{{conversation_id}}",
                "who": "{{persona}} wants to {{task}}",
                "history": "{{history}}",
                "history_text": "earlier: {{history}}",
                "meta": [{"turn": "{{turn_number}}"}, 7, None],
            },
            "query": {"persona": "{{persona}}"},
        },
        response="data.reply.text",
    )
    reply = ask(t, "is it raining?", HISTORY, conversation_id="c 1/2", turn_number=4)
    assert reply.text == "You said: is it raining?"
    got = app.last_request
    assert got.query == {"cid": "c 1/2", "persona": "Jane"}
    assert got.headers["x-conversation"] == "c 1/2" and got.headers["x-turn"] == "4"
    assert got.body == {
        "text": "is it raining?",
        "conversation_id": "c 1/2",
        "who": "Jane wants to return a tent",
        "history": HISTORY,
        "history_text": "earlier: " + json.dumps(HISTORY),
        "meta": [{"turn": "4"}, 7, None],
    }
    assert app.transcripts["c 1/2"] == ["is it raining?"]


def test_http_get_sends_query_and_reports_the_status(app: FakeChatApp) -> None:
    t = target(
        app, "/chat", format="http", request={"method": "GET", "query": {"q": "{{question}}"}}, response="answer"
    )
    err = fail(t, "what & why?")
    got = app.last_request
    assert got.method == "GET" and got.query == {"q": "what & why?"} and got.raw_body == b""
    assert err.reason == "app_error" and not err.fatal
    assert err.detail["status"] == 405 and "HTTP 405" in str(err) and "not allowed" in str(err)
    assert len(app.requests) == 1  # a 4xx is never retried


def test_event_stream_pieces_are_concatenated(app: FakeChatApp) -> None:
    app.script("The tent ships tomorrow.")
    # the route streams `{"delta": piece}` events; a promptflow target reads its output's name unless told
    reply = ask(target(app, "/sse", response="delta"), "when?")
    assert reply.text == "The tent ships tomorrow."
    pieces = [e["delta"] for e in reply.raw["events"]]
    assert len(pieces) == 3 and "".join(pieces) == "The tent ships tomorrow."


def test_event_stream_with_custom_path(app: FakeChatApp) -> None:
    t = target(app, "/sse", format="http", request={"body": {"q": "{{question}}"}}, response="delta")
    assert ask(t, "hi").text == "You said: hi"


def test_multi_message_reply_is_one_turn(app: FakeChatApp) -> None:
    app.script("Hello!\n\nYour order is on its way.\n\nAnything else?")
    t = target(app, "/multi", format="http", request={"body": {"text": "{{question}}"}}, response="messages[*].text")
    reply = ask(t)
    assert reply.text == "Hello!\n\nYour order is on its way.\n\nAnything else?"
    assert reply.raw["parts"] == ["Hello!", "Your order is on its way.", "Anything else?"]


# --- history and conversation ids -------------------------------------------------------------


def test_history_full_vs_latest(app: FakeChatApp) -> None:
    ask(target(app, "/v1/chat/completions", format="openai"), "again", HISTORY)
    ask(target(app, "/v1/chat/completions", format="openai", history="latest"), "again", HISTORY)
    ask(target(app, "/promptflow", history="latest"), "again", HISTORY)
    full, latest, latest_pf = [r for r in app.requests if r.route]  # not the GET of the flow's swagger
    assert [m["content"] for m in full.messages] == ["first", "first answer", "again"]
    assert latest.messages == [{"role": "user", "content": "again"}]
    assert latest_pf.body == {"question": "again", "chat_history": []}


def test_client_conversation_id_in_body_and_header(app: FakeChatApp) -> None:
    t = http_chat(app, headers={"X-Conversation-Id": "{{conversation_id}}"})
    ask(t, "one", conversation_id="alpha")
    ask(t, "two", conversation_id="beta")
    ask(t, "three", conversation_id="alpha")
    assert app.transcripts == {"alpha": ["one", "three"], "beta": ["two"]}
    assert [r.headers["x-conversation-id"] for r in app.requests] == ["alpha", "beta", "alpha"]


SESSION_CONFIGS = {
    "body": {
        "request": {"body": {"text": "{{question}}", "session_id": "{{session_id}}"}},
        "session": {"read": "json:session_id"},
    },
    "header": {
        "request": {"body": {"text": "{{question}}"}},
        "headers": {"X-Session-Id": "{{session_id}}"},
        "session": {"read": "header:X-Session-Id"},
    },
    "cookie": {"request": {"body": {"text": "{{question}}"}}, "session": {"read": "cookie:session"}},
}


@pytest.mark.parametrize("mode", ["body", "header", "cookie"])
def test_server_session_is_sent_back_and_never_shared(app: FakeChatApp, mode: str) -> None:
    app.issue_session = mode  # type: ignore[assignment]
    app.default = lambda req: AppReply(text=f"You said: {req.user_text}", delay=0.02)
    t = target(app, "/chat", format="http", response="data.reply.text", **SESSION_CONFIGS[mode])

    async def conversation(name: str) -> None:
        for turn in range(3):
            reply = await t.respond(f"{name}-{turn}", [], meta(conversation_id=name, turn_number=2 * turn + 1))
            assert reply.text == f"You said: {name}-{turn}"
            await asyncio.sleep(0)

    async def run() -> None:
        try:
            await asyncio.gather(conversation("a"), conversation("b"))
            await t.end_conversation("a")
            await t.respond("a-again", [], meta(conversation_id="a"))  # state dropped: a new session
        finally:
            await t.aclose()

    asyncio.run(run())
    assert sorted(app.transcripts.values()) == [["a-0", "a-1", "a-2"], ["a-again"], ["b-0", "b-1", "b-2"]]
    firsts = [r for r in app.requests if r.issued_session]
    assert len(firsts) == 3  # one session per conversation, issued on its first turn only
    for request in firsts:
        assert request.session is None  # nothing (not even an empty value) was sent before the app issued one
        assert "session_id" not in request.body and "x-session-id" not in request.headers
    sent = [r.session for r in app.requests if not r.issued_session]
    assert len(sent) == 4 and all(sent)
    if mode == "cookie":
        later = [r for r in app.requests if not r.issued_session]
        assert all(r.cookies == {"session": r.session} for r in later)


def test_set_cookies_are_kept_per_conversation(app: FakeChatApp) -> None:
    app.script(AppReply(text="hi", set_cookie="affinity=node-7; Path=/"))
    talk(http_chat(app), ("one", "x"), ("two", "y"), ("three", "x"))
    assert [r.cookies for r in app.requests] == [{}, {}, {"affinity": "node-7"}]


def test_cookies_go_back_as_the_app_set_them_and_only_where_their_path_allows(app: FakeChatApp) -> None:
    app.script(AppReply(text="hi", set_cookie='token="a b;c"; Path=/chat'), "again")
    app.script(AppReply(text="hi", set_cookie="elsewhere=1; Path=/admin"))
    talk(http_chat(app), ("one", "x"), ("two", "x"), ("three", "x"))
    assert [r.headers.get("cookie") for r in app.requests] == [None, 'token="a b;c"', 'token="a b;c"']


# --- retries -------------------------------------------------------------------------------------


def test_429_waits_for_retry_after(app: FakeChatApp) -> None:
    app.script(AppReply.rate_limited(1), "finally")
    started = time.monotonic()
    reply = ask(http_chat(app, retry={"attempts": 2, "backoff": 0.01}))
    elapsed = time.monotonic() - started
    assert reply.text == "finally"
    assert reply.raw["retries"] == 1 and len(app.requests) == 2
    gap = app.requests[1].received_at - app.requests[0].received_at
    assert gap >= 0.95 and elapsed < 3


def test_retry_after_is_capped_at_max_backoff(app: FakeChatApp) -> None:
    date = email.utils.formatdate(time.time() + 120, usegmt=True)
    app.script(AppReply.rate_limited(date), AppReply.rate_limited(60), "ok")
    started = time.monotonic()
    reply = ask(http_chat(app, retry={"attempts": 3, "backoff": 0.01, "max_backoff": 0.1}))
    assert reply.text == "ok" and reply.raw["retries"] == 2
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("value", ["nan", "inf", "1e400", "-5", "0x10", ""])
def test_a_retry_after_that_is_no_wait_backs_off_exponentially(app: FakeChatApp, value: str) -> None:
    app.script(AppReply.rate_limited(value), "after the back-off")
    reply = ask(http_chat(app, retry={"attempts": 2, "backoff": 0.4, "max_backoff": 0.4}))
    assert reply.text == "after the back-off" and reply.raw["retries"] == 1
    gap = app.requests[1].received_at - app.requests[0].received_at
    assert 0.19 <= gap < 2  # the policy's back-off (0.2-0.4 s), neither at once nor a crash


@pytest.mark.parametrize(
    "failure",
    [
        AppReply.error(503, "busy"),
        AppReply.error(500, "crash"),
        AppReply(text="lost", close_connection=True),
        AppReply(text="a long answer that will be cut in the middle", truncate=True),
    ],
    ids=["503", "500", "reset", "truncated"],
)
def test_transient_failure_then_success(app: FakeChatApp, failure: AppReply) -> None:
    app.script(failure, "recovered")
    reply = ask(http_chat(app))
    assert reply.text == "recovered"
    assert reply.raw["retries"] == 1 and len(app.requests) == 2


def test_truncated_stream_is_retried(app: FakeChatApp) -> None:
    app.script(AppReply(text="a fairly long streamed answer", truncate=True), "whole answer")
    reply = ask(target(app, "/sse", response="delta"))
    assert reply.text == "whole answer" and reply.raw["retries"] == 1


def test_5xx_after_all_retries(app: FakeChatApp) -> None:
    app.script(*[AppReply.error(503, "service down")] * 4)
    err = fail(http_chat(app))
    assert err.reason == "app_error" and not err.fatal
    assert len(app.requests) == 4
    assert "HTTP 503" in str(err) and "after 3 retries" in str(err) and "service down" in str(err)
    assert err.detail["status"] == 503 and err.detail["url"] == app.url + "/chat"
    assert "service down" in err.detail["body_snippet"] and err.detail["response"] == err.detail["body_snippet"]


def test_4xx_is_not_retried(app: FakeChatApp) -> None:
    app.script(AppReply.error(400, "bad field"), "never used")
    err = fail(http_chat(app))
    assert err.reason == "app_error" and not err.fatal and len(app.requests) == 1 and app.pending == 1
    assert "HTTP 400" in str(err) and "bad field" in str(err)


def test_timeout_after_retries(app: FakeChatApp) -> None:
    app.script(AppReply(text="slow", delay=0.6), AppReply(text="slow", delay=0.6))
    err = fail(http_chat(app, timeout=0.2, retry={"attempts": 1, "backoff": 0.01}))
    assert err.reason == "timeout" and len(app.requests) == 2
    assert app.url + "/chat" in str(err) and "0.2 s" in str(err)


# --- answers bounded by max_reply_bytes ------------------------------------------------------------


def endless(piece: bytes, head: bytes = b"") -> Callable[[], Iterator[bytes]]:
    """An answer that never ends: `head`, then `piece` over and over."""

    def chunks() -> Iterator[bytes]:
        yield head
        while True:
            yield piece

    return chunks


def test_default_limit_is_a_few_mb(app: FakeChatApp) -> None:
    assert target(app, "/promptflow").max_reply_bytes == DEFAULT_MAX_REPLY_BYTES == 10 * 1024 * 1024


def test_json_answer_over_the_limit_is_a_clear_app_error(app: FakeChatApp) -> None:
    app.script(AppReply(chunks=endless(b"x" * 4096, b'{"answer": "')))
    err = fail(target(app, "/promptflow", max_reply_bytes=20_000, timeout=5))
    message = str(err)
    chats = [r for r in app.requests if r.route]  # not the GET of the flow's swagger
    assert err.reason == "app_error" and not err.fatal and len(chats) == 1  # never retried
    assert app.url + "/promptflow" in message and "more than 20,000 bytes" in message
    assert "raise target.max_reply_bytes" in message and "cannot be parsed" in message
    assert err.detail["body_snippet"].startswith('{"answer": "xxx') and len(err.detail["body_snippet"]) <= 300


def test_answer_of_exactly_the_limit_is_read_whole(app: FakeChatApp) -> None:
    body = json.dumps({"answer": "y" * 2000}).encode()
    app.script(AppReply(chunks=lambda: iter([body[:700], body[700:]]), content_length=len(body)))
    assert ask(target(app, "/promptflow", max_reply_bytes=len(body))).text == "y" * 2000
    app.script(AppReply(chunks=lambda: iter([body]), content_length=len(body)))
    err = fail(target(app, "/promptflow", max_reply_bytes=len(body) - 1))
    assert f"more than {len(body) - 1:,} bytes" in str(err)


def test_error_bodies_are_read_bounded(app: FakeChatApp) -> None:
    """An endless 500 answer: each try reads at most 64 KiB, then the next try or the error follows."""
    app.default = lambda request: AppReply(status=500, chunks=endless(b"E" * 8192), content_type="text/plain")
    started = time.monotonic()
    err = fail(target(app, "/promptflow", timeout=5, retry={"attempts": 1, "backoff": 0.01}))
    assert err.reason == "app_error" and "HTTP 500" in str(err) and "after 1 retry" in str(err)
    assert err.detail["body_snippet"].startswith("EEE") and len([r for r in app.requests if r.route]) == 2
    assert time.monotonic() - started < 4  # not the timeout: the reading stopped at the limit


def test_a_compressed_answer_is_read_decompressed(app: FakeChatApp) -> None:
    body = json.dumps({"answer": "z" * 50_000}).encode()
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    app.script(AppReply(body=gzip.compress(body), headers=headers))
    assert ask(target(app, "/promptflow")).text == "z" * 50_000


def test_a_compression_bomb_is_cut_at_the_limit_of_what_it_expands_to(app: FakeChatApp) -> None:
    """200 MB of JSON in 0.2 MB of gzip: `max_reply_bytes` counts the expanded bytes, and memory
    stays bounded while they are read (the decompressor hands them over in pieces)."""
    bomb = gzip.compress(b'{"answer": "' + b"0" * 200_000_000, compresslevel=9)
    assert len(bomb) < 400_000
    app.script(AppReply(body=bomb, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}))
    tracemalloc.start()
    try:
        err = fail(target(app, "/promptflow", max_reply_bytes=1_000_000, timeout=10))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert err.reason == "app_error" and "more than 1,000,000 bytes" in str(err)
    assert peak < 40_000_000, f"reading the bomb peaked at {peak:,} bytes"


def sse(*payloads: str) -> bytes:
    return b"".join(f"data: {p}\n\n".encode() for p in payloads)


def test_event_stream_cut_at_the_limit_keeps_the_completed_events(app: FakeChatApp) -> None:
    event = sse(json.dumps({"delta": "abc"}))
    app.script(AppReply(chunks=endless(event * 7), content_type="text/event-stream"))
    reply = ask(target(app, "/sse", response="delta", max_reply_bytes=5000, timeout=5))
    complete = 5000 // len(event)
    assert reply.text == "abc" * complete and len(reply.raw["events"]) == complete
    assert reply.raw["cut_at_bytes"] == 5000
    assert len(reply.notes) == 1 and "more than 5,000 bytes (target.max_reply_bytes)" in reply.notes[0]
    assert f"{complete} events completed before" in reply.notes[0]


def test_event_stream_lines_whatever_the_pieces() -> None:
    lines = _Lines()
    fed = [lines.feed(piece) for piece in (b"a\r", b"\n", b"\nb\n", b"c\r\r\n", b"d", b"\xc3", b"\xa9 e")]
    assert fed == [["a"], [], ["", "b"], ["c", ""], [], [], []]
    assert lines.end() == "d\u00e9 e"


def test_a_long_event_stream_keeps_its_first_events_in_the_raw_answer(app: FakeChatApp) -> None:
    """Parsed, many small events take far more memory than their bytes: only the text is gathered whole."""
    events = [sse(json.dumps({"delta": f"{i:05d}"})) for i in range(20_000)]
    app.script(AppReply(chunks=lambda: iter([*events, sse("[DONE]")]), content_type="text/event-stream"))
    reply = ask(target(app, "/sse", response="delta"))
    assert reply.text == "".join(f"{i:05d}" for i in range(20_000)) and reply.notes == []
    kept = reply.raw["events"]
    assert reply.raw["events_total"] == 20_000 and 1000 < len(kept) < 20_000
    assert kept == [{"delta": f"{i:05d}"} for i in range(len(kept))]


def test_event_stream_with_no_complete_event_within_the_limit(app: FakeChatApp) -> None:
    app.script(AppReply(chunks=endless(b"z" * 1000, b"data: "), content_type="text/event-stream"))
    err = fail(target(app, "/sse", response="delta", max_reply_bytes=4096, timeout=5))
    assert err.reason == "app_error" and "more than 4,096 bytes" in str(err) and "no event was complete" in str(err)


def test_event_stream_line_ends_split_across_pieces(app: FakeChatApp) -> None:
    pieces = [b'data: {"delta": "a"}\r', b"\n\r\ndata: b\r\r", "data: \u00e9".encode()[:-1], "\u00e9".encode()[-1:]]
    pieces += [b"\n\n: keep-alive\n\ndata: [DONE]\n\n"]
    app.script(AppReply(chunks=lambda: iter(pieces), content_type="text/event-stream"))
    reply = ask(target(app, "/sse", response="delta"))
    assert reply.text == "ab\u00e9" and reply.notes == [] and "cut_at_bytes" not in reply.raw


def plain_text_events(*tokens: str) -> bytes:
    """Tokens as sse-starlette's `EventSourceResponse` sends the strings it is given: a `data: ` line
    per line of the token, each event ended by a blank line, CRLF line ends, no JSON, no `[DONE]`."""
    return b"".join("".join(f"data: {line}\r\n" for line in token.split("\n")).encode() + b"\r\n" for token in tokens)


#: a plain-text stream whose tokens look like JSON (numbers, true/false/null, quoted strings, [], {}),
#: and whitespace-only tokens: each is text, leading space and all
JSON_LOOKING_TOKENS = ["Order", " 5", " costs", " 250", " dollars", ",", " true", " false", " null", " 0", " -1.5e3",
                       ' "quoted"', ' ""', " []", " {}", " [1]", ' {"a": 1}', " ", "\t", " 1e400", " NaN", "\n",
                       "line\nbreak", "", "."]  # fmt: skip


@pytest.mark.parametrize("route", ["/sse", "/v1/chat/completions"])
def test_a_plain_text_event_stream_keeps_every_token_exactly(app: FakeChatApp, route: str) -> None:
    app.script(
        AppReply(chunks=lambda: iter([plain_text_events(*JSON_LOOKING_TOKENS)]), content_type="text/event-stream")
    )
    config = {"format": "openai", "stream": True} if route.endswith("completions") else {"response": "delta"}
    reply = ask(target(app, route, **config))
    assert reply.text == "".join(JSON_LOOKING_TOKENS)
    assert reply.raw["events"] == JSON_LOOKING_TOKENS  # as sent: text, not numbers or lists


def test_a_json_event_stream_is_read_at_its_path_and_a_text_payload_in_it_is_kept(app: FakeChatApp) -> None:
    events = [{"meta": 1}, {"delta": "Order"}, {"delta": " 5"}, " plus", 7, {"delta": "."}]
    payloads = [e if isinstance(e, str) else json.dumps(e) for e in events]
    app.script(AppReply(chunks=lambda: iter([sse(*payloads, "[DONE]")]), content_type="text/event-stream"))
    reply = ask(target(app, "/sse", response="delta"))
    assert reply.text == "Order 5 plus7."
    assert reply.raw["events"] == [{"meta": 1}, {"delta": "Order"}, {"delta": " 5"}, " plus", "7", {"delta": "."}]


def test_a_text_stream_whose_first_token_looks_like_a_json_list_is_text(app: FakeChatApp) -> None:
    tokens = ["[1]", " See", " {}", " the", " docs"]
    app.script(AppReply(chunks=lambda: iter([plain_text_events(*tokens)]), content_type="text/event-stream"))
    reply = ask(target(app, "/sse", response="delta"))
    assert reply.text == "[1] See {} the docs" and reply.raw["events"] == tokens


def chunk_event(delta: dict[str, Any], finish_reason: str | None = None) -> str:
    """One `chat.completion.chunk` as llama-cpp-python streams it."""
    choice = {"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}
    return json.dumps({"id": "c1", "object": "chat.completion.chunk", "model": "m", "choices": [choice]})


def test_an_openai_stream_cut_short_by_the_server_says_so_and_what_fixes_it(app: FakeChatApp) -> None:
    """llama-cpp-python (one request at a time, --interrupt_requests on by default) ends a running stream
    when another request arrives: the client gets the role chunk, then [DONE]."""
    cut = sse(chunk_event({"role": "assistant"}), "[DONE]")
    app.script(AppReply(chunks=lambda: iter([cut]), content_type="text/event-stream"))
    err = fail(target(app, "/v1/chat/completions", format="openai", stream=True))
    message = str(err)
    assert err.reason == "app_error" and not err.fatal
    assert "sent an empty stream: a role chunk and [DONE], no content" in message
    assert "--interrupt_requests False" in message and "--concurrency 1" in message
    assert "target.response" not in message  # format openai reads its streams at a path of its own


def test_an_openai_stream_that_finished_without_content_is_an_empty_reply(app: FakeChatApp) -> None:
    events = sse(chunk_event({"role": "assistant"}), chunk_event({}, "stop"), "[DONE]")
    app.script(AppReply(chunks=lambda: iter([events]), content_type="text/event-stream"))
    err = fail(target(app, "/v1/chat/completions", format="openai", stream=True))
    assert "finished its stream (finish_reason 'stop') with no content" in str(err)
    assert "target.response" not in str(err) and "interrupt" not in str(err)


def test_openai_stream_events_of_another_shape_name_format_http(app: FakeChatApp) -> None:
    app.script(AppReply(chunks=lambda: iter([sse('{"token": "hi"}', "[DONE]")]), content_type="text/event-stream"))
    err = fail(target(app, "/v1/chat/completions", format="openai", stream=True))
    assert "choices.0.delta.content" in str(err) and "format: http" in str(err)
    assert "set target.response" not in str(err)


# --- failures ------------------------------------------------------------------------------------


def test_non_json_reply(app: FakeChatApp) -> None:
    app.script(AppReply.not_json("<html>maintenance page</html>"))
    err = fail(target(app, "/promptflow"))
    assert err.reason == "app_error"
    assert "not JSON" in str(err) and "HTTP 200" in str(err) and "<html>maintenance page</html>" in str(err)
    assert err.detail["status"] == 200 and err.detail["body_snippet"] == "<html>maintenance page</html>"


def test_long_bodies_are_cut_to_a_snippet(app: FakeChatApp) -> None:
    app.script(AppReply.not_json("x" * 5000))
    err = fail(target(app, "/promptflow"))
    assert len(err.detail["body_snippet"]) <= 300 and len(str(err)) < 600


def test_missing_path_says_what_was_there(app: FakeChatApp) -> None:
    err = fail(http_chat(app, response="data.reply.message"))
    assert err.reason == "app_error" and err.detail["status"] == 200
    assert "'message' is missing" in str(err) and "keys: text" in str(err) and "data.reply" in str(err)


def test_empty_reply(app: FakeChatApp) -> None:
    app.script(AppReply(text="   "))
    err = fail(target(app, "/promptflow"))
    assert err.reason == "app_error" and "empty" in str(err) and err.detail["status"] == 200


def test_401_is_fatal_and_names_the_headers(app: FakeChatApp) -> None:
    app.require_header = ("Authorization", "Bearer the-right-one")
    err = fail(http_chat(app, headers={"Authorization": f"Bearer {SECRET}"}))
    assert err.reason == "app_error" and err.fatal and err.detail["status"] == 401
    assert "headers/token" in str(err) and len(app.requests) == 1
    assert SECRET not in json.dumps(err.detail) and SECRET not in str(err)


def test_404_is_fatal(app: FakeChatApp) -> None:
    err = fail(target(app, "/no-such-route"))
    assert err.fatal and err.detail["status"] == 404 and "/no-such-route" in str(err)


def test_unreachable_app_is_fatal() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/chat"
    t = HttpTarget.from_config({"url": url, "retry": {"attempts": 1, "backoff": 0.01}})
    err = fail(t)
    assert err.reason == "app_error" and err.fatal
    assert f"unreachable at {url}" in str(err) and "--app-url" in str(err)


# --- secrets -------------------------------------------------------------------------------------


def test_secrets_never_reach_results(app: FakeChatApp) -> None:
    app.require_header = ("Authorization", f"Bearer {SECRET}")
    t = target(
        app,
        f"/v1/chat/completions?api-version=1&code={SECRET}",
        format="openai",
        headers={
            "Authorization": f"Bearer {SECRET}",
            "X-API-Key": SECRET,
            "X-Tenant": "may-be-from-an-env-var",
            "X-Conversation": "{{conversation_id}}",
            "Accept": "application/json",
        },
    )
    reply = ask(t)
    assert reply.text == "You said: hello"
    assert app.last_request.headers["x-api-key"] == SECRET  # sent ...
    dumped = json.dumps([reply.request, reply.raw, t.describe(), repr(t)])
    assert SECRET not in dumped  # ... but never recorded
    assert reply.request["headers"] == {
        "Authorization": "***",
        "X-API-Key": "***",
        "X-Tenant": "***",  # a fixed configured value may come from ${VAR}: not recorded
        "X-Conversation": reply.request["headers"]["X-Conversation"],  # per-turn placeholders are
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    assert "code=***" in reply.request["url"] and "api-version=1" in reply.request["url"]

    sim = simulator.Simulator(
        simulate_callback=None,
        systemConnection=t,
        userConnection=simulator.ScriptedUser(["Hi, I need help.", "Thanks!"]),
    )
    result = sim.simulate(simulator.Persona.load("jane"), "return a tent", max_conversation_turns=6)
    assert result["meta_data"]["stop_reason"] == "user_done"
    assert SECRET not in json.dumps(result)

    app.require_header = ("Authorization", "Bearer something-else")
    failed = sim.simulate(simulator.Persona.load("jane"), "return a tent", max_conversation_turns=6)
    assert failed["meta_data"]["stop_reason"] == "app_error" and failed["meta_data"]["error"]["fatal"] is True
    assert SECRET not in json.dumps(failed)


def test_redaction_helpers() -> None:
    headers = {"Authorization": "a", "Cookie": "b", "api-key": "c", "x-api-key": "d", "X-Auth-Token": "e"}
    assert set(redact_headers({**headers, "X-Client-Secret": "f", "Accept": "g"}).values()) == {"***", "g"}
    assert safe_url("https://u:pw@h/p?sig=1&x=2&token=3") == "https://u:***@h/p?sig=***&x=2&token=***"


# --- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"format": "http", "request": {"body": {"text": "{{questoin}}"}}, "response": "a"}, "request.body.text"),
        ({"headers": {"X-Id": "{{conversation}}"}}, "target.headers.X-Id"),
        ({"format": "http", "request": {"method": "GET", "query": {"q": "{{history}}"}}, "response": "a"}, "query.q"),
        ({"format": "http", "request": {"body": {"s": "{{session_id}}"}}, "response": "a"}, "session.read"),
        ({"format": "http", "request": {"body": {}}}, "target.response"),
        ({"format": "http", "request": {"method": "POST"}, "response": "a"}, "request.body"),
        ({"format": "http", "request": {"body": {}}, "response": "a..b"}, "target.response"),
        ({"session": {"read": "query:x"}}, "target.session.read"),
        ({"format": "soap"}, "target.format"),
        ({"timeout": 0}, "target.timeout"),
        ({"stream": True}, "format: openai"),
        ({"retry": {"attempts": -1}}, "target.retry.attempts"),
        ({"colour": "blue"}, "unknown field"),
        ({"max_reply_bytes": 100}, "target.max_reply_bytes"),
        ({"max_reply_bytes": "10MB"}, "target.max_reply_bytes"),
        ({"max_reply_bytes": True}, "target.max_reply_bytes"),
        ({"max_reply_bytes": 2**31}, "target.max_reply_bytes"),
    ],
)
def test_bad_config_is_rejected(config: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        HttpTarget.from_config({"url": "http://127.0.0.1:1/chat", **config})
    assert fragment in str(info.value)


def test_unknown_placeholder_names_source_and_field() -> None:
    with pytest.raises(ConfigError) as info:
        HttpTarget.from_config(
            {"url": "http://x/chat", "format": "http", "request": {"body": {"m": "{{qestion}}"}}, "response": "a"},
            source="manifest.yaml: target",
        )
    message = str(info.value)
    assert "manifest.yaml: target.request.body.m" in message and "{{qestion}}" in message and "question" in message


# --- full conversations and concurrency ------------------------------------------------------------


def test_full_conversation_through_simulator(app: FakeChatApp) -> None:
    app.script("Sure, what's the order number?", "Refund issued for order 5.")
    t = target(app, "/promptflow")
    sim = simulator.Simulator(
        simulate_callback=None,
        systemConnection=t,
        userConnection=simulator.ScriptedUser(["I want to return my tent.", "It's order 5."]),
    )
    result = sim.simulate(simulator.Persona.load("jane"), "return a tent", max_conversation_turns=6)
    validate_result(result)
    turns = result["conversation"]
    assert [t["response"] for t in turns[:4]] == [
        "I want to return my tent.",
        "Sure, what's the order number?",
        "It's order 5.",
        "Refund issued for order 5.",
    ]
    assert result["meta_data"]["app"] == {"kind": "http", "format": "promptflow", "url": app.url + "/promptflow"}
    assert turns[3]["full_json_response"] == {"status": 200, "body": {"answer": "Refund issued for order 5."}}
    assert [r for r in app.requests if r.route][1].body["chat_history"] == [
        {"inputs": {"question": "I want to return my tent."}, "outputs": {"answer": "Sure, what's the order number?"}}
    ]


def test_failed_turn_is_recorded_with_status_and_snippet(app: FakeChatApp) -> None:
    app.script(AppReply.not_json("<html>502 Bad Gateway</html>"))
    sim = simulator.Simulator(
        systemConnection=target(app, "/promptflow"), userConnection=simulator.ScriptedUser(["hello"])
    )
    result = sim.simulate(simulator.Persona.load("jane"), "say hello", max_conversation_turns=4)
    validate_result(result)
    error = result["meta_data"]["error"]
    assert error["reason"] == "app_error" and error["status"] == 200
    assert "502 Bad Gateway" in error["body_snippet"]
    failed = result["conversation"][-1]
    assert failed["full_json_response"] == "<html>502 Bad Gateway</html>"
    assert failed["request"]["body"]["question"] == "hello"


def test_32_concurrent_conversations_share_connections(app: FakeChatApp) -> None:
    app.default = lambda req: AppReply(text=f"You said: {req.user_text}", delay=0.05)
    t = http_chat(app)
    sim = simulator.Simulator(systemConnection=t, userConnection=simulator.ScriptedUser(["one", "two", "three"]))
    jane = simulator.Persona.load("jane")

    async def run() -> list[dict[str, Any]]:
        try:
            return await asyncio.gather(
                *(sim.simulate_async(jane, "chat", 10, conversation_id=f"conv-{i}") for i in range(32))
            )
        finally:
            await sim.aclose()

    started = time.monotonic()
    results = asyncio.run(run())
    elapsed = time.monotonic() - started
    assert all(r["meta_data"]["stop_reason"] == "user_done" for r in results)
    assert len(app.requests) == 96
    assert app.connection_count <= 40  # well below 96: keep-alive connections are reused
    assert app.max_in_flight > 8
    assert elapsed < 5
    assert all(app.transcripts[f"conv-{i}"] == ["one", "two", "three"] for i in range(32))


# --- json paths and the retry helper -----------------------------------------------------------------


def test_json_path_forms() -> None:
    doc = {"choices": [{"message": {"content": "hi"}}], "messages": [{"text": "a"}, {"text": "b"}], "n": {"0": "z"}}
    assert extract(doc, "choices.0.message.content") == "hi"
    assert extract(doc, "choices[0].message.content") == "hi"
    assert extract(doc, "messages[*].text") == ["a", "b"]
    assert extract(doc, "messages[-1].text") == "b"
    assert extract(doc, "n.0") == "z"
    assert extract({"a": [{"b": [1, 2]}, {"b": [3]}]}, "a[*].b[*]") == [1, 2, 3]
    assert extract(["x", "y"], "[1]") == "y"
    with pytest.raises(KeyError) as info:
        extract(doc, "choices.0.delta.content")
    assert isinstance(info.value, PathError)
    assert str(info.value) == (
        "path 'choices.0.delta.content': key 'delta' is missing at choices[0], which is an object with keys: message"
    )
    with pytest.raises(PathError, match=r"index 3 is out of range at choices, which is a list of length 1"):
        extract(doc, "choices[3]")
    with pytest.raises(ConfigError):
        parse_path("a[0]b")


def test_retry_helper() -> None:
    calls: list[int] = []
    waits: list[float] = []

    async def flaky(attempt: int) -> str:
        calls.append(attempt)
        if attempt < 2:
            raise RetryLater(RuntimeError("busy"), retry_after=0.01 if attempt == 0 else None)
        return "done"

    async def give_up(attempt: int) -> str:
        raise RetryLater(ValueError(f"failed {attempt}"))

    policy = RetryPolicy(attempts=3, backoff=0.02, max_backoff=1)
    assert asyncio.run(retry_async(flaky, policy, on_retry=lambda n, exc, wait: waits.append(wait))) == "done"
    assert calls == [0, 1, 2] and waits[0] == 0.01 and 0.02 <= waits[1] <= 0.04
    with pytest.raises(ValueError, match="failed 1"):
        asyncio.run(retry_async(give_up, RetryPolicy(attempts=1, backoff=0)))
    assert RetryPolicy(max_backoff=2).delay(1, retry_after=100) == 2
    assert all(RetryPolicy(backoff=1, max_backoff=3).delay(5) <= 3 for _ in range(20))
    assert parse_retry_after("7") == 7 and parse_retry_after("nonsense") is None and parse_retry_after(None) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after(date, now=1_000_000) == pytest.approx(30)


def test_a_run_with_more_conversations_at_a_time_than_the_default_pool_gets_a_connection_each() -> None:
    """150 conversations at a time, each with a turn in flight: 150 connections, none waiting for a
    free one (the default pool keeps 128, and a turn that waits would count the wait in its timeout)."""
    with FakeChatApp() as app:
        app.default = lambda request: AppReply(text="hi", delay=0.5)
        names = {"input": "question", "history": "chat_history", "output": "answer"}
        target = HttpTarget(app.url + "/promptflow", format="promptflow", promptflow=names)

        async def play() -> None:
            await target.warm(150)
            try:
                await asyncio.gather(*(target.respond("hi", [], meta(conversation_id=f"c{i}")) for i in range(150)))
            finally:
                await target.aclose()

        asyncio.run(play())
    assert len(app.requests) == 150 and app.connection_count == 150


def test_concurrent_conversations_keep_their_connections_alive_between_turns() -> None:
    """One session per event loop: 12 conversations at a time, 4 turns each, open no more than 12
    connections (a connection per request would be 48, and each would cost its set-up in the turn)."""
    with FakeChatApp() as app:
        target = HttpTarget(app.url + "/promptflow", format="promptflow")

        async def conversation(index: int) -> list[float | None]:
            history: list[dict[str, str]] = []
            connects = []
            for turn in range(4):
                meta = {"conversation_id": f"conversation-{index}", "turn_number": turn + 1}
                reply = await target.respond(f"question {turn}", history, meta)
                history += [{"role": "user", "content": f"question {turn}"}]
                history += [{"role": "assistant", "content": reply.text}]
                connects.append(reply.connect_ms)
            return connects

        async def play() -> list[list[float | None]]:
            await target.warm(12)
            try:
                return await asyncio.gather(*(conversation(i) for i in range(12)))
            finally:
                await target.aclose()

        connects = asyncio.run(play())
    assert len([r for r in app.requests if r.method == "POST"]) == 48  # and the flow's swagger, read once
    assert app.connection_count <= 12
    assert all(later is None for turns in connects for later in turns[1:])  # kept-alive: no set-up after the first


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b'{"answer": "refund refused", "answer": "refund approved"}', "repeats the key 'answer'"),
        (b'{"answer": "ok", "score": NaN}', "NaN is not a JSON number"),
        (b'{"answer": "ok", "total": 1e400}', "the number 1e400 is out of range"),
        (b'{"answer": "ok", "x": ' + b"[" * 120 + b"]" * 120 + b"}", "nested more than"),
    ],
)
def test_app_json_that_cannot_be_trusted_is_a_clear_app_error_not_its_last_value(
    app: FakeChatApp, body: bytes, said: str
) -> None:
    app.script(AppReply(body=body, content_type="application/json"))
    err = fail(target(app, "/promptflow"))
    assert err.reason == "app_error" and said in str(err) and "JSON that cannot be used" in str(err), str(err)
