"""Turn a simulation's `expect:` into checks and a conversation into a verdict with evidence."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..llm.models import OpenAIChatCompletionsModel
from ..records import CheckOutcome, ConversationResult, Evaluation
from ..records.result import ERROR_REASONS
from .base import ERROR, FAIL, PASS, Check
from .deterministic import MaxLatencyCheck, NoErrorsCheck, ReplySchemaCheck, StopReasonCheck, TextCheck, TurnsCheck
from .judge import GoalCompletedCheck, RubricCheck
from .outcome import OutcomeSource, outcome_checks
from .reply_json import reply_json_checks
from .reuse import EXPECT_ATTRIBUTE, BaseVerdicts, config_sha


def _text(kind: str) -> Callable[[Any, str], list[Check]]:
    return lambda config, source: [TextCheck(kind, config, source)]


#: expect key -> factory of checks; a new kind is one class, one line here and its schema entry
CHECK_KINDS: dict[str, Callable[[Any, str], list[Check]]] = {
    "contains": _text("contains"),
    "not_contains": _text("not_contains"),
    "regex": _text("regex"),
    "not_regex": _text("not_regex"),
    "max_latency_ms": lambda config, source: [MaxLatencyCheck(config, source)],
    "turns": lambda config, source: [TurnsCheck(config, source)],
    "stop_reason": lambda config, source: [StopReasonCheck(config, source)],
    "reply_schema": lambda config, source: [ReplySchemaCheck(config, source)],
    "no_errors": lambda config, source: [NoErrorsCheck(config, source)] if config else [],
    "goal_completed": lambda config, source: [GoalCompletedCheck(config, source)] if config else [],
    "reply_json": lambda config, source: reply_json_checks(config, f"{source}.reply_json"),
    "outcome": lambda config, source: outcome_checks(config, f"{source}.outcome"),
    "rubric": lambda config, source: [
        RubricCheck(item, f"{source}.rubric[{i}]")
        for i, item in enumerate(config if isinstance(config, list) else [config])
    ],
}


def build_checks(expect: dict[str, Any] | None, source: str = "expect") -> list[Check]:
    """The checks of one simulation (config already schema-validated)."""
    checks: list[Check] = []
    for key, config in (expect or {}).items():
        made = CHECK_KINDS[key](config, source)
        # each check's own part of the key's configuration: one item of a list, else all of it
        parts = config if isinstance(config, list) and len(config) == len(made) else [config] * len(made)
        for check, part in zip(made, parts, strict=True):
            setattr(check, EXPECT_ATTRIBUTE, {key: part})
        checks.extend(made)
    return checks


#: the evaluation of a conversation the run was interrupted in before it could be judged
INTERRUPTED_EVALUATION: Evaluation = {
    "status": ERROR,
    "checks": [],
    "failed": [],
    "errors": ["the run was interrupted before this conversation was judged"],
}


@dataclass
class EvaluationContext:
    """What checks may use beyond the transcript: the judge model, and the app's answers about its
    state after the conversation (outcome checks; set per conversation)."""

    judge: OpenAIChatCompletionsModel | None = None
    state: OutcomeSource | None = None


async def _outcome(check: Check, result: ConversationResult, context: EvaluationContext) -> CheckOutcome:
    """One check's result with its configuration's fingerprint."""
    return {**(await check.evaluate(result, context)).to_dict(), "config_sha": config_sha(check, context.judge)}


async def evaluate(
    result: ConversationResult,
    checks: list[Check],
    context: EvaluationContext,
    baseline: BaseVerdicts | None = None,
) -> Evaluation:
    """The conversation's verdict: `pass`, `fail` (the app misbehaved) or `error` (no verdict).

    Any failed check fails the conversation; otherwise a check without a verdict makes it an error.

    A conversation that ended in an error is an error, unless `no_errors` turns an app-side
    error into a failure. Checks run concurrently; judge calls are the slow part. With `baseline`
    (the base run's verdicts on the same conversation: an identical replay), a judge check whose
    configuration is unchanged takes the base's verdict instead of a judge call (`simulator.checks.reuse`).
    """
    meta = result["meta_data"]
    errored = meta["stop_reason"] in ERROR_REASONS
    no_errors = [c for c in checks if isinstance(c, NoErrorsCheck)]
    if errored:
        results = [await _outcome(c, result, context) for c in no_errors]
        failures = [r for r in results if r["status"] == FAIL]
        status = FAIL if failures else ERROR
        error: Mapping[str, Any] = meta.get("error") or {}
        message = error.get("message") or meta.get("stop_detail") or meta["stop_reason"]
        return {
            "status": status,
            "checks": results,
            "failed": [r["name"] for r in failures],
            "errors": [] if failures else [f"conversation ended with {meta['stop_reason']}: {message}"],
        }
    reused = [baseline.take(c, config_sha(c, context.judge)) if baseline else None for c in checks]
    live = await asyncio.gather(
        *(_outcome(c, result, context) for c, r in zip(checks, reused, strict=True) if r is None)
    )
    pending = iter(live)
    results = [r if r is not None else next(pending) for r in reused]
    failed = [r["name"] for r in results if r["status"] == FAIL]
    errors = [f"{r['name']}: {r['message']}" for r in results if r["status"] == ERROR]
    status = FAIL if failed else ERROR if errors else PASS  # a known failure outranks a missing verdict
    return {"status": status, "checks": results, "failed": failed, "errors": errors}
