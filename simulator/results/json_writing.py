"""JSON as a results folder writes it: text that is always valid UTF-8 (lone surrogates replaced,
NaN and Infinity written as text), a conversations.jsonl line that never holds a known credential
nor outgrows what every reader takes, and small files replaced only once they are complete."""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO, cast

from ..parsing import strict_json
from ..records import ConversationResult
from ..text.known_secrets import scrub
from .reading import MAX_LINE_BYTES
from .streamed_json import json_pieces

_SURROGATE = re.compile("[\ud800-\udfff]")


def json_text(data: Any, *, indent: int | None = None) -> tuple[str, int]:
    """`data` as JSON text that is always valid UTF-8, and how many characters had to be replaced.

    Text from outside (an app's JSON `"\\ud800"`, a manifest's task) can hold lone surrogates,
    which UTF-8 cannot store; they become U+FFFD rather than a crash. Objects JSON does not know
    (a callback's datetime) are written as their `str()`.
    """
    try:
        text = json.dumps(data, ensure_ascii=False, indent=indent, default=str, allow_nan=False)
    except ValueError:  # NaN or Infinity (a callback's float): written as text, which every reader takes
        text = json.dumps(_finite_numbers(data), ensure_ascii=False, indent=indent, default=str)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.subn("\ufffd", text)
    return text, 0


def _finite_numbers(node: Any) -> Any:
    if isinstance(node, float) and not math.isfinite(node):
        return str(node)
    if isinstance(node, dict):
        return {key: _finite_numbers(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [_finite_numbers(value) for value in node]
    return node


def _without_recordings(result: ConversationResult, size: int) -> ConversationResult:
    """`result` with each turn's recorded request and raw answer replaced by a note: what keeps a
    conversation of very many long turns within the line size every reader takes."""
    note = f"cut: the conversation's line was {size:,} bytes, more than the {MAX_LINE_BYTES:,} a results line holds"
    turns = [{**turn, "request": {"cut": note}, "full_json_response": {"cut": note}} for turn in result["conversation"]]
    return cast(ConversationResult, {**result, "conversation": turns})


def result_line(result: ConversationResult) -> bytes:
    """One conversations.jsonl line; a result whose text had to be repaired is repaired in place too,
    with a note in `meta_data.notes`, so the summary and the reports read what the file holds.
    Known credentials never reach the file (see `known_secrets`)."""
    text, replaced = json_text(scrub(result))
    if replaced:
        repaired = strict_json.loads(text)
        note = (
            f"{replaced} character(s) that are not valid Unicode (lone surrogates) in text from the app, "
            "the user model or the manifest were replaced with U+FFFD"
        )
        repaired["meta_data"].setdefault("notes", []).append(note)
        record = cast("dict[str, Any]", result)  # repaired in place: the caller's result is what was written
        record.clear()
        record.update(repaired)
        text, _ = json_text(scrub(result))
    line = (text + "\n").encode("utf-8")
    if len(line) > MAX_LINE_BYTES:
        line = (json_text(scrub(_without_recordings(result, len(line))))[0] + "\n").encode("utf-8")
    return line


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[BinaryIO]:
    """A file written beside `path` and moved over it only when complete; readable by later steps.

    Whatever goes wrong before the end (a full disk, Ctrl-C) leaves `path` as it was.
    """
    tmp = path.with_name(path.name + ".tmp")
    try:
        with tmp.open("wb") as handle:
            yield handle
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def write_json(path: Path, data: Any) -> Path:
    """A JSON file (summary, plan) replaced atomically, credentials scrubbed.

    A mapping in it that is not a dict (a run's many simulations, read from disk) is written entry
    by entry, never whole in memory; the bytes are those of the same document with dicts.
    """
    with replaced_atomically(path) as handle:
        for piece in json_pieces(data, 2, _scrubbed_json):
            handle.write(piece.encode("utf-8"))
        handle.write(b"\n")
    return path


def _scrubbed_json(value: Any, indent: int | None) -> str:
    return json_text(scrub(value), indent=indent)[0]
