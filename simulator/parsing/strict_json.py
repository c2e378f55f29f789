"""The one JSON reader for everything that comes from outside: a model's answer, an app's answer, an
artifact, a results folder.

The standard library's rules let such text lie or crash a reader later: a repeated key keeps its
last value (`{"verdict": "fail", "verdict": "pass"}` reads as a pass), `NaN`, `Infinity` and `1e400`
(or `1` and 400 zeros) are numbers no count or rate can hold, and a document nested a few thousand deep ends in a
`RecursionError` wherever it is next walked. Here each of them is a `JSONError` (a `ValueError`)
that says what was wrong, so every caller keeps its own handling of "not JSON".
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

#: the deepest nesting read from a file or an artifact (our own files nest less than 12 deep)
MAX_DEPTH = 96
#: the deepest nesting of a document that is kept inside a results line (an app's or a model's
#: answer): room for the line's own levels, so what a run writes it can read back
EMBEDDED_MAX_DEPTH = MAX_DEPTH - 16
#: integers read are smaller than this in magnitude (any 64-bit id fits): a count of 10**400 is no count
INTEGER_LIMIT = 2**64


class JSONError(ValueError):
    """Text that is not JSON, or JSON that cannot be trusted as it stands."""


class NotJSON(JSONError):
    """Text that is not JSON at all (rather than JSON that cannot be trusted)."""


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found = dict(pairs)
    if len(found) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise JSONError(f"it repeats the key {key!r} (which value is meant cannot be known)")
            seen.add(key)
    return found


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise JSONError(f"the number {text[:40]} is out of range")
    return value


def _integer(text: str) -> int:
    value = int(text) if len(text) <= 21 else INTEGER_LIMIT
    if not -INTEGER_LIMIT < value < INTEGER_LIMIT:
        raise JSONError(f"the number {text[:24]}{'…' if len(text) > 24 else ''} is out of range")
    return value


def _constant(name: str) -> Any:
    raise JSONError(f"{name} is not a JSON number")


def deeper_than(document: Any, limit: int) -> int:
    """The nesting of `document` when it is deeper than `limit`, else 0: walked without recursion,
    containers only, so a string-heavy document costs a fraction of its parse."""
    stack = [(document, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return depth
        for child in node.values() if type(node) is dict else node:
            if (type(child) is dict or type(child) is list) and child:
                stack.append((child, depth + 1))
            elif depth + 1 > limit and (type(child) is dict or type(child) is list):
                return depth + 1
    return 0


#: what `loads` reads with: repeated keys and numbers no count can hold are errors
_HOOKS: dict[str, Any] = {
    "object_pairs_hook": _no_repeats,
    "parse_float": _finite,
    "parse_int": _integer,
    "parse_constant": _constant,
}


def strict_decoder() -> json.JSONDecoder:
    """A decoder that reads as `loads` does, for a reader that takes a document piece by piece."""
    return json.JSONDecoder(**_HOOKS)


def loads(text: str | bytes | bytearray, *, max_depth: int = MAX_DEPTH) -> Any:
    """`text` as JSON, or a `JSONError`: a repeated key, a non-finite number, `NaN`/`Infinity`, or
    nesting deeper than `max_depth` are errors, not values."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8-sig" if text[:3] == b"\xef\xbb\xbf" else "utf-8")
        except UnicodeDecodeError as exc:
            raise NotJSON(f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    try:
        document = json.loads(text, **_HOOKS)
    except JSONError:
        raise
    except json.JSONDecodeError as exc:
        raise NotJSON(f"it is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    except RecursionError:
        raise JSONError("it is nested too deeply") from None
    except ValueError as exc:
        raise JSONError(f"it is not usable JSON ({str(exc).split(':')[0]})") from None
    if (type(document) is dict or type(document) is list) and document:
        deepest = deeper_than(document, max_depth)
        if deepest:
            raise JSONError(f"it is nested more than {max_depth} deep")
    return document


_FENCE = re.compile(r"```(?:json)?\s*(.*?)\s*```", re.DOTALL)


def without_fence(text: str) -> str:
    """A model's answer without the Markdown code fence small models put around JSON."""
    cleaned = text.strip()
    fenced = _FENCE.fullmatch(cleaned)
    return fenced.group(1) if fenced else cleaned
