"""The judge's structured output on servers that cannot do it: json_schema, then json_object, then none.

The local server answers as llama-cpp-python's does: a FastAPI validation body for a
`response_format` it does not know, with HTTP 500 (which the SDK would retry) or 422.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import pytest

from simulator import ScriptedUser, Simulator
from simulator.checks import EvaluationContext, build_checks, evaluate
from simulator.models import OpenAIChatCompletionsModel
from tests.servers.openai_server import FakeOpenAIServer, RecordedRequest, Reply

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
    with caplog.at_level(logging.WARNING, logger="simulator.models"):
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
    with caplog.at_level(logging.WARNING, logger="simulator.models"):
        first = judged(judge, reply="We will look into it.")
    assert first["status"] == "fail", first
    assert first["checks"][0]["message"] == "Turn 1 only promises a refund."
    assert formats(llm) == ["json_schema", "json_object", None]
    assert "response_format" not in llm.chat_requests[-1].body
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "sending no response_format" in warnings[1]

    judged(judge)
    assert formats(llm) == ["json_schema", "json_object", None, None]


def test_concurrent_conversations_share_what_the_first_learns(
    llm: FakeOpenAIServer, caplog: pytest.LogCaptureFixture
) -> None:
    llm.default = rejecting({"json_schema"}, 500, PASS_VERDICT)
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

    with caplog.at_level(logging.WARNING, logger="simulator.models"):
        evaluations = asyncio.run(judge_all())
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
    assert formats(llm) == ["json_schema", "json_object", None]


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
