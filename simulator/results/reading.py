"""Reading conversations.jsonl: streamed, every line checked, a killed writer's torn last line dropped."""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Container, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, cast

from ..errors import ConfigError, UnreadableRecord
from ..parsing import strict_json
from ..parsing.schema_check import schema_errors
from ..records import ConversationResult, PlanRecord

if TYPE_CHECKING:  # imported where used: jsonschema costs start-up time most commands never need
    pass

log = logging.getLogger("simulator.results")
#: the files of a results folder: what each run writes, and what every reader (a base run's too) reads
RESULTS_FILE = "conversations.jsonl"
SUMMARY_FILE = "summary.json"
PLAN_FILE = "plan.json"
#: the reports written beside them (`simulator.report` renders them)
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
REPORT_FILES = (MARKDOWN_FILE, HTML_FILE)
#: the longest results line read (a run never writes a longer one: `json_writing.result_line` cuts
#: recorded requests and raw answers first); a longer one is refused before it is held in memory
MAX_LINE_BYTES = 256 * 1024**2
#: repeated or unplanned conversations named one by one (the count is always exact)
LISTED_PROBLEMS = 20


@dataclass
class ReadNotes:
    """What a reader had to skip, for the command to say so."""

    warnings: list[str] = field(default_factory=list)
    #: bytes of a torn last line that were dropped
    torn_bytes: int = 0


def _parse_line(raw: bytes, where: str) -> ConversationResult:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnreadableRecord(f"{where}: results are not UTF-8 text ({exc.reason})") from None
    line = line.rstrip("\r\n")
    try:
        result = strict_json.loads(line)
    except strict_json.NotJSON as exc:
        raise UnreadableRecord(f"{where}: not a JSON line: {exc}") from None
    except strict_json.JSONError as exc:
        raise UnreadableRecord(f"{where}: not a usable JSON line: {exc}") from None
    if not isinstance(result, dict) or "conversation_id" not in result or "meta_data" not in result:
        raise UnreadableRecord(f"{where}: not a conversation_result")
    where = f"{where}: not a conversation_result"
    try:
        # the compiled predicate answers for valid lines (jsonschema took 3 ms a line); only a line
        # it rejects goes through jsonschema, which names the problem
        problems = schema_errors(result, "conversation_result", source=where)
    except RecursionError:
        problems = [f"{where}: nested too deeply"]
    if problems:
        raise UnreadableRecord(problems[0])
    return cast(ConversationResult, result)


def _torn(raw: bytes) -> bool:
    """A line the writer began and never ended: no newline, the start of a result, not parseable."""
    if raw.endswith(b"\n") or not raw.startswith(b'{"conversation_id"'):
        return False
    try:
        strict_json.loads(raw)
    except strict_json.NotJSON:  # cut short
        return True
    except strict_json.JSONError:  # whole, but not to be trusted: not a torn line
        return False
    return False


def iter_results(path: str | Path, notes: ReadNotes | None = None) -> Iterator[ConversationResult]:
    """Conversation results from a JSONL file, one at a time.

    Every line must be a conversation_result (its JSON Schema) with, when present, an `evaluation`
    as the runner writes it; a damaged line is an `UnreadableRecord` naming file and line. The one
    exception is a last line without its newline that begins a result and does not parse: a writer
    killed mid-line left it, so it is dropped with a warning (in `notes`, and logged). Lines end only at "\\n":
    U+2028 and U+0085, which JSON keeps unescaped inside strings, are text.
    """
    path = Path(path)
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise UnreadableRecord(f"{path}: cannot read results: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL character in the path
        raise UnreadableRecord(f"{path!r}: cannot read results: {exc}") from None
    with handle:
        for number, raw in enumerate(iter(lambda: handle.readline(MAX_LINE_BYTES + 1), b""), 1):
            if len(raw) > MAX_LINE_BYTES:
                raise UnreadableRecord(
                    f"{path}:{number}: a line longer than {MAX_LINE_BYTES:,} bytes is not a conversation_result "
                    "this tool wrote; the file was damaged or made by hand"
                )
            if not raw.strip():
                continue
            try:
                result = _parse_line(raw, f"{path}:{number}")
            except ConfigError:
                if not _torn(raw) or handle.read(1):
                    raise
                warning = (
                    f"{path}:{number}: dropped an incomplete last line ({len(raw):,} bytes): the run that "
                    "wrote it was killed mid-write; the conversations before it are complete"
                )
                log.warning("%s", warning)
                if notes is not None:
                    notes.warnings.append(warning)
                    notes.torn_bytes = len(raw)
                return
            yield result


def iter_unique_results(
    path: str | Path, notes: ReadNotes | None = None, planned: Container[str] | None = None
) -> Iterator[ConversationResult]:
    """`iter_results`, each conversation once: a line appended twice (a copied line, a file edited by
    hand) is counted once and named in `notes`; with the plan's keys as `planned`, a conversation
    the plan never had is named and left out, so no folder reads as more than was planned."""
    seen: set[str] = set()
    repeats: Counter[str] = Counter()
    unplanned: list[str] = []
    for result in iter_results(path, notes):
        key = result_key(result)
        if key in seen:
            repeats[key] += 1
            continue
        seen.add(key)
        if planned is not None and key not in planned:
            unplanned.append(key)
            continue
        yield result
    warnings = [
        f"{path}: conversation {key} appears {count + 1} times; it is counted once (the first)"
        for key, count in list(repeats.items())[:LISTED_PROBLEMS]
    ]
    if unplanned:
        shown = ", ".join(unplanned[:LISTED_PROBLEMS]) + (" …" if len(unplanned) > LISTED_PROBLEMS else "")
        warnings.append(f"{path}: {len(unplanned)} conversation(s) the plan does not have are left out: {shown}")
    for warning in warnings:
        log.warning("%s", warning)
    if notes is not None:
        notes.warnings.extend(warnings)


def read_results(path: str | Path, notes: ReadNotes | None = None) -> list[ConversationResult]:
    """Every conversation result of a JSONL file (see `iter_results`)."""
    return list(iter_results(path, notes))


def cut_torn_tail(path: Path) -> int:
    """Remove an incomplete last line (a killed writer's) so lines can be appended; returns bytes cut."""
    notes = ReadNotes()
    for _ in iter_results(path, notes):
        pass
    if notes.torn_bytes:
        size = path.stat().st_size
        os.truncate(path, size - notes.torn_bytes)
    return notes.torn_bytes


def result_key(result: ConversationResult) -> str:
    meta = result["meta_data"]
    return f"{meta.get('simulation') or meta['persona']['name']}#{meta.get('repeat', 1)}"


def job_key(simulation: str, repeat: int) -> str:
    """`"name#3"`: a conversation's place in a plan (1-based repeat), the same in every command."""
    return f"{simulation}#{repeat}"


def keys_of_record(record: PlanRecord) -> Iterator[str]:
    """The planned keys a `plan.json` record stands for (the same order as the run's plan)."""
    if "keys" in record:
        yield from record["keys"]
        return
    index, count = record.get("shard") or (1, 1)
    position = 0
    for name, repeats in record.get("simulations", []):
        for repeat_index in range(int(repeats)):
            if position % count == index - 1:
                yield job_key(name, repeat_index + 1)
            position += 1
