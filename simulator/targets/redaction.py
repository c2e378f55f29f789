"""What a recorded request may show: credential-shaped parts become "***".

Results, reports and PR comments are shared widely; a recorded request keeps its shape but never
a key, token, cookie or password. This module judges by shape (a header, query or body field
named like a credential); `credential_values` lists the literal credentials a target sends, which
join the run's known secrets (`simulator.text.known_secrets`) so they are scrubbed wherever they appear.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from ..text.known_secrets import MIN_SECRET_LENGTH, REDACTED

_SENSITIVE_HEADER = re.compile(r"key|token|secret|auth|cookie|password|signature", re.IGNORECASE)
_SENSITIVE_QUERY = re.compile(r"key|token|secret|auth|password|passwd|signature|^sig$|^code$|credential", re.IGNORECASE)
_SENSITIVE_BODY_KEY = re.compile(
    r"(^|[_\-.])(api[_\-]?key|key|token|access[_\-]?token|secret|password|passwd|authorization)$", re.IGNORECASE
)


def is_sensitive_header(name: str) -> bool:
    """Authorization, Cookie, api-key, x-api-key and any header naming a key, token, secret or auth."""
    return bool(_SENSITIVE_HEADER.search(name))


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Headers as recorded: sensitive values become "***" so results never hold a credential."""
    return {name: (REDACTED if is_sensitive_header(name) else value) for name, value in headers.items()}


def safe_url(url: str) -> str:
    """`url` with any password and credential-like query values (key, token, sig, code...) hidden."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, host = netloc.rpartition("@")
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{REDACTED}@{host}" if ":" in userinfo else f"{REDACTED}@{host}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(_SENSITIVE_QUERY.search(k) for k, _ in pairs):
            query = urlencode(
                [(k, REDACTED if _SENSITIVE_QUERY.search(k) else v) for k, v in pairs], safe="{}*", quote_via=quote
            )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


#: configured headers shown as they are in results; every other configured value may hold a credential
BENIGN_HEADERS = frozenset({"content-type", "accept", "user-agent", "accept-language"})


def url_credentials(url: str) -> bool:
    """Whether `url` carries credentials (`user:password@` or a bare `user@`), which the client sends
    as Basic auth."""
    try:
        parts = urlsplit(url.strip())
        return bool(parts.username or parts.password)
    except ValueError:
        return False


def authorization_header(headers: Mapping[str, str]) -> str | None:
    """The name of an `Authorization` header (any case) that is sent, i.e. not empty."""
    return next((n for n, v in headers.items() if n.strip().lower() == "authorization" and str(v).strip()), None)


def credentials_twice(url: str, headers: Mapping[str, str], source: str) -> str | None:
    """Why a request with credentials in its URL and an `Authorization` header cannot be sent (the
    client refuses to send both), or None when it has at most one of them."""
    name = authorization_header(headers)
    if name is None or not url_credentials(url):
        return None
    return (
        f"{source}.url: carries credentials (user:password@) and {source}.headers.{name} sets them too, "
        "but a request can send only one: use one of them (remove the user:password@ from the URL, or the header)"
    )


def credential_values(url: str, headers: Mapping[str, str], query: Mapping[str, str], body: Any) -> list[str]:
    """The literal credentials this target sends (from its configuration, `${VAR}`s filled in).

    An app may echo them back (a 401 body quoting the token), so they are registered as known
    secrets. Values with `{{placeholders}}` change per turn and are not credentials.
    """
    found: list[str] = []
    for name, value in headers.items():
        if name.lower() not in BENIGN_HEADERS and "{{" not in value:
            found.append(value)
            found.extend(value.split()[1:])  # "Bearer <token>": the token alone too
    for name, value in [*query.items(), *parse_qsl(urlsplit(url).query, keep_blank_values=True)]:
        if _SENSITIVE_QUERY.search(name) and "{{" not in value:
            found.append(value)
    password = urlsplit(url).password
    if password:
        found.append(password)

    def walk(node: Any, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for v in node:
                walk(v, key)
        elif isinstance(node, str) and _SENSITIVE_BODY_KEY.search(key) and "{{" not in node:
            found.append(node)

    walk(body)
    return sorted({v.strip() for v in found if len(v.strip()) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact_body(node: Any) -> Any:
    """A body as recorded: values of keys such as api_key, token or password become "***"."""
    if isinstance(node, dict):
        return {
            k: (REDACTED if isinstance(v, str) and _SENSITIVE_BODY_KEY.search(str(k)) else redact_body(v))
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [redact_body(v) for v in node]
    return node
