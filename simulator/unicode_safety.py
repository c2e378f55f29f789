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


def surrogate_note(count: int, where: str) -> str:
    return f"{count} character(s) in {where} were not valid Unicode (lone surrogates) and were replaced with U+FFFD"
