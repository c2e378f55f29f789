"""Untrusted text made safe inside a Markdown sentence or table cell."""

from __future__ import annotations

import re
from typing import Any

_MENTION = re.compile(r"@(?=[A-Za-z0-9_-])")
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")


def inline(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe for a table cell or a sentence."""
    value = " ".join(str(text).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _INLINE_SPECIAL.sub(r"\\\1", value)
    return _MENTION.sub("@\u2060", value)
