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

import json
import logging
import tempfile
import weakref
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from typing import IO, Any, TypeVar, cast

from ..records import SimulationSummary

__all__ = ["IN_MEMORY", "RecordStore", "SimulationStore", "is_stored"]

EntryT = TypeVar("EntryT")

log = logging.getLogger("simulator.results.simulation_store")

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
        self._file: IO[bytes] | None = None
        self._end = 0
        self._refused = False

    @property
    def on_disk(self) -> bool:
        return bool(self._offsets)

    def put(self, name: str, entry: EntryT) -> None:
        """Keep `entry` as `name`'s record (a second put replaces the first, in the first's place)."""
        if self._offsets is not None:
            if not self._refused and self._write(name, entry):
                return
            self._offsets.pop(name, None)
        self._memory[name] = entry
        if self._offsets is None and not self._refused and len(self._memory) > self._limit:
            self._spill()

    def _spill(self) -> None:
        try:
            # w+b, unnamed: nothing is left behind however the process ends; closed with the store
            self._file = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - lives as long as the store
        except OSError as exc:
            self._refuse(exc)
            return
        weakref.finalize(self, self._file.close)
        self._offsets = {}
        for name in list(self._memory):
            if not self._write(name, self._memory[name]):
                return
            del self._memory[name]

    def _write(self, name: str, entry: EntryT) -> bool:
        assert self._file is not None and self._offsets is not None
        # ASCII with escapes: any text (a lone surrogate, NaN) reads back exactly as it was put
        line = (json.dumps(entry, ensure_ascii=True, default=str) + "\n").encode("ascii")
        try:
            self._file.seek(self._end)
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            self._refuse(exc)
            return False
        self._offsets[name] = self._end
        self._end += len(line)
        return True

    def _refuse(self, exc: OSError) -> None:
        self._refused = True
        log.warning(
            "cannot keep the simulations' summaries in a temporary file in %s (%s): keeping them in memory; "
            "set TMPDIR to a folder with room to run many simulations in less memory",
            tempfile.gettempdir(),
            exc.strerror or exc,
        )

    def __getitem__(self, name: str) -> EntryT:
        if name in self._memory or not self._offsets:
            return self._memory[name]
        offset = self._offsets[name]
        assert self._file is not None
        self._file.seek(offset)
        return cast(EntryT, json.loads(self._file.readline()))

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
