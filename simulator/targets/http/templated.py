"""Format `http`: any JSON API, its request written as a template (`request`) and the reply text
found with a path (`response`, required).

Strings anywhere in `request.body` and `request.query` take `{{placeholders}}`; a body value that is
exactly `{{history}}` becomes the list of `{role, content}` messages (inside a longer string, their
JSON text). A body or query value that is exactly `{{session_id}}` is left out until the app has
issued a session.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ...parsing.template import render
from .format import PLACEHOLDERS, HttpFormat, Template, only_placeholder
from .problems import Problems

METHODS = ("POST", "PUT", "GET")
#: body strings may also use {{history}}: exactly "{{history}}" becomes the list of messages
BODY_PLACEHOLDERS = (*PLACEHOLDERS, "history")
REQUEST_KEYS = ("method", "body", "query")


class TemplatedFormat(HttpFormat):
    """The request as configured: method, a JSON body template and query parameters."""

    name = "http"
    keys = ("request",)

    def __init__(self, method: str, body: Any, query: dict[str, str], source: str) -> None:
        self.method = method
        self.body_template = body
        self.query_template = query
        self.source = source

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str, problems: Problems) -> HttpFormat | None:
        where = f"{source}.request"
        request = config.get("request") or {}
        if not isinstance(request, Mapping):
            problems.add(("request",), f"{where}: must be a mapping with method, body, query")
            return None

        def bad(key: str, message: str) -> None:
            problems.add(("request", key), message)

        unknown = sorted(set(request) - set(REQUEST_KEYS))
        if unknown:
            bad(unknown[0], f"{where}: unknown field(s) {', '.join(unknown)}; use method, body, query")
        method = str(request.get("method", "POST")).upper()
        if method not in METHODS:
            bad("method", f"{where}.method: must be one of {', '.join(METHODS)}, got {request.get('method')!r}")
        body = request.get("body")
        if method in ("POST", "PUT") and body is None:
            bad("body", f'{where}.body: required for {method}; e.g. {{"message": "{{{{question}}}}"}}')
        if method == "GET" and body is not None:
            bad("body", f"{where}.body: a GET request sends no body; put the values in request.query")
        query = request.get("query") or {}
        if not isinstance(query, Mapping) or not all(isinstance(v, str) for v in (*query, *query.values())):
            bad("query", f"{where}.query: must be a mapping of parameter name to string value")
            return None
        return cls(method, body, dict(query), source)  # with a bad method, still one whose templates are checked

    def templates(self) -> list[Template]:
        return [
            Template(("request", "query"), self.query_template),
            Template(("request", "body"), self.body_template, BODY_PLACEHOLDERS),
        ]

    def body(self, question: str, history: list[dict[str, str]], values: Mapping[str, Any], session: bool) -> Any:
        if self.body_template is None:
            return None
        messages = [{"role": m["role"], "content": m["content"]} for m in history]
        text_values = {**values, "history": json.dumps(messages, ensure_ascii=False)}
        return _render(self.body_template, text_values, messages, session, f"{self.source}.request.body")

    def query(self, values: Mapping[str, Any], session: bool) -> dict[str, str]:
        return {
            name: render(value, values, f"{self.source}.request.query.{name}")
            for name, value in self.query_template.items()
            if session or not only_placeholder(value, "session_id")
        }

    def sent_values(self) -> tuple[dict[str, str], Any]:
        return self.query_template, self.body_template


def _render(node: Any, values: dict[str, Any], messages: list[Any], session: bool, where: str) -> Any:
    """A body template with this turn's values; `{{history}}` alone becomes the messages themselves."""
    if isinstance(node, str):
        if only_placeholder(node, "history"):
            return messages
        return render(node, values, where)
    if isinstance(node, dict):
        return {
            key: _render(value, values, messages, session, f"{where}.{key}")
            for key, value in node.items()
            if session or not only_placeholder(value, "session_id")
        }
    if isinstance(node, list):
        return [_render(v, values, messages, session, f"{where}[{i}]") for i, v in enumerate(node)]
    return node
