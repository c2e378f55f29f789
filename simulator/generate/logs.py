"""Production conversations read from JSONL: what users wrote, scrubbed of personal data.

A line is one conversation, in any of the shapes teams have at hand:

- OpenAI messages: `{"messages": [{"role": "user", "content": "..."}, ...]}` or the bare list
  (content as text or as a list of `{"type": "text", "text": ...}` parts);
- this project's results (`conversations.jsonl`): `{"conversation": [{"actor": "user", "response": ...}]}`.

Only the users' messages are kept, and each goes through the `Scrubber` at once: nothing
unscrubbed leaves this module. A large log is sampled evenly (`limit` conversations), the same
lines every time, so the generated file does not change from one run to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import SourceError
from ..parsing import strict_json
from .documents import MAX_FILE_BYTES, shown_path
from .pii import Scrubber

#: the most of one user message kept (a pasted document says little about the intent)
MESSAGE_CHARS = 600
#: the most user messages kept from one conversation
MESSAGES_KEPT = 6


@dataclass
class LoggedConversation:
    """One conversation of the log: where it is, and its users' messages, scrubbed."""

    source: str
    line: int
    messages: list[str]

    @property
    def citation(self) -> str:
        return f"{self.source}:{self.line}"


@dataclass
class Log:
    """What was read from one log file."""

    source: str
    conversations: list[LoggedConversation]
    #: conversation lines in the file (the sample is taken from these)
    total: int
    #: whether only a sample of them was read
    sampled: bool = False
    #: lines that hold no conversation, by line number, with why
    skipped: list[tuple[int, str]] = field(default_factory=list)

    @property
    def chars(self) -> int:
        return sum(len(m) for c in self.conversations for m in c.messages)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, dict) and part.get("type") == "text"
        )
    return ""


def user_messages(document: Any) -> list[str] | None:
    """The users' messages of one log line, or None when it holds no conversation."""
    if isinstance(document, dict) and isinstance(document.get("messages"), list):
        document = document["messages"]
    if isinstance(document, list):
        if not all(isinstance(m, dict) and "role" in m for m in document):
            return None
        return [_text(m.get("content")) for m in document if m.get("role") == "user"]
    if isinstance(document, dict) and isinstance(document.get("conversation"), list):
        turns = document["conversation"]
        return [str(t.get("response") or "") for t in turns if isinstance(t, dict) and t.get("actor") == "user"]
    return None


def _lines(path: Path) -> list[int]:
    """The numbers of the file's non-blank lines (one pass, nothing parsed)."""
    numbers = []
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                numbers.append(number)
    return numbers


def sample(numbers: list[int], limit: int) -> set[int]:
    """`limit` of `numbers`, evenly spread over the file: the same ones every time."""
    if len(numbers) <= limit:
        return set(numbers)
    return {numbers[(i * len(numbers)) // limit] for i in range(limit)}


def read_log(path: Path, scrubber: Scrubber, limit: int) -> Log:
    """The conversations of a JSONL log (at most `limit`, evenly sampled), users' messages scrubbed."""
    source = shown_path(path)
    try:
        if path.stat().st_size > MAX_FILE_BYTES * 50:
            raise SourceError(f"{path}: larger than 1 GiB; give a sample of the log")
        numbers = _lines(path)
        chosen = sample(numbers, limit)
        conversations: list[LoggedConversation] = []
        skipped: list[tuple[int, str]] = []
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if number not in chosen:
                    continue
                try:
                    document = strict_json.loads(raw)
                except strict_json.JSONError as exc:
                    skipped.append((number, str(exc)))
                    continue
                messages = user_messages(document)
                if messages is None:
                    skipped.append(
                        (
                            number,
                            "no conversation: expected {messages: [...]}, a list of messages "
                            "or a result with conversation",
                        )
                    )
                    continue
                # scrubbed whole, then cut: a cut must not leave half a card number unrecognised
                kept = [scrubber.scrub(m.strip())[:MESSAGE_CHARS] for m in messages if m.strip()][:MESSAGES_KEPT]
                if kept:
                    conversations.append(LoggedConversation(source, number, kept))
                else:
                    skipped.append((number, "no user message"))
    except FileNotFoundError:
        raise SourceError(f"{path}: no such file; give a JSONL log of conversations") from None
    except OSError as exc:
        raise SourceError(f"{path}: cannot read the log: {exc.strerror or exc}") from None
    if not conversations:
        first = f" (line {skipped[0][0]}: {skipped[0][1]})" if skipped else ""
        raise SourceError(
            f"{path}: no conversation with a user message{first}; give JSONL with one conversation a line: "
            '{"messages": [{"role": "user", "content": "..."}, ...]} or a results conversations.jsonl'
        )
    return Log(source, conversations, len(numbers), len(numbers) > limit, skipped)
