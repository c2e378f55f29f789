"""`expect.reply_json`: path expectations on the app's raw JSON replies, e.g. the tools it reports
calling (`tools[*].name` contains `issue_refund`) or the citations it gives (`citations[0]` exists).

Like the text checks, each looks at `any` reply (the default), `every` reply or the `last` one; an
expectation that something is absent (`exists: false`) looks at every reply unless told otherwise.
The reply is the JSON answer an HTTP target received (`full_json_response.body`) or the dict a
callback returned.
"""

from __future__ import annotations

from typing import Any

from ..errors import FieldError, FieldErrors
from ..records import ConversationResult
from ..state.requests import list_items
from .base import FAIL, PASS, Check, CheckResult, app_turns
from .deterministic import reply_document
from .expectations import PathExpectation, Verdict, shown

SCOPES = ("any", "every", "last")
_SCOPE_TEXT = {"any": "any reply", "every": "every reply", "last": "the last reply"}


class ReplyJsonCheck(Check):
    kind = "reply_json"

    def __init__(self, expectation: PathExpectation, scope: str) -> None:
        self.expectation = expectation
        self.scope = scope
        super().__init__(f"reply_json {expectation.describe()} in {_SCOPE_TEXT[scope]}")

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        turns = app_turns(result)
        if self.scope == "last":
            turns = turns[-1:]
        if not turns:
            return self.verdict(FAIL, "the app gave no reply to check", turns=[])
        judged = [(turn["turn_number"], self.expectation.judge(reply_document(turn))) for turn in turns]
        if self.scope == "any":
            met = next((number for number, verdict in judged if verdict.ok), None)
            if met is not None:
                return self.verdict(
                    PASS, "ok", turn=met, found=shown(judged[[n for n, _ in judged].index(met)][1].found)
                )
            number, verdict = judged[-1]
            return self._failed(f"no reply has it; the last (turn {number}): {verdict.problem}", number, verdict)
        unmet = next(((number, verdict) for number, verdict in judged if not verdict.ok), None)
        if unmet is not None:
            return self._failed(f"turn {unmet[0]}: {unmet[1].problem}", *unmet)
        return self.verdict(PASS, "ok", turns=[number for number, _ in judged])

    def _failed(self, message: str, turn: int, verdict: Verdict) -> CheckResult:
        evidence: dict[str, Any] = {"turn": turn, "path": self.expectation.path_text, "found": shown(verdict.found)}
        evidence["expected"] = shown(self.expectation.expected)
        if verdict.missing:
            evidence["missing"] = verdict.missing
        return self.verdict(FAIL, message, **evidence)


def reply_json_checks(config: Any, source: str) -> list[Check]:
    """One check per item of `expect.reply_json` (one item or a list); `FieldErrors` names every bad item."""
    checks: list[Check] = []
    problems: list[FieldError] = []
    for item, where, prefix in list_items(config, source):
        try:
            checks.append(_reply_json_check(item, where))
        except FieldError as exc:
            problems.append(FieldError((*prefix, *exc.field), str(exc)))
    if problems:
        raise FieldErrors(problems)
    return checks


def _reply_json_check(item: Any, where: str) -> ReplyJsonCheck:
    if not isinstance(item, dict):
        raise FieldError((), f"{where}: must be a mapping with a path and an expectation")
    scope = item.get("in")
    if scope is not None and scope not in SCOPES:
        raise FieldError(("in",), f"{where}.in: must be one of {', '.join(SCOPES)}, got {scope!r}")
    expectation = PathExpectation.from_config({k: v for k, v in item.items() if k != "in"}, where, ("in",))
    if scope is None:
        scope = "every" if expectation.expected == {"exists": False} else "any"
    return ReplyJsonCheck(expectation, scope)
