"""Requests about the app's state around a conversation: `setup` (before it), `teardown` (after it)
and the requests outcome checks make (`expect.outcome`).

Each is a method, a URL and optionally headers and a JSON body, with the target's templating:
`${VAR}` was filled in when the manifest was read, `{{placeholders}}` are filled in per conversation.
`{{base}}` is where the app lives (the target URL's scheme, host and port; a callback's `base_url`).
Setup runs before the app has handed out a session, so it cannot use `{{session_id}}`.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError, FieldError, FieldErrors
from ..parsing.template import check_placeholders, placeholders
from ..targets.redaction import credential_values, credentials_twice, safe_url
from ..text import known_secrets

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
#: what a state request's url, headers and body may use
PLACEHOLDERS = ("base", "conversation_id", "session_id", "simulation", "persona", "task")
#: setup runs before the conversation: the app has handed out no session yet
SETUP_PLACEHOLDERS = tuple(name for name in PLACEHOLDERS if name != "session_id")
#: the fields of a state request
KEYS = ("url", "method", "headers", "body", "timeout", "name")


def _strings(node: Any, field: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], str]]:
    """Every string inside a body template, with its field."""
    if isinstance(node, str):
        return [(field, node)]
    if isinstance(node, dict):
        return [found for key, value in node.items() for found in _strings(value, (*field, str(key)))]
    if isinstance(node, list):
        return [found for i, value in enumerate(node) for found in _strings(value, (*field, i))]
    return []


def _place(source: str, field: tuple[str | int, ...]) -> str:
    return source + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in field)


@dataclass(frozen=True)
class StateRequest:
    """One request to the app's state, as configured (placeholders still in it)."""

    method: str
    url: str
    headers: dict[str, str]
    body: Any
    timeout: float | None
    #: where it was written, for messages: `simulations[0].expect.outcome[1]`
    source: str
    label: str

    @property
    def key(self) -> str:
        """What tells this request apart from another: a recorded answer is found again by it (no
        credential: known secrets are `***` in it, as in the results that keep it)."""
        body = "" if self.body is None else " " + json.dumps(self.body, sort_keys=True, ensure_ascii=False)
        return known_secrets.scrub_text(f"{self.method} {self.url}{body}")

    def uses(self, name: str) -> bool:
        """Whether the url, a header or the body uses `{{name}}`."""
        texts = [self.url, *self.headers.values(), *(text for _, text in _strings(self.body, ()))]
        return any(name in placeholders(text) for text in texts)

    @classmethod
    def from_config(
        cls,
        config: Any,
        source: str,
        known: Collection[str] = PLACEHOLDERS,
        others: Collection[str] = (),
    ) -> StateRequest:
        """Read one request; `others` are keys the caller reads itself (an outcome check's path and
        expectations). Raises `FieldError` naming the field and what to write instead."""
        if not isinstance(config, Mapping):
            raise FieldError((), f"{source}: must be a mapping with at least 'url'")
        unknown = sorted(str(k) for k in config if k not in (*KEYS, *others))
        if unknown:
            known_keys = ", ".join([*KEYS, *others])
            raise FieldError((unknown[0],), f"{source}.{unknown[0]}: unknown field; known: {known_keys}")
        url = _url(config.get("url"), source)
        method = config.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in METHODS:
            raise FieldError(("method",), f"{source}.method: must be one of {', '.join(METHODS)}, got {method!r}")
        method = method.upper()
        body = config.get("body")
        if method == "GET" and body is not None:
            raise FieldError(("body",), f"{source}.body: a GET request sends no body; use POST, or put it in the url")
        headers = _headers(config.get("headers"), source)
        twice = credentials_twice(url, headers, source)
        if twice is not None:
            raise FieldError(("url",), twice)
        timeout = config.get("timeout")
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0):
            raise FieldError(("timeout",), f"{source}.timeout: must be a positive number of seconds, got {timeout!r}")
        texts = [(("url",), url), *((("headers", n), v) for n, v in headers.items()), *_strings(body, ("body",))]
        for field, text in texts:
            _check_placeholders(text, known, _place(source, field), field)
        name = config.get("name")
        label = name if isinstance(name, str) and name.strip() else f"{method} {safe_url(url)}"
        known_secrets.register_all(credential_values(url, headers, {}, body))  # an app may echo them back
        return cls(method, url, headers, body, None if timeout is None else float(timeout), source, label)


def _url(value: Any, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise FieldError(("url",), f"{source}.url: required: the http(s) URL to call, e.g. {{{{base}}}}/orders/5")
    url = value.strip()
    if url.startswith("{{") or "${" in url:  # {{base}}, or a variable not set while validating
        return url
    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    except ValueError:
        usable = False
    if not usable:
        raise FieldError(
            ("url",), f"{source}.url: {safe_url(url)!r} is not an http(s) URL; start it with {{{{base}}}} or http(s)://"
        )
    return url


def _headers(value: Any, source: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise FieldError(("headers",), f"{source}.headers: must be a mapping of header name to value")
    for name, text in value.items():
        if not isinstance(name, str) or not name.strip() or not isinstance(text, str):
            raise FieldError(("headers", str(name)), f"{source}.headers.{name}: header names and values must be text")
    return dict(value)


def _check_placeholders(text: str, known: Collection[str], place: str, field: tuple[str | int, ...]) -> None:
    if "session_id" in placeholders(text) and "session_id" not in known:
        raise FieldError(
            field,
            f"{place}: {{{{session_id}}}} is not known yet: setup runs before the app hands out a session; "
            "use {{conversation_id}}, or move this request to teardown",
        )
    try:
        check_placeholders(text, known, place)
    except ConfigError as exc:
        raise FieldError(field, str(exc).split(". Pass extra")[0]) from None


def request_list(
    config: Any, source: str, known: Collection[str] = PLACEHOLDERS, others: Collection[str] = ()
) -> list[tuple[StateRequest, Mapping[str, Any]]]:
    """One request or a list of them, each with its own mapping (for the keys in `others`).

    Raises `FieldErrors` naming the problem of every item that has one.
    """
    found, problems = [], []
    for item, where, prefix in list_items(config, source):
        try:
            found.append((StateRequest.from_config(item, where, known, others), item))
        except FieldError as exc:
            problems.append(FieldError((*prefix, *exc.field), str(exc)))
    if problems:
        raise FieldErrors(problems)
    return found


def list_items(config: Any, source: str) -> list[tuple[Any, str, tuple[int, ...]]]:
    """The items of a value that is one item or a list: (item, where it is, its field prefix)."""
    if not isinstance(config, list):
        return [(config, source, ())]
    return [(item, f"{source}[{index}]", (index,)) for index, item in enumerate(config)]
