"""LLM-judged checks: did the persona's task get done, and how well does a rubric hold.

The judge is asked for JSON (as structured output where the server supports it: the model's ladder,
`simulator.llm.response_formats`) and its answer is validated. An answer that is no valid verdict is
sent back once with what was wrong (a repair retry); a second one that is missing, malformed or out
of range is a check error, never a pass.
"""

from __future__ import annotations

import hashlib
import json
from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from ..errors import TurnError
from ..llm.thinking import only_thinking
from ..parsing import strict_json
from ..records import ConversationResult, Usage
from .base import ERROR, FAIL, PASS, Check, CheckResult

if TYPE_CHECKING:
    from ..llm.models import ModelReply

GOAL_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["pass", "fail"]},
        "reason": {"type": "string", "minLength": 1},
    },
    "required": ["verdict", "reason"],
    "additionalProperties": False,
}
RUBRIC_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "integer", "minimum": 1, "maximum": 5},
        "reason": {"type": "string", "minLength": 1},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}

#: bumped whenever the judge's prompt (JUDGE_SYSTEM, a check's `prompt`, the repair request) or how its
#: answer becomes a verdict (`decide`, the schemas, the repair retry) changes: a base run's verdicts
#: from another version are judged again
JUDGE_PROMPT_VERSION = 2

JUDGE_SYSTEM = (
    "You are a strict, fair evaluator of conversations between a user and a chat assistant. "
    "Judge only from the transcript: what the assistant actually said and did, not what it promised "
    "to do later. Answer with a JSON object only, no other text."
)


def transcript(result: ConversationResult) -> str:
    """The conversation as plain text for the judge."""
    lines = []
    for turn in result["conversation"]:
        who = "USER" if turn["actor"] == "user" else "ASSISTANT"
        error = turn.get("error")
        text = f"[no reply: {error.get('message', '')}]" if error else turn["response"]
        lines.append(f"[{turn['turn_number']}] {who}: {text}")
    return "\n".join(lines) or "(empty conversation)"


def _context(result: ConversationResult) -> str:
    meta = result["meta_data"]
    persona = meta.get("persona", {})
    return (
        f"The user is {persona.get('name', 'a user')}: {persona.get('profile', '')}\n"
        f"The user's task: {meta.get('task', '')}\n\nTranscript:\n{transcript(result)}"
    )


def parse_judgement(text: str, schema: dict[str, Any]) -> tuple[dict[str, Any] | None, str, str]:
    """(judgement, "", "") or (None, what was wrong, the check's message saying so with the answer
    quoted): tolerates code fences, nothing else."""
    cleaned = strict_json.without_fence(text)
    try:
        data = strict_json.loads(cleaned)
    except strict_json.JSONError as exc:
        # a repeated key is no verdict: `{"verdict": "fail", "verdict": "pass"}` must not read as a pass
        return None, str(exc), f"the judge's answer cannot be read as a verdict: {exc}: {text[:200]!r}"
    import jsonschema  # here, not at start-up: most commands never judge

    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        return None, exc.message, f"the judge's answer is not a valid verdict ({exc.message}): {text[:200]!r}"
    return data, "", ""


def repair_request(answer: str, why: str) -> list[dict[str, Any]]:
    """What the judge is told after an answer that is no verdict: its answer, and what was wrong."""
    return [
        {"role": "assistant", "content": answer},
        {
            "role": "user",
            "content": f"That answer cannot be used: {why[:300]}. Reply again with only the JSON object asked for, "
            "nothing else.",
        },
    ]


def _add_usage(first: dict[str, Any] | None, second: dict[str, Any] | None) -> dict[str, Any] | None:
    """The token counts of two completions together (the answer and its repair)."""
    if not first or not second:
        return first or second
    total = dict(second)
    for key in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens"):
        counts = [u.get(key) for u in (first, second)]
        if all(isinstance(c, int) and not isinstance(c, bool) for c in counts):
            total[key] = sum(counts)
    return total


_NO_USAGE: Usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "reasoning_tokens": 0}
#: a conversation the prompt is rendered for to fingerprint it: its text changing shows in the digest
_SAMPLE: ConversationResult = {
    "conversation_id": "sample",
    "conversation": [
        {"turn_number": 0, "actor": "user", "response": "USER", "request": None, "full_json_response": None},
        {"turn_number": 1, "actor": "assistant", "response": "APP", "request": None, "full_json_response": None},
    ],
    "meta_data": {
        "persona": {"name": "NAME", "profile": "PROFILE"},
        "task": "TASK",
        "stop_reason": "user_done",
        "turn_count": 2,
        "usage": {"user": _NO_USAGE, "assistant": _NO_USAGE, "total": _NO_USAGE},
        "latency_ms": {"per_turn": []},
    },
}


class JudgeCheck(Check):
    """Shared plumbing: ask the judge model, validate, turn the answer into a verdict."""

    schema: dict[str, Any] = {}
    schema_name = ""

    @property
    def needs_judge(self) -> bool:
        return True

    @abstractmethod
    def prompt(self, result: ConversationResult) -> str:
        """What the judge is asked about `result`."""

    @abstractmethod
    def decide(self, judgement: dict[str, Any]) -> CheckResult:
        """The verdict from a validated judgement."""

    def prompt_fingerprint(self) -> str:
        """A digest of what the judge is asked and how its answer is read (part of `config_sha`)."""
        material = [JUDGE_PROMPT_VERSION, JUDGE_SYSTEM, self.prompt(_SAMPLE), self.schema_name, self.schema]
        return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        judge = getattr(context, "judge", None)
        if judge is None:
            return self.verdict(ERROR, "no judge model configured; add a top-level 'judge' to the manifest")
        messages = [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": self.prompt(result)}]
        response_format = {
            "type": "json_schema",
            "json_schema": {"name": self.schema_name, "schema": self.schema, "strict": True},
        }
        reply = await self._ask(judge, messages, response_format)
        if isinstance(reply, CheckResult):
            return reply
        # the model's thinking is already apart (reply.reasoning): only the answer is parsed
        judgement, why, problem = parse_judgement(reply.content, self.schema)
        usage, repaired = reply.usage, None
        if judgement is None:
            # one repair retry: a model the server does not hold to the schema often gets it right
            # when told what was wrong (the ladder's lower steps; a server that ignores the schema)
            first = reply
            reply = await self._ask(judge, [*messages, *repair_request(first.content, why)], response_format)
            if isinstance(reply, CheckResult):
                return reply
            judgement, _, again = parse_judgement(reply.content, self.schema)
            if judgement is None:
                message = f"{again} (after one repair retry)"
                return self.verdict(ERROR, message, answer=reply.content[:500], first_answer=first.content[:500])
            usage, repaired = _add_usage(first.usage, reply.usage), problem
        checked = self.decide(judgement)
        checked.evidence.setdefault("judge_model", judge.name)
        if repaired:
            checked.evidence["repaired"] = repaired
        if usage:
            checked.evidence["usage"] = usage
        return checked

    async def _ask(
        self, judge: Any, messages: list[dict[str, Any]], response_format: dict[str, Any]
    ) -> ModelReply | CheckResult:
        """The judge's reply with an answer in it, or the check's error when there is none."""
        try:
            reply = await judge.complete(messages, response_format=response_format)
        except TurnError as exc:
            return self.verdict(ERROR, f"the judge failed: {exc}", reason=exc.reason)
        if reply.only_thinking:
            limit = judge.max_completion_tokens or judge.max_tokens
            message = only_thinking(f"the judge {judge.name}", "verdict", limit, reply.thinking_cut_off)
            return self.verdict(ERROR, message, reason="llm_error", reasoning=(reply.reasoning or "")[:500])
        return reply


class GoalCompletedCheck(JudgeCheck):
    kind = "goal_completed"
    schema = GOAL_SCHEMA
    schema_name = "goal_verdict"

    def __init__(self, config: Any, source: str) -> None:
        super().__init__("goal completed (judge)")

    def prompt(self, result: ConversationResult) -> str:
        return (
            f"{_context(result)}\n\nDid the user's task get done in this conversation? It is done only if the "
            "assistant actually completed it or gave the user everything needed; a promise to do it later, a "
            "refusal, or a wrong answer is not done. Reply as JSON: "
            '{"verdict": "pass" or "fail", "reason": "<one or two sentences citing the turn numbers>"}'
        )

    def decide(self, judgement: dict[str, Any]) -> CheckResult:
        status = PASS if judgement["verdict"] == "pass" else FAIL
        return self.verdict(status, judgement["reason"], reason=judgement["reason"], verdict=judgement["verdict"])


class RubricCheck(JudgeCheck):
    kind = "rubric"
    schema = RUBRIC_SCHEMA
    schema_name = "rubric_score"

    def __init__(self, config: Any, source: str) -> None:
        if isinstance(config, str):
            config = {"text": config}
        self.text = config["text"]
        self.threshold = config.get("threshold", 4)
        label = config.get("name") or (self.text if len(self.text) <= 60 else self.text[:57] + "...")
        super().__init__(f"rubric: {label} (>= {self.threshold})")

    def prompt(self, result: ConversationResult) -> str:
        return (
            f"{_context(result)}\n\nScore the ASSISTANT against this rubric, from 1 (not at all) to 5 (fully):\n"
            f"{self.text}\n\nReply as JSON: "
            '{"score": <integer 1-5>, "reason": "<one or two sentences citing the turn numbers>"}'
        )

    def decide(self, judgement: dict[str, Any]) -> CheckResult:
        score = judgement["score"]
        status = PASS if score >= self.threshold else FAIL
        message = f"score {score} (needs {self.threshold}): {judgement['reason']}"
        return self.verdict(status, message, score=score, threshold=self.threshold, reason=judgement["reason"])
