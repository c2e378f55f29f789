"""Filling a request's URL and headers from their templates, and what a recorded request may show.

One place for the rules every request to an app follows, whether it carries a turn (`HttpTarget`)
or checks the app's state around a conversation (setup, teardown, outcome checks): a value in a URL
is percent-encoded where it stands and never leaves its path segment, a header value never spans
lines and an empty one is left out, and a recorded header shows its value only when it cannot be a
credential.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote, unquote

from ...parsing.template import PLACEHOLDER, check_placeholders, render
from ..redaction import BENIGN_HEADERS, REDACTED, is_sensitive_header


def render_url(template: str, values: Mapping[str, Any], source: str, raw: Collection[str] = ()) -> str:
    """`template` with every placeholder filled in, as the URL goes on the wire: send it as it is
    (`yarl.URL(url, encoded=True)`), since a client that normalises it again would undo the encoding.

    Values are percent-encoded where they stand, except those in `raw` (a value that is itself the
    start of a URL, e.g. `{{base}}`): in the path as one segment (`/`, `?`, `#`, `%`, `\\`, white
    space encoded, and a segment they make `.` or `..` as `%2E`, `%2E%2E`, so that no dot segment is
    resolved and a value never leaves its segment), in the query and the fragment as a value. Only the
    values the template uses are encoded: one it does not use (a persona's name that UTF-8 cannot
    hold) can never fail the request. The template's own text is encoded as the client would.
    """
    check_placeholders(template, values, source)
    token = f"zz{secrets.token_hex(6)}"
    marker = re.compile(rf"{token}(\d+){token}")
    filled: list[str] = []  # each placeholder's value, percent-encoded, by the number of its marker

    def mark(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in raw:
            return str(values[name])
        filled.append(quote(str(values[name]), safe=""))
        return f"{token}{len(filled) - 1}{token}"

    def fill(match: re.Match[str]) -> str:
        return filled[int(match.group(1))]

    marked = PLACEHOLDER.sub(mark, template)
    cut = _authority_end(marked)
    marked = marker.sub(fill, marked[:cut]) + marked[cut:]  # a host or a port as it was ever written
    from yarl import URL  # with aiohttp, on first use (validate never renders a URL)

    try:
        url = URL(marked)
    except ValueError:  # no URL the client could send either: it says why when it is sent
        return marker.sub(fill, marked)
    if not filled:
        return str(url)
    path = "/".join(
        _segment(marker.sub(fill, part)) if marker.search(part) else part for part in url.raw_path.split("/")
    )
    query, fragment = marker.sub(fill, url.raw_query_string), marker.sub(fill, url.raw_fragment)
    start = str(url.with_path("").with_query(None).with_fragment(None))
    return start + path + (f"?{query}" if query else "") + (f"#{fragment}" if fragment else "")


def _authority_end(url: str) -> int:
    """Where the path (or the query, or the fragment) of `url` starts."""
    scheme = url.find("://")
    after = scheme + 3 if scheme >= 0 else 0
    ends = [index for index in (url.find(c, after) for c in "/?#") if index >= 0]
    return min(ends, default=len(url))


def _segment(text: str) -> str:
    """A path segment with values in it, never a dot segment: `.` and `..` (however encoded) become
    `%2E` and `%2E%2E`."""
    plain = unquote(text)
    return "%2E" * len(plain) if plain in (".", "..") else text


def render_headers(templates: Mapping[str, str], values: Mapping[str, Any], source: str) -> dict[str, str]:
    """The headers to send: each template filled in on one line; an empty one (e.g. a session header
    before the app issued the session) is left out."""
    headers: dict[str, str] = {}
    for name, template in templates.items():
        value = render(template, values, f"{source}.{name}")
        value = " ".join(value.splitlines()).strip()  # a header value cannot span lines
        if value:
            headers[name] = value
    return headers


def recorded_headers(sent: Mapping[str, str], templates: Mapping[str, str], cookie: bool = False) -> dict[str, str]:
    """The headers as results keep them: a configured value may come from `${VAR}` and is `***`,
    unless the header is benign (Content-Type, Accept, ...) or its template is placeholders only;
    a header named like a credential is always `***`, and so is a cookie the request carried."""
    shown = {}
    for name, value in sent.items():
        template = templates.get(name)
        placeholders_only = template is not None and not PLACEHOLDER.sub("", template).strip()
        keep = name.lower() in BENIGN_HEADERS or template is None or placeholders_only
        shown[name] = value if keep and not is_sensitive_header(name) else REDACTED
    if cookie:
        shown["Cookie"] = REDACTED
    return shown
