"""Near-duplicate tasks merged: the words that matter of two tasks, compared as sets (Jaccard).

Lower case, punctuation, numbers and common words dropped, plurals and `-ed`/`-ing` endings cut,
so "Return my boots from order 5" and "I want to return the boots of order 18" are the same task.
The first of a group is kept (the output's order is stable) and cites the others it stands for; a
task close to one of the manifest's own simulations is dropped, since that is already covered.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from .candidates import Candidate

#: two tasks at least this similar are one
DUPLICATE_AT = 0.6
STOPWORDS = frozenset(
    """
    a about after again all also am an and any are as at be been before being but by can could did do
    does for from get got had has have having he her him his how i if in into is it its just me might
    more most my need needs no not now of on once only or other our out over own please she should so
    some still such than that the their them then there these they this those through to too under until
    up very want wants was we were what when where which while who why will with would you your
    """.split()  # noqa: SIM905 - a word list reads better as words
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3 and not word.endswith("ss"):
            word = word[: -len(suffix)]
            break
    return word[:-1] if word.endswith("e") and len(word) > 3 else word


def tokens(text: str) -> frozenset[str]:
    """The words of `text` that say what it is about."""
    return frozenset(_stem(w) for w in re.findall(r"[^\W\d_]+", text.casefold()) if w not in STOPWORDS and len(w) > 1)


def similarity(first: frozenset[str], second: frozenset[str]) -> float:
    """Jaccard: the share of words the two have in common (1.0: the same words)."""
    if not first and not second:
        return 1.0
    return len(first & second) / len(first | second)


def merge(
    candidates: list[Candidate], existing: Iterable[tuple[str, str]] = ()
) -> tuple[list[Candidate], int, list[tuple[Candidate, str]]]:
    """`candidates` without near-duplicates: (kept, how many merged into an earlier one, those dropped
    as close to an existing simulation with its name). `existing` is (name, task) of the manifest's own."""
    known = [(name, tokens(task)) for name, task in existing]
    kept: list[tuple[Candidate, frozenset[str]]] = []
    merged = 0
    covered: list[tuple[Candidate, str]] = []
    for candidate in candidates:
        words = tokens(candidate.task)
        same = next((name for name, other in known if similarity(words, other) >= DUPLICATE_AT), None)
        if same is not None:
            covered.append((candidate, same))
            continue
        earlier = next((c for c, other in kept if similarity(words, other) >= DUPLICATE_AT), None)
        if earlier is not None:
            earlier.merged.append(candidate.citation)
            merged += 1
            continue
        kept.append((candidate, words))
    return [c for c, _ in kept], merged, covered
