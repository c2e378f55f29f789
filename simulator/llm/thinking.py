"""Visible thinking: the thoughts a reasoning model's answer carries besides the answer itself.

Reasoning models served by llama.cpp, vLLM or Ollama (DeepSeek-R1 distills, Qwen3 in thinking
mode) return their thoughts in one of two ways:

- inline, as `<think>...</think>` at the start of `message.content`. When `max_tokens` cuts the
  thinking off there is no `</think>` and all the content is thinking. Chat templates that open
  the `<think>` themselves (DeepSeek-R1's) leave only the closing tag in the content.
- beside the content, in `message.reasoning_content` (llama.cpp, vLLM) or `message.reasoning`
  (Ollama, newer vLLM).

What a simulation uses (the simulated user's message to the app, the judge's JSON, a model app's
reply) is the visible answer only; the thoughts are kept in the record as `reasoning`.
`split_thinking` is the one place that tells them apart.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_OPEN = re.compile(r"\A\s*<think>", re.IGNORECASE)
_CLOSE = re.compile(r"</think>", re.IGNORECASE)
#: the message fields servers put thoughts in, in the order they are kept
REASONING_FIELDS = ("reasoning_content", "reasoning")
#: first code point counted as one token by `estimate_tokens` (CJK radicals onwards)
_WIDE = 0x2E80


@dataclass(frozen=True)
class Thinking:
    """An answer's message split in two: what it says, and what the model thought first."""

    content: str
    """The visible answer: the content without its thinking (empty when it was all thinking)."""
    reasoning: str | None
    """The thinking text, None when there was none."""
    cut_off: bool = False
    """The inline thinking never ended (`<think>` without `</think>`): `max_tokens` ran out in it."""


def split_thinking(message: Mapping[str, Any]) -> Thinking:
    """The visible answer and the thinking of an OpenAI-style `choices[0].message`."""
    content = message.get("content")
    content = content if isinstance(content, str) else ""
    thoughts: list[str] = []
    for key in REASONING_FIELDS:
        value = message.get(key)
        if isinstance(value, str) and value.strip() and value.strip() not in thoughts:
            thoughts.append(value.strip())
    visible, inline, cut_off = content, "", False
    opened = _OPEN.match(content)
    if opened:
        rest = content[opened.end() :]
        closed = _CLOSE.search(rest)
        if closed is None:
            inline, visible, cut_off = rest, "", True
        else:
            inline, visible = rest[: closed.start()], rest[closed.end() :].lstrip()
    else:
        closed = _CLOSE.search(content)
        if closed is not None and "<think>" not in content[: closed.start()].lower():
            inline, visible = content[: closed.start()], content[closed.end() :].lstrip()
    if inline.strip():
        thoughts.append(inline.strip())
    return Thinking(content=visible, reasoning="\n\n".join(thoughts) or None, cut_off=cut_off)


def estimate_tokens(text: str) -> int:
    """A cheap count of the tokens in `text`, for servers that do not report reasoning tokens.

    About four characters a token for English and code (the usual rule of thumb for BPE
    vocabularies), and a token for each CJK character, which those vocabularies split about that
    finely (Qwen models often think in Chinese). No tokenizer is used: the model's own is unknown
    (a local model's vocabulary is not tiktoken's), and an estimate is not worth a dependency.
    """
    wide = sum(1 for char in text if ord(char) >= _WIDE)
    return wide + math.ceil((len(text) - wide) / 4)


def count_reasoning(usage: Mapping[str, Any] | None, reasoning: str | None) -> dict[str, Any] | None:
    """`usage` with the answer's thinking counted as `reasoning_tokens`.

    The server's `completion_tokens_details.reasoning_tokens` when it reports some; otherwise,
    when there is thinking text, an estimate from it (`estimate_tokens`, never more than the
    reported `completion_tokens`) flagged `reasoning_tokens_estimated: true`. A reported 0 beside
    thinking text is a server that does not count them, so it is estimated too. The thinking is
    already part of `completion_tokens` (servers count every generated token there), so nothing
    else changes and totals summed over `prompt/completion/total_tokens` stay right.
    """
    details = (usage or {}).get("completion_tokens_details")
    reported = details.get("reasoning_tokens") if isinstance(details, Mapping) else None
    if not isinstance(reported, int) or isinstance(reported, bool) or reported < 0:
        reported = None
    if reported:
        return {**(usage or {}), "reasoning_tokens": reported}
    if not reasoning:
        return dict(usage) if usage is not None else None
    estimate = estimate_tokens(reasoning)
    completion = (usage or {}).get("completion_tokens")
    if isinstance(completion, int) and not isinstance(completion, bool) and completion >= 0:
        estimate = min(estimate, completion)
    return {**(usage or {}), "reasoning_tokens": estimate, "reasoning_tokens_estimated": True}


def only_thinking(who: str, answer: str, max_tokens: int | None, cut_off: bool) -> str:
    """What to say when `who` thought and gave no `answer`, and what to do about it."""
    cut = " (max_tokens ran out while it was still thinking)" if cut_off else ""
    return (
        f"{who} returned only thinking, with no {answer} after it{cut}: raise its max_tokens (now {max_tokens}) "
        f"so the {answer} fits after the thinking, or turn its thinking mode off (Qwen3: /no_think in the prompt)"
    )
