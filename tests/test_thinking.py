"""Reasoning models' visible thinking: kept out of what is used, kept in the record, its tokens counted.

The local OpenAI-compatible server answers in each shape the servers use: `<think>...</think>` at
the start of the content, unterminated (max_tokens ran out while thinking), a closing tag alone,
`reasoning_content` (llama.cpp, vLLM) and `reasoning` (Ollama) beside the content.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from simulator import ScriptedUser, Simulator
from simulator.checks import EvaluationContext, build_checks, evaluate
from simulator.llm.models import OpenAIChatCompletionsModel
from simulator.llm.thinking import count_reasoning, estimate_tokens, split_thinking
from simulator.records.result import validate_result
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


def play_user(server: FakeOpenAIServer, turns: int = 2, **options: Any) -> tuple[dict[str, Any], list[str]]:
    """A conversation with an LLM user on `server` and an app that notes every message it gets."""
    received: list[str] = []

    def app(question: str, history: list, meta: dict) -> str:
        received.append(question)
        return "Sure, I can help with that refund."

    result = Simulator(simulate_callback=app, userConnection=model(server, **options)).simulate(
        "jane", "get a refund for order 5", turns
    )
    return result, received


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


# --- the simulated user --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", list(SHAPES))
def test_user_thinking_never_reaches_the_app_and_is_recorded(llm: FakeOpenAIServer, shape: str) -> None:
    llm.script(SHAPES[shape])
    result, received = play_user(llm)
    assert received == [MESSAGE]
    turn = result["conversation"][0]
    assert turn["response"] == MESSAGE and turn["reasoning"] == THOUGHT
    raw = turn["full_json_response"]["choices"][0]["message"]  # the answer as the server sent it
    assert {k: raw.get(k) for k in ("content", "reasoning_content", "reasoning")} == {
        "content": SHAPES[shape].content,
        "reasoning_content": SHAPES[shape].reasoning_content,
        "reasoning": SHAPES[shape].reasoning,
    }
    assert turn["usage"]["reasoning_tokens"] == min(estimate_tokens(THOUGHT), turn["usage"]["completion_tokens"])
    assert turn["usage"]["reasoning_tokens_estimated"] is True
    assert "reasoning" not in result["conversation"][1]
    validate_result(result)


def test_thinking_with_lone_surrogates_can_be_written(llm: FakeOpenAIServer) -> None:
    llm.script(Reply(content=MESSAGE, reasoning_content="half an emoji: \ud83d"))
    result, _ = play_user(llm)
    assert result["conversation"][0]["reasoning"] == "half an emoji: \ufffd"
    assert "lone surrogates" in result["conversation"][0]["notes"][0]
    json.dumps(result, ensure_ascii=False).encode("utf-8")


def test_a_stop_marker_inside_the_thinking_is_no_signal(llm: FakeOpenAIServer) -> None:
    llm.script(Reply(content=f"<think>It is too early for ###STOP### here.</think>{MESSAGE}"), "Thanks! ###STOP###")
    result, received = play_user(llm, turns=6)
    assert received == [MESSAGE]
    assert result["meta_data"]["stop_reason"] == "user_done" and len(result["conversation"]) == 3


def test_reported_reasoning_tokens_are_used(llm: FakeOpenAIServer) -> None:
    usage = {
        "prompt_tokens": 120,
        "completion_tokens": 80,
        "total_tokens": 200,
        "completion_tokens_details": {"reasoning_tokens": 64},
    }
    llm.script(Reply(content=MESSAGE, reasoning_content=THOUGHT, usage=usage))
    result, _ = play_user(llm)
    recorded = result["conversation"][0]["usage"]
    assert recorded["reasoning_tokens"] == 64 and "reasoning_tokens_estimated" not in recorded


def test_a_reply_that_is_only_thinking_is_asked_for_again(llm: FakeOpenAIServer) -> None:
    def tokens(completion: int) -> dict[str, int]:
        return {"prompt_tokens": 100, "completion_tokens": completion, "total_tokens": 100 + completion}

    llm.script(
        Reply(content=f"<think>{THOUGHT} And then", finish_reason="length", usage=tokens(30)),
        Reply(content="", reasoning_content=THOUGHT, usage=tokens(20)),
        Reply(content=f"<think>{THOUGHT}</think>{MESSAGE}", usage=tokens(25)),
    )
    result, received = play_user(llm)
    assert received == [MESSAGE]
    turn = result["conversation"][0]
    assert turn["response"] == MESSAGE and turn["reasoning"] == THOUGHT
    assert turn["notes"] == [
        "the reply was only thinking, with no message after it (max_tokens ran out while the model was still thinking)",
        "the reply was only thinking, with no message after it",
    ]
    assert "only thinking" in llm.chat_requests[1].messages[-1]["content"]  # the retry says what was wrong
    # every try's tokens, each counted once: the thinking is inside completion_tokens already
    assert turn["usage"]["completion_tokens"] == 75 and turn["usage"]["total_tokens"] == 375
    thought_tokens = estimate_tokens(f"{THOUGHT} And then") + 2 * estimate_tokens(THOUGHT)
    assert turn["usage"]["reasoning_tokens"] == thought_tokens and turn["usage"]["reasoning_tokens_estimated"]
    totals = result["meta_data"]["usage"]
    assert totals["user"] == {
        "prompt_tokens": 300,
        "completion_tokens": 75,
        "total_tokens": 375,
        "reasoning_tokens": thought_tokens,  # summed apart: what thinking cost, inside completion_tokens
    }
    app_tokens = totals["assistant"]["total_tokens"]
    assert totals["total"]["total_tokens"] == 375 + app_tokens
    validate_result(result)


def test_a_user_model_that_only_thinks_is_an_llm_error_that_says_what_to_do(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: Reply(content=f"<think>{THOUGHT} Hmm, maybe", finish_reason="length")
    result, received = play_user(llm, max_tokens=64)
    assert received == []
    assert len(llm.chat_requests) == 3  # the first try and two more, as for any invalid reply
    meta = result["meta_data"]
    assert meta["stop_reason"] == "llm_error"
    message = meta["error"]["message"]
    assert "only thinking" in message and "raise its max_tokens (now 64)" in message
    assert "thinking mode off" in message
    failed = result["conversation"][0]
    assert failed["error"]["reason"] == "llm_error" and failed["reasoning"] == f"{THOUGHT} Hmm, maybe"
    assert "reasoning" not in failed["error"]
    validate_result(result)


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


# --- a model as the app ----------------------------------------------------------------------------

ANSWER = "Your refund for order 5 is approved."
APP_THOUGHT = "Order 5 is eligible; the internal code is RF-77, do not say it."


@pytest.mark.parametrize(
    "reply",
    [
        Reply(content=f"<think>{APP_THOUGHT}</think>\n\n{ANSWER}"),
        Reply(content=ANSWER, reasoning_content=APP_THOUGHT),
        Reply(content=ANSWER, reasoning=APP_THOUGHT),
    ],
    ids=["think_tags", "reasoning_content", "reasoning"],
)
def test_a_model_apps_thinking_is_recorded_not_shown_to_the_user(
    llm: FakeOpenAIServer, llm_app: FakeOpenAIServer, reply: Reply
) -> None:
    llm.script(MESSAGE, "Great, thanks! ###STOP###")
    llm_app.script(reply)
    result = Simulator(systemConnection=model(llm_app), userConnection=model(llm)).simulate("jane", "get a refund", 6)
    answer = result["conversation"][1]
    assert answer["actor"] == "assistant" and answer["response"] == ANSWER and answer["reasoning"] == APP_THOUGHT
    assert answer["usage"]["reasoning_tokens_estimated"] is True
    user_prompt = json.dumps(llm.chat_requests[1].messages)
    assert ANSWER in user_prompt and "RF-77" not in user_prompt
    assert result["meta_data"]["stop_reason"] == "user_done"
    validate_result(result)


def test_a_model_app_that_only_thinks_is_an_app_error(llm: FakeOpenAIServer, llm_app: FakeOpenAIServer) -> None:
    llm.script(MESSAGE)
    llm_app.script(Reply(content=f"<think>{APP_THOUGHT} Next I", finish_reason="length"))
    result = Simulator(systemConnection=model(llm_app, max_tokens=128), userConnection=model(llm)).simulate(
        "jane", "get a refund", 6
    )
    meta = result["meta_data"]
    assert meta["stop_reason"] == "app_error"
    assert "only thinking" in meta["error"]["message"] and "(now 128)" in meta["error"]["message"]
    assert result["conversation"][1]["reasoning"] == f"{APP_THOUGHT} Next I"
    validate_result(result)
