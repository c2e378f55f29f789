"""Simulations from a dataset: each row of a CSV or JSONL file fills the manifest's template simulation.

    simulations_from:
      file: tasks.csv                  # or tasks.jsonl, next to the manifest and inside the root
      simulation:                      # any simulation field; {{column}} anywhere is the row's value
        name: "refund-{{order_id}}"
        persona: "{{persona}}"
        task: "Get a refund for order {{order_id}}"

A column named like a simulation field sets that field unless the template sets it: in CSV the
text fields (`name`, `persona`, `task`), `tags` (comma-separated), the numbers (`max_turns`,
`repeat`, `min_passes`, `turn_timeout`) and `required`; in JSONL any field with its JSON type
(`turns`, `expect`, ...). A `{{column}}` that is the whole of a value takes the column's JSON value
(a list, a number). A row without a name is named `<file stem>-<line>`.

Rows are read as a stream: validating a million rows holds one at a time, and a run builds each
simulation when its turn comes. Every problem names the row's line: `tasks.csv:1042: persona: ...`.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..parsing import strict_json
from ..parsing.schema_check import schema_errors
from ..parsing.template import PLACEHOLDER
from ..parsing.yaml_source import YamlDocument, format_path
from .files import FileAccess, _is_file, is_inside

#: the dataset formats, by file suffix
SUFFIXES = (".csv", ".jsonl")
#: a longer row is refused (and skipped) before it is held whole
MAX_ROW_CHARS = 1024 * 1024
#: rows with problems listed one by one, per dataset; the rest are counted
MAX_ROWS_LISTED = 20
#: fields a CSV column sets directly, and how its text becomes the field's value
_TEXT_FIELDS = ("name", "persona", "task")
_NUMBER_FIELDS = ("max_turns", "repeat", "min_passes")
#: fields whose text is sent as it is (a placeholder there must be filled by every row)
_FILLED_FIELDS = ("name", "persona", "task", "tags", "turns")


@dataclass(frozen=True)
class Dataset:
    """One `simulations_from` entry: the file its rows come from and the simulation they fill."""

    path: Path
    #: the file as messages name it
    source: str
    template: dict[str, Any]
    #: where the entry is written in the manifest
    at: tuple


class RowProblem(ValueError):
    """A row that cannot be read at all (not JSON, more fields than the header)."""


def datasets_of(data: Mapping[str, Any], doc: YamlDocument, access: FileAccess, problems: list[str]) -> list[Dataset]:
    """The manifest's datasets whose files can be read; each that cannot is a problem at its line."""
    written = data.get("simulations_from")
    entries = [written] if isinstance(written, dict) else written or []
    found = []
    folder, root, refusal = access.folder, access.root, access.refusal
    for index, entry in enumerate(entries):
        at = ("simulations_from",) if isinstance(written, dict) else ("simulations_from", index)
        where = at + ("file",)
        name = entry["file"]
        path = folder / name
        place = f"{doc.where(where)}: {format_path(where)}"
        if refusal is not None:
            problems.append(f"{place}: {name!r} would read a dataset file; {refusal}")
        elif Path(name).suffix.lower() not in SUFFIXES:
            problems.append(f"{place}: {name!r} is neither .csv nor .jsonl")
        elif not is_inside(path, root):
            problems.append(f"{place}: {name!r} is outside {root}; dataset files must lie inside it")
        elif not _is_file(path):
            problems.append(f"{place}: dataset file {path} not found")
        else:
            found.append(Dataset(path, str(path), entry.get("simulation") or {}, at))
    return found


def read_rows(dataset: Dataset) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    """Each row with the line it starts on; a row that cannot be read is a `RowProblem` in its place."""
    try:
        with dataset.path.open(encoding="utf-8-sig", newline="") as handle:
            if dataset.path.suffix.lower() == ".csv":
                yield from _csv_rows(handle)
            else:
                yield from _jsonl_rows(handle)
    except UnicodeDecodeError as exc:
        yield 0, RowProblem(f"not UTF-8 text ({exc.reason} at byte {exc.start})")
    except OSError as exc:
        yield 0, RowProblem(f"cannot read the dataset: {exc.strerror or exc}")


def _csv_rows(handle: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    reader = csv.reader(_bounded_lines(handle))
    try:
        header = next(reader, None)
        if header is None:
            return
        columns = [column.strip() for column in header]
        if len(set(columns)) != len(columns) or not all(columns):
            yield 1, RowProblem(f"the header names each column once, and none is empty: {header}")
            return
        start = reader.line_num + 1
        for fields in reader:
            line, start = start, reader.line_num + 1
            if not any(field.strip() for field in fields):
                continue  # a blank line
            if len(fields) != len(columns):
                yield (
                    line,
                    RowProblem(f"{len(fields)} fields, but the header has {len(columns)} ({', '.join(columns)})"),
                )
                continue
            yield line, dict(zip(columns, fields, strict=True))
    except csv.Error as exc:
        yield reader.line_num, RowProblem(f"not CSV: {exc}")
    except RowProblem as exc:
        yield reader.line_num, exc


def _bounded_lines(handle: io.TextIOBase) -> Iterator[str]:
    while line := handle.readline(MAX_ROW_CHARS + 1):
        if len(line) > MAX_ROW_CHARS:
            raise RowProblem(f"a line longer than {MAX_ROW_CHARS:,} characters")
        yield line


def _jsonl_rows(handle: io.TextIOBase) -> Iterator[tuple[int, dict[str, Any] | RowProblem]]:
    number = 0
    while line := handle.readline(MAX_ROW_CHARS + 1):
        number += 1
        if len(line) > MAX_ROW_CHARS:
            yield number, RowProblem(f"a line longer than {MAX_ROW_CHARS:,} characters")
            while line and not line.endswith("\n"):  # skip the rest of it
                line = handle.readline(MAX_ROW_CHARS + 1)
            continue
        if not line.strip():
            continue
        try:
            row = strict_json.loads(line)
        except strict_json.JSONError as exc:
            yield number, RowProblem(f"not JSON: {exc}")
            continue
        if not isinstance(row, dict):
            yield number, RowProblem(f"expected a JSON object (one simulation's columns), got {type(row).__name__}")
            continue
        yield number, row


def fill(dataset: Dataset, line: int, row: Mapping[str, Any]) -> tuple[dict[str, Any], list[tuple[tuple, str]]]:
    """The simulation a row makes, and what is wrong with filling it (a field, a message)."""
    problems: list[tuple[tuple, str]] = []
    entry = _filled(dataset.template, row, (), problems)
    for key, value in row.items():
        if key in entry or value is None or value == "":
            continue
        if isinstance(value, str) and dataset.path.suffix.lower() == ".csv":
            converted = _from_text(key, value)
            if converted is not None:
                entry[key] = converted
        elif dataset.path.suffix.lower() == ".jsonl" and key in _JSONL_FIELDS:
            entry[key] = value
    entry.setdefault("name", f"{dataset.path.stem}-{line}")
    return entry, problems


_JSONL_FIELDS = frozenset(
    {
        "name", "persona", "task", "turns", "max_turns", "repeat", "tags", "turn_timeout", "target", "user",
        "expect", "min_passes", "required", "setup", "teardown",
    }
)  # fmt: skip


def _from_text(key: str, text: str) -> Any:
    """A CSV cell as the value of the simulation field its column names, or None for other columns."""
    if key in _TEXT_FIELDS:
        return text
    if key == "tags":
        return [tag.strip() for tag in text.split(",") if tag.strip()]
    if key in _NUMBER_FIELDS:
        return int(text) if text.strip().isdigit() else text  # the schema names a bad one
    if key == "turn_timeout":
        try:
            return float(text)
        except ValueError:
            return text
    if key == "required":
        return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}.get(
            text.strip().lower(), text
        )
    return None


def _filled(value: Any, row: Mapping[str, Any], at: tuple, problems: list[tuple[tuple, str]]) -> Any:
    """`value` with every `{{column}}` of the row filled in; other placeholders stay for later."""
    if isinstance(value, dict):
        return {key: _filled(item, row, at + (key,), problems) for key, item in value.items()}
    if isinstance(value, list):
        return [_filled(item, row, at + (index,), problems) for index, item in enumerate(value)]
    if not isinstance(value, str) or "{{" not in value:
        return value
    whole = PLACEHOLDER.fullmatch(value.strip())
    if whole and whole.group(1) in row and not isinstance(row[whole.group(1)], str):
        return row[whole.group(1)]  # a list or a number keeps its type

    def substitute(match: Any) -> str:
        name = match.group(1)
        if name in row:
            cell = row[name]
            return "" if cell is None else cell if isinstance(cell, str) else json.dumps(cell)
        if at[:1] and at[0] in _FILLED_FIELDS:
            problems.append((at, f"{{{{{name}}}}} has no value in this row (its columns: {', '.join(row)})"))
        return str(match.group(0))

    return PLACEHOLDER.sub(substitute, value)


def row_document(dataset: Dataset, line: int, entry: dict[str, Any]) -> YamlDocument:
    """A row as a document: every field of it is at the row's line."""
    return YamlDocument(entry, {(): line}, dataset.source)


def row_problems(dataset: Dataset, line: int, entry: dict[str, Any], filling: list[tuple[tuple, str]]) -> list[str]:
    """What is wrong with a filled row before it is resolved: its placeholders, then the schema."""
    doc = row_document(dataset, line, entry)
    found = [f"{doc.where(at)}: {format_path(at)}: {message}" for at, message in filling]
    return found + schema_errors(entry, "manifest", doc, definition="simulation")
