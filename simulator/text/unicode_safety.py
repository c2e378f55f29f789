"""Text from outside (an app's JSON, an LLM, a manifest) may hold lone surrogates: `"\\ud800"` is
valid JSON but no UTF-8 can store or send it. They become U+FFFD where text enters a conversation,
so the next request, the results file and the reports never meet them."""

from __future__ import annotations

import re
from typing import Any

_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_lone_surrogates(node: Any) -> tuple[Any, int]:
    """`node` (text, or JSON-like lists and dicts) with lone surrogates replaced, and how many were."""
    if isinstance(node, str):
        if _SURROGATE.search(node) is None:
            return node, 0
        return _SURROGATE.subn("\ufffd", node)
    if isinstance(node, dict):
        total, out = 0, {}
        for key, value in node.items():
            clean_key, n_key = replace_lone_surrogates(key) if isinstance(key, str) else (key, 0)
            out[clean_key], n_value = replace_lone_surrogates(value)
            total += n_key + n_value
        return (out, total) if total else (node, 0)
    if isinstance(node, (list, tuple)):
        items = [replace_lone_surrogates(value) for value in node]
        total = sum(n for _, n in items)
        return ([value for value, _ in items], total) if total else (node, 0)
    return node, 0


def lone_surrogate_fields(node: Any) -> list[tuple[tuple, int]]:
    """Where in `node` (JSON-like) lone surrogates are: each field's path (keys as they are) and how
    many it holds, in the order met; a key that holds some counts for the field it names."""
    found: dict[tuple, int] = {}

    def walk(value: Any, path: tuple) -> None:
        if isinstance(value, str):
            count = len(_SURROGATE.findall(value))
            if count:
                found[path] = found.get(path, 0) + count
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str):
                    walk(key, (*path, key))
                walk(item, (*path, key))
        elif isinstance(value, (list, tuple)):
            for index, item in enumerate(value):
                walk(item, (*path, index))

    walk(node, ())
    return list(found.items())


def surrogate_note(count: int, where: str) -> str:
    return f"{count} character(s) in {where} were not valid Unicode (lone surrogates) and were replaced with U+FFFD"


#: characters that steer a terminal or the reading order rather than show: C0 controls but tab and
#: newline, DEL, C1 controls (ESC starts ANSI sequences, CR rewrites a line, BEL rings) and the bidi
#: embeddings, overrides, isolates and marks that reorder the text after them
_STEERING = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    if char == "\r":
        return "\\r"
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def visible_controls(text: str) -> str:
    """`text` with every character that would steer a terminal, a CI log or the reading order of a
    page written as a visible escape (`\\x1b`, `\\r`, `\\u202e`): text from an app or an LLM cannot
    rewrite a console line, hide itself or reverse the words after it."""
    if not isinstance(text, str) or _STEERING.search(text) is None:
        return text
    return _STEERING.sub(_visible, text)


def visible_controls_in(node: Any) -> Any:
    """`node` (text, or JSON-like lists and dicts) with `visible_controls` applied to every string in
    it, keys included; parts without such characters are returned as they are."""
    if isinstance(node, str):
        return visible_controls(node)
    if isinstance(node, dict):
        return {visible_controls_in(key): visible_controls_in(value) for key, value in node.items()}
    if isinstance(node, (list, tuple)):
        return [visible_controls_in(value) for value in node]
    return node
