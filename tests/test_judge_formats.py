"""The judge's structured output on servers that cannot do all of it: the ladder json_schema,
json_object with the schema, json_object, none (the schema in the prompt, the answer validated and
repaired once).

The first tests' server answers a FastAPI validation body for a `response_format` it does not know,
with HTTP 500 (which the SDK would retry) or 422; the later ones imitate the servers people run
(`tests.servers.structured_output`), each refusing in its own way.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from typing import Any

import pytest

from simulator import ScriptedUser, Simulator
from simulator.checks import EvaluationContext, build_checks, evaluate
from simulator.checks.judge import GOAL_SCHEMA, RUBRIC_SCHEMA
from simulator.llm.models import OpenAIChatCompletionsModel
from tests.servers.openai_server import FakeOpenAIServer, RecordedRequest, Reply
from tests.servers.structured_output import (
    LITELLM_NO_RESPONSE_FORMAT,
    LLAMA_CPP_PYTHON,
    LLAMA_SERVER,
    LLAMA_SERVER_2024,
    OLLAMA,
    OPENAI,
    VLLM,
    Dialect,
    behind_litellm,
    step,
)

PASS_VERDICT = '{"verdict": "pass", "reason": "Turn 1 approves the refund."}'
FAIL_VERDICT = '{"verdict": "fail", "reason": "Turn 1 only promises a refund."}'


def rejecting(kinds: set[str | None], status: int, answer: str) -> Callable[[RecordedRequest], Reply | str]:
    """A server that, like llama-cpp-python, fails validation for the response_format kinds in `kinds`."""

    def reply(request: RecordedRequest) -> Reply | str:
        kind = (request.body.get("response_format") or {}).get("type")
        if kind in kinds:
            allowed = " or ".join(f"'{k}'" for k in ("text", "json_object") if k not in kinds)
            return Reply.validation_error(
                status,
                ["body", "response_format", "type"],
                f"Input should be {allowed}",
                input=kind,
                ctx={"expected": allowed},
            )
        return answer

    return reply


def formats(server: FakeOpenAIServer) -> list[str | None]:
    """The response_format kind of each request the server received, in order (None: not sent)."""
    return [(r.body.get("response_format") or {}).get("type") for r in server.chat_requests]


def judged(judge: OpenAIChatCompletionsModel, reply: str = "Your refund is approved.") -> dict[str, Any]:
    """A real conversation (scripted user, callback app), judged for goal completion."""
    result = Simulator(
        simulate_callback=lambda q, h, m: reply, userConnection=ScriptedUser(["refund please"])
    ).simulate("jane", "get a refund", 2)
    return asyncio.run(evaluate(result, build_checks({"goal_completed": True}), EvaluationContext(judge=judge)))


def judge_at(server: FakeOpenAIServer, **options: Any) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(endpoint_url=server.openai_base_url, name="local-judge", **options)


@pytest.mark.parametrize("status", [500, 422])
def test_json_schema_rejected_falls_back_to_json_object_once(
    llm: FakeOpenAIServer, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    llm.default = rejecting({"json_schema"}, status, PASS_VERDICT)
    judge = judge_at(llm)  # the default max_retries=3: a 500 must still reach the server only once
    with caplog.at_level(logging.WARNING, logger="simulator.llm.models"):
        first = judged(judge)
    assert first["status"] == "pass", first
    assert first["checks"][0]["evidence"]["verdict"] == "pass"
    assert formats(llm) == ["json_schema", "json_object"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "json_schema" in warnings[0] and "sending response_format json_object" in warnings[0]
    assert f"HTTP {status}" in warnings[0] and "body.response_format.type" in warnings[0]

    second = judged(judge)  # another conversation, another event loop: the step is remembered
    assert second["status"] == "pass"
    assert formats(llm) == ["json_schema", "json_object", "json_object"]


def test_json_object_rejected_too_falls_back_to_no_response_format(
    llm: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm.default = rejecting({"json_schema", "json_object"}, 500, FAIL_VERDICT)
    judge = judge_at(llm)
    with caplog.at_level(logging.WARNING, logger="simulator.llm.models"):
        first = judged(judge, reply="We will look into it.")
    assert first["status"] == "fail", first
    assert first["checks"][0]["message"] == "Turn 1 only promises a refund."
    assert steps(llm) == ["json_schema", "json_object+schema", "json_object", None]
    assert "response_format" not in llm.chat_requests[-1].body
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 3 and "sending no response_format" in warnings[2]

    judged(judge)
    assert steps(llm) == ["json_schema", "json_object+schema", "json_object", None, None]


def judge_four_at_once(llm: FakeOpenAIServer, caplog: pytest.LogCaptureFixture) -> list[Any]:
    """Four conversations judged concurrently by one judge (warnings captured in `caplog`)."""
    judge = judge_at(llm)
    results = [
        Simulator(simulate_callback=lambda q, h, m: "Refund approved.", userConnection=ScriptedUser(["hi"])).simulate(
            "jane", "get a refund", 2
        )
        for _ in range(4)
    ]

    async def judge_all() -> list[Any]:
        checks = build_checks({"goal_completed": True})
        try:
            return await asyncio.gather(*(evaluate(r, checks, EvaluationContext(judge=judge)) for r in results))
        finally:
            await judge.aclose()

    with caplog.at_level(logging.WARNING, logger="simulator.llm.models"):
        return asyncio.run(judge_all())


def test_concurrent_conversations_share_what_the_first_learns(
    llm: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm.default = rejecting({"json_schema"}, 500, PASS_VERDICT)
    evaluations = judge_four_at_once(llm, caplog)
    assert [e["status"] for e in evaluations] == ["pass"] * 4
    assert formats(llm) == ["json_schema"] + ["json_object"] * 4
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_rejection_named_in_param_or_message_at_any_status(llm: FakeOpenAIServer) -> None:
    llm.script(
        Reply.error(400, "Invalid value for this model.", param="response_format"),
        Reply.error(500, "response_format json_object is not implemented", type="server_error"),
        PASS_VERDICT,
    )
    judge = judge_at(llm)
    assert judged(judge)["status"] == "pass"
    assert steps(llm) == ["json_schema", "json_object+schema", "json_object"]


def test_a_probe_that_fails_for_a_passing_reason_carries_on_with_the_retries(llm: FakeOpenAIServer) -> None:
    llm.script(Reply.error(503, "loading model", type="server_error"), PASS_VERDICT)
    judge = judge_at(llm, max_retries=2)
    assert judged(judge)["status"] == "pass"
    assert formats(llm) == ["json_schema", "json_schema"]  # the format was fine: no step down
    judged(judge)
    assert formats(llm)[-1] == "json_schema"


def test_a_probe_keeps_the_retry_budget(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: Reply.error(500, "out of memory", type="server_error")
    judge = judge_at(llm, max_retries=2)
    evaluation = judged(judge)
    assert evaluation["status"] == "error" and "out of memory" in evaluation["errors"][0]
    assert formats(llm) == ["json_schema"] * 3  # 1 + max_retries, as for any request


def test_a_validation_error_elsewhere_is_no_step_down(llm: FakeOpenAIServer) -> None:
    def invalid_messages(request: RecordedRequest) -> Reply:
        # FastAPI echoes the whole body as `input`: it holds response_format, the `loc` does not
        return Reply.validation_error(
            422, ["body", "messages", 0, "role"], "Input should be 'system' or 'user'", input=request.body
        )

    llm.default = invalid_messages
    judge = judge_at(llm)
    evaluation = judged(judge)
    assert evaluation["status"] == "error"
    assert "body.messages.0.role: Input should be 'system' or 'user'" in evaluation["errors"][0]
    judged(judge)
    assert formats(llm) == ["json_schema", "json_schema"]


# --- the dialects of the servers people run (tests.servers.structured_output) -----------------

#: what a small model (SmolLM2-135M) writes when nothing holds it to the schema: some JSON object
ANY_JSON = '{"answer": "yes", "confidence": 0.9}'
SCORE = '{"score": 5, "reason": "Turn 1 is polite and brief."}'


def small_model(dialect: Dialect) -> Callable[[RecordedRequest], str]:
    """Answers as a small model on `dialect`'s server: a verdict that fits the schema the server's
    grammar holds it to, any JSON object when nothing does."""

    def reply(request: RecordedRequest) -> str:
        schema = dialect.constrains(request.body)
        if schema == GOAL_SCHEMA:
            return PASS_VERDICT
        return SCORE if schema == RUBRIC_SCHEMA else ANY_JSON

    return reply


def steps(server: FakeOpenAIServer) -> list[str | None]:
    """The structured output each request asked for, in order (None: no response_format)."""
    return [step(r.body) for r in server.chat_requests]


@pytest.mark.parametrize(
    ("dialect", "expected"),
    [
        (OPENAI, ["json_schema"]),
        (VLLM, ["json_schema"]),
        (OLLAMA, ["json_schema"]),
        (LLAMA_SERVER, ["json_schema"]),
        (behind_litellm(LLAMA_SERVER), ["json_schema"]),
        (LLAMA_SERVER_2024, ["json_schema", "json_object+schema"]),
        (LLAMA_CPP_PYTHON, ["json_schema", "json_object+schema"]),
        (behind_litellm(LLAMA_CPP_PYTHON), ["json_schema", "json_object+schema"]),
    ],
    ids=lambda value: value.name if isinstance(value, Dialect) else None,
)
def test_the_schema_reaches_every_server_that_can_hold_the_answer_to_it(
    llm: FakeOpenAIServer, dialect: Dialect, expected: list[str]
) -> None:
    llm.dialect = dialect
    llm.default = small_model(dialect)
    judge = judge_at(llm)
    first = judged(judge)
    assert first["status"] == "pass", first
    assert steps(llm) == expected
    if expected[-1] == "json_object+schema":  # where llama-cpp-python builds its grammar from
        assert llm.chat_requests[-1].body["response_format"] == {"type": "json_object", "schema": GOAL_SCHEMA}

    second = judged(judge)  # the endpoint's step is known: no probe again
    assert second["status"] == "pass"
    assert steps(llm) == [*expected, expected[-1]]


def test_every_judge_check_on_llama_cpp_python_gets_a_verdict(llm: FakeOpenAIServer) -> None:
    llm.dialect = LLAMA_CPP_PYTHON
    llm.default = small_model(LLAMA_CPP_PYTHON)
    expect = {"goal_completed": True, "rubric": ["The assistant is polite", "The assistant is brief"]}
    result = Simulator(
        simulate_callback=lambda q, h, m: "Refund approved.", userConnection=ScriptedUser(["hi"])
    ).simulate("jane", "get a refund", 2)
    evaluation = asyncio.run(evaluate(result, build_checks(expect), EvaluationContext(judge=judge_at(llm))))
    assert [c["status"] for c in evaluation["checks"]] == ["pass"] * 3, evaluation


def test_a_server_that_takes_nothing_structured_gets_the_schema_in_the_prompt(
    llm: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm.dialect = LITELLM_NO_RESPONSE_FORMAT
    llm.default = lambda request: PASS_VERDICT
    judge = judge_at(llm)
    with caplog.at_level(logging.WARNING, logger="simulator.llm.models"):
        assert judged(judge)["status"] == "pass"
    assert steps(llm) == ["json_schema", "json_object+schema", "json_object", None]
    for request in llm.chat_requests[:2]:  # the server holds the answer to the schema: the prompt need not
        assert "JSON Schema" not in request.messages[-1]["content"]
    for request in llm.chat_requests[2:]:  # nothing holds it: the prompt carries the schema
        assert json.dumps(GOAL_SCHEMA) in request.messages[-1]["content"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [w.split("; ")[-1] for w in warnings] == [
        "sending response_format json_object with the schema from now on",
        "sending response_format json_object, the schema in the prompt, from now on",
        "sending no response_format, the schema in the prompt, from now on",
    ]

    judged(judge)
    assert steps(llm)[-1] is None and json.dumps(GOAL_SCHEMA) in llm.chat_requests[-1].messages[-1]["content"]


def test_an_answer_that_is_no_verdict_gets_one_repair_retry_naming_what_was_wrong(llm: FakeOpenAIServer) -> None:
    llm.dialect = LITELLM_NO_RESPONSE_FORMAT
    llm.script('{"verdict": "pass"}', PASS_VERDICT)
    evaluation = judged(judge_at(llm))
    assert evaluation["status"] == "pass", evaluation
    assert evaluation["checks"][0]["evidence"]["verdict"] == "pass"
    first, repair = llm.chat_requests[-2:]
    assert step(first.body) is None and step(repair.body) is None
    system, question, answer, retry = repair.messages  # the schema goes with the last user message
    assert system == first.messages[0] and first.messages[1]["content"].startswith(question["content"] + "\n\n")
    assert answer == {"role": "assistant", "content": '{"verdict": "pass"}'}
    assert retry["role"] == "user" and "'reason' is a required property" in retry["content"]
    assert json.dumps(GOAL_SCHEMA) in retry["content"]


def test_a_second_answer_that_is_no_verdict_is_a_check_error(llm: FakeOpenAIServer) -> None:
    llm.dialect = LITELLM_NO_RESPONSE_FORMAT
    llm.default = lambda request: ANY_JSON
    evaluation = judged(judge_at(llm))
    assert evaluation["status"] == "error"
    assert steps(llm).count(None) == 2  # the answer and one repair retry, no more
    assert "not a valid verdict" in evaluation["errors"][0] and "after one repair retry" in evaluation["errors"][0]


def test_concurrent_conversations_probe_llama_cpp_python_once(
    llm: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm.dialect = LLAMA_CPP_PYTHON
    llm.default = small_model(LLAMA_CPP_PYTHON)
    evaluations = judge_four_at_once(llm, caplog)
    assert [e["status"] for e in evaluations] == ["pass"] * 4
    assert steps(llm) == ["json_schema"] + ["json_object+schema"] * 4
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


@pytest.mark.parametrize(
    "dialect", [LLAMA_CPP_PYTHON, behind_litellm(LLAMA_CPP_PYTHON), LLAMA_SERVER_2024, LITELLM_NO_RESPONSE_FORMAT]
)
def test_the_step_down_warning_is_one_short_line(
    llm: FakeOpenAIServer, dialect: Dialect, caplog: pytest.LogCaptureFixture
) -> None:
    llm.dialect = dialect
    llm.default = lambda request: PASS_VERDICT
    judge = judge_at(llm)
    with caplog.at_level(logging.WARNING, logger="simulator.llm.models"):
        judged(judge)
    warning = next(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "\n" not in warning and len(warning) < 400, warning
    assert "File " not in warning and "Available Model Group" not in warning and "Error code" not in warning
    assert warning.startswith(f"local-judge at {judge.chat_url} refused response_format json_schema (HTTP ")
    assert warning.endswith("sending response_format json_object with the schema from now on")
    if "llama-cpp-python" in dialect.name:
        assert "body.response_format.type: Input should be 'text' or 'json_object'" in warning
