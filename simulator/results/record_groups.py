"""JSON records gathered by group (say, a run's conversations by simulation), read back a group at a time.

Comparing two runs of 100,000 simulations needs every conversation of both, grouped by simulation,
while results files list them in the order they finished. Past `IN_MEMORY` records, they move to an
unnamed temporary file and only their offsets stay in memory, so grouping costs a few bytes a record.
"""

from __future__ import annotations

import json
import logging
import tempfile
import weakref
from collections.abc import Iterator
from typing import IO, Any

__all__ = ["IN_MEMORY", "RecordGroups"]

log = logging.getLogger("simulator.results.record_groups")

#: records a collection keeps in memory; past this many, they move to disk
IN_MEMORY = 2000


class RecordGroups:
    """Records added to named groups; `group(name)` gives a group's records in the order they were added.

    A temporary folder that refuses the file costs memory, never a record: what it will not take
    stays in memory, with a warning.
    """

    def __init__(self, in_memory: int | None = None) -> None:
        self._limit = IN_MEMORY if in_memory is None else in_memory
        self._memory: dict[str, list[Any]] = {}
        self._offsets: dict[str, list[int]] = {}
        self._count = 0
        self._file: IO[bytes] | None = None
        self._end = 0
        self._refused = False

    @property
    def on_disk(self) -> bool:
        return self._file is not None

    def add(self, group: str, record: Any) -> None:
        """Add `record` (JSON: dicts, lists, text, numbers) to `group`."""
        self._count += 1
        if self._file is not None and self._write(group, record):
            return
        self._memory.setdefault(group, []).append(record)
        if self._file is None and not self._refused and self._count > self._limit:
            self._spill()

    def _spill(self) -> None:
        try:
            self._file = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - lives as long as the groups
        except OSError as exc:
            self._refuse(exc)
            return
        weakref.finalize(self, self._file.close)
        memory, self._memory = self._memory, {}
        for group, records in memory.items():
            for record in records:
                if not self._write(group, record):
                    self._memory.setdefault(group, []).append(record)

    def _write(self, group: str, record: Any) -> bool:
        assert self._file is not None
        # ASCII with escapes: any text (a lone surrogate) reads back exactly as it was added
        line = (json.dumps(record, ensure_ascii=True, default=str) + "\n").encode("ascii")
        if not self._refused:
            try:
                self._file.seek(self._end)
                self._file.write(line)
                self._file.flush()
            except OSError as exc:
                self._refuse(exc)
        if self._refused:
            return False
        self._offsets.setdefault(group, []).append(self._end)
        self._end += len(line)
        return True

    def _refuse(self, exc: OSError) -> None:
        self._refused = True
        log.warning(
            "cannot keep conversations in a temporary file in %s (%s): keeping them in memory; "
            "set TMPDIR to a folder with room to compare many simulations in less memory",
            tempfile.gettempdir(),
            exc.strerror or exc,
        )

    def group(self, name: str) -> list[Any]:
        """The records added to `name` (none: an empty list); those on disk read back first."""
        records = list(self._read(self._offsets.get(name, ())))
        return records + self._memory.get(name, [])

    def _read(self, offsets: Any) -> Iterator[Any]:
        for offset in offsets:
            assert self._file is not None
            self._file.seek(offset)
            yield json.loads(self._file.readline())

    def __len__(self) -> int:
        return self._count
