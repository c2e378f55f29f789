"""Fisher's exact test against published tables, each value checked again with exact fractions."""

from __future__ import annotations

import random
import time
from fractions import Fraction
from math import factorial

import pytest

from simulator.report.significance import (
    EXACT_LIMIT,
    IMPROVED,
    REGRESSED,
    UNCHANGED,
    WITHIN_NOISE,
    _p_exact,
    _p_log,
    compare_counts,
    fisher_exact,
)


def brute_force(a: int, b: int, c: int, d: int) -> Fraction:
    """The two-sided p-value from its definition, with factorials and fractions only: every table
    with the same margins, summed when it is no more likely than the observed one."""
    row1, row2, col1, col2 = a + b, c + d, a + c, b + d
    total = row1 + row2

    def probability(x: int) -> Fraction:
        cells = (x, row1 - x, col1 - x, row2 - col1 + x)
        numerator = factorial(row1) * factorial(row2) * factorial(col1) * factorial(col2)
        denominator = factorial(total)
        for cell in cells:
            denominator *= factorial(cell)
        return Fraction(numerator, denominator)

    observed = probability(a)
    tables = [probability(x) for x in range(max(0, col1 - row2), min(row1, col1) + 1)]
    return sum((p for p in tables if p <= observed), Fraction(0))


PUBLISHED = [
    # Fisher's lady tasting tea (The Design of Experiments, 1935): 3 of 4 cups right
    ((3, 1, 1, 3), 0.4857, Fraction(17, 35)),
    # SciPy's fisher_exact documentation: whales and sharks, [[8, 2], [1, 5]]
    ((8, 2, 1, 5), 0.0349650, Fraction(5, 143)),
    # R's fisher.test documentation: Fisher's convicted twins, [[2, 10], [15, 3]]
    ((2, 10, 15, 3), 0.0005367, Fraction(3571, 6653325)),
]


@pytest.mark.parametrize(("table", "published", "exact"), PUBLISHED)
def test_published_tables(table: tuple[int, int, int, int], published: float, exact: Fraction) -> None:
    assert brute_force(*table) == exact
    assert fisher_exact(*table) == pytest.approx(float(exact), rel=1e-12)
    assert round(fisher_exact(*table), 7 if published < 0.1 else 4) == pytest.approx(published, abs=1e-7)


@pytest.mark.parametrize(
    ("table", "exact"),
    [
        ((5, 0, 0, 5), Fraction(1, 126)),  # 5/5 passed, then 0/5
        ((3, 1, 2, 2), Fraction(1)),  # 3/4, then 2/4
        ((10, 0, 5, 5), Fraction(21, 646)),
        ((7, 3, 2, 8), Fraction(293, 4199)),
        ((1, 0, 0, 50), Fraction(1, 51)),
        ((0, 0, 3, 4), Fraction(1)),  # no conversations on one side: nothing to tell
    ],
)
def test_more_tables_checked_with_fractions(table: tuple[int, int, int, int], exact: Fraction) -> None:
    assert brute_force(*table) == exact
    assert fisher_exact(*table) == pytest.approx(float(exact), rel=1e-12)


def test_the_p_value_does_not_depend_on_how_the_table_is_written() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a, b, c, d = (rng.randint(0, 12) for _ in range(4))
        p = fisher_exact(a, b, c, d)
        assert 0.0 <= p <= 1.0
        assert fisher_exact(c, d, a, b) == pytest.approx(p, rel=1e-12)  # runs swapped
        assert fisher_exact(b, a, d, c) == pytest.approx(p, rel=1e-12)  # pass and fail swapped
        assert fisher_exact(a, c, b, d) == pytest.approx(p, rel=1e-12)  # transposed
        assert Fraction(p).limit_denominator(10**12) == pytest.approx(brute_force(a, b, c, d), rel=1e-9)


def test_log_space_agrees_with_exact_integers_and_handles_big_runs() -> None:
    rng = random.Random(11)
    for _ in range(200):
        a, b, c, d = (rng.randint(0, 60) for _ in range(4))
        assert _p_log(a, b, c, d) == pytest.approx(_p_exact(a, b, c, d), rel=1e-9, abs=1e-300)
    assert _p_log(500, 500, 480, 520) == pytest.approx(_p_exact(500, 500, 480, 520), rel=1e-9)
    started = time.monotonic()
    big = fisher_exact(50_000, 50_000, 49_000, 51_000)  # past EXACT_LIMIT: the log-space sum
    assert EXACT_LIMIT < 50_000 * 4 and time.monotonic() - started < 5
    assert 0.0 < big < 1e-5
    assert fisher_exact(50_000, 50_000, 50_000, 50_000) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        fisher_exact(-1, 2, 3, 4)


@pytest.mark.parametrize(
    ("base", "head", "verdict"),
    [
        ((5, 0), (0, 5), REGRESSED),  # 5/5 -> 0/5, p = 0.008
        ((0, 5), (5, 0), IMPROVED),
        ((3, 1), (2, 2), WITHIN_NOISE),  # 3/4 -> 2/4, p = 1
        ((7, 3), (2, 8), WITHIN_NOISE),  # p = 0.0698: not below 0.05
        ((10, 0), (5, 5), REGRESSED),  # p = 0.0325
        ((1, 0), (0, 50), WITHIN_NOISE),  # p = 0.0196, but one base conversation is too few
        ((1, 0), (0, 1), WITHIN_NOISE),
        ((4, 0), (4, 0), UNCHANGED),
        ((2, 2), (5, 5), UNCHANGED),
        ((0, 0), (0, 0), UNCHANGED),  # no verdicts either side (every conversation errored)
        ((0, 0), (3, 0), WITHIN_NOISE),
    ],
)
def test_a_move_is_called_a_change_only_when_the_counts_say_so(
    base: tuple[int, int], head: tuple[int, int], verdict: str
) -> None:
    difference = compare_counts(*base, *head)
    assert difference.verdict == verdict
    if verdict in (REGRESSED, IMPROVED):
        assert difference.p_value is not None and difference.p_value < 0.05
