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

import re
from collections.abc import Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from ..records import ConversationResult
from ..results.reading import result_key
from ..results.record_groups import RecordGroups
from ..results.simulation_store import is_stored
from ..run.replay import OTHER_USER
from ..text.clip import clip
from .significance import (
    ALPHA,
    IMPROVED,
    REGRESSED,
    UNCHANGED,
    WITHIN_NOISE,
    benjamini_hochberg,
    fisher_exact,
    mcnemar_exact,
    repeat_needed,
)

#: conversations of one simulation compared pairwise for replies that differ to the same messages
NONDETERMINISM_SAMPLE = 40
#: characters of each reply shown side by side
SHOWN = 160


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

    def to_record(self) -> dict[str, Any]:
        """As JSON, to be kept on disk (`from_record` reads it back)."""
        return {
            "key": self.key,
            "simulation": self.simulation,
            "user": self.user,
            "replies": self.replies,
            "status": self.status,
            "failed": self.failed,
            "replay": self.replay,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> _Conversation:
        replies = [(int(turn), str(text), int(sent)) for turn, text, sent in record["replies"]]
        return cls(**{**record, "replies": replies})


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
    changes: MutableMapping[str, dict[str, Any]],
    head_results: Iterable[ConversationResult],
    base_results: Iterable[ConversationResult],
) -> dict[str, Any]:
    """Classify each simulation's move in `changes` (each put back changed) by its strongest evidence,
    and return the run as a whole: what `summary.json`'s `comparison` records and the comment's
    headline says. Both runs' conversations are gathered by simulation in `RecordGroups`, so two
    runs of 100,000 simulations are compared in flat memory."""
    p_values: dict[str, float] = {}
    compared: list[str] = []
    for name, change in changes.items():
        if "base" in change and "head" in change:
            compared.append(name)
            if change.get("p_value") is not None:
                p_values[name] = change["p_value"]
    wanted = set(compared)
    head_by_sim, base_by_sim = _gathered(head_results, wanted), _gathered(base_results, wanted)
    q_values = benjamini_hochberg(p_values)
    del p_values
    whole = _Whole()
    for name in compared:
        change = changes[name]
        heads = [_Conversation.from_record(r) for r in head_by_sim.group(name)]
        bases = [_Conversation.from_record(r) for r in base_by_sim.group(name)]
        _weigh(change, q_values.get(name), heads, bases, whole)
        changes[name] = change
        whole.note(change)
    return whole.record()


def _gathered(results: Iterable[ConversationResult], wanted: set[str]) -> RecordGroups:
    groups = RecordGroups()
    for result in results:
        conversation = _digest(result)
        if conversation.simulation in wanted:
            groups.add(conversation.simulation, conversation.to_record())
    return groups


def _weigh(
    change: dict[str, Any],
    q_value: float | None,
    heads: list[_Conversation],
    bases: list[_Conversation],
    whole: _Whole,
) -> None:
    """Judge one simulation's move (in `change`) by its q-value and its conversations of both runs."""
    change["evidence"] = "counts"
    if q_value is not None:
        change["q_value"] = round(q_value, 6)
        if change["verdict"] in (REGRESSED, IMPROVED) and q_value >= ALPHA:
            change["verdict"] = WITHIN_NOISE  # a chance move among many simulations
    in_base, in_head = _consistency(bases, "base"), _consistency(heads, "head")
    why = in_base.differs or in_head.differs
    if why:
        change["nondeterministic"] = why
    paired = _paired(heads, {c.key: c for c in bases}, in_base.agrees or in_head.agrees)
    if paired is not None:
        change["paired"] = paired
        whole.down += paired["down"]
        whole.up += paired["up"]
        if not why and (paired["caused_down"] or paired["caused_up"]):
            if paired["caused_down"] and not paired["up"]:
                change["verdict"], change["evidence"] = REGRESSED, "caused"
            elif paired["caused_up"] and not paired["down"]:
                change["verdict"], change["evidence"] = IMPROVED, "caused"
    rates = _rates(change)
    if change["verdict"] == WITHIN_NOISE and rates is not None:
        change["repeat_needed"] = repeat_needed(*rates)


@dataclass
class _Whole:
    """The run as a whole, tallied one simulation at a time."""

    simulations: int = 0
    down: int = 0
    up: int = 0
    sides: dict[str, dict[str, int]] = field(
        default_factory=lambda: {side: {"passes": 0, "failures": 0} for side in ("base", "head")}
    )
    all_unchanged: bool = True
    caused: set[str] = field(default_factory=set)

    def note(self, change: Mapping[str, Any]) -> None:
        self.simulations += 1
        for side in ("base", "head"):
            for count in ("passes", "failures"):
                self.sides[side][count] += change[side].get(count, 0)
        self.all_unchanged = self.all_unchanged and change["verdict"] == UNCHANGED
        if change.get("evidence") == "caused":
            self.caused.add(change["verdict"])

    def record(self) -> dict[str, Any]:
        base, head = self.sides["base"], self.sides["head"]
        base_n, head_n = base["passes"] + base["failures"], head["passes"] + head["failures"]
        record: dict[str, Any] = {"simulations": self.simulations, "base": base, "head": head}
        if not base_n or not head_n:
            record["verdict"] = UNCHANGED if base_n == head_n else WITHIN_NOISE
            return record
        base_rate, head_rate = base["passes"] / base_n, head["passes"] / head_n
        record["p_value"] = fisher_exact(base["passes"], base["failures"], head["passes"], head["failures"])
        down, up = self.down, self.up
        if down or up:
            record["paired"] = {"down": down, "up": up, "p_value": mcnemar_exact(down, up)}
        p = record["paired"]["p_value"] if down or up else record["p_value"]
        if self.all_unchanged:
            record["verdict"] = UNCHANGED
        elif p < ALPHA or len(self.caused) == 1:
            worse = down > up if (down or up) else head_rate < base_rate
            record["verdict"] = REGRESSED if worse else IMPROVED
        else:
            record["verdict"] = WITHIN_NOISE
        return record


#: what `summary.json` keeps of each simulation's comparison
KEPT = ("verdict", "p_value", "q_value", "evidence", "nondeterministic", "paired", "repeat_needed", "replay")


class KeptComparison(Mapping[str, dict[str, Any]]):
    """Each simulation's move as `summary.json` keeps it, read from the changes as it is asked for:
    the changes of a run of many live on disk, and a copy of them all would not."""

    def __init__(self, changes: Mapping[str, Mapping[str, Any]]) -> None:
        self._changes = changes

    def __getitem__(self, name: str) -> dict[str, Any]:
        change = self._changes[name]
        return {key: change[key] for key in KEPT if key in change}

    def __iter__(self) -> Iterator[str]:
        return iter(self._changes)

    def __len__(self) -> int:
        return len(self._changes)


def comparison_record(run: Mapping[str, Any], changes: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """What `summary.json` keeps of the comparison, for other tools: the run's verdict and tests, and
    each simulation's move with its p- and q-value, evidence and (paired) causes (a dict for a run of
    few, a view of `changes` for a run whose changes are on disk)."""
    simulations = KeptComparison(changes)
    return {"run": dict(run), "simulations": simulations if is_stored(changes) else dict(simulations.items())}
