"""The smallest app a test needs: every POST answered with JSON made from its body, in a thread.

For tests about the road to an app (a proxy, TLS) rather than the app: `serving(answer)` yields the
base URL and the request lines received (a forward proxy receives absolute URLs in them).
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True
    protocol_version = "HTTP/1.1"
    answer: Callable[[bytes], Any]
    seen: list[str]

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append(self.requestline)
        body = json.dumps(type(self).answer(data)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def serving(answer: Callable[[bytes], Any], tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, list[str]]]:
    """Serve on 127.0.0.1 (a free port; HTTPS with `tls`) until the block ends."""
    seen: list[str] = []
    handler = type("Handler", (_Handler,), {"answer": staticmethod(answer), "seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
