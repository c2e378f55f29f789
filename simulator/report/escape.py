"""Untrusted text made safe inside a Markdown sentence or table cell, or inside raw HTML."""

from __future__ import annotations

import html
import re
from typing import Any

from ..known_secrets import scrub_text

_MENTION = re.compile(r"@(?=[A-Za-z0-9_-])")
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")


def _flat(text: Any, limit: int) -> str:
    """One line of at most `limit` characters, known credentials scrubbed first: once escaped
    (`_` -> `\\_`) or cut, a credential is no longer recognisable."""
    value = " ".join(scrub_text(str(text)).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def inline(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe for a table cell or a sentence."""
    value = _flat(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    value = _INLINE_SPECIAL.sub(r"\\\1", value)
    return _MENTION.sub("@\u2060", value)


def html_text(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe inside raw HTML, such as a comment's `<summary>`.

    GitHub reads an HTML block as HTML, not Markdown, so a Markdown escape there would show its
    backslash: only `&`, `<` and `>` are escaped, and @mentions are kept from pinging.
    """
    return _MENTION.sub("@\u2060", html.escape(_flat(text, limit), quote=False))
