"""Each simulation's summary, kept in memory for an ordinary run and on disk for a run of many.

A run of 100,000 distinct simulations would hold 100,000 summaries (a few KB each) until
summary.json is written. Past `IN_MEMORY` entries the store moves them to an unnamed temporary
file and keeps only each name's offset, so the run's memory stays flat; reading one back costs a
seek. Either way it is a read-only mapping in plan order: simulations of the plan first, in the
plan's order, then any others in the order they were put.
"""

from __future__ import annotations

import json
import tempfile
import weakref
from collections.abc import Iterator, Mapping, Sequence
from typing import IO, cast

from ..records import SimulationSummary

__all__ = ["IN_MEMORY", "SimulationStore", "is_stored"]

#: simulations a store keeps in memory; past this many, they move to disk
IN_MEMORY = 1000


class SimulationStore(Mapping[str, SimulationSummary]):
    """Simulation summaries by name, put once each when a simulation can have no more results."""

    def __init__(self, order: Sequence[str] | None = None, in_memory: int | None = None) -> None:
        self._order = order or ()
        self._limit = IN_MEMORY if in_memory is None else in_memory
        self._memory: dict[str, SimulationSummary] = {}
        self._offsets: dict[str, int] | None = None  # set once the entries live on disk
        self._file: IO[bytes] | None = None
        self._end = 0

    @property
    def on_disk(self) -> bool:
        return self._offsets is not None

    def put(self, name: str, entry: SimulationSummary) -> None:
        """Keep `entry` as `name`'s summary (a second put replaces the first)."""
        if self._offsets is None:
            self._memory[name] = entry
            if len(self._memory) > self._limit:
                self._spill()
            return
        self._write(name, entry)

    def _spill(self) -> None:
        # w+b, unnamed: nothing is left behind however the process ends; closed with the store
        self._file = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - lives as long as the store
        weakref.finalize(self, self._file.close)
        self._offsets = {}
        for name, entry in self._memory.items():
            self._write(name, entry)
        self._memory = {}

    def _write(self, name: str, entry: SimulationSummary) -> None:
        assert self._file is not None and self._offsets is not None
        # ASCII with escapes: any text (a lone surrogate, NaN) reads back exactly as it was put
        line = (json.dumps(entry, ensure_ascii=True, default=str) + "\n").encode("ascii")
        self._file.seek(self._end)
        self._file.write(line)
        self._offsets[name] = self._end
        self._end += len(line)

    def __getitem__(self, name: str) -> SimulationSummary:
        if self._offsets is None:
            return self._memory[name]
        offset = self._offsets[name]
        assert self._file is not None
        self._file.seek(offset)
        return cast(SimulationSummary, json.loads(self._file.readline()))

    def __contains__(self, name: object) -> bool:
        held = self._memory if self._offsets is None else self._offsets
        return name in held

    def __len__(self) -> int:
        return len(self._memory) if self._offsets is None else len(self._offsets)

    def __iter__(self) -> Iterator[str]:
        planned = 0
        for name in self._order:
            if name in self:
                planned += 1
                yield name
        if planned < len(self):  # results of simulations the plan does not name (rare): in the order put
            order = set(self._order)
            held = self._memory if self._offsets is None else self._offsets
            yield from [name for name in held if name not in order]

    def as_summary_value(self) -> Mapping[str, SimulationSummary]:
        """What summary.json's `simulations` holds: a dict in memory, or this store when on disk."""
        if self._offsets is None:
            return {name: self._memory[name] for name in self}
        return self


def is_stored(simulations: Mapping[str, SimulationSummary]) -> bool:
    """True when `simulations` reads from disk: iterate it, do not copy it whole."""
    return isinstance(simulations, SimulationStore) and simulations.on_disk
