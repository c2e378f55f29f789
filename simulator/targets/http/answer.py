"""One HTTP exchange as read: status, headers and the body, or what an event stream added up to."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from ...parsing import strict_json
from ...parsing.json_path import PathError, Segment, extract
from ...text.clip import clip
from ...text.known_secrets import scrub_text
from ...text.unicode_safety import replace_lone_surrogates

#: of an event stream, the raw answer keeps the first events within this many bytes of data and counts
#: the others: parsed, a stream of many small events takes some 30 times its size (a result keeps less)
RAW_EVENT_BYTES = 256 * 1024
SNIPPET_CHARS = 300


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The beginning of `text`, marked as cut when it goes on."""
    return clip(text.strip(), limit, "...")


#: until an event holds the reply text at its path, the first payloads of a stream of JSON objects are
#: kept as sent, within this many bytes: should a text payload follow, the stream is text and they are
#: its first pieces (past this many, a stream is taken for JSON whatever comes after)
UNDECIDED_BYTES = 64 * 1024
#: how a stream's payloads are read: not known yet, JSON objects or lists (the reply at the path), text
UNDECIDED, JSON_EVENTS, TEXT_EVENTS = "undecided", "json", "text"


def json_event(payload: str) -> Any:
    """The JSON object or list a payload is, or None: a payload that is anything else (a number,
    `true`, a quoted string, text that is no JSON) is only text."""
    try:
        event = strict_json.loads(payload, max_depth=strict_json.EMBEDDED_MAX_DEPTH)
    except ValueError:
        return None
    return event if isinstance(event, (dict, list)) else None


class EventReader(Protocol):
    """What a stream reads of its format (`format.HttpFormat` is one): kept apart so that the
    formats' module, which hands answers around, needs nothing of this one's readers."""

    def usage(self, document: Any) -> dict[str, Any] | None: ...

    def withheld(self, document: Any) -> bool: ...


class StreamReply:
    """An event stream's reply, gathered event by event as it arrives: the text, the usage, the first
    events for the raw answer, and what the checks after the reading need to know.

    A stream is either JSON events or text. It is JSON when its events are JSON objects or lists (as
    OpenAI's chunks and Prompt flow's pieces are): each event's piece is read at the path, and a payload
    that is no object or list among them is a piece of text as sent. It is text when a payload that is
    no JSON object or list comes before any event held the reply at the path (sse-starlette sends each
    string it is given as a plain `data:` line): then every payload, the first ones included, is a piece
    of the text exactly as sent, `" 250"`, `" true"` and `" []"` with their leading spaces. No payload
    is ever dropped for looking like JSON.
    """

    def __init__(self, path: list[Segment], format: EventReader, session_path: list[Segment] | None) -> None:
        self.path = path
        self.format = format
        self.session_path = session_path
        self.count = 0
        self.events: list[Any] = []  # the first events, within RAW_EVENT_BYTES
        self.found = False  # an event held the reply text
        self.usage: dict[str, Any] | None = None
        self.filtered: dict[str, Any] | None = None  # the first event the content filter withheld
        self.session: Any = None
        #: lone surrogates (a `"\\ud800"` escape) replaced with U+FFFD in the events as they came
        self.replaced = 0
        #: UNDECIDED until an event holds the reply at the path (JSON) or a text payload comes (text)
        self.mode = UNDECIDED
        self._pieces: list[str] = []
        self._kept_bytes = 0
        self._keeping = True
        self._undecided: list[str] = []  # the payloads so far, as sent, while the mode is undecided
        self._undecided_bytes = 0

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def add(self, payload: str, size: int) -> None:
        """Take one event's payload, as sent (`size`: its length)."""
        self.count += 1
        event = None if self.mode == TEXT_EVENTS else json_event(payload)
        if event is None:
            self._text(payload, size)
            return
        event, replaced = replace_lone_surrogates(event)
        self.replaced += replaced
        if self.mode == UNDECIDED:
            self._undecided.append(payload)
            self._undecided_bytes += size
            if self._undecided_bytes > UNDECIDED_BYTES:
                self._decide(JSON_EVENTS)
        self._keep(event, size)
        self._json(event)

    def _text(self, payload: str, size: int) -> None:
        """A payload that is text: in an undecided stream, the first of a text stream."""
        if self.mode == UNDECIDED:
            first = self._undecided
            self._decide(TEXT_EVENTS)
            # the payloads taken for JSON events were text: the raw answer keeps them as sent
            self.events[: len(first)] = first[: len(self.events)]
            for earlier in first:
                self._piece(earlier)
        self._keep(payload, size)
        self._piece(payload)
        self.found = True

    def _decide(self, mode: str) -> None:
        self.mode = mode
        self._undecided, self._undecided_bytes = [], 0

    def _keep(self, event: Any, size: int) -> None:
        if self._keeping and (self._kept_bytes + size <= RAW_EVENT_BYTES or not self.events):
            self.events.append(event)
            self._kept_bytes += size
        else:
            self._keeping = False  # the kept events stay the first ones, with no gap

    def _json(self, event: Any) -> None:
        usage = self.format.usage(event)
        if usage is not None:
            self.usage = usage
        if self.filtered is None and self.format.withheld(event):
            self.filtered = event
        if self.session_path is not None and self.session in (None, ""):
            with contextlib.suppress(PathError):
                self.session = extract(event, self.session_path)
        try:
            value = extract(event, self.path)
        except PathError:
            return  # role-only, finish and usage chunks carry no text
        self.found = True
        if self.mode == UNDECIDED:
            self._decide(JSON_EVENTS)
        for piece in value if isinstance(value, list) else [value]:
            if isinstance(piece, str):
                self._piece(piece)
            elif piece is not None and not isinstance(piece, (dict, list)):
                self._piece(str(piece))

    def _piece(self, text: str) -> None:
        self._pieces.append(text)
        if len(self._pieces) >= 4096:  # many small strings cost far more than their text
            self._pieces[:] = ["".join(self._pieces)]


@dataclass
class Answer:
    """One HTTP exchange, read to the end."""

    status: int
    headers: Mapping[str, str]  # case-insensitive
    content: bytes = b""
    stream: StreamReply | None = None  # what a text/event-stream added up to
    retries: int = 0
    cut: bool = False  # the answer went on past the byte limit; only its beginning was read
    latency_ms: float | None = None  # from the first byte sent to the end of the answer
    connect_ms: float | None = None  # the set-up of a connection opened for this request

    @property
    def text(self) -> str:
        if self.stream is not None:
            return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in self.stream.events)
        return self.content.decode("utf-8", errors="replace")

    @property
    def snippet(self) -> str:
        """The beginning of the answer, credentials scrubbed before the cut so no piece of one is left."""
        if self.stream is not None:
            return snippet(scrub_text(self.text))
        # only the beginning is shown: decoding megabytes for it would cost as much as the answer
        return snippet(scrub_text(self.content.lstrip()[: 8 * SNIPPET_CHARS].decode("utf-8", errors="replace")))
