"""Is a pass-rate change real or noise? Fisher's exact test on the pass/fail counts of two runs,
Benjamini–Hochberg across simulations, exact McNemar on paired conversations, and the `repeat`
that would tell two rates apart.

An LLM-played conversation passes or fails by chance too, so 3/4 → 2/4 says little and 5/5 → 0/5
says a lot. The two-sided Fisher exact test gives the probability of a split at least as uneven
as the observed one if both runs had the same pass rate. Small tables are summed exactly over
integers (no rounding decides which tables count as "as extreme"); large ones in log space.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

#: a change counts when its two-sided p-value is below this
ALPHA = 0.05
#: and when each side has at least this many conversations with a verdict
MIN_CONVERSATIONS = 2
#: tables up to this many conversations are summed as exact integers
EXACT_LIMIT = 2000
#: log-space tables within this relative margin of the observed one count as equally likely
_RELATIVE_TOLERANCE = 1e-7

REGRESSED = "regressed"
IMPROVED = "improved"
UNCHANGED = "unchanged"
WITHIN_NOISE = "within noise"
#: the largest `repeat` a manifest takes: beyond it, nothing is promised
MAX_REPEAT = 1000


def _support(a: int, b: int, c: int, d: int) -> tuple[int, int, int, int, range]:
    """Row sums, first column sum, total and the values the top-left cell can take."""
    if min(a, b, c, d) < 0:
        raise ValueError(f"counts must be >= 0, got {(a, b, c, d)}")
    row1, row2, col1 = a + b, c + d, a + c
    return row1, row2, col1, row1 + row2, range(max(0, col1 - row2), min(row1, col1) + 1)


def _p_exact(a: int, b: int, c: int, d: int) -> float:
    """Sum of the hypergeometric weights no larger than the observed one, as integers."""
    row1, row2, col1, total, cells = _support(a, b, c, d)
    weights = [math.comb(row1, x) * math.comb(row2, col1 - x) for x in cells]
    observed = math.comb(row1, a) * math.comb(row2, col1 - a)
    extreme = sum(w for w in weights if w <= observed)
    return min(1.0, extreme / math.comb(total, col1))


def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def _p_log(a: int, b: int, c: int, d: int) -> float:
    """The same sum in log space, for tables whose integers would be huge."""
    row1, row2, col1, total, cells = _support(a, b, c, d)
    scale = _log_comb(total, col1)
    observed = _log_comb(row1, a) + _log_comb(row2, col1 - a) - scale
    cutoff = observed + math.log1p(_RELATIVE_TOLERANCE)
    extreme = 0.0
    for x in cells:
        weight = _log_comb(row1, x) + _log_comb(row2, col1 - x) - scale
        if weight <= cutoff:
            extreme += math.exp(weight)
    return min(1.0, extreme)


def fisher_exact(a: int, b: int, c: int, d: int) -> float:
    """Two-sided p-value of the 2×2 table [[a, b], [c, d]] (rows: runs; columns: passed, failed)."""
    if a + b + c + d <= EXACT_LIMIT:
        return _p_exact(a, b, c, d)
    return _p_log(a, b, c, d)


@dataclass(frozen=True)
class Difference:
    """How a simulation's pass/fail counts moved between two runs."""

    verdict: str
    #: None when the counts were too few to test
    p_value: float | None


def compare_counts(base_passes: int, base_failures: int, head_passes: int, head_failures: int) -> Difference:
    """`regressed`/`improved` only when the counts say so (p < ALPHA, enough conversations on each
    side); `unchanged` when the pass rates are equal; else `within noise`."""
    base_judged, head_judged = base_passes + base_failures, head_passes + head_failures
    base_rate = base_passes / base_judged if base_judged else None
    head_rate = head_passes / head_judged if head_judged else None
    if base_rate == head_rate:
        return Difference(UNCHANGED, None)
    if base_judged < MIN_CONVERSATIONS or head_judged < MIN_CONVERSATIONS:
        return Difference(WITHIN_NOISE, None)
    p_value = fisher_exact(base_passes, base_failures, head_passes, head_failures)
    if p_value >= ALPHA:
        return Difference(WITHIN_NOISE, p_value)
    assert base_rate is not None and head_rate is not None
    return Difference(REGRESSED if head_rate < base_rate else IMPROVED, p_value)


def benjamini_hochberg(p_values: Mapping[str, float]) -> dict[str, float]:
    """Each p-value adjusted for the false discovery rate across all of them (BH step-up q-values)."""
    ranked = sorted(p_values.items(), key=lambda item: item[1])
    count = len(ranked)
    adjusted: dict[str, float] = {}
    running = 1.0
    for rank in range(count, 0, -1):
        name, p = ranked[rank - 1]
        running = min(running, p * count / rank)
        adjusted[name] = min(1.0, running)
    return adjusted


def mcnemar_exact(down: int, up: int) -> float:
    """Two-sided exact McNemar test: the discordant pairs split `down`/`up` as a fair coin would?"""
    total = down + up
    if total == 0:
        return 1.0
    tail = sum(math.comb(total, k) for k in range(0, min(down, up) + 1))
    return min(1.0, 2 * tail / 2**total)


def repeat_needed(base_rate: float, head_rate: float, now: int) -> int | None:
    """The `repeat` (conversations on each side) at which these pass rates, if they held, would be
    told apart (Fisher p < ALPHA); None when they are equal or need more than `MAX_REPEAT`."""
    if base_rate == head_rate:
        return None

    def apart(n: int) -> bool:
        a, c = round(base_rate * n), round(head_rate * n)
        return a != c and fisher_exact(a, n - a, c, n - c) < ALPHA

    low = max(now, 1)  # not apart here (or not yet tried); find the first size that is, doubling
    high = low
    while not apart(high):
        if high >= MAX_REPEAT:
            return None
        low, high = high, min(high * 2, MAX_REPEAT)
    while high - low > 1:  # then halve the gap (rounding makes it nearly, not strictly, monotonic)
        middle = (low + high) // 2
        low, high = (low, middle) if apart(middle) else (middle, high)
    return high
