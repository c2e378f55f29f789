"""A small rule-based outdoor-store assistant, bundled so every example runs without a key.

Use it as a callback target (`simulator.examples.store_app:respond`) or serve it over HTTP with
`python -m simulator.examples.store_app --port 8080` (promptflow style: {question, chat_history}
in, {answer} out; the conversation from an `X-Conversation-Id` header).

It keeps state, so outcome checks have something to verify: confirming a return starts it, and
`GET /orders/<n>?conversation=<id>` answers the order as that conversation left it
(`{"order", "item", "status": "delivered" | "return_started", "refund"}`). As a callback it serves
that endpoint from a thread of the running process, started on first use: `respond.base_url()`
gives its address, which a manifest's `{{base}}` points at.
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

ORDERS: dict[str, dict[str, Any]] = {
    "5": {"item": "TrailMaster X4 Tent", "price": 250.00, "date": "2023-05-01"},
    "18": {"item": "Pathfinder Pro-1 Adventure Compass", "price": 39.99, "date": "2023-05-04"},
    "28": {"item": "CozyNights Sleeping Bag", "price": 100.00, "date": "2023-04-15"},
}
PRODUCTS = {
    "tent": "The TrailMaster X4 Tent sleeps four, weighs 4.2 kg and costs $250.",
    "compass": "The Pathfinder Pro-1 Adventure Compass is waterproof and costs $39.99.",
    "sleeping bag": "The CozyNights Sleeping Bag is rated to -5 °C and costs $100.",
}
RETURN_WINDOW_DAYS = 60
#: returns started, by conversation and order number
RETURNS: dict[tuple[str, str], dict[str, Any]] = {}
_LOCK = threading.Lock()


def _order_in(text: str) -> str | None:
    match = re.search(r"(?:order|#)\s*(?:number|no\.?|#)?\s*:?\s*#?(\d+)", text, re.IGNORECASE)
    return match.group(1) if match else None


def _mentioned_order(question: str, history: list[dict[str, str]]) -> str | None:
    for text in [question, *(m["content"] for m in reversed(history) if m["role"] == "user")]:
        number = _order_in(text)
        if number:
            return number
    for text in [question, *(m["content"] for m in reversed(history) if m["role"] == "user")]:
        for number, order in ORDERS.items():
            if order["item"].split()[0].lower() in text.lower():
                return number
    return None


def answer(question: str, history: list[dict[str, str]]) -> str:
    """The assistant's reply to `question` given the earlier turns."""
    return _reply(question, history)[0]


def _reply(question: str, history: list[dict[str, str]]) -> tuple[str, str | None]:
    """The reply, and the order whose return it starts (None when it starts none)."""
    text = question.lower()
    wants_return = any(w in text for w in ("return", "refund", "send back", "money back"))
    earlier_return = any(
        w in m["content"].lower() for m in history if m["role"] == "user" for w in ("return", "refund")
    )
    if any(w in text for w in ("yes", "please do", "go ahead", "confirm")) and earlier_return:
        number = _mentioned_order(question, history)
        if number in ORDERS:
            order = ORDERS[number]
            return (
                f"Done: I have started the return of your {order['item']} (order {number}). "
                f"Your return label is RL-{number}0{len(history)} and ${order['price']:.2f} will be refunded "
                "to your original payment method within 5 business days of us receiving it."
            ), number
    if wants_return or earlier_return:
        number = _mentioned_order(question, history)
        if number is None:
            return "I can help with a return. What is your order number?", None
        if number not in ORDERS:
            return f"I could not find order {number}. Could you check the number on your receipt?", None
        order = ORDERS[number]
        return (
            f"Order {number} is your {order['item']} bought on {order['date']} for ${order['price']:.2f}. "
            f"It is eligible for a full refund within our {RETURN_WINDOW_DAYS}-day policy for loyalty members. "
            "Shall I start the return and email you a prepaid label?"
        ), None
    for key, description in PRODUCTS.items():
        if key in text:
            return description, None
    if any(w in text for w in ("thank", "bye", "that's all", "great")):
        return "You're welcome! Is there anything else I can help you with?", None
    if any(w in text for w in ("hi", "hello", "hey")):
        return "Hello! I'm the outdoor store assistant. I can help with orders, returns and our gear.", None
    return "I can help with orders, returns, and questions about our tents, compasses and sleeping bags.", None


def _act(conversation: str, question: str, history: list[dict[str, str]]) -> dict[str, Any]:
    """Reply and do what the reply says: a confirmed return is started (and listed as a tool call)."""
    text, started = _reply(question, history)
    tools = []
    if started is not None:
        with _LOCK:
            RETURNS[(conversation, started)] = {"amount": ORDERS[started]["price"]}
        tools.append({"name": "start_return", "order": started})
    return {"answer": text, "tools": tools}


def order_state(conversation: str, number: str) -> dict[str, Any] | None:
    """Order `number` as conversation `conversation` left it; None for an unknown order."""
    if number not in ORDERS:
        return None
    with _LOCK:
        refund = RETURNS.get((conversation, number))
    state = {"order": number, "item": ORDERS[number]["item"], "status": "return_started" if refund else "delivered"}
    return {**state, "refund": refund}


def respond(question: str, conversation_history: list[dict[str, str]], meta_data: dict[str, Any]) -> dict:
    """Callback entry point: `(question, conversation_history, meta_data) -> {"answer": ...}`."""
    reply = _act(str(meta_data.get("conversation_id") or "default"), question, conversation_history)
    return {**reply, "context": {"orders_known": sorted(ORDERS)}}


_state_server: list[str] = []


def base_url() -> str:
    """The address of this process's store server (started on first use), for state requests."""
    with _LOCK:
        if not _state_server:
            server = serve()
            threading.Thread(target=server.serve_forever, name="store-app-state", daemon=True).start()
            _state_server.append(f"http://127.0.0.1:{server.server_address[1]}")
        return _state_server[0]


respond.base_url = base_url  # type: ignore[attr-defined]  # a callback target's {{base}}


def _promptflow_history(chat_history: list[dict[str, Any]]) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for item in chat_history or []:
        if "role" in item:
            messages.append({"role": item["role"], "content": str(item.get("content", ""))})
        else:
            messages.append({"role": "user", "content": str(item.get("inputs", {}).get("question", ""))})
            messages.append({"role": "assistant", "content": str(item.get("outputs", {}).get("answer", ""))})
    return messages


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        conversation = self.headers.get("X-Conversation-Id") or "default"
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            history = _promptflow_history(body.get("chat_history", []))
            reply, status = _act(conversation, str(body["question"]), history), 200
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reply, status = {"error": f"bad request: {exc}"}, 400
        self._send(status, reply)

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        match = re.fullmatch(r"/orders/(\w+)", url.path)
        conversation = (parse_qs(url.query).get("conversation") or ["default"])[0]
        state = order_state(conversation, match.group(1)) if match else None
        if state is None:
            self._send(404, {"error": f"no such order or route: {url.path}"})
        else:
            self._send(200, state)

    def _send(self, status: int, reply: dict[str, Any]) -> None:
        data = json.dumps(reply).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP server for the store assistant (not started); port 0 picks a free port."""
    return ThreadingHTTPServer((host, port), _Handler)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the example store assistant over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args()
    server = serve(args.host, args.port)
    print(f"store assistant listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
