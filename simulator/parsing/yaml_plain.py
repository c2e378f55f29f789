"""Plain YAML documents read straight from libyaml's events: the data and its line numbers in one pass.

Most manifests and personas are plain: mappings with text keys, lists, text, whole and finite
numbers, true/false and null, with no anchor, alias, tag or merge key. For those, building
PyYAML's node graph and then walking it four times (aliases, keys, lines, plain values) costs
several times what reading the events does. `read_plain` gives `(data, lines)` exactly as
`yaml_source.parse_yaml` would, or None for anything else -- a document that is not plain, is not
valid YAML, nests too deep, or PyYAML without libyaml -- which the general loader then reads or
explains.
"""

from __future__ import annotations

import math
from typing import Any

from yaml.constructor import SafeConstructor
from yaml.events import (
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser

    LIBYAML = True
except ImportError:  # PyYAML built without libyaml
    LIBYAML = False

_STR = "tag:yaml.org,2002:str"
_FLOAT = "tag:yaml.org,2002:float"
#: the scalar kinds a plain document may hold besides text
_SCALARS = frozenset({"tag:yaml.org,2002:int", _FLOAT, "tag:yaml.org,2002:bool", "tag:yaml.org,2002:null"})


class _NotPlain(Exception):
    """Something the general loader must read (or explain)."""


class _Reader(Resolver):
    def __init__(self, parser: Any, max_depth: int) -> None:
        super().__init__()
        self.next_event = parser.get_event
        self.max_depth = max_depth
        self.lines: dict[tuple, int] = {}
        self.constructor = SafeConstructor()
        self.tags: dict[str, str] = {}  # a plain scalar's tag, by its text: keys and values repeat

    def document(self) -> tuple[Any, dict[tuple, int]]:
        self.next_event()  # the stream starts
        if isinstance(self.next_event(), StreamEndEvent):
            return None, {}
        root = self.next_event()  # after the document's start
        self.lines[()] = root.start_mark.line + 1
        data = self.value(root, (), 1)
        self.next_event()  # the document ends
        if not isinstance(self.next_event(), StreamEndEvent):
            raise _NotPlain("more than one document")
        return data, self.lines

    def value(self, event: Any, path: tuple, depth: int) -> Any:
        if depth > self.max_depth or event.anchor is not None:
            raise _NotPlain("too deep, or an anchor")
        kind = type(event)
        if kind is ScalarEvent:
            return self.scalar(event)
        if event.tag is not None:
            raise _NotPlain("a tagged collection")
        if kind is SequenceStartEvent:
            return self.sequence(path, depth)
        if kind is MappingStartEvent:
            return self.mapping(path, depth)
        raise _NotPlain("an alias")

    def sequence(self, path: tuple, depth: int) -> list[Any]:
        items: list[Any] = []
        lines = self.lines
        event = self.next_event()
        while type(event) is not SequenceEndEvent:
            child = path + (len(items),)
            lines.setdefault(child, event.start_mark.line + 1)
            items.append(self.value(event, child, depth + 1))
            event = self.next_event()
        return items

    def mapping(self, path: tuple, depth: int) -> dict[str, Any]:
        mapping: dict[str, Any] = {}
        lines = self.lines
        event = self.next_event()
        while type(event) is not MappingEndEvent:
            if type(event) is not ScalarEvent or event.anchor is not None:
                raise _NotPlain("a key that is not text")
            key = self.scalar(event)
            if not isinstance(key, str):
                raise _NotPlain("a key that is not text")
            if event.start_mark is None:  # libyaml marks every event; the general loader finds the line
                raise _NotPlain("a key without a position")
            if key in mapping:  # the general loader names it, at both lines
                raise _NotPlain("a repeated key")
            child = path + (key,)
            lines.setdefault(child, event.start_mark.line + 1)
            mapping[key] = self.value(self.next_event(), child, depth + 1)
            event = self.next_event()
        return mapping

    def scalar(self, event: Any) -> Any:
        tag = event.tag
        if tag is None and event.implicit[0]:
            tag = self.tags.get(event.value)
            if tag is None:
                tag = self.tags[event.value] = self.resolve(ScalarNode, event.value, event.implicit)
        elif tag is None or tag == "!":
            tag = self.resolve(ScalarNode, event.value, event.implicit)
        if tag == _STR:
            return event.value
        if tag not in _SCALARS:
            raise _NotPlain(f"a {tag} value")
        node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
        value = self.constructor.yaml_constructors[tag](self.constructor, node)
        if tag == _FLOAT and not math.isfinite(value):
            raise _NotPlain("a number that is not finite")
        return value


def read_plain(text: str, max_depth: int) -> tuple[Any, dict[tuple, int]] | None:
    """`(data, lines)` of a plain document nested at most `max_depth` deep; None for any other text."""
    if not LIBYAML:
        return None
    try:
        parser = CParser(text)
    except Exception:  # text libyaml cannot take (e.g. a lone surrogate): the general loader explains
        return None
    try:
        return _Reader(parser, max_depth).document()
    except Exception:  # not plain, or not valid YAML: the general loader reads or explains it
        return None
    finally:
        parser.dispose()
