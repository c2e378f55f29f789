"""From conversation verdicts to simulation verdicts, pass@k / pass^k, and the run's gate."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping
from math import comb
from typing import Any

from ..records import ConversationResult, GateConfig, GateVerdict, SimulationVerdict
from .base import ERROR, FAIL, PASS

DEFAULT_GATE: GateConfig = {"min_pass_rate": 1.0, "max_error_rate": 0.0, "required": []}
MAX_K = 10


def pass_hat_k(n: int, c: int, k: int) -> float | None:
    """τ-bench's pass^k: the chance that k runs drawn from n all pass, C(c,k)/C(n,k)."""
    if n <= 0 or k > n:
        return None
    return comb(c, k) / comb(n, k)


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """pass@k: the chance that at least one of k runs drawn from n passes, 1 - C(n-c,k)/C(n,k)."""
    if n <= 0 or k > n:
        return None
    return 1 - comb(n - c, k) / comb(n, k)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


#: decimals a stored run rate keeps
RATE_DIGITS = 4


def _rate_down(count: int, total: int) -> float:
    """count/total cut (not rounded) to RATE_DIGITS: a pass rate just below its gate stays below it."""
    return count * 10**RATE_DIGITS // total / 10**RATE_DIGITS


def _rate_up(count: int, total: int) -> float:
    """count/total raised to RATE_DIGITS: an error rate just above its gate stays above it."""
    return -(-count * 10**RATE_DIGITS // total) / 10**RATE_DIGITS


def percent(value: float, against: float | None = None) -> str:
    """`value` (0..1) as a percentage with as few decimals as tell the truth: 0% and 100% only when
    exact, and never on the other side of `against` (the gate's threshold) than the value is; a
    threshold itself, `percent(t, t)`, is shown as it is (up to 4 decimals: 99.5%, not 100%)."""
    text = f"{value:.0%}"
    for digits in range(4):
        text = f"{value:.{digits}%}"
        shown = float(text[:-1]) / 100
        if math.isclose(shown, value, rel_tol=0, abs_tol=1e-12):
            return text
        crossed = against is not None and (shown > against) - (shown < against) != (value > against) - (value < against)
        if not crossed and shown not in (0.0, 1.0):
            return text
    return text


def simulation_verdict(results: list[ConversationResult]) -> SimulationVerdict:
    """Pass/fail/error counts of one simulation's conversations, its rates and its own verdict."""
    evaluations: list[Mapping[str, Any]] = [r.get("evaluation") or {} for r in results]
    statuses = [evaluation.get("status", ERROR) for evaluation in evaluations]
    failed_checks: dict[str, int] = {}
    for evaluation in evaluations:
        for name in evaluation.get("failed", []):
            failed_checks[name] = failed_checks.get(name, 0) + 1
    meta: Mapping[str, Any] = results[0]["meta_data"] if results else {}
    return verdict_from_counts(
        statuses.count(PASS),
        statuses.count(FAIL),
        statuses.count(ERROR),
        min_passes=meta.get("min_passes"),
        required=bool(meta.get("required")),
        failed_checks=failed_checks,
    )


def verdict_from_counts(
    passes: int,
    failures: int,
    errors: int,
    *,
    min_passes: int | None = None,
    required: bool = False,
    failed_checks: dict[str, int] | None = None,
) -> SimulationVerdict:
    """A simulation's verdict from its counts (a summary streams results, it does not keep them).

    The simulation passes when at least `min_passes` runs passed (default: every run that got a
    verdict); it is an error when no run got a verdict, or when it is short of `min_passes` only
    by runs without a verdict (they could have passed: errors are never counted as failures).
    """
    judged = passes + failures
    needed = judged if min_passes is None else min_passes
    if judged == 0:
        status = ERROR
    elif passes >= needed and (min_passes is not None or failures == 0):
        status = PASS
    elif min_passes is not None and passes + errors >= min_passes:
        status = ERROR
    else:
        status = FAIL
    ks = range(1, min(judged, MAX_K) + 1)
    return {
        "status": status,
        "runs": passes + failures + errors,
        "passes": passes,
        "failures": failures,
        "errors": errors,
        "pass_rate": _round(passes / judged) if judged else None,
        "min_passes": min_passes,
        "required": required,
        "pass_hat_k": {str(k): _round(pass_hat_k(judged, passes, k)) for k in ks},
        "pass_at_k": {str(k): _round(pass_at_k(judged, passes, k)) for k in ks},
        "failed_checks": dict(failed_checks or {}),
    }


def decide_gate(
    simulations: Mapping[str, SimulationVerdict],
    gate: GateConfig | None,
    *,
    missing: int = 0,
    internal_errors: list[str] | None = None,
) -> GateVerdict:
    """The run's verdict. `fail`: the app misbehaved beyond the gate; `error`: too many errors to tell.

    pass rate = passed / (passed + failed) conversations; error rate = (errored + missing) / (all
    conversations + missing). `missing` counts planned conversations with no result at all (the run
    was killed, stopped early, or could not write them): a run that did not play its plan never
    passes. An internal error (the runner itself failed) makes the run an error whatever else it says.

    A failure outranks errors in `status`, so `errored` says whether the errors alone are beyond
    the gate too: `fail-on: errors` fails on them even when some conversations also failed.
    """
    config: GateConfig = {**DEFAULT_GATE, **(gate or {})}
    counts = _Counts(simulations, set(config.get("required") or []))
    passes, failures, errors = counts.passes, counts.failures, counts.errors
    total = passes + failures + errors + missing
    pass_rate = passes / (passes + failures) if passes + failures else None
    error_rate = (errors + missing) / total if total else 0.0
    min_rate, max_errors = config["min_pass_rate"], config["max_error_rate"]
    reasons: list[str] = []
    failing: list[str] = []
    if pass_rate is not None and pass_rate < min_rate:
        failing.append(f"pass rate {percent(pass_rate, min_rate)} is below {percent(min_rate, min_rate)}")
    for name in sorted(counts.required):
        sim = counts.required[name]
        if sim is None:
            reasons.append(f"required simulation {name} did not run")
        elif sim["status"] == FAIL:
            failing.append(f"required simulation {name} failed ({sim['passes']}/{sim['runs']} passed)")
        elif sim["status"] == ERROR:
            short = f"{sim['passes']} of {sim['min_passes']} needed passed, " if sim.get("min_passes") else ""
            reasons.append(f"required simulation {name} has no verdict ({short}{sim['errors']} errors)")
    too_many_errors = error_rate > max_errors
    if too_many_errors:
        reasons.append(f"error rate {percent(error_rate, max_errors)} is above {percent(max_errors, max_errors)}")
    if total and pass_rate is None and not too_many_errors:
        reasons.append("no conversation got a verdict")
    if missing:
        reasons.append(f"{missing} of {total} planned conversation(s) have no result")
    for problem in internal_errors or []:
        reasons.append(f"internal error: {problem}")
    status = ERROR if internal_errors else FAIL if failing else ERROR if reasons else PASS
    return {
        "status": status,
        "reasons": failing + reasons,
        "errored": bool(reasons),
        "pass_rate": None if pass_rate is None else _rate_down(passes, passes + failures),
        "error_rate": _rate_up(errors + missing, total) if total else 0.0,
        "passes": passes,
        "failures": failures,
        "errors": errors,
        "missing": missing,
        "simulations_passed": counts.statuses[PASS],
        "simulations_failed": counts.statuses[FAIL],
        "simulations_errored": counts.statuses[ERROR],
        "pass_hat_k": counts.mean_pass_hat_k(),
        "config": config,
    }


class _Counts:
    """What the gate needs of every simulation's verdict, read in one pass (they may be on disk).

    Required simulations are kept by name: those the gate names (None until seen) and those whose
    verdict says `required` and did not pass, which are all the gate reports of them.
    """

    def __init__(self, simulations: Mapping[str, SimulationVerdict], named: set[str]) -> None:
        self.passes = self.failures = self.errors = 0
        self.statuses: Counter[str] = Counter()
        self.required: dict[str, SimulationVerdict | None] = dict.fromkeys(named)
        self._hat_sums: dict[str, float] = {}
        self._hat_counts: dict[str, int] = {}
        for name, verdict in simulations.items():
            self.passes += verdict["passes"]
            self.failures += verdict["failures"]
            self.errors += verdict["errors"]
            self.statuses[verdict["status"]] += 1
            if name in self.required or (verdict.get("required") and verdict["status"] != PASS):
                self.required[name] = verdict
            for k, value in verdict["pass_hat_k"].items():
                self._hat_counts.setdefault(k, 0)
                if value is not None:
                    self._hat_sums[k] = self._hat_sums.get(k, 0.0) + value
                    self._hat_counts[k] += 1

    def mean_pass_hat_k(self) -> dict[str, float | None]:
        """pass^k averaged over the simulations that have it, for each k."""
        return {
            k: _round(self._hat_sums[k] / n) if (n := self._hat_counts[k]) else None
            for k in sorted(self._hat_counts, key=int)
        }
