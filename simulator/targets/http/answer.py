"""One HTTP exchange as read: status, headers and the body, or what an event stream added up to."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ...clip import clip
from ...known_secrets import scrub_text
from ...unicode_safety import replace_lone_surrogates
from ..json_path import PathError, Segment, extract
from .format import HttpFormat

#: of an event stream, the raw answer keeps the first events within this many bytes of data and counts
#: the others: parsed, a stream of many small events takes some 30 times its size (a result keeps less)
RAW_EVENT_BYTES = 256 * 1024
SNIPPET_CHARS = 300


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """The beginning of `text`, marked as cut when it goes on."""
    return clip(text.strip(), limit, "...")


class StreamReply:
    """An event stream's reply, gathered event by event as it arrives: the text, the usage, the first
    events for the raw answer, and what the checks after the reading need to know."""

    def __init__(self, path: list[Segment], format: HttpFormat, session_path: list[Segment] | None) -> None:
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
        self._pieces: list[str] = []
        self._kept_bytes = 0
        self._keeping = True

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def add(self, event: Any, size: int) -> None:
        """Take one event (`size`: the length of its data)."""
        self.count += 1
        event, replaced = replace_lone_surrogates(event)
        self.replaced += replaced
        if self._keeping and (self._kept_bytes + size <= RAW_EVENT_BYTES or not self.events):
            self.events.append(event)
            self._kept_bytes += size
        else:
            self._keeping = False  # the kept events stay the first ones, with no gap
        if isinstance(event, str):  # a plain-text `data:` line is a piece of the text itself
            self._piece(event)
            self.found = True
            return
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
