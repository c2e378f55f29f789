"""The fake chat app's state: orders that conversations change, behind ``/orders/<id>``.

``GET /orders/<id>`` answers the order (404 when unknown), ``PUT /orders/<id>`` stores the JSON
body as the order (a test's setup seeds it), ``DELETE /orders/<id>`` removes it (404 when
unknown). :meth:`OrderBook.desk` is what an app that acts on orders says and does::

    "refund order 5"             -> order 5's status becomes "refund_issued"; tools lookup_order, issue_refund
    "pretend to refund order 5"  -> says the refund was issued, changes nothing; tool lookup_order
    anything else                -> asks for an order number; no tools

Standard library only; thread-safe (the server handles each connection in its own thread).
"""

from __future__ import annotations

import copy
import re
import threading
from typing import Any

PREFIX = "/orders/"
_REFUND = re.compile(r"\b(pretend\w*\s+(?:to\s+)?)?refund\s+order\s+#?(\w+)", re.IGNORECASE)


class OrderBook:
    """Orders by id; every read gives a copy, so a caller never holds the live state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._orders: dict[str, dict[str, Any]] = {}

    def __getitem__(self, order_id: str) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self._orders[order_id])

    def __contains__(self, order_id: object) -> bool:
        with self._lock:
            return order_id in self._orders

    def put(self, order_id: str, order: dict[str, Any]) -> dict[str, Any]:
        """Store `order` under `order_id` (its ``id`` field set to it)."""
        with self._lock:
            self._orders[order_id] = {**copy.deepcopy(order), "id": order_id}
            return copy.deepcopy(self._orders[order_id])

    def answer(self, method: str, order_id: str, body: Any) -> tuple[int, dict[str, Any]]:
        """The status and JSON answer of ``<method> /orders/<order_id>``."""
        with self._lock:
            known = order_id in self._orders
            if method == "GET":
                return (200, copy.deepcopy(self._orders[order_id])) if known else _missing(order_id)
            if method == "DELETE":
                return (200, {"deleted": self._orders.pop(order_id)["id"]}) if known else _missing(order_id)
        if method == "PUT":
            if not isinstance(body, dict):
                return 400, {"error": {"message": "PUT /orders/<id> needs a JSON object", "status": 400}}
            return 200, self.put(order_id, body)
        return 405, {"error": {"message": f"method {method} not allowed for orders", "status": 405}}

    def desk(self, text: str) -> tuple[str, list[str]]:
        """What an order desk replies to `text`, and the tools it called (doing what they do)."""
        match = _REFUND.search(text or "")
        if match is None:
            return "Which order would you like a refund for?", []
        pretend, order_id = match.group(1), match.group(2)
        with self._lock:
            order = self._orders.get(order_id)
            if order is None:
                return f"I could not find order {order_id}.", ["lookup_order"]
            if not pretend:
                order["status"] = "refund_issued"
                order["refund"] = {"amount": order.get("price", 0)}
        return f"Your refund for order {order_id} is on its way.", ["lookup_order"] + (
            [] if pretend else ["issue_refund"]
        )


def order_id_of(path: str) -> str | None:
    """The order id of an ``/orders/<id>`` path (the mount prefix already removed), else None."""
    if not path.startswith(PREFIX):
        return None
    order_id = path[len(PREFIX) :].split("?", 1)[0].strip("/")
    return order_id or None


def _missing(order_id: str) -> tuple[int, dict[str, Any]]:
    return 404, {"error": {"message": f"no order {order_id}", "status": 404}}
