"""Indented JSON of a document that holds a mapping too large to hold whole, written in pieces.

A run of many simulations reads `summary["simulations"]` from disk: a read-only mapping that
`json.dumps` cannot write and that would cost gigabytes copied into a dict. `json_pieces` writes
the document around it as `json.dumps` does, with a placeholder where each such mapping goes,
and the mapping itself one entry at a time in its place. The text is that of the same document
with dicts, byte for byte.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator, Mapping
from typing import Any

#: how a piece becomes text: `(value, indent)` → JSON (the default is `json.dumps`'s, not ASCII-only)
Dumps = Callable[[Any, "int | None"], str]


def _dumps(value: Any, indent: int | None) -> str:
    return json.dumps(value, ensure_ascii=False, indent=indent)


def _marked(node: Any, found: list[Mapping[str, Any]], mark: str) -> Any:
    """`node` with every mapping that is not a dict, reached through dicts, replaced by a placeholder
    (`mark` and its number); dicts without one are returned as they are, not copied."""
    if not isinstance(node, Mapping):
        return node
    if not isinstance(node, dict):
        found.append(node)
        return f"{mark}{len(found) - 1}"
    copy, changed = {}, False
    for key, value in node.items():
        copy[key] = _marked(value, found, mark)
        changed = changed or copy[key] is not value
    return copy if changed else node


def _entries(mapping: Mapping[str, Any], depth: int, indent: int, dumps: Dumps) -> Iterator[str]:
    """`mapping` as an object at `depth`, as `json.dumps(..., indent=indent)` writes it there."""
    pad = "\n" + " " * (indent * (depth + 1))
    opened = False
    for key, value in mapping.items():
        entry = dumps(value, indent).replace("\n", pad)
        yield ("," if opened else "{") + pad + dumps(key, None) + ": " + entry
        opened = True
    yield "\n" + " " * (indent * depth) + "}" if opened else "{}"


def json_pieces(document: Any, indent: int = 2, dumps: Dumps = _dumps) -> Iterator[str]:
    """`json.dumps(document, ensure_ascii=False, indent=indent)` in pieces, each mapping in it that is
    not a dict (reached through dicts) written one entry at a time. `dumps` writes each piece (the
    results folder's scrubs credentials and repairs text UTF-8 cannot hold)."""
    found: list[Mapping[str, Any]] = []
    mark = f"\x00streamed-{secrets.token_hex(8)}:"
    text = dumps(_marked(document, found, mark), indent)
    for number, mapping in enumerate(found):
        before, text = text.split(dumps(f"{mark}{number}", None), 1)
        line = before.rpartition("\n")[2]
        yield before
        yield from _entries(mapping, (len(line) - len(line.lstrip(" "))) // indent, indent, dumps)
    yield text
