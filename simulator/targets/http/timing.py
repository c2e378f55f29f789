"""The app's own time for one exchange, told apart from the client's.

A turn's clock used to run around the whole call: building the client, waiting for a free
connection and opening it all counted as the app being slow. The transport's trace events mark
where the request starts to leave and where a connection is set up, so the latency recorded is
the app's (first byte sent to the end of the answer) and a new connection's set-up is reported
apart.
"""

from __future__ import annotations

import time
from typing import Any

_SENT = ("http11.send_request_headers.started", "http2.send_request_headers.started")
_SETUP = {
    "connection.connect_tcp.started": True,
    "connection.connect_tcp.complete": False,
    "connection.connect_unix_socket.started": True,
    "connection.connect_unix_socket.complete": False,
    "connection.start_tls.started": True,
    "connection.start_tls.complete": False,
}


class ExchangeClock:
    """Given to a request as its `trace` extension; read once the answer has been read."""

    __slots__ = ("connect_ms", "_sent", "_setup_started")

    def __init__(self) -> None:
        self.connect_ms: float | None = None
        self._sent: float | None = None
        self._setup_started: float | None = None

    async def __call__(self, event: str, info: dict[str, Any]) -> None:
        if event in _SENT:
            if self._sent is None:
                self._sent = time.monotonic()
            return
        starts = _SETUP.get(event)
        if starts is None:
            return
        now = time.monotonic()
        if starts:
            self._setup_started = now
        elif self._setup_started is not None:
            self.connect_ms = (self.connect_ms or 0.0) + (now - self._setup_started) * 1000
            self._setup_started = None

    def latency_ms(self) -> float | None:
        """From the first byte sent until now (call it when the answer has been read)."""
        return None if self._sent is None else (time.monotonic() - self._sent) * 1000
