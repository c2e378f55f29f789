"""Per-conversation state: the session id an app hands out and the cookies it sets.

Kept apart per conversation (never in the shared client) so concurrent conversations never share a
session.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar
from typing import Any

import httpx2

from ...errors import ConfigError
from ..json_path import Segment, parse_path


@dataclass(frozen=True)
class SessionSpec:
    """Where the app hands out its session id: a JSON path, a response header or a cookie."""

    kind: str  # "json" | "header" | "cookie"
    name: str
    path: list[Segment] = field(default_factory=list)

    @classmethod
    def parse(cls, value: Any, where: str) -> SessionSpec:
        """Read `"json:<path>"`, `"header:<Name>"` or `"cookie:<name>"`."""
        kind, _, name = value.partition(":") if isinstance(value, str) else ("", "", "")
        kind, name = kind.strip().lower(), name.strip()
        if kind not in ("json", "header", "cookie") or not name:
            raise ConfigError(f"{where}: must be 'json:<path>', 'header:<Name>' or 'cookie:<name>', got {value!r}")
        if kind == "json":
            try:
                return cls(kind, name, parse_path(name))
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return cls(kind, name)

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    @property
    def json_path(self) -> list[Segment] | None:
        """The path of the id in a JSON answer or event, when that is where it is."""
        return self.path if self.kind == "json" else None


class NoCookies(CookieJar):
    """The shared client's cookie store, kept empty: cookies live per conversation instead."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


@dataclass
class Conversation:
    """What one conversation carries from turn to turn."""

    session_id: str | None = None
    cookies: httpx2.Cookies = field(default_factory=httpx2.Cookies)

    def learn(self, spec: SessionSpec | None, headers: httpx2.Headers, in_json: Any) -> None:
        """Keep the first session id the app hands out; later turns send it back.

        `in_json` is what the answer held at the `json:` session path, if that is where the id is.
        """
        if spec is None or self.session_id is not None:
            return
        found: Any = in_json
        if spec.kind == "header":
            found = headers.get(spec.name)
        elif spec.kind == "cookie":
            found = next((c.value for c in self.cookies.jar if c.name == spec.name), None)
        if isinstance(found, (str, int)) and not isinstance(found, bool) and str(found).strip():
            self.session_id = str(found).strip()
