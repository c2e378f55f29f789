"""Each simulation's summary (or its comparison with the base run), kept in memory for an ordinary
run and on disk for a run of many.

A run of 100,000 distinct simulations would hold 100,000 summaries (a few KB each) until
summary.json is written, and as many comparisons until the reports are. Past `IN_MEMORY` entries
a store moves them to an unnamed temporary file and keeps only each name's offset, so the run's
memory stays flat; reading one back costs a seek. Either way it is a mapping in plan order:
names of the plan first, in the plan's order, then any others in the order they were first put.
An entry read back is a copy: change it, then put it again.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import Any, TypeVar, cast

from ..records import SimulationSummary
from .spill_file import SpillFile

__all__ = ["IN_MEMORY", "RecordStore", "SimulationStore", "is_stored"]

EntryT = TypeVar("EntryT")

#: simulations a store keeps in memory; past this many, they move to disk
IN_MEMORY = 1000


class RecordStore(MutableMapping[str, EntryT]):
    """JSON records by name, in memory up to `in_memory` of them, then on disk.

    A temporary folder that refuses the file (full, read-only) costs memory, never a summary: what
    it will not take stays in memory, with a warning.
    """

    def __init__(self, order: Sequence[str] | None = None, in_memory: int | None = None) -> None:
        self._order = order or ()
        self._limit = IN_MEMORY if in_memory is None else in_memory
        #: every entry until they move to disk; after, those the disk refused
        self._memory: dict[str, EntryT] = {}
        self._offsets: dict[str, int] | None = None  # set once entries live on disk
        self._file = SpillFile("the simulations' summaries")

    @property
    def on_disk(self) -> bool:
        return bool(self._offsets)

    def put(self, name: str, entry: EntryT) -> None:
        """Keep `entry` as `name`'s record (a second put replaces the first, in the first's place)."""
        if self._offsets is not None:
            if self._write(name, entry):
                return
            self._offsets.pop(name, None)
        self._memory[name] = entry
        if self._offsets is None and not self._file.refused and len(self._memory) > self._limit:
            self._spill()

    def _spill(self) -> None:
        if not self._file.open():
            return
        self._offsets = {}
        for name in list(self._memory):
            if not self._write(name, self._memory[name]):
                return
            del self._memory[name]

    def _write(self, name: str, entry: EntryT) -> bool:
        assert self._offsets is not None
        offset = self._file.append(entry)
        if offset is None:
            return False
        self._offsets[name] = offset
        return True

    def __getitem__(self, name: str) -> EntryT:
        if name in self._memory or not self._offsets:
            return self._memory[name]
        return cast(EntryT, self._file.read(self._offsets[name]))

    def __setitem__(self, name: str, entry: EntryT) -> None:
        self.put(name, entry)

    def __delitem__(self, name: str) -> None:
        if name in self._memory:
            del self._memory[name]
        elif self._offsets is not None and name in self._offsets:
            del self._offsets[name]  # its line stays in the file, unread
        else:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._memory or (self._offsets is not None and name in self._offsets)

    def __len__(self) -> int:
        return len(self._memory) + len(self._offsets or ())

    def __iter__(self) -> Iterator[str]:
        planned = 0
        for name in self._order:
            if name in self:
                planned += 1
                yield name
        if planned < len(self):  # results of simulations the plan does not name (rare)
            order = set(self._order)
            yield from [name for name in [*(self._offsets or ()), *self._memory] if name not in order]

    def as_summary_value(self) -> Mapping[str, EntryT]:
        """What summary.json holds of it: a dict in memory, or this store when on disk."""
        if not self._offsets:
            return {name: self._memory[name] for name in self}
        return self


class SimulationStore(RecordStore[SimulationSummary]):
    """Simulation summaries by name, put once each when a simulation can have no more results."""


def is_stored(records: Mapping[str, Any]) -> bool:
    """True when `records` reads from disk: iterate it, do not copy it whole."""
    return isinstance(records, RecordStore) and records.on_disk
