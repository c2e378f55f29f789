"""summary.json: a function of the conversation results, per simulation and for the run.

Results stream through a `SummaryBuilder` one at a time; it keeps counts and latencies, never
the results, so a run of 100,000 conversations summarises in flat memory. A simulation the run is
done with (`close`) leaves memory too: its summary goes to a `SimulationStore`, on disk once there
are many, so a run of 100,000 distinct simulations keeps only the ones in play.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, cast

from ..checks.base import ERROR
from ..checks.gate import decide_gate, verdict_from_counts
from ..records import (
    ConversationResult,
    GateConfig,
    MetaData,
    RunInfo,
    SimulationSummary,
    SimulationVerdict,
    Summary,
    Totals,
    Usage,
)
from ..records.result import ASSISTANT, ERROR_REASONS
from .simulation_store import SimulationStore


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


class _Tally:
    """What a summary needs of a group of conversations, added one at a time."""

    def __init__(self) -> None:
        self.conversations = 0
        self.turns = 0
        self.reasons: Counter[str] = Counter()
        self.app_latency: list[float] = []
        self.tokens = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "reasoning_tokens": 0}
        self.duration_ms = 0.0
        self.statuses: Counter[str] = Counter()
        self.failed_checks: dict[str, int] = {}
        self.first: MetaData | None = None

    def add(self, result: ConversationResult) -> None:
        meta = result["meta_data"]
        if self.first is None:
            self.first = meta
        self.conversations += 1
        self.turns += len(result["conversation"])
        self.reasons[meta["stop_reason"]] += 1
        self.app_latency.extend(
            t["latency_ms"]
            for t in result["conversation"]
            if t["actor"] == ASSISTANT and t.get("error") is None and "latency_ms" in t
        )
        usage = (meta.get("usage") or {}).get("total") or {}
        for key in self.tokens:
            value = usage.get(key, 0)
            self.tokens[key] += value if isinstance(value, int) else 0
        self.duration_ms += meta.get("duration_ms", 0)
        evaluation: Mapping[str, Any] = result.get("evaluation") or {}
        self.statuses[evaluation.get("status", ERROR)] += 1
        for name in evaluation.get("failed", []):
            self.failed_checks[name] = self.failed_checks.get(name, 0) + 1

    def totals(self) -> Totals:
        errors = sum(n for reason, n in self.reasons.items() if reason in ERROR_REASONS)
        latency = self.app_latency
        return {
            "conversations": self.conversations,
            "turns": self.turns,
            "errors": errors,
            "error_rate": round(errors / self.conversations, 4) if self.conversations else 0.0,
            "stop_reasons": dict(sorted(self.reasons.items())),
            "latency_ms": {
                "app_p50": percentile(latency, 50),
                "app_p95": percentile(latency, 95),
                "app_max": max(latency) if latency else None,
            },
            "tokens": cast(Usage, dict(self.tokens)),
            "duration_ms": round(self.duration_ms, 3),
        }

    def verdict(self) -> SimulationVerdict:
        meta: Mapping[str, Any] = self.first or {}
        return verdict_from_counts(
            self.statuses["pass"],
            self.statuses["fail"],
            self.conversations - self.statuses["pass"] - self.statuses["fail"],
            min_passes=meta.get("min_passes"),
            required=bool(meta.get("required")),
            failed_checks=self.failed_checks,
        )


class SummaryBuilder:
    """Builds summary.json from results added one at a time (in any order).

    `close(name)` says no more results of that simulation will come: its tally becomes its summary
    entry and leaves memory. `build` closes what is still open.
    """

    def __init__(self, order: Sequence[str] | None = None, in_memory: int | None = None) -> None:
        self._open: dict[str, _Tally] = {}
        self._store = SimulationStore(order, in_memory)
        self._all = _Tally()

    def add(self, result: ConversationResult) -> None:
        meta = result["meta_data"]
        name = meta.get("simulation") or meta["persona"]["name"]
        tally = self._open.get(name)
        if tally is None:
            if name in self._store:  # its summary is written: a late result would be lost, so say so
                raise RuntimeError(f"a result of simulation {name} came after the run was done with it")
            tally = self._open[name] = _Tally()
        tally.add(result)
        self._all.add(result)

    def close(self, name: str) -> None:
        """No more results of simulation `name` will come: keep its summary, forget its tally."""
        tally = self._open.pop(name, None)
        if tally is not None and tally.conversations and tally.first is not None:
            self._store.put(name, _entry(tally, tally.first))

    @property
    def count(self) -> int:
        return self._all.conversations

    @property
    def open_simulations(self) -> int:
        """Simulations whose results may still come (their tallies are in memory)."""
        return len(self._open)

    def build(self, run: RunInfo | None = None, gate: GateConfig | None = None) -> Summary:
        """The summary; `run.missing_count`, `run.internal_errors` and `run.check_errors` count
        against the gate."""
        run = run or {}
        for name in list(self._open):
            self.close(name)
        simulations = self._store.as_summary_value()
        return {
            "run": run,
            "gate": decide_gate(
                _Verdicts(simulations),
                gate,
                missing=int(run.get("missing_count") or 0),
                internal_errors=[*(run.get("internal_errors") or []), *(run.get("check_errors") or [])],
            ),
            "totals": self._all.totals(),
            "simulations": simulations,
        }


def _entry(tally: _Tally, first: MetaData) -> SimulationSummary:
    return {
        "persona": first["persona"]["name"],
        "task": first["task"],
        "tags": first.get("tags", []),
        **tally.totals(),
        "verdict": tally.verdict(),
    }


class _Verdicts(Mapping[str, SimulationVerdict]):
    """Each simulation's verdict, read from its summary when asked (the summaries may be on disk)."""

    def __init__(self, simulations: Mapping[str, SimulationSummary]) -> None:
        self._simulations = simulations

    def __getitem__(self, name: str) -> SimulationVerdict:
        return self._simulations[name]["verdict"]

    def __iter__(self) -> Iterator[str]:
        return iter(self._simulations)

    def __len__(self) -> int:
        return len(self._simulations)


def summarize(
    results: Iterable[ConversationResult],
    run: RunInfo | None = None,
    order: list[str] | None = None,
    gate: GateConfig | None = None,
) -> Summary:
    """Totals, verdicts and the gate for the run and each simulation (by `meta_data.simulation`)."""
    builder = SummaryBuilder(order)
    for result in results:
        builder.add(result)
    return builder.build(run, gate)
