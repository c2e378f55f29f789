"""Why a simulation's verdict moved since the base run, with the evidence a few conversations hold.

Counts alone cannot tell 2/2 → 0/2 from chance, yet a replayed conversation can: it sent the app
the base run's user messages word for word, and the app answered them as before up to the turn
where its reply changed. When a conversation that passed in the base run fails after such a turn,
the same input got a different answer: the change is *caused*, not sampled. That holds only for
an app that answers the same input the same way; where the base or this run shows it does not
(identical messages, different replies), the move is judged by its counts.

Counts are tested per simulation (Fisher's exact test, then Benjamini–Hochberg across simulations
so that many simulations do not make a chance move look real) and for the run as a whole: a paired
test on the replayed conversations (exact McNemar) when there are any, else the pooled counts.
A move still within noise is given the `repeat` that would tell its rates apart.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..records import ConversationResult
from ..results.reading import result_key
from ..run.replay import OTHER_USER
from ..text.clip import clip
from .significance import ALPHA, IMPROVED, REGRESSED, UNCHANGED, WITHIN_NOISE, fisher_exact

#: conversations of one simulation compared pairwise for replies that differ to the same messages
NONDETERMINISM_SAMPLE = 40
#: characters of each reply shown side by side
SHOWN = 160
#: the largest `repeat` a manifest takes: beyond it, nothing is promised
MAX_REPEAT = 1000


@dataclass
class _Conversation:
    """What the comparison needs of one conversation: its messages, replies and verdict."""

    key: str
    simulation: str
    user: list[str] = field(default_factory=list)
    #: (turn number, reply text, the user messages sent before it)
    replies: list[tuple[int, str, int]] = field(default_factory=list)
    status: str | None = None
    failed: list[str] = field(default_factory=list)
    replay: Mapping[str, Any] | None = None

    def reply_at(self, turn: int) -> str | None:
        return next((text for number, text, _ in self.replies if number == turn), None)


def _digest(result: ConversationResult) -> _Conversation:
    meta = result["meta_data"]
    conversation = _Conversation(result_key(result), str(meta.get("simulation") or meta["persona"]["name"]))
    for turn in result["conversation"]:
        if turn.get("error"):
            continue
        text = turn["response"] if isinstance(turn.get("response"), str) else ""
        if turn["actor"] == "user":
            conversation.user.append(text)
        else:
            conversation.replies.append((turn["turn_number"], text, len(conversation.user)))
    evaluation = result.get("evaluation") or {}
    conversation.status = evaluation.get("status") if isinstance(evaluation, Mapping) else None
    checks = evaluation.get("checks") if isinstance(evaluation, Mapping) else None
    conversation.failed = [
        str(c.get("name")) for c in checks or () if isinstance(c, Mapping) and c.get("status") == "fail"
    ]
    replay = meta.get("replay")
    conversation.replay = replay if isinstance(replay, Mapping) else None
    return conversation


#: what an app makes afresh in every reply (ids, hashes, dates, times, counters): masked before two
#: replies are compared, so only a different answer counts as one
_VOLATILE = re.compile(r"[0-9a-f]{8}(?:-[0-9a-f]{4}){3}-[0-9a-f]{12}|\b[0-9a-f]{12,}\b|\d+", re.IGNORECASE)


def _alike(one: str, other: str) -> bool:
    return one == other or " ".join(_VOLATILE.sub("#", one).split()) == " ".join(_VOLATILE.sub("#", other).split())


def _agreement(a: _Conversation, b: _Conversation) -> tuple[int, tuple[int, str, str] | None]:
    """How many app replies `a` and `b` got alike to the same user messages, and the first turn where
    the same messages (and the same earlier replies) got a different reply."""
    agreed = 0
    for (turn, text_a, sent_a), (_, text_b, sent_b) in zip(a.replies, b.replies, strict=False):
        if sent_a != sent_b or a.user[:sent_a] != b.user[:sent_b]:
            break
        if not _alike(text_a, text_b):
            return agreed, (turn, text_a, text_b)
        agreed += 1
    return agreed, None


@dataclass
class _Consistency:
    """What pairs of one run's conversations that sent the same messages show of the app."""

    #: why the app is known to answer the same input differently, else None
    differs: str | None = None
    #: whether some same messages got the same reply (evidence, not proof, that it answers alike)
    agrees: bool = False


def _consistency(conversations: list[_Conversation], run: str) -> _Consistency:
    found = _Consistency()
    sample = conversations[:NONDETERMINISM_SAMPLE]
    for index, first in enumerate(sample):
        for second in sample[index + 1 :]:
            agreed, differing = _agreement(first, second)
            found.agrees = found.agrees or agreed > 0
            if differing is not None:
                turn, one, other = differing
                found.differs = (
                    f"the {run} run's {first.key} and {second.key} sent the same messages and got different "
                    f"replies at turn {turn} ({_quote(one)} vs {_quote(other)})"
                )
                return found
    return found


def _quote(text: str) -> str:
    return '"' + clip(" ".join(text.split()), SHOWN) + '"'


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


def _divergence(before: _Conversation, now: _Conversation) -> tuple[bool, int | None, bool]:
    """Whether `now` sent the base conversation's messages (replayed, or a scripted user's), the turn
    whose reply to them changed, and whether an earlier reply to them was the same."""
    replay = now.replay
    if replay is not None and replay.get("diverged_because") == OTHER_USER:
        return False, None, False  # another persona or task played from the start: nothing is paired
    if replay is not None:
        turn = replay.get("diverged_at_turn")  # as the run's own reply matcher judged it
        turn = turn if isinstance(turn, int) else None
        earlier = turn is not None and any(number < turn for number, _, _ in now.replies)
        return True, turn, earlier
    agreed, differing = _agreement(before, now)
    if differing is None:
        return agreed > 0 and len(before.replies) == len(now.replies), None, agreed > 0
    return True, differing[0], agreed > 0


def _paired(head: list[_Conversation], base: Mapping[str, _Conversation], agrees: bool) -> dict[str, Any] | None:
    """This run's conversations of one simulation that sent the base run's messages (replayed, or
    scripted), against the base run's same conversations; `agrees` when the app was seen answering
    the same messages alike (then even a first reply that changed is the change's doing)."""
    record: dict[str, Any] = {"pairs": 0, "down": 0, "up": 0, "caused_down": 0, "caused_up": 0}
    caused: list[dict[str, Any]] = []
    checks: set[str] = set()
    for now in head:
        before = base.get(now.key)
        if before is None:
            continue
        same_messages, turn, earlier = _divergence(before, now)
        if not same_messages:
            continue  # a live user wrote other messages: only the counts compare them
        record["pairs"] += 1
        move = _move(before.status, now.status)
        if move is None:
            continue
        record[move] += 1
        # the same messages got another answer from an app seen to answer alike: the change caused it
        if turn is not None and (agrees or earlier):
            record[f"caused_{move}"] += 1
            checks.update(set(now.failed) ^ set(before.failed))
            caused.append(
                {
                    "conversation": now.key,
                    "turn": turn,
                    "base": clip(before.reply_at(turn) or "", SHOWN),
                    "head": clip(now.reply_at(turn) or "", SHOWN),
                }
            )
    if not record["pairs"]:
        return None
    if caused:
        caused.sort(key=lambda item: item["turn"])
        record["turn"] = caused[0]["turn"]
        record["example"] = caused[0]
        record["checks"] = sorted(checks)
    return record


def _move(before: str | None, now: str | None) -> str | None:
    if before == "pass" and now == "fail":
        return "down"
    if before == "fail" and now == "pass":
        return "up"
    return None


def _rates(change: Mapping[str, Any]) -> tuple[float, float, int] | None:
    base, head = change.get("base") or {}, change.get("head") or {}
    base_n, head_n = base.get("passes", 0) + base.get("failures", 0), head.get("passes", 0) + head.get("failures", 0)
    if not base_n or not head_n:
        return None
    return base["passes"] / base_n, head["passes"] / head_n, max(base_n, head_n)


def add_evidence(
    changes: dict[str, dict[str, Any]],
    head_results: Iterable[ConversationResult],
    base_results: Iterable[ConversationResult],
) -> dict[str, Any]:
    """Classify each simulation's move in `changes` (in place) by its strongest evidence, and return
    the run as a whole: what `summary.json`'s `comparison` records and the comment's headline says."""
    compared = {name for name, change in changes.items() if "base" in change and "head" in change}
    head_by_sim: dict[str, list[_Conversation]] = defaultdict(list)
    base_by_sim: dict[str, list[_Conversation]] = defaultdict(list)
    base_by_key: dict[str, _Conversation] = {}
    for result in head_results:
        conversation = _digest(result)
        if conversation.simulation in compared:
            head_by_sim[conversation.simulation].append(conversation)
    for result in base_results:
        conversation = _digest(result)
        if conversation.simulation in compared:
            base_by_sim[conversation.simulation].append(conversation)
            base_by_key[conversation.key] = conversation
    p_values = {name: changes[name]["p_value"] for name in compared if changes[name].get("p_value") is not None}
    q_values = benjamini_hochberg(p_values)
    down = up = 0
    for name in compared:
        change = changes[name]
        change["evidence"] = "counts"
        if name in q_values:
            change["q_value"] = round(q_values[name], 6)
            if change["verdict"] in (REGRESSED, IMPROVED) and q_values[name] >= ALPHA:
                change["verdict"] = WITHIN_NOISE  # a chance move among many simulations
        in_base, in_head = _consistency(base_by_sim[name], "base"), _consistency(head_by_sim[name], "head")
        why = in_base.differs or in_head.differs
        if why:
            change["nondeterministic"] = why
        paired = _paired(head_by_sim[name], base_by_key, in_base.agrees or in_head.agrees)
        if paired is not None:
            change["paired"] = paired
            down += paired["down"]
            up += paired["up"]
            if not why and (paired["caused_down"] or paired["caused_up"]):
                if paired["caused_down"] and not paired["up"]:
                    change["verdict"], change["evidence"] = REGRESSED, "caused"
                elif paired["caused_up"] and not paired["down"]:
                    change["verdict"], change["evidence"] = IMPROVED, "caused"
        rates = _rates(change)
        if change["verdict"] == WITHIN_NOISE and rates is not None:
            needed = repeat_needed(*rates)
            change["repeat_needed"] = needed
    return _run_as_a_whole(changes, compared, down, up)


def _run_as_a_whole(changes: Mapping[str, Mapping[str, Any]], compared: set[str], down: int, up: int) -> dict[str, Any]:
    sides = {side: {"passes": 0, "failures": 0} for side in ("base", "head")}
    for name in compared:
        for side in ("base", "head"):
            for count in ("passes", "failures"):
                sides[side][count] += changes[name][side].get(count, 0)
    base, head = sides["base"], sides["head"]
    base_n, head_n = base["passes"] + base["failures"], head["passes"] + head["failures"]
    record: dict[str, Any] = {"simulations": len(compared), "base": base, "head": head}
    if not base_n or not head_n:
        record["verdict"] = UNCHANGED if base_n == head_n else WITHIN_NOISE
        return record
    base_rate, head_rate = base["passes"] / base_n, head["passes"] / head_n
    record["p_value"] = fisher_exact(base["passes"], base["failures"], head["passes"], head["failures"])
    if down or up:
        record["paired"] = {"down": down, "up": up, "p_value": mcnemar_exact(down, up)}
    p = record["paired"]["p_value"] if down or up else record["p_value"]
    caused = [changes[n]["verdict"] for n in compared if changes[n].get("evidence") == "caused"]
    if all(changes[n]["verdict"] == UNCHANGED for n in compared):
        record["verdict"] = UNCHANGED
    elif p < ALPHA or (caused and len(set(caused)) == 1):
        worse = down > up if (down or up) else head_rate < base_rate
        record["verdict"] = REGRESSED if worse else IMPROVED
    else:
        record["verdict"] = WITHIN_NOISE
    return record


def comparison_record(run: Mapping[str, Any], changes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What `summary.json` keeps of the comparison, for other tools: the run's verdict and tests, and
    each simulation's move with its p- and q-value, evidence and (paired) causes."""
    kept = ("verdict", "p_value", "q_value", "evidence", "nondeterministic", "paired", "repeat_needed", "replay")
    return {
        "run": dict(run),
        "simulations": {name: {key: change[key] for key in kept if key in change} for name, change in changes.items()},
    }
