"""What `--from` names, read: documents as passages, the app's system prompt, production logs.

`--from` takes a folder or a file and says which it is by its shape: a `.jsonl` (or `.ndjson`)
file is a log, a file with `prompt` in its name is the app's system prompt, anything else is
documents. A `docs:`, `prompt:` or `logs:` prefix says it outright (`--from prompt:system.md`).
The command prints what it took each for before anything is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import SourceError
from .documents import Passage, document_files, read_document, read_text, shown_path
from .logs import Log, read_log
from .pii import Scrubber

KINDS = ("docs", "prompt", "logs")
LOG_SUFFIXES = (".jsonl", ".ndjson")
#: a system prompt longer than this is not one: give it as documents
MAX_PROMPT_CHARS = 40_000


@dataclass(frozen=True)
class SourceSpec:
    """One `--from`: what it is and where."""

    kind: str
    path: Path

    @property
    def label(self) -> str:
        what = {"docs": "documents", "prompt": "the app's system prompt", "logs": "conversation logs"}[self.kind]
        return f"{shown_path(self.path)} ({what})"


def parse_from(value: str) -> SourceSpec:
    """`--from VALUE`: a `kind:` prefix, else the kind its shape says."""
    kind, colon, rest = value.partition(":")
    if colon and kind in KINDS and rest:
        return SourceSpec(kind, Path(rest))
    path = Path(value)
    if path.suffix.lower() in LOG_SUFFIXES:
        return SourceSpec("logs", path)
    if path.is_file() and "prompt" in path.stem.lower():
        return SourceSpec("prompt", path)
    return SourceSpec("docs", path)


@dataclass(frozen=True)
class SystemPrompt:
    """The app's system prompt, whose lines a generated task cites."""

    source: str
    text: str

    @property
    def lines(self) -> list[str]:
        return self.text.splitlines()

    def numbered(self) -> str:
        """The prompt with its line numbers, as the model is shown it (and cites it)."""
        return "\n".join(f"{n}: {line}" for n, line in enumerate(self.lines, 1) if line.strip())

    def citation(self, line: int) -> str:
        return f"{self.source}:{line}"


@dataclass
class Sources:
    """Everything read from `--from`, before any model call."""

    specs: list[SourceSpec]
    passages: list[Passage] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    prompt: SystemPrompt | None = None
    logs: list[Log] = field(default_factory=list)
    scrubber: Scrubber = field(default_factory=Scrubber)

    @property
    def kinds(self) -> list[str]:
        """The kinds present, in the order the output lists them."""
        have = {"docs": bool(self.passages), "prompt": self.prompt is not None, "logs": bool(self.logs)}
        return [kind for kind in KINDS if have[kind]]

    def describe(self) -> list[str]:
        """One line per source: what it was taken for and how much of it there is."""
        lines = []
        if self.passages:
            chars = sum(len(p.text) for p in self.passages)
            lines.append(
                f"documents: {len(self.documents)} file(s), {len(self.passages)} passage(s), {chars:,} characters"
            )
        if self.prompt is not None:
            lines.append(f"system prompt: {self.prompt.source}, {len(self.prompt.text):,} characters")
        for log in self.logs:
            sampled = f" (an even sample of {log.total:,} lines)" if log.sampled else ""
            skipped = (
                f"; {len(log.skipped)} line(s) skipped, first at line {log.skipped[0][0]}: " if log.skipped else ""
            )
            why = log.skipped[0][1] if log.skipped else ""
            lines.append(
                f"logs: {log.source}, {len(log.conversations):,} conversation(s){sampled}, "
                f"{log.chars:,} characters of user messages{skipped}{why}"
            )
        if self.logs:
            lines.append(f"scrubbed from the logs before anything is sent: {self.scrubber.summary()}")
        return lines


def read_sources(specs: list[SourceSpec], names: list[str], log_limit: int) -> Sources:
    """Read every `--from`: documents into passages, the prompt, the logs scrubbed of personal data."""
    if not specs:
        raise SourceError("nothing to generate from: give --from with documents, the app's system prompt or a log")
    sources = Sources(specs, scrubber=Scrubber(names))
    seen: set[Path] = set()
    for spec in specs:
        if spec.kind == "docs":
            for file in document_files(spec.path):
                resolved = file.resolve()
                if resolved in seen:
                    continue
                seen.add(resolved)
                sources.documents.append(shown_path(file))
                sources.passages.extend(read_document(file))
        elif spec.kind == "prompt":
            if sources.prompt is not None:
                raise SourceError(
                    f"{spec.path}: a second system prompt (the first is {sources.prompt.source}); give one, "
                    "and the rest as documents (docs:FILE)"
                )
            if not spec.path.is_file():
                raise SourceError(f"{spec.path}: no such file; give the app's system prompt as a text file")
            text = read_text(spec.path, "system prompt").strip()
            if not text:
                raise SourceError(f"{spec.path}: the system prompt is empty")
            if len(text) > MAX_PROMPT_CHARS:
                raise SourceError(
                    f"{spec.path}: {len(text):,} characters is more than a system prompt "
                    f"({MAX_PROMPT_CHARS:,}); give it as documents instead (--from docs:{spec.path})"
                )
            sources.prompt = SystemPrompt(shown_path(spec.path), text)
        else:
            sources.logs.append(read_log(spec.path, sources.scrubber, log_limit))
    if specs and not sources.kinds:
        raise SourceError(f"{specs[0].path}: nothing to read in it; give documents with some text in them")
    return sources
