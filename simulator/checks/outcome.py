"""`expect.outcome`: after the conversation, ask the app (or any URL) about its state and check the
JSON answer, so a reply that claims "your refund is on its way" is held to what the app did.

Each item is a state request (`url`, `method`, `headers`, `body`; see `simulator.state.requests`)
and a path expectation (`path`, `equals`, `contains`, ...; see `expectations`). An answer that does
not come (the endpoint down, unreachable, an error status, not JSON) is a check error: no verdict,
not the app's failure. An expectation not met is a failure, with the URL (no secrets), the status,
the value found and what was expected as evidence.

The answers come from `context.state` (`OutcomeSource`): during a run, requests sent once per
conversation; in `simulator check`, the answers the run recorded (or, with `--requery`, new ones).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ..errors import FieldError, FieldErrors
from ..records import ConversationResult
from ..state.client import Exchange
from ..state.requests import KEYS, StateRequest, list_items
from .base import ERROR, FAIL, PASS, Check, CheckResult
from .expectations import EXPECTATIONS, PathExpectation, shown


class OutcomeSource(Protocol):
    """Where outcome checks get the app's answers for one conversation."""

    async def fetch(self, request: StateRequest) -> Exchange:
        """The answer to `request` (an `Exchange` whose `error` says why there is none)."""
        ...


class OutcomeCheck(Check):
    kind = "outcome"

    def __init__(self, request: StateRequest, expectation: PathExpectation) -> None:
        self.request = request
        self.expectation = expectation
        super().__init__(f"outcome {request.label}: {expectation.describe()}")

    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        source: OutcomeSource | None = getattr(context, "state", None)
        evidence: dict[str, Any] = {"method": self.request.method, "path": self.expectation.path_text}
        evidence["expected"] = shown(self.expectation.expected)
        if source is None:
            return self.verdict(
                ERROR, "nothing can ask the app about its state here (EvaluationContext.state is not set)", **evidence
            )
        exchange = await source.fetch(self.request)
        evidence.update(url=exchange.record.get("url"), http_status=exchange.record.get("status"))
        if exchange.error is not None:
            return self.verdict(ERROR, exchange.error, **evidence)
        verdict = self.expectation.judge(exchange.document)
        evidence["found"] = shown(verdict.found)
        if verdict.missing:
            evidence["missing"] = verdict.missing
        if verdict.ok:
            return self.verdict(PASS, "ok", **evidence)
        where = f"{self.request.method} {evidence['url']} (HTTP {evidence['http_status']})"
        return self.verdict(FAIL, f"{where}: {verdict.problem}", **evidence)


def outcome_checks(config: Any, source: str) -> list[Check]:
    """One check per item of `expect.outcome` (one item or a list); `FieldErrors` names every bad item."""
    checks: list[Check] = []
    problems: list[FieldError] = []
    for item, where, prefix in list_items(config, source):
        try:
            request = StateRequest.from_config(item, where, others=("path", *EXPECTATIONS))
            checks.append(OutcomeCheck(request, PathExpectation.from_config(_only(item, KEYS), where)))
        except FieldError as exc:
            problems.append(FieldError((*prefix, *exc.field), str(exc)))
    if problems:
        raise FieldErrors(problems)
    return checks


def _only(item: Mapping[str, Any], leave: tuple[str, ...]) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in leave}
