"""An unnamed temporary file of JSON lines, appended to and read back by offset: where a run of many
keeps what it cannot hold in memory (`simulation_store`, `record_groups`).

A temporary folder that refuses the file (missing, full, read-only) refuses it once, with a
warning naming the folder and what is kept in memory instead; the caller keeps what was refused.
"""

from __future__ import annotations

import json
import logging
import tempfile
import weakref
from typing import IO, Any

__all__ = ["SpillFile"]

log = logging.getLogger("simulator.results.spill_file")


class SpillFile:
    """JSON records appended as lines; `append` gives each one's offset, or None once refused."""

    def __init__(self, what: str) -> None:
        #: what is kept in memory when the folder refuses the file, for the warning
        self._what = what
        self._file: IO[bytes] | None = None
        self._end = 0
        self.refused = False

    def open(self) -> bool:
        """Make the file; False (and a warning) when the temporary folder refuses it."""
        try:
            # w+b, unnamed: nothing is left behind however the process ends; closed with its owner
            self._file = tempfile.TemporaryFile("w+b")  # noqa: SIM115 - lives as long as this object
        except OSError as exc:
            self._refuse(exc)
            return False
        weakref.finalize(self, self._file.close)
        return True

    @property
    def opened(self) -> bool:
        return self._file is not None

    def append(self, record: Any) -> int | None:
        """Where `record` now starts in the file; None when the file is refused (before or now)."""
        if self.refused or self._file is None:
            return None
        # ASCII with escapes: any text (a lone surrogate, NaN) reads back exactly as it was put
        line = (json.dumps(record, ensure_ascii=True, default=str) + "\n").encode("ascii")
        try:
            self._file.seek(self._end)
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            self._refuse(exc)
            return None
        offset, self._end = self._end, self._end + len(line)
        return offset

    def read(self, offset: int) -> Any:
        assert self._file is not None
        self._file.seek(offset)
        return json.loads(self._file.readline())

    def _refuse(self, exc: OSError) -> None:
        self.refused = True
        log.warning(
            "cannot keep %s in a temporary file in %s (%s): keeping them in memory; "
            "set TMPDIR to a folder with room to run many simulations in less memory",
            self._what,
            tempfile.gettempdir(),
            exc.strerror or exc,
        )
