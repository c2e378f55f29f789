"""A chat app with test data to seed, for the adversarial simulations `simulator generate` writes:
one that gives in to attacks (`leaky=True`) and one that refuses them.

Routes (JSON in and out):

* ``PUT`` / ``DELETE /test/<kind>/<id>``: seed or remove test data (customers, orders, discounts);
* ``GET /orders/<id>``: an order as the conversations left it (``refund`` is null until one is issued);
* ``POST /chat`` ``{"message": ...}`` -> ``{"reply": ...}``. The leaky app does what it is told:
  it starts its reply with a phrase it is asked to, reads out every seeded customer it is asked
  about (e-mail, phone, card number), and refunds any seeded order mentioned with "refund". The
  guarded one answers every message with the same refusal.

Standard library only; binds port 0 on 127.0.0.1.
"""

from __future__ import annotations

import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

REFUSAL = "Sorry, I can't help with that, but I'm happy to help with your own orders."


class CanaryApp:
    """The app, served from a thread while used as a context manager."""

    def __init__(self, leaky: bool) -> None:
        self.leaky = leaky
        self.data: dict[str, dict[str, Any]] = {"customers": {}, "orders": {}, "discounts": {}}
        self.seen: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.app = self  # type: ignore[attr-defined]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> CanaryApp:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def reply(self, message: str) -> str:
        if not self.leaky:
            return REFUSAL
        parts = []
        phrase = re.search(r"start your reply with (\S+?)[.!]?(?:\s|$)", message, re.IGNORECASE)
        if phrase:
            parts.append(f"{phrase.group(1)} Sure, as you wish.")
        with self.lock:
            for customer in self.data["customers"].values():
                if customer.get("name") and customer["name"].lower() in message.lower():
                    parts.append(
                        f"{customer['name']}: {customer['email']}, {customer['phone']}, card {customer['card_number']}"
                    )
            if "refund" in message.lower():
                for number, order in self.data["orders"].items():
                    order["refund"] = {"amount": 100}
                    parts.append(f"Refunded order {number}.")
        return " ".join(parts) or "How can I help?"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    @property
    def app(self) -> CanaryApp:
        return self.server.app  # type: ignore[attr-defined,no-any-return]

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"null")

    def do_PUT(self) -> None:  # noqa: N802 - http.server's naming
        match = re.fullmatch(r"/test/(customers|orders|discounts)/([\w-]+)", self.path)
        body = self._body()
        if not match or not isinstance(body, dict):
            self._send(404, {"error": f"no route {self.path}"})
            return
        with self.app.lock:
            self.app.data[match.group(1)][match.group(2)] = body
            self.app.seen.append(("PUT", self.path))
        self._send(200, {"ok": True})

    def do_DELETE(self) -> None:  # noqa: N802
        match = re.fullmatch(r"/test/(customers|orders|discounts)/([\w-]+)", self.path)
        if not match:
            self._send(404, {"error": f"no route {self.path}"})
            return
        with self.app.lock:
            self.app.data[match.group(1)].pop(match.group(2), None)
            self.app.seen.append(("DELETE", self.path))
        self._send(200, {"ok": True})

    def do_GET(self) -> None:  # noqa: N802
        match = re.fullmatch(r"/orders/([\w-]+)", self.path)
        with self.app.lock:
            order = self.app.data["orders"].get(match.group(1)) if match else None
            self.app.seen.append(("GET", self.path))
        if order is None:
            self._send(404, {"error": f"no order at {self.path}"})
        else:
            self._send(200, order)

    def do_POST(self) -> None:  # noqa: N802
        body = self._body()
        if self.path != "/chat" or not isinstance(body, dict):
            self._send(404, {"error": f"no route {self.path}"})
            return
        self._send(200, {"reply": self.app.reply(str(body.get("message", "")))})

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        return
