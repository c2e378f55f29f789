"""JSON records gathered by group (say, a run's conversations by simulation), read back a group at a time.

Comparing two runs of 100,000 simulations needs every conversation of both, grouped by simulation,
while results files list them in the order they finished. Past `IN_MEMORY` records, they move to an
unnamed temporary file and only their offsets stay in memory, so grouping costs a few bytes a record.
"""

from __future__ import annotations

from typing import Any

from .spill_file import SpillFile

__all__ = ["IN_MEMORY", "RecordGroups"]

#: records a collection keeps in memory; past this many, they move to disk
IN_MEMORY = 2000


class RecordGroups:
    """Records added to named groups; `group(name)` gives a group's records in the order they were added.

    A temporary folder that refuses the file costs memory, never a record: what it will not take
    stays in memory, with a warning (`SpillFile`).
    """

    def __init__(self, in_memory: int | None = None) -> None:
        self._limit = IN_MEMORY if in_memory is None else in_memory
        self._memory: dict[str, list[Any]] = {}
        self._offsets: dict[str, list[int]] = {}
        self._count = 0
        self._file = SpillFile("the conversations compared")

    @property
    def on_disk(self) -> bool:
        return self._file.opened

    def add(self, group: str, record: Any) -> None:
        """Add `record` (JSON: dicts, lists, text, numbers) to `group`."""
        self._count += 1
        if self._file.opened and self._write(group, record):
            return
        self._memory.setdefault(group, []).append(record)
        if not self._file.opened and not self._file.refused and self._count > self._limit:
            self._spill()

    def _spill(self) -> None:
        if not self._file.open():
            return
        memory, self._memory = self._memory, {}
        for group, records in memory.items():
            for record in records:
                if not self._write(group, record):
                    self._memory.setdefault(group, []).append(record)

    def _write(self, group: str, record: Any) -> bool:
        offset = self._file.append(record)
        if offset is None:
            return False
        self._offsets.setdefault(group, []).append(offset)
        return True

    def group(self, name: str) -> list[Any]:
        """The records added to `name` (none: an empty list); those on disk read back first."""
        return [self._file.read(offset) for offset in self._offsets.get(name, ())] + self._memory.get(name, [])

    def __len__(self) -> int:
        return self._count
