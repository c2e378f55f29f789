"""Where the reply text sits in an app's JSON answer: `data.reply.text`, `choices[0].message.content`.

A path is dotted keys with list indexes (`choices.0.message.content` or `choices[0].message.content`,
negative indexes count from the end) and `[*]` (or `*`) to map over a list: `messages[*].text` gives
one value per message. A missing segment raises `PathError` saying which segment and what was there,
so a wrong `response` setting is fixed from the message alone.
"""

from __future__ import annotations

import re
from typing import Any

from ..errors import ConfigError


class Wildcard:
    """The `[*]` segment: map the rest of the path over every element."""

    def __repr__(self) -> str:
        return "[*]"


WILDCARD = Wildcard()
Segment = str | int | Wildcard

_TOKEN = re.compile(r"\[\s*(\*|-?\d+)\s*\]|\[\s*['\"]([^'\"]*)['\"]\s*\]|([^.\[\]]+)|(\.)")
_INDEX = re.compile(r"-?\d+")


class PathError(KeyError):
    """A segment of the path is not in the document (a `KeyError` whose message reads well)."""

    def __init__(self, message: str, *, path: str, segment: str, at: str) -> None:
        super().__init__(message)
        self.message = message
        self.path = path
        self.segment = segment
        self.at = at

    def __str__(self) -> str:
        return self.message


def parse_path(path: str) -> list[Segment]:
    """Split `path` into keys, indexes and wildcards; a malformed path is a `ConfigError`."""
    if not isinstance(path, str) or not path.strip():
        raise ConfigError(f"path must be a non-empty string, got {path!r}")
    text = path.strip()
    segments: list[Segment] = []
    position = 0
    expect_segment = True  # at the start or right after a dot
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            raise ConfigError(f"path {path!r}: cannot read it at position {position} ({text[position:]!r})")
        bracket, quoted, word, dot = match.groups()
        if dot:
            if expect_segment:
                raise ConfigError(f"path {path!r}: empty segment at position {position}")
            expect_segment = True
        elif bracket is not None:
            segments.append(WILDCARD if bracket == "*" else int(bracket))
            expect_segment = False
        elif quoted is not None:
            segments.append(quoted)
            expect_segment = False
        else:
            if not expect_segment:
                raise ConfigError(f"path {path!r}: missing '.' before {word!r}")
            word = word.strip()
            segments.append(WILDCARD if word == "*" else word)
            expect_segment = False
        position = match.end()
    if expect_segment:
        raise ConfigError(f"path {path!r}: ends with '.'")
    return segments


def format_path(segments: list[Segment]) -> str:
    """The canonical spelling of a (partial) path, for messages."""
    out = ""
    for segment in segments:
        if isinstance(segment, Wildcard):
            out += "[*]"
        elif isinstance(segment, int):
            out += f"[{segment}]"
        else:
            out += ("." if out else "") + segment
    return out or "(the whole answer)"


def describe_value(value: Any, limit: int = 12) -> str:
    """What a missing segment found instead: the keys of a dict, the length of a list, the type."""
    if isinstance(value, dict):
        keys = [str(k) for k in value]
        shown = ", ".join(keys[:limit]) + (f", ... ({len(keys)} keys)" if len(keys) > limit else "")
        return f"an object with keys: {shown}" if keys else "an empty object"
    if isinstance(value, list):
        return f"a list of length {len(value)}"
    if value is None:
        return "null"
    text = repr(value)
    return f"a {type(value).__name__} ({text[:60] + '...' if len(text) > 60 else text})"


def extract(document: Any, path: str | list[Segment]) -> Any:
    """The value at `path`; a `[*]` segment gives a list with one value per element (flattened).

    Raises `PathError` (a `KeyError`) naming the missing segment and what was there instead.
    """
    segments = parse_path(path) if isinstance(path, str) else list(path)
    shown = path if isinstance(path, str) else format_path(segments)
    return _walk(document, segments, 0, [], shown)


def _walk(value: Any, segments: list[Segment], index: int, done: list[Segment], path: str) -> Any:
    if index == len(segments):
        return value
    segment = segments[index]
    here = format_path(done)

    def missing(what: str) -> PathError:
        return PathError(
            f"path {path!r}: {what} at {here}, which is {describe_value(value)}",
            path=path,
            segment=format_path([segment]),
            at=here,
        )

    if isinstance(segment, Wildcard):
        items: list[tuple[Any, Any]]
        if isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = list(value.items())
        else:
            raise missing("[*] needs a list")
        out: list[Any] = []
        for key, item in items:
            found = _walk(item, segments, index + 1, [*done, key], path)
            if index + 1 < len(segments) and any(isinstance(s, Wildcard) for s in segments[index + 1 :]):
                out.extend(found if isinstance(found, list) else [found])
            else:
                out.append(found)
        return out
    if isinstance(value, list):
        position: int | None = segment if isinstance(segment, int) else None
        if isinstance(segment, str) and _INDEX.fullmatch(segment):
            position = int(segment)
        if position is None:
            raise missing(f"key {segment!r} needs an object")
        if not -len(value) <= position < len(value):
            raise missing(f"index {position} is out of range")
        return _walk(value[position], segments, index + 1, [*done, position], path)
    if isinstance(value, dict):
        key = str(segment)
        if key not in value:
            raise missing(f"key {key!r} is missing")
        return _walk(value[key], segments, index + 1, [*done, key], path)
    raise missing(f"segment {format_path([segment])!r} cannot be looked up")
