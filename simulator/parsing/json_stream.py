"""One large JSON object read member by member, under `strict_json`'s rules, never held whole.

A base run's summary.json holds an entry per simulation: 91 MB at 100,000 simulations, which
`json.loads` turns into some 400 MB of dicts before the comparison reads the first. Here the file
is read a chunk at a time and one member (`simulations`) comes entry by entry, each decoded by
the same decoder `strict_json.loads` uses: a repeated key (at any level), a non-finite number or
nesting deeper than `max_depth` is a `JSONError`, text that is not JSON a `NotJSON` naming its
line and column, as `loads` says them.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Collection, Generator, Iterator
from typing import IO, Any

from .strict_json import MAX_DEPTH, JSONError, NotJSON, deeper_than, strict_decoder

#: characters decoded from the file at a time
CHUNK = 1 << 20
#: characters past a value that must be in the window before it is taken as read: a number cut
#: at the window's end (`1.5` of `1.5e+9`) stops short of `e+` and seems complete
LOOKAHEAD = 3
_SPACE = re.compile(r"[ \t\n\r]*")


#: where a member sits: the keys of the objects around it, outermost first (`()`: the document)
Path = tuple[str, ...]


def stream_object(file: IO[bytes], expand: str, *, max_depth: int = MAX_DEPTH) -> Iterator[tuple[str, str | None, Any]]:
    """The JSON object in `file`, member by member: `(key, None, value)` for each, except that the
    member `expand`, when its value is an object with entries, comes entry by entry as
    `(expand, name, value)`."""
    for path, key, value in stream_members(file, {(expand,)}, max_depth=max_depth):
        yield (key, None, value) if not path else (expand, key, value)


def stream_members(
    file: IO[bytes], expand: Collection[Path], *, max_depth: int = MAX_DEPTH
) -> Iterator[tuple[Path, str, Any]]:
    """The JSON object in `file`, member by member as `(path, key, value)`, `path` being where the
    member sits; an object at a path in `expand` comes the same way, member by member, rather than
    whole (when it has members: an empty one comes whole, as `{}`)."""
    reader = _Reader(file, max_depth)
    reader.expect("{")
    yield from _members(reader, (), set(expand), max_depth)
    reader.finish()


def _members(
    reader: _Reader, path: Path, expand: set[Path], max_depth: int
) -> Generator[tuple[Path, str, Any], None, bool]:
    """The members of the object whose `{` the reader has just passed, through its `}`; returns
    whether it had any."""
    keys: set[str] = set()
    if reader.ends("}"):
        return False
    while True:
        key = reader.key(keys)
        reader.expect(":")
        inner = (*path, key)
        if inner in expand and reader.peek() == "{":
            reader.expect("{")
            if not (yield from _members(reader, inner, expand, max_depth)):
                yield path, key, {}
        else:
            yield path, key, reader.value(max_depth - len(inner))
        if reader.ends("}", ","):
            return True


class _Reader:
    """A window on the file's text that grows by `CHUNK` when a value runs past its end."""

    def __init__(self, file: IO[bytes], max_depth: int) -> None:
        self._file = file
        self._max_depth = max_depth
        self._decode = codecs.getincrementaldecoder("utf-8-sig")()
        self._decoder = strict_decoder()
        self._text = ""
        self._at = 0
        self._eof = False
        #: lines and the last line's characters in the text dropped before `_text`, for messages
        self._lines_before = 0
        self._column_before = 0

    def _more(self) -> bool:
        """Read on into the window (dropping what was read before `_at`); False at the end of the
        file, the window then as it was."""
        text = ""
        while not text and not self._eof:
            data = self._file.read(CHUNK)
            self._eof = not data
            try:
                text = self._decode.decode(data, final=self._eof)
            except UnicodeDecodeError as exc:
                raise NotJSON(f"it is not UTF-8 text ({exc.reason})") from None
        if not text:
            return False
        dropped = self._text[: self._at]
        newlines = dropped.count("\n")
        self._lines_before += newlines
        self._column_before = len(dropped) - dropped.rfind("\n") - 1 if newlines else self._column_before + len(dropped)
        self._text, self._at = self._text[self._at :] + text, 0
        return True

    def _space(self) -> None:
        while True:
            self._at = _SPACE.match(self._text, self._at).end()  # type: ignore[union-attr]
            if self._at < len(self._text) or not self._more():
                return

    def peek(self) -> str:
        self._space()
        return self._text[self._at : self._at + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            self._fail(f"Expecting {char!r}")
        self._at += 1

    def ends(self, close: str, separator: str | None = None) -> bool:
        """True past `close`; past `separator` (or at nothing, when none is given) False."""
        found = self.peek()
        if found == close:
            self._at += 1
            return True
        if separator is None:
            return False
        if found != separator:
            self._fail(f"Expecting {separator!r} delimiter")
        self._at += 1
        return False

    def key(self, seen: set[str]) -> str:
        if self.peek() != '"':
            self._fail("Expecting property name enclosed in double quotes")
        key = self._decoded()
        if key in seen:
            raise JSONError(f"it repeats the key {key!r} (which value is meant cannot be known)")
        seen.add(key)
        return key

    def value(self, depth_left: int) -> Any:
        self._space()
        value = self._decoded()
        if (type(value) is dict or type(value) is list) and value and deeper_than(value, depth_left):
            raise JSONError(f"it is nested more than {self._max_depth} deep")
        return value

    def finish(self) -> None:
        if self.peek():
            self._fail("Extra data")

    def _decoded(self) -> Any:
        while True:
            try:
                value, end = self._decoder.raw_decode(self._text, self._at)
            except json.JSONDecodeError as exc:
                if self._more():
                    continue
                self._fail(exc.msg, exc.pos)
            except RecursionError:
                raise JSONError("it is nested too deeply") from None
            if len(self._text) - end <= LOOKAHEAD and self._more():
                continue  # a number at the window's end may go on in the next chunk (`1` of `1e400`)
            self._at = end
            return value

    def _fail(self, what: str, at: int | None = None) -> None:
        at = self._at if at is None else at
        before = self._text[:at]
        line = before.count("\n")
        column = at - before.rfind("\n") if line else self._column_before + at + 1
        raise NotJSON(f"it is not JSON ({what} at line {self._lines_before + line + 1} column {column})")
