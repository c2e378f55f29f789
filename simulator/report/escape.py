"""Untrusted text made safe inside a Markdown sentence or table cell, or inside raw HTML.

GitHub makes a link of an address in plain text (`https://…`, `www.…`, `name@host`: the cmark-gfm
`autolink` extension). A Markdown escape does not reliably stop it: emails are found in the text
after escapes are undone (`name\\@host` is still a link), and which escapes stop a URL depends on
the renderer's version. Text from an app or an LLM must not give a reader a link to click, so a
word joiner (U+2060, invisible) goes where an address would start: between a scheme's `:` and
`//`, between `www` and its dot, and after an `@` (which also keeps an @mention from pinging).
The text reads the same; it no longer parses as an address. Code blocks are never autolinked
and are left as they are.
"""

from __future__ import annotations

import html
import re
from typing import Any

from ..known_secrets import scrub_text

#: where an autolink or an @mention would start: `scheme:|//`, `www|.` and `@|host` (any case)
_LINK_START = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)(?=\S)", re.IGNORECASE)
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")


def _flat(text: Any, limit: int) -> str:
    """One line of at most `limit` characters, known credentials scrubbed first: once escaped
    (`_` -> `\\_`) or cut, a credential is no longer recognisable."""
    value = " ".join(scrub_text(str(text)).split())
    return value if len(value) <= limit else value[: limit - 1] + "…"


def inline(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe for a table cell or a sentence."""
    value = _flat(text, limit).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _unlinked(_INLINE_SPECIAL.sub(r"\\\1", value))


def html_text(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe inside raw HTML, such as a comment's `<summary>`.

    GitHub reads an HTML block as HTML, not Markdown, so a Markdown escape there would show its
    backslash: only `&`, `<` and `>` are escaped, and addresses and @mentions are kept from
    becoming links and pings.
    """
    return _unlinked(html.escape(_flat(text, limit), quote=False))


def _unlinked(text: str) -> str:
    """`text` with a word joiner where GitHub would start a link or an @mention (see the module)."""
    return _LINK_START.sub("\u2060", text)
