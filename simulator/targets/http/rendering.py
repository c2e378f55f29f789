"""Filling a request's URL and headers from their templates, and what a recorded request may show.

One place for the rules every request to an app follows, whether it carries a turn (`HttpTarget`)
or checks the app's state around a conversation (setup, teardown, outcome checks): values in a URL
are percent-encoded, a header value never spans lines and an empty one is left out, and a recorded
header shows its value only when it cannot be a credential.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import quote

from ...template import PLACEHOLDER, check_placeholders, placeholders, render
from ..redaction import BENIGN_HEADERS, REDACTED, is_sensitive_header


def render_url(template: str, values: Mapping[str, Any], source: str, raw: Collection[str] = ()) -> str:
    """`template` with every placeholder filled in; values are percent-encoded, except those in `raw`
    (a value that is itself the start of a URL). Only the values the template uses are encoded: one
    it does not use (a persona's name that UTF-8 cannot hold) can never fail the request."""
    check_placeholders(template, values, source)
    used = {name: values[name] for name in placeholders(template)}
    url_values = {k: (str(v) if k in raw else quote(str(v), safe="")) for k, v in used.items()}
    return render(template, url_values, source)


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
