"""`text/event-stream` answers: lines, events and `[DONE]`, read within a byte limit."""

from __future__ import annotations

import codecs
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any

from ...aio.deadlines import deadline
from ...parsing import strict_json
from .bounded import BoundedBody

if TYPE_CHECKING:
    import aiohttp

#: after `[DONE]`, how long to wait for the stream's end so its connection can be reused
DRAIN_SECONDS = 0.25
#: line ends of an event stream: CRLF, LF or CR
_LINE_END = re.compile(r"\r\n|\r|\n")


class Lines:
    """Decoded text split into lines at CRLF, LF or CR, whatever the pieces it arrives in."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._rest: list[str] = []  # the start of a line whose end has not arrived
        self._after_cr = False

    def feed(self, data: bytes) -> list[str]:
        """The lines completed by `data`."""
        text = self._decoder.decode(data)
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across pieces
            self._after_cr = False
        if text:
            self._after_cr = text.endswith("\r")
        parts = _LINE_END.split(text)
        if len(parts) == 1:
            if text:
                self._rest.append(text)
            return []
        lines = ["".join(self._rest) + parts[0], *parts[1:-1]]
        self._rest = [parts[-1]] if parts[-1] else []
        return lines

    def end(self) -> str:
        """What is left after the last line end (a stream may end without one)."""
        return "".join(self._rest) + self._decoder.decode(b"", final=True)


class _Events:
    """`data:` lines gathered into events, each handed on when a blank line ends it."""

    def __init__(self, on_event: Callable[[Any, int], None], parse: bool = True) -> None:
        self.on_event = on_event
        self.parse = parse
        self.data: list[str] = []

    def dispatch(self) -> bool:
        """Hand on the event read so far; True at `[DONE]`."""
        if not self.data:
            return False
        payload = "\n".join(self.data)
        self.data.clear()
        if payload.strip() == "[DONE]":
            return True
        event: Any = payload
        if self.parse:
            with contextlib.suppress(ValueError):
                event = strict_json.loads(payload, max_depth=strict_json.EMBEDDED_MAX_DEPTH)
        self.on_event(event, len(payload))
        return False

    def take(self, line: str) -> bool:
        """One line of the stream; True at `[DONE]`."""
        if not line:  # only an empty line ends an event: `data:  ` is a data line whose payload is a space
            return self.dispatch()
        if not line.startswith(":"):  # a comment / keep-alive
            name, _, value = line.partition(":")
            if name == "data":
                self.data.append(value[1:] if value.startswith(" ") else value)
        return False


async def read_events(
    response: aiohttp.ClientResponse, limit: int, on_event: Callable[[Any, int], None], parse: bool = True
) -> bool:
    """Hand each `data:` payload of an event stream (JSON parsed, else as text; with `parse` false,
    always the text as sent) and its length to `on_event`, until `[DONE]`, the stream's end or `limit`
    bytes; True when cut at the limit, and then only the events completed before were handed on.

    After `[DONE]` the rest is drained briefly (and within the limit) so the connection can go back to
    the pool.
    """
    body = BoundedBody(response, limit)
    events = _Events(on_event, parse)
    lines = Lines()
    done = False
    async with contextlib.aclosing(body.pieces()) as pieces:
        async for piece in pieces:
            for line in lines.feed(piece):
                done = events.take(line)
                if done:
                    break
            if done:
                break
        else:
            if not body.cut:  # a stream may end without a blank line after its last event
                events.take(lines.end())
                events.dispatch()
        cut = body.cut and not done
        if done:
            with contextlib.suppress(Exception):
                await deadline(_drain(pieces), DRAIN_SECONDS)
    return cut


async def _drain(pieces: AsyncIterator[bytes]) -> None:
    async for _ in pieces:
        pass
