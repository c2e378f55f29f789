"""Documents (Markdown, text, HTML; a folder or files) read into passages that cite `file:line`.

A task generated from the documents names the passage it came from, so a reviewer can check it
against the text: each passage keeps its file, first and last line and the headings above it.
HTML is read with the standard library's `html.parser` (scripts, styles and the head left out),
each block element a paragraph at the line it starts on.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path

from ..errors import SourceError

#: what a documents folder is searched for; a file named on the command line is read whatever its suffix
DOC_SUFFIXES = (".md", ".markdown", ".mdx", ".txt", ".rst", ".html", ".htm")
HTML_SUFFIXES = (".html", ".htm")
MARKDOWN_SUFFIXES = (".md", ".markdown", ".mdx")
#: a passage holds paragraphs under one heading up to about this many characters
PASSAGE_CHARS = 1200
#: files larger than this are refused: documentation, not a data dump
MAX_FILE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class Passage:
    """A piece of a document: its text, where it is, and the headings above it."""

    source: str
    start: int
    end: int
    text: str
    heading: str = ""
    #: its paragraphs, each with its first and last line: a quote is cited at the one that holds it
    parts: tuple[tuple[int, int, str], ...] = ()

    @property
    def citation(self) -> str:
        """`docs/returns.md:12-18`: where a reviewer finds it."""
        return _cite(self.source, self.start, self.end)

    def locate(self, quote: str) -> str | None:
        """Where in the passage a quote is, word for word (case and spacing aside); None when it is not."""
        wanted = words(quote)
        if not wanted:
            return None
        for start, end, text in self.parts:
            if wanted in words(text):
                return _cite(self.source, start, end)
        return self.citation if wanted in words(self.text) else None


def _cite(source: str, start: int, end: int) -> str:
    return f"{source}:{start}" if start == end else f"{source}:{start}-{end}"


def words(text: str) -> str:
    """Lower case, one space between words: how a quote or a phrase is looked for in a text."""
    return " ".join(re.findall(r"\w+", text.casefold()))


@dataclass
class Block:
    """A paragraph: its lines and the heading it sits under."""

    start: int
    end: int
    text: str
    heading: str


def shown_path(path: Path) -> str:
    """The path as a reviewer reads it: relative to the current directory when inside it."""
    try:
        relative = os.path.relpath(path.resolve(), Path.cwd().resolve())
    except (OSError, ValueError):
        return path.as_posix()
    return Path(relative).as_posix() if not relative.startswith("..") else path.as_posix()


def read_text(path: Path, what: str) -> str:
    """A source file's text, or a `SourceError` naming it and what to give instead."""
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SourceError(
                f"{path}: {size:,} bytes is more than the {MAX_FILE_BYTES // (1024 * 1024)} MiB a {what} may have; "
                "give the part that matters"
            )
        data = path.read_bytes()
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file or folder; give an existing {what}") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the {what}: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: byte {exc.start} is not UTF-8 text; give the {what} as UTF-8 text") from None


class _HtmlText(HTMLParser):
    """An HTML page's visible text as blocks, each at the source line it starts on."""

    BLOCKS = frozenset(
        """
        address article aside blockquote br dd div dl dt figcaption footer form h1 h2 h3 h4 h5 h6 header
        hr li main nav ol p pre section table td th tr ul
        """.split()  # noqa: SIM905 - a word list reads better as words
    )
    SKIPPED = frozenset({"script", "style", "head", "noscript", "template", "svg", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self._parts: list[str] = []
        self._start = 0
        self._end = 0
        self._skip = 0
        self._heading_level = 0
        self._headings: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self.SKIPPED:
            self._skip += 1
        elif tag in self.BLOCKS:
            self._flush()
            if re.fullmatch(r"h[1-6]", tag):
                self._heading_level = int(tag[1])

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self._skip = max(0, self._skip - 1)
        elif tag in self.BLOCKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self._skip or not data.strip():
            if data and self._parts:
                self._parts.append(" ")
            return
        line = self.getpos()[0]
        if not self._parts:
            self._start = line + (len(data) - len(data.lstrip("\n")))
        self._end = line + data.rstrip().count("\n")
        self._parts.append(data)

    def _flush(self) -> None:
        text = " ".join("".join(self._parts).split())
        self._parts = []
        if not text:
            self._heading_level = 0
            return
        if self._heading_level:
            del self._headings[self._heading_level - 1 :]
            self._headings.extend([""] * (self._heading_level - 1 - len(self._headings)))
            self._headings.append(text)
            self._heading_level = 0
            return
        self.blocks.append(Block(self._start, max(self._start, self._end), text, _heading(self._headings)))

    def close(self) -> None:
        super().close()
        self._flush()


def _heading(stack: list[str]) -> str:
    return " > ".join(h for h in stack if h)


def html_blocks(text: str) -> list[Block]:
    """The visible paragraphs of an HTML page."""
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return parser.blocks


def text_blocks(text: str, markdown: bool) -> list[Block]:
    """Paragraphs separated by blank lines; in Markdown, `#` headings name the paragraphs under them
    and fenced code stays whole."""
    blocks: list[Block] = []
    headings: list[str] = []
    lines: list[tuple[int, str]] = []
    fence = ""

    def flush() -> None:
        if lines:
            body = "\n".join(line.rstrip() for _, line in lines).strip("\n")
            if body.strip():
                blocks.append(Block(lines[0][0], lines[-1][0], body, _heading(headings)))
            lines.clear()

    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if markdown and (stripped.startswith("```") or stripped.startswith("~~~")):
            marker = stripped[:3]
            fence = "" if fence == marker else (fence or marker)
            lines.append((number, line))
            continue
        heading = re.match(r"(#{1,6})\s+(.*?)\s*#*\s*$", stripped) if markdown and not fence else None
        if heading:
            flush()
            level = len(heading.group(1))
            del headings[level - 1 :]
            headings.extend([""] * (level - 1 - len(headings)))
            headings.append(heading.group(2))
        elif not stripped and not fence:
            flush()
        else:
            lines.append((number, line))
    flush()
    return blocks


def _cut(line: str) -> list[str]:
    """A line longer than a passage, cut at spaces (or hard, when it has none)."""
    parts = []
    while len(line) > PASSAGE_CHARS:
        cut = line.rfind(" ", 0, PASSAGE_CHARS)
        cut = cut if cut > PASSAGE_CHARS // 2 else PASSAGE_CHARS
        parts.append(line[:cut].strip())
        line = line[cut:].strip()
    return [*parts, line] if line else parts


def _pieces(block: Block) -> list[Block]:
    """A paragraph much longer than a passage, cut at line ends (a long line: at spaces). A one-line
    block (an HTML paragraph, whose lines are joined) keeps its lines in every piece."""
    if len(block.text) <= PASSAGE_CHARS * 3 // 2:
        return [block]
    lines = block.text.split("\n")
    joined = len(lines) == 1
    pieces: list[Block] = []
    current: list[str] = []
    first = last = block.start
    for offset, line in enumerate(lines):
        number = block.start if joined else block.start + offset
        for part in _cut(line):
            if current and sum(len(c) + 1 for c in current) + len(part) > PASSAGE_CHARS:
                pieces.append(Block(first, block.end if joined else last, "\n".join(current), block.heading))
                current = []
            if not current:
                first = number
            current.append(part)
            last = number
    if current:
        pieces.append(Block(first, block.end if joined else last, "\n".join(current), block.heading))
    return pieces


def passages_of(source: str, blocks: list[Block]) -> list[Passage]:
    """Paragraphs under one heading joined into passages of about `PASSAGE_CHARS`."""
    passages: list[Passage] = []
    group: list[Block] = []

    def close() -> None:
        if group:
            text = "\n\n".join(b.text for b in group)
            parts = tuple((b.start, b.end, b.text) for b in group)
            passages.append(Passage(source, group[0].start, group[-1].end, text, group[0].heading, parts))
            group.clear()

    for block in (piece for b in blocks for piece in _pieces(b)):
        size = sum(len(b.text) for b in group)
        if group and (block.heading != group[0].heading or size + len(block.text) > PASSAGE_CHARS):
            close()
        group.append(block)
    close()
    return passages


def read_document(path: Path, source: str | None = None) -> list[Passage]:
    """One document's passages (by its suffix: HTML, Markdown, or plain text)."""
    text = read_text(path, "document")
    suffix = path.suffix.lower()
    html = suffix in HTML_SUFFIXES
    blocks = html_blocks(text) if html else text_blocks(text, markdown=suffix in MARKDOWN_SUFFIXES)
    return passages_of(source or shown_path(path), blocks)


def document_files(path: Path) -> list[Path]:
    """The documents a `--from` path names: the file, or a folder's documents (hidden ones left out),
    sorted so the output does not depend on the file system's order."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise SourceError(f"{path}: no such file or folder; give a documents folder or file")
    found = [
        file
        for file in path.rglob("*")
        if file.is_file()
        and file.suffix.lower() in DOC_SUFFIXES
        and not any(part.startswith(".") for part in file.relative_to(path).parts)
    ]
    if not found:
        raise SourceError(f"{path}: no documents in this folder (looked for {', '.join(DOC_SUFFIXES)})")
    return sorted(found, key=lambda file: file.relative_to(path).as_posix())


def chunks(passages: list[Passage], max_chars: int) -> list[list[Passage]]:
    """Consecutive passages grouped into prompts of at most `max_chars` characters (a passage is never cut)."""
    groups: list[list[Passage]] = []
    size = 0
    for passage in passages:
        if groups and size + len(passage.text) <= max_chars:
            groups[-1].append(passage)
            size += len(passage.text)
        else:
            groups.append([passage])
            size = len(passage.text)
    return groups
