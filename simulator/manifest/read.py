"""Step 1 of loading: the manifest's YAML with the line of every value, checked against the schema.

Nothing is filled in or resolved yet: the schema sees the text as written. Stop markers that YAML
read as comments are found here too, from the text itself.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..parsing.schema_check import schema_errors
from ..parsing.yaml_source import YamlDocument, load_yaml_file
from .types import ManifestError


def read_manifest(path: Path) -> tuple[YamlDocument, list[str], list[str]]:
    """The manifest's YAML, its schema problems (in file order) and its warnings (stop markers read
    as comments); an unreadable file or a document that is not a mapping raises `ManifestError` at
    once (nothing further can be read)."""
    source = str(path)
    doc = load_yaml_file(path, "manifest")
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ManifestError(source, [f"{source}: expected a mapping with 'version' and 'simulations', got {kind}"])
    return doc, schema_errors(doc.data, "manifest", doc=doc), marker_comments(path)


def in_file_order(problems: list[str], source: str) -> list[str]:
    """`problems` once each, ordered by the line they name."""
    return sorted(dict.fromkeys(problems), key=lambda problem: _line_of(problem, source))


def _line_of(problem: str, source: str) -> int:
    line = problem[len(source) + 1 :].split(":", 1)[0] if problem.startswith(source + ":") else ""
    return int(line) if line.isdigit() else 0


_MARKER_COMMENT = re.compile(r"#{2,}\s*(STOP|GIVE[\s_-]*UP)\b", re.IGNORECASE)


def marker_comments(path: Path) -> list[str]:
    """Stop markers YAML read as comments: in `- Thanks ###STOP###` (unquoted) ` #` starts a comment,
    so the message is "Thanks" and does not end the conversation. Each becomes a warning at its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        if "#" not in line or not _MARKER_COMMENT.search(line):  # most lines: no marker at all
            continue
        start = _comment_start(line)
        if (
            start is not None
            and line[:start].strip()
            and _MARKER_COMMENT.match(line[start:].lstrip("# \t")[:0] + line[start:])
        ):
            found.append(
                f"{path}:{number}: {line[start:].strip()!r} is a YAML comment here, so it does not end the "
                'conversation; quote the whole message, e.g. "Thanks ###STOP###"'
            )
    return found


def _comment_start(line: str) -> int | None:
    """Where a YAML comment starts on `line` (a `#` after whitespace, outside quotes), or None."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return None
