"""A small rule-based outdoor-store assistant, bundled so every example runs without a key.

Use it as a callback target (`simulator.examples.store_app:respond`) or serve it over HTTP with
`python -m simulator.examples.store_app --port 8080` (promptflow style: {question, chat_history}
in, {answer} out).
"""

from __future__ import annotations

import argparse
import json
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

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
            )
    if wants_return or earlier_return:
        number = _mentioned_order(question, history)
        if number is None:
            return "I can help with a return. What is your order number?"
        if number not in ORDERS:
            return f"I could not find order {number}. Could you check the number on your receipt?"
        order = ORDERS[number]
        return (
            f"Order {number} is your {order['item']} bought on {order['date']} for ${order['price']:.2f}. "
            f"It is eligible for a full refund within our {RETURN_WINDOW_DAYS}-day policy for loyalty members. "
            "Shall I start the return and email you a prepaid label?"
        )
    for key, description in PRODUCTS.items():
        if key in text:
            return description
    if any(w in text for w in ("thank", "bye", "that's all", "great")):
        return "You're welcome! Is there anything else I can help you with?"
    if any(w in text for w in ("hi", "hello", "hey")):
        return "Hello! I'm the outdoor store assistant. I can help with orders, returns and our gear."
    return "I can help with orders, returns, and questions about our tents, compasses and sleeping bags."


def respond(question: str, conversation_history: list[dict[str, str]], meta_data: dict[str, Any]) -> dict:
    """Callback entry point: `(question, conversation_history, meta_data) -> {"answer": ...}`."""
    return {"answer": answer(question, conversation_history), "context": {"orders_known": sorted(ORDERS)}}


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

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
            reply = {"answer": answer(str(body["question"]), _promptflow_history(body.get("chat_history", [])))}
            status = 200
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            reply, status = {"error": f"bad request: {exc}"}, 400
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
