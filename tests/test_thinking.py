"""Reasoning models' visible thinking: kept out of what is used, kept in the record, its tokens counted.

The local OpenAI-compatible server answers in each shape the servers use: `<think>...</think>` at
the start of the content, unterminated (max_tokens ran out while thinking), a closing tag alone,
`reasoning_content` (llama.cpp, vLLM) and `reasoning` (Ollama) beside the content.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simulator import ScriptedUser, Simulator
from simulator.checks import EvaluationContext, build_checks, evaluate
from simulator.models import OpenAIChatCompletionsModel
from simulator.thinking import count_reasoning, estimate_tokens, split_thinking
from tests.servers.openai_server import FakeOpenAIServer, Reply

THOUGHT = "Jane wants her money back. I should mention order 5 but not the date yet."
MESSAGE = "Hi, I'd like a refund for order 5, please."

#: a user reply in each shape: (reply, the thinking it holds)
SHAPES = {
    "think_tags": Reply(content=f"<think>\n{THOUGHT}\n</think>\n\n{MESSAGE}"),
    "closing_tag_only": Reply(content=f"{THOUGHT}\n</think>\n\n{MESSAGE}"),
    "reasoning_content": Reply(content=MESSAGE, reasoning_content=THOUGHT),
    "reasoning": Reply(content=MESSAGE, reasoning=THOUGHT),
}


def model(server: FakeOpenAIServer, **options: Any) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(endpoint_url=server.openai_base_url, name="qwen3-8b", max_retries=0, **options)


# --- splitting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "content", "reasoning", "cut_off"),
    [
        ({"content": "<think>a plan</think>\n\nHello"}, "Hello", "a plan", False),
        ({"content": "  <THINK>\nplan\n</THINK>Hello  "}, "Hello  ", "plan", False),
        ({"content": "<think>still going, no end"}, "", "still going, no end", True),
        ({"content": "<think>"}, "", None, True),
        ({"content": "plan\n</think>\n\nHello"}, "Hello", "plan", False),
        ({"content": "<think>\n\n</think>\n\nHello"}, "Hello", None, False),  # Qwen3 with thinking off
        ({"content": "Hello", "reasoning_content": "plan"}, "Hello", "plan", False),
        ({"content": "Hello", "reasoning": "plan"}, "Hello", "plan", False),
        ({"content": "Hello", "reasoning_content": "plan", "reasoning": "plan"}, "Hello", "plan", False),
        ({"content": None, "reasoning_content": "plan"}, "", "plan", False),
        ({"content": "<think>b</think>Hello", "reasoning_content": "a"}, "Hello", "a\n\nb", False),
        ({"content": "I think <think> is a tag"}, "I think <think> is a tag", None, False),
        ({"content": "Hello"}, "Hello", None, False),
    ],
)
def test_split_thinking(message: dict, content: str, reasoning: str | None, cut_off: bool) -> None:
    thinking = split_thinking(message)
    assert (thinking.content, thinking.reasoning, thinking.cut_off) == (content, reasoning, cut_off)


def test_token_estimate_and_reported_count() -> None:
    assert estimate_tokens("") == 0
    assert estimate_tokens("a" * 400) == 100  # about four characters a token
    assert estimate_tokens("用户想要退款") == 6  # a token a CJK character
    reported = {"completion_tokens": 90, "completion_tokens_details": {"reasoning_tokens": 60}}
    assert count_reasoning(reported, "x" * 400) == {**reported, "reasoning_tokens": 60}
    assert count_reasoning({"completion_tokens": 9}, "x" * 400) == {
        "completion_tokens": 9,
        "reasoning_tokens": 9,  # never more than the completion
        "reasoning_tokens_estimated": True,
    }
    zero = {"completion_tokens": 500, "completion_tokens_details": {"reasoning_tokens": 0}}
    assert count_reasoning(zero, "x" * 40)["reasoning_tokens"] == 10  # a 0 beside thinking is no count
    assert count_reasoning(zero, None) == zero
    assert count_reasoning(None, "x" * 8) == {"reasoning_tokens": 2, "reasoning_tokens_estimated": True}
    assert count_reasoning(None, None) is None


# --- the judge -----------------------------------------------------------------------------------

VERDICT = '{"verdict": "pass", "reason": "Turn 1 approves the refund."}'
JUDGE_SHAPES = {
    "think_tags": Reply(content=f"<think>Turn 1 says approved {{not json}}.</think>\n{VERDICT}"),
    "closing_tag_only": Reply(content=f"Turn 1 says approved.</think>\n\n{VERDICT}"),
    "reasoning_content": Reply(content=VERDICT, reasoning_content="Turn 1 says approved."),
    "reasoning": Reply(content=VERDICT, reasoning="Turn 1 says approved."),
}


def judge(server: FakeOpenAIServer) -> dict[str, Any]:
    result = Simulator(
        simulate_callback=lambda q, h, m: "Your refund is approved.", userConnection=ScriptedUser(["refund please"])
    ).simulate("jane", "get a refund", 2)
    context = EvaluationContext(judge=model(server))
    return asyncio.run(evaluate(result, build_checks({"goal_completed": True}), context))


@pytest.mark.parametrize("shape", list(JUDGE_SHAPES))
def test_the_judges_thinking_is_not_parsed(llm: FakeOpenAIServer, shape: str) -> None:
    llm.script(JUDGE_SHAPES[shape])
    evaluation = judge(llm)
    assert evaluation["status"] == "pass", evaluation
    evidence = evaluation["checks"][0]["evidence"]
    assert evidence["reason"] == "Turn 1 approves the refund."
    assert evidence["usage"]["reasoning_tokens"] > 0


def test_a_judge_that_only_thinks_is_a_check_error(llm: FakeOpenAIServer) -> None:
    llm.script(Reply(content="<think>Turn 1 says approved, so the verdict is", finish_reason="length"))
    evaluation = judge(llm)
    assert evaluation["status"] == "error"
    assert "only thinking" in evaluation["errors"][0] and "max_tokens" in evaluation["errors"][0]
