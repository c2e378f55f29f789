"""Tests for the fake chat app under test (tests/servers/chat_app.py)."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import openai
import pytest
import requests
from openai import OpenAI

from tests.servers.chat_app import AppReply, FakeChatApp, RecordedRequest

# route path -> (a valid request body, function extracting the reply text from the JSON answer)
ROUTE_CASES: dict[str, tuple[dict[str, Any], Any]] = {
    "/promptflow": ({"question": "hi there", "chat_history": []}, lambda j: j["answer"]),
    "/v1/chat/completions": (
        {"model": "m", "messages": [{"role": "user", "content": "hi there"}]},
        lambda j: j["choices"][0]["message"]["content"],
    ),
    "/chat": ({"input": {"text": "hi there"}}, lambda j: j["data"]["reply"]["text"]),
    "/multi": ({"text": "hi there"}, lambda j: "\n\n".join(m["text"] for m in j["messages"])),
}


@pytest.fixture
def client(app: FakeChatApp) -> Iterator[OpenAI]:
    c = OpenAI(base_url=app.url + "/v1", api_key="x", max_retries=0)
    yield c
    c.close()


def _post(app: FakeChatApp, path: str, body: Any = None, **kwargs: Any) -> requests.Response:
    return requests.post(app.url + path, json=body, timeout=5, **kwargs)


def _sse_data(resp: requests.Response) -> list[str]:
    """All ``data:`` payloads of an SSE answer, read to the end."""
    return [line[len("data: ") :] for line in resp.iter_lines(decode_unicode=True) if line]


# -- lifecycle -------------------------------------------------------------------------


def test_lifecycle_url_port_and_health() -> None:
    app = FakeChatApp()
    with pytest.raises(RuntimeError):
        _ = app.port
    app.start()
    try:
        assert app.port > 0
        assert app.url == f"http://127.0.0.1:{app.port}"
        with pytest.raises(RuntimeError, match="already started"):
            app.start()
        resp = requests.get(app.url + "/health", timeout=5)
        assert resp.status_code == 200
        assert resp.json() == {"ok": True}
        assert app.requests[0].method == "GET"
        assert app.pending == 0
    finally:
        app.close()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(app.url + "/health", timeout=2)
    with pytest.raises(RuntimeError, match="restarted"):
        app.start()
    app.close()  # idempotent


def test_close_drops_idle_keep_alive_connections() -> None:
    app = FakeChatApp().start()
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while not received.endswith(b'{"ok": true}'):
            chunk = sock.recv(4096)
            assert chunk, f"connection closed early after {received!r}"
            received += chunk
        started = time.monotonic()
        app.close()
        assert time.monotonic() - started < 2
        assert sock.recv(4096) == b""  # server closed the idle connection
    finally:
        sock.close()


def test_unknown_path_and_wrong_method(app: FakeChatApp) -> None:
    app.script("never used")
    assert _post(app, "/nope", {}).status_code == 404
    resp = requests.get(app.url + "/chat", timeout=5)
    assert resp.status_code == 405
    assert resp.headers["Allow"] == "POST"
    assert _post(app, "/health", {}).status_code == 405
    assert app.pending == 1
    assert [r.path for r in app.requests] == ["/nope", "/chat", "/health"]


# -- routes ------------------------------------------------------------------------------


def test_promptflow_echo_and_recording(app: FakeChatApp) -> None:
    before = time.monotonic()
    body = {"question": "what is up?", "chat_history": [{"inputs": {"question": "a"}}]}
    resp = requests.post(app.url + "/promptflow?x=1&y=", json=body, headers={"X-Custom": "Yes"}, timeout=5)
    assert resp.status_code == 200
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json() == {"answer": "You said: what is up?"}
    req = app.requests[-1]
    assert req.method == "POST"
    assert req.path == "/promptflow"
    assert req.query == {"x": "1", "y": ""}
    assert req.headers["x-custom"] == "Yes"
    assert all(name == name.lower() for name in req.headers)
    assert req.body == body
    assert json.loads(req.raw_body) == body
    assert before <= req.received_at <= time.monotonic()
    assert req.user_text == "what is up?"


@pytest.mark.parametrize("body", [{"chat_history": []}, {"question": 3}, {"question": "q", "chat_history": "x"}, None])
def test_promptflow_validation(app: FakeChatApp, body: Any) -> None:
    app.script("unused")
    resp = _post(app, "/promptflow", body)
    assert resp.status_code == 400
    assert "error" in resp.json()
    assert app.pending == 1  # invalid requests do not consume scripted replies


def test_invalid_json_is_400(app: FakeChatApp) -> None:
    resp = requests.post(app.url + "/chat", data=b"{not json", timeout=5)
    assert resp.status_code == 400
    assert "not valid JSON" in resp.json()["error"]["message"]
    assert app.requests[0].body is None
    assert app.requests[0].raw_body == b"{not json"


def test_openai_route_with_sdk(app: FakeChatApp, client: OpenAI) -> None:
    messages: Any = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "You said: first"},
        {"role": "user", "content": "second one"},
    ]
    resp = client.chat.completions.create(model="my-model", messages=messages)
    assert resp.choices[0].message.content == "You said: second one"
    assert resp.object == "chat.completion"
    assert resp.model == "my-model"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == 4
    assert resp.usage.prompt_tokens == 2 + 1 + 3 + 2
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    req = app.requests[-1]
    assert req.path == "/v1/chat/completions"
    assert req.headers["authorization"] == "Bearer x"
    assert req.user_text == "second one"


def test_openai_route_streaming_with_sdk(app: FakeChatApp, client: OpenAI) -> None:
    app.script("streamed answer text")
    stream = client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": "hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas, usage, finish = [], None, None
    for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                deltas.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(deltas) == "streamed answer text"
    assert len(deltas) > 1
    assert finish == "stop"
    assert usage is not None and usage.completion_tokens == 3


def test_openai_stream_raw_ends_with_done(app: FakeChatApp) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "yo"}], "stream": True}
    resp = _post(app, "/v1/chat/completions", body, stream=True)
    data = _sse_data(resp)
    assert data[-1] == "[DONE]"
    chunks = [json.loads(d) for d in data[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks) == "You said: yo"


def test_openai_route_requires_messages(app: FakeChatApp) -> None:
    assert _post(app, "/v1/chat/completions", {"model": "m"}).status_code == 400


def test_chat_route_free_form(app: FakeChatApp) -> None:
    resp = _post(app, "/chat", {"session_id": "s-9", "model": "x", "payload": {"parts": [1, "hello"]}})
    assert resp.json() == {"data": {"reply": {"text": "You said: hello"}}, "session": "s-9"}
    resp = _post(app, "/chat", ["just", "a", "list"])
    assert resp.json() == {"data": {"reply": {"text": "You said: just"}}, "session": None}
    resp = requests.post(app.url + "/chat", timeout=5)  # empty body is allowed on free-form routes
    assert resp.json()["data"]["reply"]["text"] == "You said: "


def test_sse_route_is_streamed_and_must_be_read_to_the_end(app: FakeChatApp) -> None:
    app.sse_piece_delay = 0.1
    app.script("a fairly long streamed reply")
    started = time.monotonic()
    with requests.Session() as session:
        resp = session.post(app.url + "/sse", json={"q": "hi"}, stream=True, timeout=5)
        headers_at = time.monotonic()
        assert resp.headers["Content-Type"].startswith("text/event-stream")
        assert resp.headers["Transfer-Encoding"] == "chunked"
        assert "Content-Length" not in resp.headers
        data = _sse_data(resp)
        done_at = time.monotonic()
        # keep-alive: the connection is reusable once the stream was read to the end
        assert session.post(app.url + "/sse", json={"q": "again"}, timeout=5).ok
    assert data[-1] == "[DONE]"
    deltas = [json.loads(d)["delta"] for d in data[:-1]]
    assert len(deltas) == 3
    assert "".join(deltas) == "a fairly long streamed reply"
    # headers come first, then the 4 events with a 0.1 s pause between each
    assert headers_at - started < 0.25
    assert done_at - headers_at >= 0.25
    assert app.connection_count == 1


def test_sse_over_http_1_0_closes_the_connection(app: FakeChatApp) -> None:
    sock = socket.create_connection(("127.0.0.1", app.port), timeout=5)
    with sock:
        sock.sendall(b"POST /sse HTTP/1.0\r\nContent-Length: 12\r\n\r\n" + b'{"q": "abc"}')
        raw = b""
        while chunk := sock.recv(4096):
            raw += chunk
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert b"Transfer-Encoding" not in head
    assert body.endswith(b"data: [DONE]\n\n")
    assert b'"delta"' in body


def test_multi_route_splits_on_blank_lines(app: FakeChatApp) -> None:
    app.script("part one\n\npart two\nstill two\n\npart three")
    resp = _post(app, "/multi", {"text": "hi"})
    assert resp.json() == {"messages": [{"text": "part one"}, {"text": "part two\nstill two"}, {"text": "part three"}]}
    assert _post(app, "/multi", {"text": "hi"}).json() == {"messages": [{"text": "You said: hi"}]}


# -- scripting ---------------------------------------------------------------------------


def test_script_is_fifo_then_default(app: FakeChatApp) -> None:
    seen: list[RecordedRequest] = []

    def by_callable(req: RecordedRequest) -> str:
        seen.append(req)
        return f"callable saw {req.user_text}"

    app.script("first", AppReply(text="second"), by_callable, lambda req: AppReply(text="fourth"))
    assert app.pending == 4
    answers = [_post(app, "/promptflow", {"question": f"q{i}"}).json()["answer"] for i in range(5)]
    assert answers == ["first", "second", "callable saw q2", "fourth", "You said: q4"]
    assert seen[0].body == {"question": "q2"}
    assert app.pending == 0
    app.default = lambda req: "custom default"
    assert _post(app, "/promptflow", {"question": "x"}).json() == {"answer": "custom default"}


def test_script_rejects_unsupported_items(app: FakeChatApp) -> None:
    with pytest.raises(TypeError):
        app.script(42)  # type: ignore[arg-type]


def test_failing_or_bad_callable_gives_500(app: FakeChatApp) -> None:
    def boom(req: RecordedRequest) -> str:
        raise ValueError("nope")

    app.script(boom, lambda req: 3)  # type: ignore[arg-type,return-value]
    assert _post(app, "/chat", {"t": "x"}).status_code == 500
    assert _post(app, "/chat", {"t": "x"}).status_code == 500
    assert [type(e) for e in app.errors] == [ValueError, TypeError]


def test_reset_forgets_everything(app: FakeChatApp) -> None:
    app.script("a", "b")
    _post(app, "/chat", {"conversation_id": "c", "t": "x"})
    app.reset()
    assert (app.requests, app.errors, app.transcripts, app.pending) == ([], [], {}, 0)


# -- AppReply kinds ------------------------------------------------------------------------


def test_error_reply(app: FakeChatApp) -> None:
    app.script(AppReply.error(503, "down for maintenance", headers={"X-Trace": "t1"}), AppReply.error(500))
    resp = _post(app, "/chat", {"t": "x"})
    assert resp.status_code == 503
    assert resp.json() == {"error": {"message": "down for maintenance", "status": 503}}
    assert resp.headers["X-Trace"] == "t1"
    resp = _post(app, "/promptflow", {"question": "x"})
    assert resp.status_code == 500
    assert resp.json()["error"]["message"] == "boom"


def test_error_reply_on_sse_route_is_json(app: FakeChatApp) -> None:
    app.script(AppReply.error(502, "bad gateway"))
    resp = _post(app, "/sse", {"q": "x"})
    assert resp.status_code == 502
    assert resp.headers["Content-Type"] == "application/json"
    assert resp.json()["error"]["message"] == "bad gateway"


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [(1, "1"), (2.5, "2.5"), ("Wed, 21 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 2015 07:28:00 GMT"), (None, None)],
)
def test_rate_limited(app: FakeChatApp, retry_after: float | str | None, expected: str | None) -> None:
    app.script(AppReply.rate_limited(retry_after))
    resp = _post(app, "/chat", {"t": "x"})
    assert resp.status_code == 429
    assert resp.headers.get("Retry-After") == expected
    assert "error" in resp.json()


def test_rate_limited_raises_in_openai_sdk(app: FakeChatApp, client: OpenAI) -> None:
    app.script(AppReply.rate_limited())
    with pytest.raises(openai.RateLimitError) as excinfo:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])
    assert excinfo.value.response.headers["retry-after"] == "1"


def test_not_json(app: FakeChatApp) -> None:
    app.script(AppReply.not_json(), AppReply.not_json("<p>maintenance</p>"))
    resp = _post(app, "/chat", {"t": "x"})
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/html")
    assert resp.text == "<html>oops</html>"
    with pytest.raises(requests.exceptions.JSONDecodeError):
        resp.json()
    assert _post(app, "/promptflow", {"question": "q"}).text == "<p>maintenance</p>"


@pytest.mark.parametrize("path", list(ROUTE_CASES))
def test_empty_reply_keeps_the_route_shape(app: FakeChatApp, path: str) -> None:
    body, extract = ROUTE_CASES[path]
    app.script(AppReply.empty(), "full")
    first, second = _post(app, path, body), _post(app, path, body)
    assert first.status_code == 200
    assert extract(first.json()) == ""
    assert extract(second.json()) == "full"


def test_empty_reply_on_sse_route(app: FakeChatApp) -> None:
    app.script(AppReply.empty())
    assert _sse_data(_post(app, "/sse", {"q": "x"}, stream=True)) == ["[DONE]"]


def test_body_override_and_content_type(app: FakeChatApp) -> None:
    app.script(
        AppReply(body={"custom": [1, 2]}),
        AppReply(body=[1, "two"], status=202),
        AppReply(body="plain words"),
        AppReply(body=b"\x00\x01", content_type="application/octet-stream"),
        AppReply(text="typed", content_type="text/plain"),
    )
    first = _post(app, "/chat", {"t": "x"})
    assert (first.json(), first.headers["Content-Type"]) == ({"custom": [1, 2]}, "application/json")
    second = _post(app, "/sse", {"t": "x"})
    assert (second.status_code, second.json()) == (202, [1, "two"])
    third = _post(app, "/multi", {"t": "x"})
    assert (third.text, third.headers["Content-Type"]) == ("plain words", "text/plain; charset=utf-8")
    fourth = _post(app, "/chat", {"t": "x"})
    assert (fourth.content, fourth.headers["Content-Type"]) == (b"\x00\x01", "application/octet-stream")
    fifth = _post(app, "/promptflow", {"question": "x"})
    assert fifth.headers["Content-Type"] == "text/plain"
    assert json.loads(fifth.text) == {"answer": "typed"}


def test_delay(app: FakeChatApp) -> None:
    app.script(AppReply(text="slow", delay=0.3))
    started = time.monotonic()
    assert _post(app, "/chat", {"t": "x"}).json()["data"]["reply"]["text"] == "slow"
    assert time.monotonic() - started >= 0.3
    app.script(AppReply(delay=0.5))
    with pytest.raises(requests.exceptions.ReadTimeout):
        requests.post(app.url + "/chat", json={"t": "x"}, timeout=0.1)


def test_close_connection_is_a_client_connection_error(app: FakeChatApp) -> None:
    app.script(AppReply(close_connection=True), "back again")
    with pytest.raises(requests.exceptions.ConnectionError):
        _post(app, "/chat", {"t": "x"})
    assert _post(app, "/chat", {"t": "x"}).json()["data"]["reply"]["text"] == "back again"


def test_close_connection_in_openai_sdk(app: FakeChatApp, client: OpenAI) -> None:
    app.script(AppReply(close_connection=True))
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}])


def test_truncate_with_requests(app: FakeChatApp) -> None:
    app.script(AppReply(text="a reply long enough to cut in half", truncate=True), "whole")
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        _post(app, "/chat", {"t": "x"})
    assert _post(app, "/chat", {"t": "x"}).json()["data"]["reply"]["text"] == "whole"


def test_truncate_with_http_client(app: FakeChatApp) -> None:
    app.script(AppReply(truncate=True))
    conn = http.client.HTTPConnection("127.0.0.1", app.port, timeout=5)
    try:
        conn.request("POST", "/promptflow", body=json.dumps({"question": "q"}))
        resp = conn.getresponse()
        assert resp.status == 200
        declared = int(resp.headers["Content-Length"])
        with pytest.raises(http.client.IncompleteRead) as excinfo:
            resp.read()
        assert 0 < len(excinfo.value.partial) < declared
    finally:
        conn.close()


def test_truncate_on_sse_route(app: FakeChatApp) -> None:
    app.script(AppReply(text="several pieces of text", truncate=True))
    resp = _post(app, "/sse", {"q": "x"}, stream=True)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        _sse_data(resp)


def test_set_cookie(app: FakeChatApp) -> None:
    app.script(AppReply(text="hi", set_cookie="tracking=abc123; Path=/"))
    with requests.Session() as session:
        first = session.post(app.url + "/chat", json={"t": "x"}, timeout=5)
        assert first.headers["Set-Cookie"] == "tracking=abc123; Path=/"
        session.post(app.url + "/chat", json={"t": "y"}, timeout=5)
    assert "cookie" not in app.requests[0].headers
    assert app.requests[1].cookies == {"tracking": "abc123"}


# -- sessions & transcripts ------------------------------------------------------------------


def test_no_session_issued_by_default(app: FakeChatApp) -> None:
    resp = _post(app, "/chat", {"t": "x"})
    assert "X-Session-Id" not in resp.headers
    assert "Set-Cookie" not in resp.headers
    assert "session_id" not in resp.json()
    assert app.requests[0].issued_session is None
    assert app.transcripts == {}


def test_header_sessions(app: FakeChatApp) -> None:
    app.issue_session = "header"
    first = _post(app, "/chat", {"t": "one"})
    sid = first.headers["X-Session-Id"]
    assert sid == "sess-1"
    assert first.json()["session"] == "sess-1"
    second = _post(app, "/chat", {"t": "two"}, headers={"X-Session-Id": sid})
    assert "X-Session-Id" not in second.headers  # client already has a session
    assert second.json()["session"] == sid
    other = _post(app, "/multi", {"t": "other"})
    assert other.headers["X-Session-Id"] == "sess-2"
    assert app.requests[1].session == sid
    assert app.requests[0].session is None and app.requests[0].issued_session == "sess-1"
    assert app.transcripts == {"sess-1": ["one", "two"], "sess-2": ["other"]}


def test_cookie_sessions_with_requests_session(app: FakeChatApp) -> None:
    app.issue_session = "cookie"
    with requests.Session() as s1, requests.Session() as s2:
        for text in ("a1", "a2", "a3"):
            s1.post(app.url + "/promptflow", json={"question": text}, timeout=5)
        s2.post(app.url + "/promptflow", json={"question": "b1"}, timeout=5)
        assert s1.cookies.get("session") == "sess-1"
        assert s2.cookies.get("session") == "sess-2"
    assert [r.session for r in app.requests] == [None, "sess-1", "sess-1", None]
    assert app.transcripts == {"sess-1": ["a1", "a2", "a3"], "sess-2": ["b1"]}
    assert app.transcript("sess-1") == ["a1", "a2", "a3"]
    assert app.transcript("unknown") == []


def test_body_sessions(app: FakeChatApp) -> None:
    app.issue_session = "body"
    chat = _post(app, "/chat", {"text": "c1"})
    assert chat.json() == {"data": {"reply": {"text": "You said: c1"}}, "session": "sess-1", "session_id": "sess-1"}
    assert "X-Session-Id" not in chat.headers
    flow = _post(app, "/promptflow", {"question": "p1"})
    assert flow.json() == {"answer": "You said: p1", "session_id": "sess-2"}
    again = _post(app, "/promptflow", {"question": "p2", "session_id": "sess-2"})
    assert again.json() == {"answer": "You said: p2"}
    multi = _post(app, "/multi", {"text": "m1"})
    assert "session_id" not in multi.json()  # only /chat and /promptflow carry it in the body
    assert app.requests[-1].issued_session == "sess-3"
    assert app.transcripts["sess-2"] == ["p1", "p2"]


def test_session_lookup_order() -> None:
    def req(headers: dict[str, str], body: Any) -> RecordedRequest:
        return RecordedRequest("POST", "/chat", {}, headers, body, b"", 0.0)

    full = {"session_id": "from-body", "session": "from-session"}
    assert req({"x-session-id": "h", "cookie": "a=1; session=c"}, full).session == "h"
    assert req({"cookie": "a=1; session=c"}, full).session == "c"
    assert req({}, full).session == "from-body"
    assert req({}, {"session": "from-session"}).session == "from-session"
    assert req({}, {"session_id": 7}).session == "7"
    assert req({"cookie": "other=1"}, ["not", "a", "dict"]).session is None


def test_client_supplied_conversation_ids_key_the_transcripts(app: FakeChatApp) -> None:
    app.issue_session = "header"
    for conv, text in [("c-1", "hello"), ("c-2", "bonjour"), ("c-1", "how are you"), ("c-1", "bye")]:
        _post(app, "/chat", {"conversation_id": conv, "message": text})
    assert app.transcripts == {"c-1": ["hello", "how are you", "bye"], "c-2": ["bonjour"]}


def test_openai_route_transcript_uses_last_user_message(app: FakeChatApp, client: OpenAI) -> None:
    history: list[Any] = []
    for text in ("one", "two"):
        history.append({"role": "user", "content": text})
        reply = client.chat.completions.create(model="m", messages=history, extra_headers={"X-Session-Id": "conv-7"})
        history.append({"role": "assistant", "content": reply.choices[0].message.content})
    assert app.transcripts == {"conv-7": ["one", "two"]}


# -- auth ------------------------------------------------------------------------------------


def test_require_header(app: FakeChatApp) -> None:
    app.require_header = ("Authorization", "Bearer secret")
    app.script("authorised")
    missing = _post(app, "/chat", {"t": "x"})
    wrong = _post(app, "/chat", {"t": "x"}, headers={"Authorization": "Bearer nope"})
    assert (missing.status_code, wrong.status_code) == (401, 401)
    assert missing.json()["error"]["message"] == "unauthorized"
    assert app.pending == 1
    assert requests.get(app.url + "/health", timeout=5).status_code == 200
    ok = _post(app, "/chat", {"t": "x"}, headers={"Authorization": "Bearer secret"})
    assert ok.json()["data"]["reply"]["text"] == "authorised"
    app.require_header = None
    assert _post(app, "/chat", {"t": "x"}).status_code == 200


def test_require_header_with_openai_sdk(app: FakeChatApp) -> None:
    app.require_header = ("authorization", "Bearer secret")
    messages: Any = [{"role": "user", "content": "x"}]
    with (
        OpenAI(base_url=app.url + "/v1", api_key="wrong", max_retries=0) as bad,
        pytest.raises(openai.AuthenticationError),
    ):
        bad.chat.completions.create(model="m", messages=messages)
    with OpenAI(base_url=app.url + "/v1", api_key="secret", max_retries=0) as good:
        assert good.chat.completions.create(model="m", messages=messages).choices[0].message.content


# -- concurrency -------------------------------------------------------------------------------


def test_concurrent_requests_are_not_serialised(app: FakeChatApp) -> None:
    app.default = lambda req: AppReply(text=f"re: {req.user_text}", delay=0.2)
    barrier = threading.Barrier(16)

    def one(i: int) -> str:
        barrier.wait(timeout=5)
        return _post(app, "/chat", {"t": f"m{i}"}).json()["data"]["reply"]["text"]

    started = time.monotonic()
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(one, range(16)))
    elapsed = time.monotonic() - started
    assert answers == [f"re: m{i}" for i in range(16)]
    assert elapsed < 16 * 0.2 / 3  # serialised would take 3.2 s
    assert app.max_in_flight > 1
    assert app.connection_count == 16
    app.wait_idle(timeout=5)
    assert app.in_flight == 0


def test_32_concurrent_conversations_keep_their_transcripts(app: FakeChatApp) -> None:
    app.issue_session = "header"
    app.default = lambda req: AppReply(text=f"You said: {req.user_text}", delay=0.05)

    def conversation(i: int) -> tuple[str, list[str]]:
        with requests.Session() as session:
            sid = ""
            replies = []
            for turn in range(3):
                headers = {"X-Session-Id": sid} if sid else {}
                resp = session.post(app.url + "/chat", json={"text": f"c{i} t{turn}"}, headers=headers, timeout=5)
                sid = sid or resp.headers["X-Session-Id"]
                replies.append(resp.json()["data"]["reply"]["text"])
            return sid, replies

    started = time.monotonic()
    with ThreadPoolExecutor(32) as pool:
        results = list(pool.map(conversation, range(32)))
    assert time.monotonic() - started < 32 * 3 * 0.05 / 4
    assert len({sid for sid, _ in results}) == 32
    for i, (sid, replies) in enumerate(results):
        assert replies == [f"You said: c{i} t{turn}" for turn in range(3)]
        assert app.transcripts[sid] == [f"c{i} t{turn}" for turn in range(3)]
    assert app.max_in_flight > 1
    assert len(app.requests) == 96


def test_wait_for_requests(app: FakeChatApp) -> None:
    with pytest.raises(TimeoutError, match="expected 1 requests, got 0"):
        app.wait_for_requests(1, timeout=0.05)
    timer = threading.Timer(0.1, lambda: _post(app, "/chat", {"t": "late"}))
    timer.start()
    try:
        snapshot = app.wait_for_requests(1, timeout=5)
    finally:
        timer.join()
    assert snapshot[0].body == {"t": "late"}


def test_an_app_mounted_under_a_prefix_routes_below_it_only(app: FakeChatApp) -> None:
    app.mount = "/t/abc/"
    assert _post(app, "/t/abc/chat", {"text": "hi"}).json()["data"]["reply"]["text"] == "You said: hi"
    assert _post(app, "/chat", {"text": "hi"}).status_code == 404
    assert _post(app, "/t/abcd/chat", {"text": "hi"}).status_code == 404
    first = app.requests[0]
    assert first.path == "/t/abc/chat" and first.route == "chat" and first.user_text == "hi"
    assert [r.route for r in app.requests[1:]] == [None, None]
