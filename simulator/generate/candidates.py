"""A generated simulation before it is written: the task, its persona, the proposed checks, and
where it came from; and how a model's answer becomes one.

The model's proposals are kept only where they can be checked against the material: a phrase a
correct answer must contain is kept only when the passage says it, so a check never demands what
the documents never promised.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .asking import Call
from .documents import words

#: placeholders the scrubber leaves in logs; a persona must not be built on them
PLACEHOLDER = re.compile(r"\[(EMAIL|PHONE|CARD|NAME)\]")


@dataclass
class Candidate:
    """One simulation to write, with the comments that say where it came from."""

    origin: str  # docs | prompt | logs | attack
    group: int  # the call it came from: the count is spread over calls
    task: str
    persona: dict[str, Any]
    expect: dict[str, Any]
    citation: str
    tags: list[str]
    #: comment lines above the simulation: its source, the quote, the persona's place on the axes
    notes: list[str] = field(default_factory=list)
    #: comment lines above its `expect`: which checks are proposals and what to review
    proposed: list[str] = field(default_factory=list)
    setup: list[dict[str, Any]] = field(default_factory=list)
    teardown: list[dict[str, Any]] = field(default_factory=list)
    #: the start of its name (`attack-`): else it comes from the task
    prefix: str = ""
    #: citations of near-duplicates merged into this one
    merged: list[str] = field(default_factory=list)


def fact_key(name: str, taken: set[str]) -> str:
    """A fact's name as a YAML key: `order_number`, unique within the persona."""
    key = "_".join(re.findall(r"\w+", name.casefold()))[:40] or "fact"
    unique, number = key, 2
    while unique in taken:
        unique, number = f"{key}_{number}", number + 1
    taken.add(unique)
    return unique


def persona_from(answer: dict[str, Any], facts: list[dict[str, str]]) -> dict[str, Any]:
    """The inline persona of a manifest from the model's persona and facts (its name made unique
    once the simulations to write are chosen)."""
    persona: dict[str, Any] = {
        "name": " ".join(answer["name"].split()),
        "profile": " ".join(answer["profile"].split()),
        "tone": " ".join(answer["tone"].split()),
    }
    taken: set[str] = set()
    meta = {fact_key(f["name"], taken): f["value"].strip() for f in facts if f["value"].strip()}
    if meta:
        persona["meta_data"] = meta
    return persona


def _phrases(values: list[str], grounding: str | None) -> list[str]:
    kept: list[str] = []
    for value in values:
        phrase = " ".join(value.split())
        if not phrase or phrase.casefold() in (k.casefold() for k in kept):
            continue
        if grounding is not None and words(phrase) not in grounding:
            continue
        kept.append(phrase)
    return kept


def _value(text: str) -> Any:
    """A state value as the model wrote it: `true`, `null` and numbers as JSON, the rest as text."""
    lowered = text.strip().casefold()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("null", "none"):
        return None
    if re.fullmatch(r"-?\d+", lowered) and len(lowered) < 16:
        return int(lowered)
    if re.fullmatch(r"-?\d+\.\d+", lowered):
        return float(lowered)
    return text.strip()


def expect_from(
    answer: dict[str, Any], grounding: str | None, state_url: str, *, refusal: bool = False
) -> tuple[dict[str, Any], list[str]]:
    """The proposed `expect` and the comment lines that mark it as a proposal.

    `grounding` (the passage's `words`) keeps only the `contains` phrases it holds;
    `state_url` is where the outcome check reads the app's state (`{{base}}` by default)."""
    expect: dict[str, Any] = {}
    contains = [] if refusal else _phrases(answer["contains"], grounding)
    not_contains = _phrases(answer["not_contains"], None)
    if contains:
        expect["contains"] = contains if len(contains) > 1 else contains[0]
    if not_contains:
        expect["not_contains"] = not_contains if len(not_contains) > 1 else not_contains[0]
    rubric = " ".join(answer["rubric"].split())
    if rubric:
        expect["rubric"] = rubric
    lines = ["proposed checks: review them before committing"]
    change = answer["state_change"]
    resource = change["resource"].strip().strip("/")
    if resource and change["field"].strip() and not PLACEHOLDER.search(resource):
        if re.match(r"https?://", resource):
            url = resource
        else:
            resource = re.sub(r"^(?:\{\{base\}\}/?)", "", resource)
            url = f"{state_url.rstrip('/')}/{resource}"
        expect["outcome"] = {"url": url, "path": change["field"].strip(), "equals": _value(change["value"])}
        lines.append("proposed outcome: point its url at where your app's test instance shows this state")
    return expect, lines


def has_placeholder(*texts: str) -> bool:
    """A scrubber placeholder in text meant for a persona: the model copied it instead of making up a value."""
    return any(PLACEHOLDER.search(t) for t in texts)


@dataclass
class Job:
    """A call to the model and how its answer becomes candidates."""

    call: Call
    origin: str
    #: candidates wanted from it (it is asked for a few more: near-duplicates are merged)
    wanted: int
    build: Callable[[dict[str, Any]], list[Candidate]]
    #: a later phase's call, sized before the first phase answered (an estimate, not a promise)
    estimated: bool = False


def spread(total: int, weights: list[int]) -> list[int]:
    """`total` shared in proportion to `weights` (largest remainders), each at least 1 while there are enough."""
    if not weights or total <= 0:
        return [0] * len(weights)
    if total <= len(weights):
        return [1 if i < total else 0 for i in range(len(weights))]
    whole = sum(weights) or len(weights)
    exact = [total * (w if sum(weights) else 1) / whole for w in weights]
    shares = [int(e) for e in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - shares[i]), i))
    for i in order[: total - sum(shares)]:
        shares[i] += 1
    for i in range(len(shares)):
        if shares[i] == 0:
            shares[max(range(len(shares)), key=lambda j: (shares[j], -j))] -= 1
            shares[i] = 1
    return shares


def evenly(count: int, items: int) -> list[int]:
    """`count` indexes of `items` spread evenly from the first (all of them when there are no more)."""
    if items <= count:
        return list(range(items))
    return [(i * items) // count for i in range(count)]
