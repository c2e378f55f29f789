"""A results folder on disk: plan.json, conversations.jsonl, summary.json and the reports beside them.

- `plan.json` is written when a run starts: the conversations it means to play, so every later
  command can say "N planned, M finished, K missing" (and missing ones count against the gate).
- `conversations.jsonl` gets one line per finished conversation, written with one system call and
  cut back to its last complete line if the disk refuses it; text that cannot be stored as UTF-8
  (lone surrogates) is replaced, with a note, instead of crashing the run.
- Readers stream the file, drop a torn last line (a killed writer) with a warning, and stop at any
  other damaged line with an error naming file and line.
- An older run in the folder is moved aside rather than mixed with a new one; shards merge.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, cast

from ..errors import ConfigError, UnreadableRecord
from ..parsing import strict_json
from ..parsing.schema_check import schema_errors
from ..records import ConversationResult, GateConfig, PlanRecord, RunInfo, Summary
from .json_writing import replaced_atomically, result_line, write_json
from .reading import (  # noqa: F401 - the folder's readers and file names, importable from here too
    PLAN_FILE,
    REPORT_FILES,
    RESULTS_FILE,
    SUMMARY_FILE,
    ReadNotes,
    cut_torn_tail,
    iter_results,
    iter_unique_results,
    keys_of_record,
    read_results,
    result_key,
)
from .summary import SummaryBuilder
from .summary_reading import read_summary_file

log = logging.getLogger("simulator.results")
#: where an older run's files go when a new run starts in the same folder
PREVIOUS_DIR = "previous"
#: the files a run leaves in its folder (the CLI and the action write the reports beside the results)
RUN_FILES = (PLAN_FILE, RESULTS_FILE, SUMMARY_FILE, *REPORT_FILES)
#: errors that mean the storage, not the program, failed: the run stops starting conversations
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EFBIG, errno.EROFS})
#: how many missing keys a summary lists by name (the count is always exact)
LISTED_KEYS = 200


def utc_now() -> str:
    """When a run starts, ends or is re-checked, as written in plan.json and summary.json."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class StorageError(Exception):
    """The disk refused to store something (full, quota, I/O error); what was written before is intact."""

    def __init__(self, path: Path, exc: OSError, needed: int) -> None:
        self.path = path
        self.errno = exc.errno
        self.reason = exc.strerror or str(exc)
        #: bytes that could not be written
        self.needed = needed
        super().__init__(f"{path}: {self.reason}")


def write_summary(out: Path, summary: Summary) -> Path:
    return write_json(out / SUMMARY_FILE, summary)


# --- writing results --------------------------------------------------------------------------------


def write_results(path: Path, results: Iterable[ConversationResult]) -> int:
    """A whole results file at once, replaced atomically (merges, re-checks, resumes); returns the count."""
    count = 0
    with replaced_atomically(path) as handle:
        for result in results:
            handle.write(result_line(result))
            count += 1
    return count


class ResultWriter:
    """Appends one JSON line per conversation with one `write` system call, before anything else happens.

    A line the disk refuses (full, quota, I/O error) is cut off again, so the file always ends
    with a complete line, and a `StorageError` says how many bytes were needed.
    """

    def __init__(self, path: Path, *, append: bool = False) -> None:
        self.path = path
        self.count = 0
        self.bytes_written = 0
        make_folder(path.parent)
        flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else os.O_TRUNC)
        try:
            self._fd: int | None = os.open(path, flags, 0o644)
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write results: {exc.strerror or exc}") from None
        self._end = os.lseek(self._fd, 0, os.SEEK_END)
        # results are read by later workflow steps that may not run as this user
        with contextlib.suppress(OSError):
            os.chmod(path, 0o644)

    def write(self, result: ConversationResult) -> None:
        if self._fd is None:
            raise ValueError(f"{self.path}: the results writer is closed")
        line = result_line(result)
        view, done = memoryview(line), 0
        try:
            while done < len(line):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, self._end)  # no torn line: the file ends where the last good one did
            raise StorageError(self.path, exc, len(line)) from None
        self._end += len(line)
        self.count += 1
        self.bytes_written += len(line)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)


def make_folder(folder: Path) -> None:
    """The results folder, created if needed; a file in the way is a clear configuration error."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = _why_not_a_folder(folder, exc)
        raise ConfigError(f"{folder}: cannot create the results folder: {reason}") from None


def _why_not_a_folder(folder: Path, exc: OSError) -> str:
    """mkdir says "File exists" or "Not a directory" when a file stands where a folder must be; name that file."""
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return exc.strerror or str(exc)


# --- the plan and what is missing ----------------------------------------------------------------


def manifest_digest(path: str | Path) -> str:
    """The manifest file's SHA-256: a resumed run must play the manifest the run started with."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_plan(out: Path, record: PlanRecord) -> Path:
    make_folder(out)
    try:
        return write_json(out / PLAN_FILE, record)
    except OSError as exc:
        raise ConfigError(f"{out}: cannot write the plan: {exc.strerror or exc}") from None


def read_plan(folder: str | Path) -> PlanRecord | None:
    """The folder's plan.json, or None when the run predates plans; a damaged plan is an error."""
    path = Path(folder) / PLAN_FILE
    if not path.is_file():
        return None
    try:
        record = strict_json.loads(path.read_bytes())
    except OSError as exc:
        raise UnreadableRecord(f"{path}: not a readable plan ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UnreadableRecord(f"{path}: not a readable plan: {exc}") from None
    if not isinstance(record, dict) or not isinstance(record.get("simulations", record.get("keys")), list):
        raise UnreadableRecord(f"{path}: not a plan written by `simulator run`")
    problems = schema_errors(record, "plan", source=str(path))
    if problems:
        raise UnreadableRecord(f"not a plan written by `simulator run`: {problems[0]}")
    return cast(PlanRecord, record)


def plan_status(plan: PlanRecord | None, finished: set[str]) -> RunInfo:
    """`planned`, `finished` and `missing` (keys with no result) for a summary's `run`."""
    if plan is None:
        return {"finished": len(finished)}
    planned = 0
    missing: list[str] = []
    missing_count = 0
    for key in keys_of_record(plan):
        planned += 1
        if key not in finished:
            missing_count += 1
            if len(missing) < LISTED_KEYS:
                missing.append(key)
    status: RunInfo = {"planned": planned, "finished": planned - missing_count, "missing_count": missing_count}
    unseen = int(plan.get("unseen_count") or 0)  # merged shards: the keys of shards never given
    if unseen:
        status["planned"] += unseen
        status["missing_count"] += unseen
        status["unseen_shards"] = plan.get("unseen_shards", [])
    return {**status, "missing": missing}


@dataclass
class FolderSummary:
    """A summary rebuilt from what a folder holds, and what the reader had to say about it."""

    summary: Summary
    notes: ReadNotes
    plan: PlanRecord | None


def summarize_folder(
    folder: str | Path,
    *,
    run: RunInfo | None = None,
    gate: GateConfig | None = None,
    on_result: Callable[[ConversationResult], None] | None = None,
) -> FolderSummary:
    """The summary of a results folder from its complete lines and its plan, streamed.

    `run` defaults to the folder's old summary's `run` (when there is one); the gate config to the
    old summary's, else the plan's. Missing conversations count against the gate.
    """
    folder = Path(folder)
    plan = read_plan(folder)
    old: Mapping[str, Any] = read_summary(folder) or {}
    if run is None:
        run = cast(RunInfo, dict(old.get("run") or {}))
    if gate is None:
        gate = (old.get("gate") or {}).get("config") or (plan["gate"] if plan else None)
    notes = ReadNotes()
    builder = SummaryBuilder(plan["order"] if plan else None)
    finished: set[str] = set()
    if (folder / RESULTS_FILE).is_file():
        planned = set(keys_of_record(plan)) if plan else None
        # a simulation whose planned conversations are all read leaves memory (`SummaryBuilder.close`)
        left = Counter(key.rsplit("#", 1)[0] for key in planned or ())
        for result in iter_unique_results(folder / RESULTS_FILE, notes, planned):
            builder.add(result)
            key = result_key(result)
            finished.add(key)
            if on_result is not None:
                on_result(result)
            name = key.rsplit("#", 1)[0]
            left[name] -= 1
            if not left[name]:
                builder.close(name)
    stale = ("planned", "finished", "missing", "missing_count", "not_run")
    run = cast(RunInfo, {key: value for key, value in run.items() if key not in stale})
    run.update(plan_status(plan, finished))
    if notes.warnings:
        run["warnings"] = [*run.get("warnings", []), *notes.warnings]
    return FolderSummary(builder.build(run, gate), notes, plan)


def read_summary(folder: str | Path) -> Summary | None:
    """The folder's summary.json, or None when it is missing or damaged (it can be rebuilt)."""
    path = Path(folder) / SUMMARY_FILE
    try:
        summary = read_summary_file(path)
    except FileNotFoundError:
        return None
    except UnreadableRecord as exc:
        log.warning("%s; rebuilding it from the results", exc)
        return None
    except (OSError, ValueError) as exc:
        log.warning("%s: not readable (%s); rebuilding it from the results", path, exc)
        return None
    if not isinstance(summary.get("gate"), dict):
        return None
    return cast(Summary, summary)


# --- older runs and merges ----------------------------------------------------------------------------


def _run_label(out: Path) -> str:
    """When the run in `out` started (its summary's `run.started_at`), else its files' mtime; safe as a file name."""
    started = None
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):  # no summary, or not ours
        started = strict_json.loads((out / SUMMARY_FILE).read_bytes())["run"]["started_at"]
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):
        started = started or strict_json.loads((out / PLAN_FILE).read_bytes())["created_at"]
    if not isinstance(started, str) or not started.strip():
        times = [(out / name).stat().st_mtime for name in RUN_FILES if (out / name).exists()]
        started = datetime.fromtimestamp(max(times, default=time.time()), timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    return re.sub(r"[^0-9A-Za-z._-]+", "-", started.strip())[:64].strip(".-") or "run"


def move_previous_run(out: Path) -> Path | None:
    """Move an older run's files out of the way, into `out/previous/<when it started>/`.

    A new run rewrites conversations.jsonl from its first line and summary.json at its end, so in
    a folder that already holds a run the old results would be lost, or read together with the new
    ones (a stale summary or report next to new conversations). Moving them aside keeps both
    apart; returns where they went, or None when the folder held no run.
    """
    if not any((out / name).exists() for name in (PLAN_FILE, RESULTS_FILE, SUMMARY_FILE)):
        return None
    label = _run_label(out)
    dest = out / PREVIOUS_DIR / label
    number = 1
    while dest.exists():
        number += 1
        dest = out / PREVIOUS_DIR / f"{label}-{number}"
    try:
        dest.mkdir(parents=True)
        for name in RUN_FILES:
            if (out / name).exists():
                os.replace(out / name, dest / name)
    except OSError as exc:
        raise ConfigError(f"{out}: holds an older run that cannot be moved to {dest}: {exc.strerror or exc}") from None
    log.warning("%s held an older run: moved its files to %s", out, dest)
    return dest
