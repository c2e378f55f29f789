"""What report.html's charts draw, gathered while the conversations stream past.

Per simulation: app latencies counted in log-scale bins (so a 1,000-conversation run adds a few
numbers per simulation, not every latency), how many turns each conversation took and how it
ended, the strictest `max_latency_ms` limit its checks applied, and its most frequent failure (the
reason a table row shows). Bins are the same for every simulation and run, so a base run's
histogram is drawn on the same axis as this run's.

A run of many simulations keeps these figures for the first `MAX_SIMULATIONS` it meets (and any
named up front); the conversations of the rest count only in the run's endings (`rest`), so the
figures stay a few MB however many simulations there are.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping
from typing import Any

from ..records import ConversationResult
from ..records.result import ASSISTANT

#: bin i holds latencies in [10^(i/BINS_PER_DECADE), 10^((i+1)/BINS_PER_DECADE)) ms
BINS_PER_DECADE = 5
#: the shortest latency binned apart (sub-millisecond callbacks land here or above)
FLOOR_MS = 0.01
#: how a conversation ended, as the charts group it; every error reason is "error"
ENDINGS = ("user_done", "user_gave_up", "max_turns", "error")
REASON_LIMIT = 200
#: simulations whose own figures are kept: report.html shows at most as many transcripts
#: (`html.MAX_CONVERSATIONS`), so no more simulations than this have one to open beside them
MAX_SIMULATIONS = 5000


def latency_bin(ms: float) -> int:
    """The log-scale bin of a latency in milliseconds."""
    return math.floor(math.log10(max(ms, FLOOR_MS)) * BINS_PER_DECADE + 1e-9)


def ending(stop_reason: str) -> str:
    return stop_reason if stop_reason in ENDINGS else "error"


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= REASON_LIMIT else text[: REASON_LIMIT - 1] + "…"


class _Simulation:
    """One simulation's figures, added one conversation at a time."""

    def __init__(self) -> None:
        self.conversations = 0
        self.latency: Counter[int] = Counter()
        self.endings: Counter[tuple[int, str]] = Counter()
        self.limit: float | None = None
        self.failed: Counter[str] = Counter()
        self.messages: dict[str, str] = {}
        self.errored = 0
        self.first_error: str | None = None

    def add(self, result: ConversationResult) -> None:
        self.conversations += 1
        for turn in result["conversation"]:
            latency = turn.get("latency_ms")
            if turn["actor"] == ASSISTANT and turn.get("error") is None and isinstance(latency, (int, float)):
                self.latency[latency_bin(latency)] += 1
        self.endings[(len(result["conversation"]), ending(result["meta_data"]["stop_reason"]))] += 1
        evaluation: Mapping[str, Any] = result.get("evaluation") or {}
        for check in evaluation.get("checks", []):
            self._check(check)
        if evaluation.get("status", "error") == "error":
            self.errored += 1
            errors = evaluation.get("errors") or [result["meta_data"]["stop_reason"]]
            self.first_error = self.first_error or _cut(str(errors[0]))

    def _check(self, check: Mapping[str, Any]) -> None:
        evidence = check.get("evidence") or {}
        limit = evidence.get("limit")
        if check.get("check") == "max_latency_ms" and isinstance(limit, (int, float)):
            self.limit = limit if self.limit is None else min(self.limit, limit)
        if check.get("status") == "fail":
            name = str(check.get("name", ""))
            self.failed[name] += 1
            self.messages.setdefault(name, _cut(str(check.get("message", ""))))

    def reason(self) -> dict[str, Any] | None:
        """The most frequent failing check with what it said, else the first error."""
        if self.failed:
            name, count = self.failed.most_common(1)[0]
            message = self.messages.get(name, "")
            text = name if not message or message == name else f"{name}: {message}"
            return {"status": "fail", "text": text, "count": count, "kinds": len(self.failed)}
        if self.errored:
            return {"status": "error", "text": self.first_error or "error", "count": self.errored, "kinds": 1}
        return None

    def figures(self) -> dict[str, Any]:
        return {
            "latency": sorted([b, n] for b, n in self.latency.items()),
            "limit": self.limit,
            "endings": sorted([turns, how, n] for (turns, how), n in self.endings.items()),
            "reason": self.reason(),
        }


class Figures:
    """The charts' figures of one run, built from results added one at a time (in flat memory).

    Each simulation named in `first`, and the first `limit` others met (`MAX_SIMULATIONS` unless
    given), keep figures of their own; the endings of the rest are counted together.
    """

    def __init__(self, limit: int | None = None, first: Collection[str] = ()) -> None:
        self._simulations: dict[str, _Simulation] = {}
        self._first = first
        self._room = MAX_SIMULATIONS if limit is None else limit
        self._rest: Counter[tuple[int, str]] = Counter()
        self._rest_conversations = 0

    def add(self, result: ConversationResult) -> None:
        meta = result["meta_data"]
        name = meta.get("simulation") or meta["persona"]["name"]
        simulation = self._simulations.get(name) or self._open(name)
        if simulation is not None:
            simulation.add(result)
            return
        self._rest[(len(result["conversation"]), ending(meta["stop_reason"]))] += 1
        self._rest_conversations += 1

    def _open(self, name: str) -> _Simulation | None:
        """Figures of its own for a simulation met for the first time, while there is room."""
        if name not in self._first:
            if self._room <= 0:
                return None
            self._room -= 1
        simulation = self._simulations[name] = _Simulation()
        return simulation

    def __len__(self) -> int:
        return sum(s.conversations for s in self._simulations.values()) + self._rest_conversations

    @property
    def kept(self) -> frozenset[str]:
        """The simulations with figures of their own."""
        return frozenset(self._simulations)

    @property
    def complete(self) -> bool:
        """Whether every simulation met has figures of its own."""
        return not self._rest_conversations

    def build(self) -> dict[str, Any]:
        """`{bins_per_decade, floor_ms, endings, simulations: {name: {latency, limit, endings, reason}}}`,
        and `rest: {conversations, endings}` when some simulations were only counted."""
        built = {
            "bins_per_decade": BINS_PER_DECADE,
            "floor_ms": FLOOR_MS,
            "endings": list(ENDINGS),
            "simulations": {name: s.figures() for name, s in self._simulations.items()},
        }
        if self._rest_conversations:
            endings = sorted([turns, how, n] for (turns, how), n in self._rest.items())
            built["rest"] = {"conversations": self._rest_conversations, "endings": endings}
        return built
