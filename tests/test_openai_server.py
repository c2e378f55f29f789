"""Tests for the in-process fake OpenAI server (tests/servers/openai_server.py)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import openai
import pytest
import requests
from openai import AzureOpenAI, OpenAI

from tests.servers.openai_server import FakeOpenAIServer, RecordedRequest, Reply

USER_MESSAGES = [
    {"role": "system", "content": "be brief"},
    {"role": "user", "content": "hello there friend"},
]


@pytest.fixture
def srv() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def client(srv: FakeOpenAIServer) -> Iterator[OpenAI]:
    c = OpenAI(base_url=srv.openai_base_url, api_key="sk-test", max_retries=0)
    yield c
    c.close()


def _post(srv: FakeOpenAIServer, path: str = "/v1/chat/completions", **kwargs: object):
    kwargs.setdefault("json", {"model": "m", "messages": USER_MESSAGES})
    return requests.post(srv.url + path, timeout=5, **kwargs)  # type: ignore[arg-type]


# -- basic OpenAI / Azure round trips ------------------------------------------------


def test_urls(srv: FakeOpenAIServer) -> None:
    assert srv.url == f"http://127.0.0.1:{srv.port}"
    assert srv.openai_base_url == srv.url + "/v1"
    assert srv.azure_endpoint == srv.url
    assert srv.port > 0


def test_openai_call_returns_scripted_content_and_is_recorded(srv: FakeOpenAIServer, client: OpenAI) -> None:
    srv.script("Hi, how can I help?")
    resp = client.chat.completions.create(model="gpt-4o-mini", messages=USER_MESSAGES)

    assert resp.choices[0].message.content == "Hi, how can I help?"
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.object == "chat.completion"
    assert resp.model == "gpt-4o-mini"
    assert resp.id.startswith("chatcmpl-")
    assert isinstance(resp.created, int)
    # words: "be brief" + "hello there friend" = 5; reply = 5 words
    assert resp.usage is not None
    assert (resp.usage.prompt_tokens, resp.usage.completion_tokens) == (5, 5)
    assert resp.usage.total_tokens == 10

    assert len(srv.requests) == 1
    req = srv.last_request
    assert req is not None
    assert req.method == "POST"
    assert req.path == "/v1/chat/completions"
    assert req.deployment is None
    assert req.body["model"] == "gpt-4o-mini"
    assert req.model == "gpt-4o-mini"
    assert req.messages == USER_MESSAGES
    assert req.headers["authorization"] == "Bearer sk-test"
    assert all(name == name.lower() for name in req.headers)
    assert srv.chat_requests == [req]


def test_completion_ids_are_unique(srv: FakeOpenAIServer, client: OpenAI) -> None:
    ids = {client.chat.completions.create(model="m", messages=USER_MESSAGES).id for _ in range(3)}
    assert len(ids) == 3


def test_azure_call_records_deployment_key_and_api_version(srv: FakeOpenAIServer) -> None:
    srv.script("from azure")
    client = AzureOpenAI(azure_endpoint=srv.azure_endpoint, api_version="2024-06-01", api_key="k", max_retries=0)
    try:
        resp = client.chat.completions.create(model="my-deployment", messages=USER_MESSAGES)
    finally:
        client.close()

    assert resp.choices[0].message.content == "from azure"
    assert resp.model == "my-deployment"
    req = srv.last_request
    assert req is not None
    assert req.path == "/openai/deployments/my-deployment/chat/completions"
    assert req.deployment == "my-deployment"
    assert req.headers["api-key"] == "k"
    assert "authorization" not in req.headers
    assert req.query["api-version"] == "2024-06-01"
    assert srv.chat_requests == [req]


def test_azure_route_requires_api_version(srv: FakeOpenAIServer) -> None:
    srv.script("never used")
    r = _post(srv, "/openai/deployments/dep/chat/completions")
    assert r.status_code == 400
    err = r.json()["error"]
    assert set(err) >= {"message", "type", "param", "code"}
    assert "api-version" in err["message"]
    assert srv.pending == 1  # rejected requests do not consume the script
    assert srv.last_request is not None and srv.last_request.deployment == "dep"


def test_plain_chat_completions_path_and_requests_client(srv: FakeOpenAIServer) -> None:
    srv.script("plain")
    r = _post(srv, "/chat/completions")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("application/json")
    body = r.json()
    assert body["choices"][0] == {
        "index": 0,
        "message": {"role": "assistant", "content": "plain", "refusal": None},
        "finish_reason": "stop",
        "logprobs": None,
    }
    assert body["model"] == "m"


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "exc_type", "status"),
    [
        (Reply.error(400, "bad thing", code="bad"), openai.BadRequestError, 400),
        (Reply.error(401, "who are you"), openai.AuthenticationError, 401),
        (Reply.error(403, "nope"), openai.PermissionDeniedError, 403),
        (Reply.error(404, "no such model", code="model_not_found"), openai.NotFoundError, 404),
        (Reply.rate_limited(None), openai.RateLimitError, 429),
        (Reply.error(500, "boom", type="server_error"), openai.InternalServerError, 500),
        (Reply(status=503, content="overloaded"), openai.InternalServerError, 503),
    ],
)
def test_error_replies_raise_matching_sdk_exceptions(
    srv: FakeOpenAIServer,
    client: OpenAI,
    reply: Reply,
    exc_type: type[openai.APIStatusError],
    status: int,
) -> None:
    srv.script(reply)
    with pytest.raises(exc_type) as info:
        client.chat.completions.create(model="m", messages=USER_MESSAGES)
    assert info.value.status_code == status
    assert isinstance(info.value.body, dict)
    assert {"message", "type", "code"} <= set(info.value.body)
    assert len(srv.chat_requests) == 1  # max_retries=0: exactly one attempt


def test_error_body_shape(srv: FakeOpenAIServer) -> None:
    srv.script(Reply.error(400, "bad thing", code="bad_code", headers={"X-Extra": "1"}))
    r = _post(srv)
    assert r.status_code == 400
    assert r.headers["X-Extra"] == "1"
    assert r.json() == {
        "error": {
            "message": "bad thing",
            "type": "invalid_request_error",
            "param": None,
            "code": "bad_code",
        }
    }


def test_content_filter_prompt(srv: FakeOpenAIServer, client: OpenAI) -> None:
    srv.script(Reply.content_filter_prompt())
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model="m", messages=USER_MESSAGES)
    body = info.value.body
    assert isinstance(body, dict)
    assert info.value.code == "content_filter"
    assert body["param"] == "prompt"
    assert body["status"] == 400
    assert body["message"].startswith(
        "The response was filtered due to the prompt triggering Azure OpenAI's content management policy"
    )
    inner = body["innererror"]
    assert inner["code"] == "ResponsibleAIPolicyViolation"
    assert inner["content_filter_result"]["violence"] == {"filtered": True, "severity": "medium"}
    assert inner["content_filter_result"]["hate"] == {"filtered": False, "severity": "safe"}


def test_content_filter_completion(srv: FakeOpenAIServer, client: OpenAI) -> None:
    srv.script(Reply.content_filter_completion())
    resp = client.chat.completions.create(model="m", messages=USER_MESSAGES)
    assert resp.choices[0].finish_reason == "content_filter"
    assert resp.choices[0].message.content is None
    assert resp.usage is not None and resp.usage.completion_tokens == 0


def test_unknown_path_is_404_and_recorded(srv: FakeOpenAIServer) -> None:
    r = _post(srv, "/v1/embeddings")
    assert r.status_code == 404
    assert "error" in r.json()
    assert srv.last_request is not None and srv.last_request.path == "/v1/embeddings"
    assert srv.chat_requests == []


def test_invalid_json_is_400_and_recorded(srv: FakeOpenAIServer) -> None:
    srv.script("unused")
    r = requests.post(
        srv.openai_base_url + "/chat/completions",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
        timeout=5,
    )
    assert r.status_code == 400
    assert r.json()["error"]["message"]
    req = srv.last_request
    assert req is not None and req.body is None and req.is_chat
    assert srv.pending == 1


def test_wrong_method_on_chat_route(srv: FakeOpenAIServer) -> None:
    r = requests.get(srv.openai_base_url + "/chat/completions", timeout=5)
    assert r.status_code == 405
    assert srv.last_request is not None and srv.last_request.method == "GET"


def test_require_auth(srv: FakeOpenAIServer) -> None:
    srv.require_auth = lambda headers: headers.get("authorization") == "Bearer good"
    srv.script("authorised")
    bad = OpenAI(base_url=srv.openai_base_url, api_key="bad", max_retries=0)
    good = OpenAI(base_url=srv.openai_base_url, api_key="good", max_retries=0)
    try:
        with pytest.raises(openai.AuthenticationError) as info:
            bad.chat.completions.create(model="m", messages=USER_MESSAGES)
        assert info.value.code == "invalid_api_key"
        assert info.value.message.endswith("Incorrect API key provided")
        assert srv.pending == 1
        resp = good.chat.completions.create(model="m", messages=USER_MESSAGES)
        assert resp.choices[0].message.content == "authorised"
    finally:
        bad.close()
        good.close()
    assert [r.headers["authorization"] for r in srv.chat_requests] == ["Bearer bad", "Bearer good"]


def test_failing_reply_callable_gives_500_and_is_reported(srv: FakeOpenAIServer, client: OpenAI) -> None:
    def explode(request: RecordedRequest) -> str:
        raise ValueError("kaboom")

    srv.script(explode)
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model="m", messages=USER_MESSAGES)
    assert len(srv.errors) == 1 and isinstance(srv.errors[0], ValueError)


# -- scripting ------------------------------------------------------------------


def test_callable_reply_sees_the_request(srv: FakeOpenAIServer, client: OpenAI) -> None:
    seen: list[RecordedRequest] = []

    def echo(request: RecordedRequest) -> str:
        seen.append(request)
        return f"{request.model}:{request.messages[-1]['content']}"

    srv.script(echo, lambda req: Reply(content="as reply", finish_reason="length"))
    first = client.chat.completions.create(model="gpt-x", messages=USER_MESSAGES)
    second = client.chat.completions.create(model="gpt-x", messages=USER_MESSAGES)

    assert first.choices[0].message.content == "gpt-x:hello there friend"
    assert seen == [srv.chat_requests[0]]
    assert second.choices[0].message.content == "as reply"
    assert second.choices[0].finish_reason == "length"


def test_queue_is_fifo_then_falls_back_to_default(srv: FakeOpenAIServer, client: OpenAI) -> None:
    srv.script("one", Reply("two"))
    assert srv.pending == 2

    def ask() -> str | None:
        return client.chat.completions.create(model="m", messages=USER_MESSAGES).choices[0].message.content

    assert [ask(), ask(), ask()] == ["one", "two", "ok"]
    assert srv.pending == 0
    srv.default = lambda req: Reply(content=f"default for {req.model}")
    assert ask() == "default for m"
    srv.script("scripted again")
    assert ask() == "scripted again"
    assert ask() == "default for m"


def test_script_rejects_unsupported_items(srv: FakeOpenAIServer) -> None:
    with pytest.raises(TypeError):
        srv.script(42)  # type: ignore[arg-type]
    assert srv.pending == 0


def test_custom_usage_headers_and_raw_body(srv: FakeOpenAIServer) -> None:
    usage = {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107}
    srv.script(
        Reply("x", usage=usage, headers={"x-request-id": "req-1"}),
        Reply(body={"anything": [1, 2]}, status=202),
        Reply(body="not json at all", headers={"Content-Type": "text/plain"}),
    )
    r1 = _post(srv)
    assert r1.json()["usage"] == usage
    assert r1.headers["x-request-id"] == "req-1"
    r2 = _post(srv)
    assert (r2.status_code, r2.json()) == (202, {"anything": [1, 2]})
    r3 = _post(srv)
    assert r3.text == "not json at all"
    assert r3.headers["Content-Type"] == "text/plain"


# -- rate limiting / retries / connection behaviour ----------------------------------


def test_rate_limited_sets_retry_after(srv: FakeOpenAIServer) -> None:
    srv.script(Reply.rate_limited(), Reply.rate_limited(0.5), Reply.rate_limited(None))
    r1, r2, r3 = _post(srv), _post(srv), _post(srv)
    assert [r.status_code for r in (r1, r2, r3)] == [429, 429, 429]
    assert r1.headers["Retry-After"] == "1"
    assert r2.headers["Retry-After"] == "0.5"
    assert "Retry-After" not in r3.headers
    assert r1.json()["error"]["code"] == "rate_limit_exceeded"


def test_sdk_honours_retry_after_and_retries(srv: FakeOpenAIServer) -> None:
    srv.script(Reply.rate_limited(0.01), "after retry")
    client = OpenAI(base_url=srv.openai_base_url, api_key="k", max_retries=1)
    try:
        resp = client.chat.completions.create(model="m", messages=USER_MESSAGES)
    finally:
        client.close()
    assert resp.choices[0].message.content == "after retry"
    assert len(srv.chat_requests) == 2


def test_close_connection_simulates_reset(srv: FakeOpenAIServer, client: OpenAI) -> None:
    srv.script(Reply(close_connection=True), Reply(close_connection=True), "fine")
    with pytest.raises(openai.APIConnectionError):
        client.chat.completions.create(model="m", messages=USER_MESSAGES)
    with pytest.raises(requests.ConnectionError):
        _post(srv)
    assert client.chat.completions.create(model="m", messages=USER_MESSAGES).choices[0].message.content == "fine"


def test_delay_triggers_client_timeout(srv: FakeOpenAIServer) -> None:
    srv.script(Reply("slow", delay=1.0))
    client = OpenAI(base_url=srv.openai_base_url, api_key="k", max_retries=0, timeout=0.2)
    try:
        with pytest.raises(openai.APITimeoutError):
            client.chat.completions.create(model="m", messages=USER_MESSAGES)
    finally:
        client.close()


def test_keep_alive_reuses_one_connection(srv: FakeOpenAIServer) -> None:
    srv.script("a", "b", Reply.error(400, "c"))
    with requests.Session() as session:
        url = srv.openai_base_url + "/chat/completions"
        payload = {"model": "m", "messages": USER_MESSAGES}
        results = [session.post(url, json=payload, timeout=5) for _ in range(3)]
        results.append(session.post(srv.url + "/nowhere", json=payload, timeout=5))
        results.append(session.post(url, json=payload, timeout=5))
    assert [r.status_code for r in results] == [200, 200, 400, 404, 200]
    assert srv.connection_count == 1


def test_concurrent_requests_are_all_recorded(srv: FakeOpenAIServer) -> None:
    n = 12
    srv.script(*[f"reply {i}" for i in range(n)])
    contents: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        r = _post(srv)
        with lock:
            contents.append(r.json()["choices"][0]["message"]["content"])

    threads = [threading.Thread(target=worker) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(contents) == sorted(f"reply {i}" for i in range(n))
    assert len(srv.wait_for_requests(n, timeout=1)) == n


# -- streaming ------------------------------------------------------------------


def test_streaming_with_sdk(srv: FakeOpenAIServer, client: OpenAI) -> None:
    srv.script("The quick brown fox jumps")
    stream = client.chat.completions.create(
        model="gpt-stream",
        messages=USER_MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)

    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert len({c.id for c in chunks}) == 1
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "The quick brown fox jumps"
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert len(content_chunks) == 3
    finish = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finish == ["stop"]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == 5
    assert chunks[-1].usage.prompt_tokens == 5
    assert srv.last_request is not None and srv.last_request.stream


def test_streaming_without_usage_and_raw_sse(srv: FakeOpenAIServer) -> None:
    srv.script("hi")
    r = _post(srv, json={"model": "m", "messages": USER_MESSAGES, "stream": True})
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    events = [line for line in r.text.split("\n\n") if line]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    assert '"usage"' not in r.text  # include_usage not requested


def test_streaming_error_is_plain_json(srv: FakeOpenAIServer, client: OpenAI) -> None:
    srv.script(Reply.rate_limited(None))
    with pytest.raises(openai.RateLimitError):
        list(client.chat.completions.create(model="m", messages=USER_MESSAGES, stream=True))


# -- lifecycle ------------------------------------------------------------------


def test_close_frees_the_port() -> None:
    srv = FakeOpenAIServer().start()
    port = srv.port
    with requests.Session() as session:  # leave an idle keep-alive connection open
        assert session.post(srv.url + "/v1/chat/completions", json={}, timeout=5).ok
        srv.close()
        srv.close()  # idempotent
        with pytest.raises(requests.ConnectionError):
            session.post(srv.url + "/v1/chat/completions", json={}, timeout=5)
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(2)
        probe.connect(("127.0.0.1", port))
    with socket.socket() as rebind:
        rebind.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        rebind.bind(("127.0.0.1", port))
    with pytest.raises(RuntimeError):
        srv.start()


def test_context_manager_starts_and_stops() -> None:
    with FakeOpenAIServer() as srv:
        url = srv.url
        assert _post(srv).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.post(url + "/v1/chat/completions", json={}, timeout=2)
    with pytest.raises(RuntimeError):
        _ = FakeOpenAIServer().url  # not started yet
