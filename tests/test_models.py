"""OpenAIChatCompletionsModel against a local OpenAI-compatible server, OpenAI and Azure styles."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from simulator import ConfigError, OpenAIChatCompletionsModel, PlainTokenManager, TurnError
from simulator.llm.token_managers import APITokenManager
from simulator.manifest import load_manifest
from simulator.run.plan import plan_jobs
from simulator.run.runner import run_jobs
from tests.servers.openai_server import FakeOpenAIServer, RecordedRequest, Reply

HELLO = [{"role": "user", "content": "hello"}]


def complete(model: OpenAIChatCompletionsModel, messages=HELLO):
    return asyncio.run(model.complete(messages))


def test_openai_style_request_and_reply(llm: FakeOpenAIServer) -> None:
    llm.script("hi there")
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.openai_base_url,
        token_manager=PlainTokenManager("sk-test"),
        name="gpt-4o-mini",
        max_tokens=50,
        temperature=0.2,
    )
    reply = complete(model)
    assert reply.content == "hi there"
    assert reply.raw["choices"][0]["message"]["content"] == "hi there"
    assert reply.usage["total_tokens"] == reply.usage["prompt_tokens"] + reply.usage["completion_tokens"]
    sent = llm.last_request
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.body["model"] == "gpt-4o-mini" and sent.body["messages"] == HELLO
    assert sent.body["max_tokens"] == 50 and sent.body["temperature"] == 0.2
    assert "response_format" not in sent.body
    assert reply.request == {"model": "gpt-4o-mini", "messages": HELLO, "max_tokens": 50, "temperature": 0.2}


def test_full_chat_completions_url_is_accepted(llm: FakeOpenAIServer) -> None:
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url + "/chat/completions", name="m")
    assert complete(model).content == "ok"
    assert llm.last_request.path == "/v1/chat/completions"
    assert llm.last_request.headers["authorization"] == "Bearer unused"  # local server with no key


@pytest.mark.parametrize("full_url", [False, True])
def test_azure_style_with_api_key_header(llm: FakeOpenAIServer, full_url: bool) -> None:
    endpoint = llm.azure_endpoint
    if full_url:
        endpoint += "/openai/deployments/gpt-35-turbo/chat/completions?api-version=2023-03-15-preview"
    model = OpenAIChatCompletionsModel(
        endpoint_url=endpoint,
        token_manager=PlainTokenManager("azure-key", auth_header="api-key"),
        api_version=None if full_url else "2023-03-15-preview",
        name="gpt-35-turbo",
        max_tokens=300,
        temperature=0.0,
    )
    assert model.is_azure
    assert complete(model).content == "ok"
    sent = llm.last_request
    assert sent.deployment == "gpt-35-turbo"
    assert sent.query["api-version"] == "2023-03-15-preview"
    assert sent.headers["api-key"] == "azure-key"
    assert "authorization" not in sent.headers


def test_azure_bearer_token_goes_in_authorization(llm: FakeOpenAIServer) -> None:
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.azure_endpoint,
        token_manager=PlainTokenManager("entra-token", auth_header="Bearer"),
        api_version="2024-06-01",
        name="dep",
    )
    complete(model)
    assert llm.last_request.headers["authorization"] == "Bearer entra-token"
    assert "api-key" not in llm.last_request.headers


def test_key_from_environment(llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", "from-env")
    model = OpenAIChatCompletionsModel(endpoint_url=llm.azure_endpoint, api_version="2024-06-01", name="d")
    complete(model)
    assert llm.last_request.headers["api-key"] == "from-env"
    assert "from-env" not in repr(model) and "from-env" not in repr(model.token_manager)


def test_missing_credentials_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="OPENAI_API_KEY"):
        OpenAIChatCompletionsModel(name="gpt-4o")
    with pytest.raises(ConfigError, match="AZURE_OPENAI_API_KEY"):
        OpenAIChatCompletionsModel(endpoint_url="https://x.openai.azure.com", api_version="2024-06-01", name="d")
    with pytest.raises(ConfigError, match="not an http"):
        OpenAIChatCompletionsModel(endpoint_url="localhost:8000", name="d")


def test_reasoning_model_gets_max_completion_tokens_and_no_sampling(llm: FakeOpenAIServer) -> None:
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.openai_base_url, name="o3-mini", max_tokens=400, temperature=0.0, reasoning_effort="low"
    )
    complete(model)
    body = llm.last_request.body
    assert body["max_completion_tokens"] == 400
    assert "max_tokens" not in body and "temperature" not in body and "top_p" not in body
    assert body["reasoning_effort"] == "low"


def test_server_rejecting_parameters_is_retried_without_them(llm: FakeOpenAIServer) -> None:
    llm.script(
        Reply.error(
            400,
            "Unsupported parameter: 'max_tokens' is not supported with this model. "
            "Use 'max_completion_tokens' instead.",
            code="unsupported_parameter",
        ),
        Reply.error(
            400,
            "Unsupported value: 'temperature' does not support 0.0 with this model. "
            "Only the default (1) value is supported.",
            code="unsupported_value",
        ),
        "fine",
    )
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="my-deployment", max_tokens=100)
    assert complete(model).content == "fine"
    first, second, third = (r.body for r in llm.chat_requests)
    assert "max_tokens" in first
    assert "max_completion_tokens" in second and "temperature" in second
    assert third == {"model": "my-deployment", "messages": HELLO, "max_completion_tokens": 100}
    complete(model)  # learned: the next request is right the first time
    assert len(llm.chat_requests) == 4 and llm.last_request.body == third


def test_other_bad_requests_are_llm_errors(llm: FakeOpenAIServer) -> None:
    llm.script(Reply.error(400, "messages too long"))
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.reason == "llm_error" and "messages too long" in str(err.value)
    assert len(llm.chat_requests) == 1


LLAMA_CPP_OVERFLOW = Reply(
    content=None,
    status=400,
    body={
        "error": {
            "code": 400,
            "message": "request (4476 tokens) exceeds the available context size (4096 tokens)",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": 4476,
            "n_ctx": 4096,
        }
    },
)


@pytest.mark.parametrize(
    ("refusal", "sizes"),
    [
        (LLAMA_CPP_OVERFLOW, "(4,476 tokens; its context holds 4,096)"),
        (
            Reply.error(
                400,
                "This model's maximum context length is 4096 tokens. However, you requested 5300 tokens "
                "(5000 in the messages, 300 in the completion). Please reduce the length of the messages or "
                "completion.",
                type="BadRequestError",
            ),
            "(5,300 tokens; its context holds 4,096)",
        ),
        (
            Reply.error(
                400,
                "This model's maximum context length is 128000 tokens. However, your messages resulted in "
                "130120 tokens. Please reduce the length of the messages.",
                code="context_length_exceeded",
            ),
            "(130,120 tokens; its context holds 128,000)",
        ),
        (
            Reply.error(
                400,
                "The prompt (total length 25938) is too long to fit into the model (context length 4096). Make "
                "sure that `max_model_len` is no smaller than the number of text tokens.",
            ),
            "(25,938 tokens; its context holds 4,096)",
        ),
        (  # llama-cpp-python answers a 500, which is otherwise retried
            Reply.error(500, "Requested tokens (5000) exceed context window of 4096", code="context_length_exceeded"),
            "(5,000 tokens; its context holds 4,096)",
        ),
    ],
)
def test_a_conversation_longer_than_the_models_context_says_so_and_is_not_retried(
    llm: FakeOpenAIServer, refusal: Reply, sizes: str
) -> None:
    llm.default = lambda request: refusal
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="small", max_retries=2)
    with pytest.raises(TurnError) as err:
        complete(model)
    message = str(err.value)
    assert err.value.reason == "llm_error" and not err.value.fatal  # a shorter conversation may still fit
    said = f" {sizes}" if sizes else ""
    assert f"small at {llm.openai_base_url}/chat/completions cannot take a conversation this long{said}; " in message
    assert "give the model a longer context (llama.cpp: --ctx-size; vLLM: --max-model-len)" in message
    assert len(llm.chat_requests) == 1


def test_messages_that_leave_too_little_room_for_max_tokens_get_an_answer_held_to_the_room(
    llm: FakeOpenAIServer,
) -> None:
    """vLLM refuses a request whose messages fit the context but whose `max_tokens` does not: that
    request is sent again asking for what is left, and the next asks for `max_tokens` again."""

    def answer(request: RecordedRequest) -> Reply | str:
        if request.body["max_tokens"] > 96:
            return Reply.error(
                400,
                "This model's maximum context length is 4096 tokens. However, you requested 4300 tokens "
                "(4000 in the messages, 300 in the completion). Please reduce the length of the messages or "
                "completion.",
                type="BadRequestError",
            )
        return "Sure, thanks."

    llm.default = answer
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="small", max_tokens=300)
    assert complete(model).content == "Sure, thanks."
    assert [r.body["max_tokens"] for r in llm.chat_requests] == [300, 96]
    assert complete(model).content == "Sure, thanks."  # held for that one request only: a shorter
    assert [r.body["max_tokens"] for r in llm.chat_requests] == [300, 96, 300, 96]  # one may fit again


def test_a_run_whose_conversation_outgrows_the_user_models_context_keeps_its_turns_and_names_the_setting(
    llm: FakeOpenAIServer, tmp_path: Path
) -> None:
    llm.script("Hello, where is my order?", "It is 42.", LLAMA_CPP_OVERFLOW)
    (tmp_path / "app.py").write_text("def respond(question, history, meta):\n    return 'You said: ' + question\n")
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {callback: 'app.py:respond'}\n"
        f"user: {{model: small, endpoint: '{llm.openai_base_url}', max_retries: 0}}\n"
        "simulations:\n  - {name: long, persona: jane, task: t, max_turns: 20}\n"
    )
    loaded = load_manifest(manifest, environ={})
    [result] = asyncio.run(run_jobs(loaded, plan_jobs(loaded), tmp_path / "out", concurrency=1)).results
    meta = result["meta_data"]
    assert meta["stop_reason"] == "llm_error"
    assert "cannot take a conversation this long (4,476 tokens; its context holds 4,096)" in meta["stop_detail"]
    assert "lower max_turns, or give user.model a longer context (llama.cpp: --ctx-size" in meta["stop_detail"]
    turns = [(turn["actor"], turn["response"]) for turn in result["conversation"]]
    assert turns[:4] == [
        ("user", "Hello, where is my order?"),
        ("assistant", "You said: Hello, where is my order?"),
        ("user", "It is 42."),
        ("assistant", "You said: It is 42."),
    ]  # the turns before the failed one are kept


def test_content_filter_on_prompt_and_on_completion(llm: FakeOpenAIServer) -> None:
    llm.script(Reply.content_filter_prompt(), Reply.content_filter_completion())
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.azure_endpoint, api_version="2024-06-01", name="d", token_manager=PlainTokenManager("k")
    )
    with pytest.raises(TurnError) as prompt_err:
        complete(model)
    assert prompt_err.value.reason == "content_filter" and "blocked" in str(prompt_err.value)
    with pytest.raises(TurnError) as completion_err:
        complete(model)
    assert completion_err.value.reason == "content_filter"
    assert completion_err.value.detail["response"]["choices"][0]["finish_reason"] == "content_filter"


def test_rate_limit_is_retried_honouring_retry_after(llm: FakeOpenAIServer) -> None:
    llm.script(Reply.rate_limited(0.4), Reply.rate_limited(0.4), "after the wait")
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=3)
    started = time.monotonic()
    assert complete(model).content == "after the wait"
    assert time.monotonic() - started >= 0.75
    assert len(llm.chat_requests) == 3


@pytest.mark.parametrize(
    ("header", "value"), [("retry-after", "inf"), ("retry-after", "1e400"), ("retry-after-ms", "inf")]
)
def test_a_probe_rate_limited_with_a_retry_after_that_is_no_wait_is_retried(
    llm: FakeOpenAIServer, header: str, value: str
) -> None:
    """A wait that is no number is no wait at all: the 429 is retried after the first delay, not
    taken for a wait longer than anyone would (which would end the turn)."""
    llm.script(Reply.error(429, "slow down", code="rate_limit_exceeded", headers={header: value}), '{"ok": true}')
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=1)
    reply = asyncio.run(model.complete(HELLO, response_format={"type": "json_object"}))  # a probe
    assert reply.content == '{"ok": true}' and len(llm.chat_requests) == 2


def test_rate_limit_that_never_ends_is_an_llm_error(llm: FakeOpenAIServer) -> None:
    """A 429 costs no retry: it is sent again after each wait until `rate_limit_wait` has passed."""
    llm.default = lambda request: Reply.rate_limited(0.01)
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=2, rate_limit_wait=0.3)
    started = time.monotonic()
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.reason == "llm_error" and "(HTTP 429)" in str(err.value)
    assert "kept rate-limiting: still refused after" in str(err.value)
    assert "rate_limit_wait allows 0.3 s" in str(err.value)
    assert len(llm.chat_requests) > 3 and 0.25 < time.monotonic() - started < 2


def test_server_errors_are_retried(llm: FakeOpenAIServer) -> None:
    llm.script(Reply.error(503, "busy"), Reply.error(500, "oops"), "recovered")
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=3)
    assert complete(model).content == "recovered"


def test_timeout_is_recorded_as_timeout(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: Reply(content="late", delay=1.0)
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", timeout=0.2, max_retries=0)
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.reason == "timeout"


def test_unreachable_endpoint_names_the_url() -> None:
    with FakeOpenAIServer() as closed:
        url = closed.openai_base_url
    model = OpenAIChatCompletionsModel(endpoint_url=url, name="m", max_retries=0)
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.reason == "llm_error" and url + "/chat/completions" in str(err.value)


def test_wrong_deployment_is_fatal(llm: FakeOpenAIServer) -> None:
    llm.script(Reply.error(404, "The API deployment for this resource does not exist.", code="DeploymentNotFound"))
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.azure_endpoint, api_version="2024-06-01", name="nope", token_manager=PlainTokenManager("k")
    )
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.fatal and "nope" in str(err.value) and "404" in str(err.value)


class RotatingToken(APITokenManager):
    """Hands out token-1, token-2, ... each time it is asked to refetch."""

    def __init__(self) -> None:
        super().__init__("Bearer")
        self.issued = 0

    def _fetch(self):
        self.issued += 1
        return f"token-{self.issued}", None


def test_401_refreshes_the_credential_once_and_retries(llm: FakeOpenAIServer) -> None:
    manager = RotatingToken()
    llm.require_auth = lambda headers: headers.get("authorization") == "Bearer token-2"
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", token_manager=manager)
    assert complete(model).content == "ok"
    assert manager.issued == 2
    llm.require_auth = lambda headers: False
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.fatal and "401" in str(err.value) and "credential" in str(err.value)


def test_plain_key_401_is_not_retried_and_never_echoes_the_key(llm: FakeOpenAIServer) -> None:
    llm.require_auth = lambda headers: False
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.openai_base_url, name="m", token_manager=PlainTokenManager("sk-secret-123")
    )
    with pytest.raises(TurnError) as err:
        complete(model)
    assert len(llm.chat_requests) == 1
    assert "sk-secret-123" not in str(err.value) and "sk-secret-123" not in repr(err.value.detail)


def test_one_model_serves_several_event_loops(llm: FakeOpenAIServer) -> None:
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")
    for _ in range(3):
        assert complete(model).content == "ok"


@pytest.mark.parametrize("concurrency", [1, 32])
def test_a_run_at_any_concurrency_sends_over_one_warmed_client(llm: FakeOpenAIServer, concurrency: int) -> None:
    """aiohttp's pool costs no more with more connections (httpx2's did, which once spread a model's
    requests over several clients): one client per loop answers every conversation at once."""
    llm.default = lambda request: "ok"
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")

    async def play() -> tuple[int, list[str]]:
        await model.warm(concurrency)
        used = len({id(model._client()) for _ in range(6)})
        replies = await asyncio.gather(*(model.complete([{"role": "user", "content": "hi"}]) for _ in range(8)))
        await model.aclose()
        return used, [reply.content for reply in replies]

    used, answers = asyncio.run(play())
    assert used == 1 and answers == ["ok"] * 8
