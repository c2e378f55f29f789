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
from collections.abc import Callable
from typing import Any

from ..text.known_secrets import scrub_text
from ..text.unicode_safety import visible_controls

#: where an autolink or an @mention would start: `scheme:|//`, `www|.` and `@|host` (any case)
_LINK_START = re.compile(r"(?<=:)(?=//)|(?<=www)(?=\.)|(?<=@)(?=\S)", re.IGNORECASE)
_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]|#!~])")


def clipped(text: str, limit: int, escape: Callable[[str], str]) -> str:
    """`escape(text)` in at most `limit` characters, counted as written: when it is longer, the
    longest start of `text` whose escaped form leaves room for "…" (so a cut never splits an
    escape, and text that grows when escaped, such as a control character shown as `\\x1b`, is
    measured grown). `escape` must never shorten text, and only lengthen it as text is added."""
    if len(text) <= limit:  # an escape never shortens: a longer text never fits, nor a longer start
        written = escape(text)
        if len(written) <= limit:
            return written
    low, high = 0, min(len(text), max(limit - 1, 0))
    while low < high:
        middle = (low + high + 1) // 2
        if len(escape(text[:middle])) <= limit - 1:
            low = middle
        else:
            high = middle - 1
    return escape(text[:low]) + "…"


def _flat(text: Any) -> str:
    """One line, known credentials scrubbed first: once escaped (`_` -> `\\_`) or cut, a
    credential is no longer recognisable."""
    return " ".join(scrub_text(str(text)).split())


def _inline(value: str) -> str:
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _unlinked(visible_controls(_INLINE_SPECIAL.sub(r"\\\1", value)))


def _html(value: str) -> str:
    return _unlinked(visible_controls(html.escape(value, quote=False)))


def inline(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe for a table cell or a sentence, in at most `limit` characters as
    written: Markdown and HTML characters escaped, control characters and bidi overrides shown as
    escapes (`visible_controls`), addresses and @mentions kept from linking."""
    return clipped(_flat(text), limit, _inline)


def html_text(text: Any, limit: int = 300) -> str:
    """Untrusted text made safe inside raw HTML, such as a comment's `<summary>`, in at most
    `limit` characters as written.

    GitHub reads an HTML block as HTML, not Markdown, so a Markdown escape there would show its
    backslash: only `&`, `<` and `>` are escaped, control characters and bidi overrides are shown
    as escapes, and addresses and @mentions are kept from becoming links and pings.
    """
    return clipped(_flat(text), limit, _html)


def _unlinked(text: str) -> str:
    """`text` with a word joiner where GitHub would start a link or an @mention (see the module)."""
    return _LINK_START.sub("\u2060", text)


#: a Markdown escape this module writes (`\_`), an entity (`&lt;`), the emphasis Markdown this
#: package writes (`**`, `_`) and the word joiner that stops autolinks
_MARKUP = re.compile(r"\\" + _INLINE_SPECIAL.pattern + r"|&(amp|lt|gt);|\*\*|_|\u2060")
_ENTITIES = {"amp": "&", "lt": "<", "gt": ">"}
_FOLD = re.compile(r"\s*<details><summary>(.*)</summary>\s*|\s*</details>\s*")


def _emphasis(text: str, at: int) -> bool:
    """Whether the `_` at `at` opens or closes emphasis, rather than sitting inside a word: in what
    this package writes, a `_` from untrusted text is escaped, so one that is not is its own."""
    before = text[at - 1] if at else " "
    after = text[at + 1] if at + 1 < len(text) else " "
    return not (before.isalnum() and after.isalnum())


def _plain_line(line: str) -> str:
    folded = _FOLD.fullmatch(line)
    if folded:  # a fold's summary is HTML (`html_text`): only its entities to undo
        return html.unescape(folded.group(1) or "").replace("\u2060", "")
    line = re.sub(r"^(#{1,6} |> )", "", line)

    def undo(match: re.Match[str]) -> str:
        escaped, entity, whole = match.group(1), match.group(2), match.group()
        if escaped is not None:
            return escaped
        if entity is not None:
            return _ENTITIES[entity]
        if whole == "_" and not _emphasis(line, match.start()):
            return whole
        return ""

    return _MARKUP.sub(undo, line)


def plain_text(markdown: str) -> str:
    """Markdown this package rendered (`render_markdown`, `changes_section`), as plain text for a
    terminal: escapes (`refund\\_issued`, `RF-\\\\d+`) and entities undone, the word joiners that stop
    GitHub's autolinks, headings, quote marks, bold and italics and `<details>` folds left out.
    Tables stay as they are, and control characters stay shown as escapes (`\\x1b`): nothing an
    app or an LLM wrote steers the terminal."""
    lines = [_plain_line(line) for line in markdown.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
