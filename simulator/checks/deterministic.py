"""Checks computed from the transcript alone: text, patterns, latency, turns, reply schema, stop reason."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..errors import ConfigError
from ..records import ConversationResult, Turn
from .base import ERROR, FAIL, PASS, Check, CheckResult, app_turns, snippet


def _values(config: Any) -> tuple[list[str], str | None, bool]:
    """(values, scope, case_sensitive) from the short or the long form of a text check."""
    if isinstance(config, dict):
        value = config["value"]
        return (
            ([value] if isinstance(value, str) else list(value)),
            config.get("in"),
            config.get("case_sensitive", False),
        )
    return ([config] if isinstance(config, str) else list(config)), None, False


class TextCheck(Check):
    """contains / not_contains / regex / not_regex on the app's replies.

    Positive checks pass when each value appears in any reply (scope `any`, the default), in
    every reply (`every`) or in the last one (`last`). Negative checks pass when no reply in
    scope (`every` reply by default, or the `last`) has the value.
    """

    def __init__(self, kind: str, config: Any, source: str) -> None:
        values, scope, case_sensitive = _values(config)
        self.kind = kind
        self.negative = kind.startswith("not_")
        self.is_regex = kind.endswith("regex")
        self.scope = scope or ("every" if self.negative else "any")
        if self.negative and self.scope == "any":
            raise ConfigError(f"{source}.{kind}.in: use 'every' (no reply may match) or 'last'")
        flags = 0 if case_sensitive else re.IGNORECASE
        self.patterns = []
        for value in values:
            try:
                self.patterns.append(re.compile(value if self.is_regex else re.escape(value), flags))
            except re.error as exc:
                raise ConfigError(f"{source}.{kind}: invalid regular expression {value!r}: {exc}") from None
        self.values = values
        label = " / ".join(f"'{v}'" for v in values)
        scope_text = {"any": "any reply", "every": "every reply", "last": "the last reply"}[self.scope]
        super().__init__(f"{kind} {label} in {scope_text}")

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        turns = app_turns(result)
        if self.scope == "last":
            turns = turns[-1:]
        if not turns:
            if self.negative:
                return self.verdict(PASS, "the app gave no reply, so none has it", turns=[])
            return self.verdict(FAIL, "the app gave no reply to check", turns=[])
        for pattern, value in zip(self.patterns, self.values, strict=True):
            hits = [(t, pattern.search(t["response"])) for t in turns]
            if self.negative:
                bad = next(((t, m) for t, m in hits if m), None)
                if bad:
                    turn, match = bad
                    return self.verdict(
                        FAIL,
                        f"turn {turn['turn_number']} has '{value}'",
                        turn=turn["turn_number"],
                        text=snippet(turn["response"], match.start(), match.end()),
                        value=value,
                    )
            elif self.scope == "any":
                if not any(m for _, m in hits):
                    return self.verdict(
                        FAIL,
                        f"no app reply has '{value}'",
                        turns=[t["turn_number"] for t in turns],
                        value=value,
                        text=snippet(turns[-1]["response"], 0, 0, 120),
                    )
            else:
                missing = next((t for t, m in hits if not m), None)
                if missing:
                    return self.verdict(
                        FAIL,
                        f"turn {missing['turn_number']} lacks '{value}'",
                        turn=missing["turn_number"],
                        text=snippet(missing["response"], 0, 0, 120),
                        value=value,
                    )
        return self.verdict(PASS, "ok", turns=[t["turn_number"] for t in turns])


class MaxLatencyCheck(Check):
    kind = "max_latency_ms"

    def __init__(self, config: Any, source: str) -> None:
        self.limit = float(config)
        super().__init__(f"every reply within {self.limit:g} ms")

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        turns = app_turns(result)
        slow = [t for t in turns if t.get("latency_ms", 0) > self.limit]
        if slow:
            worst = max(slow, key=lambda t: t["latency_ms"])
            return self.verdict(
                FAIL,
                f"turn {worst['turn_number']} took {worst['latency_ms']:.0f} ms (limit {self.limit:g})",
                turn=worst["turn_number"],
                latency_ms=worst["latency_ms"],
                limit=self.limit,
                slow_turns=[t["turn_number"] for t in slow],
            )
        slowest = max((t.get("latency_ms", 0) for t in turns), default=0)
        return self.verdict(PASS, "ok", max_latency_ms=slowest, limit=self.limit)


class TurnsCheck(Check):
    kind = "turns"

    def __init__(self, config: dict[str, int], source: str) -> None:
        self.min, self.max = config.get("min"), config.get("max")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ConfigError(f"{source}.turns: min ({self.min}) is greater than max ({self.max})")
        bounds = [f">= {self.min}" if self.min is not None else "", f"<= {self.max}" if self.max is not None else ""]
        super().__init__("turns " + " and ".join(b for b in bounds if b))

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        count = len(result["conversation"])
        if self.min is not None and count < self.min:
            return self.verdict(FAIL, f"{count} turns, fewer than {self.min}", turns=count)
        if self.max is not None and count > self.max:
            return self.verdict(FAIL, f"{count} turns, more than {self.max}", turns=count)
        return self.verdict(PASS, "ok", turns=count)


class StopReasonCheck(Check):
    kind = "stop_reason"

    def __init__(self, config: Any, source: str) -> None:
        self.allowed = [config] if isinstance(config, str) else list(config)
        super().__init__("ended by " + " or ".join(self.allowed))

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        reason = result["meta_data"]["stop_reason"]
        if reason in self.allowed:
            return self.verdict(PASS, "ok", stop_reason=reason)
        detail = result["meta_data"].get("stop_detail")
        return self.verdict(
            FAIL, f"ended by {reason}, expected {' or '.join(self.allowed)}", stop_reason=reason, detail=detail
        )


def reply_document(turn: Turn) -> Any:
    """The app's JSON reply: an HTTP target keeps it under `body`; a callback's dict is the reply."""
    raw = turn.get("full_json_response")
    if isinstance(raw, dict) and "status" in raw and "body" in raw:
        return raw["body"]
    return raw


class ReplySchemaCheck(Check):
    kind = "reply_schema"

    def __init__(self, config: dict[str, Any], source: str) -> None:
        import jsonschema  # here, not at start-up: most runs have no reply_schema check

        try:
            jsonschema.Draft202012Validator.check_schema(config)
        except jsonschema.SchemaError as exc:
            raise ConfigError(f"{source}.reply_schema: not a valid JSON Schema: {exc.message}") from None
        self.validator = jsonschema.Draft202012Validator(config)
        super().__init__("replies match reply_schema")

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        import jsonschema.exceptions

        turns = app_turns(result)
        for turn in turns:
            error = jsonschema.exceptions.best_match(self.validator.iter_errors(reply_document(turn)))
            if error is not None:
                where = "/".join(str(p) for p in error.absolute_path) or "(the reply)"
                return self.verdict(
                    FAIL,
                    f"turn {turn['turn_number']}: {where}: {error.message}",
                    turn=turn["turn_number"],
                    path=where,
                    error=error.message,
                )
        return self.verdict(PASS, "ok", turns=[t["turn_number"] for t in turns])


class NoErrorsCheck(Check):
    """With `no_errors: true` an app error or app timeout is the app misbehaving: a failure."""

    kind = "no_errors"

    def __init__(self, config: Any, source: str) -> None:
        self.enabled = bool(config)
        super().__init__("no app errors")

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        failed = [t for t in result["conversation"] if t.get("error")]
        if not failed:
            return self.verdict(PASS, "ok")
        turn = failed[0]
        error: Mapping[str, Any] = turn.get("error") or {}
        status = FAIL if turn["actor"] == "assistant" else ERROR
        return self.verdict(
            status,
            f"turn {turn['turn_number']}: {error.get('message', '')}",
            turn=turn["turn_number"],
            reason=error.get("reason"),
        )
