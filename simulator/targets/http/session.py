"""Per-conversation state: the session id an app hands out and the cookies it sets.

Kept apart per conversation (never in the shared client) so concurrent conversations never share a
session.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from ...parsing.json_path import Segment, parse_path
from ...text.unicode_safety import replace_lone_surrogates

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL


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


@dataclass
class Conversation:
    """What one conversation carries from turn to turn."""

    session_id: str | None = None
    #: made on the first cookie the app sets (a jar belongs to the running event loop)
    cookies: aiohttp.CookieJar | None = field(default=None, repr=False)

    def cookie_header(self, url: URL) -> str | None:
        """The `Cookie` header this conversation sends to `url` (domain, path and expiry matched)."""
        if self.cookies is None:
            return None
        found = self.cookies.filter_cookies(url)
        # as the app set it (`coded_value` keeps its quotes): the app reads back what it wrote
        return "; ".join(f"{name}={morsel.coded_value}" for name, morsel in found.items()) or None

    def keep_cookies(self, response: aiohttp.ClientResponse) -> None:
        """Keep the cookies an answer sets, for this conversation only."""
        if response.cookies:
            if self.cookies is None:
                import aiohttp  # loaded already: the answer came through it

                self.cookies = aiohttp.CookieJar(unsafe=True)  # apps under test often live on an IP address
            self.cookies.update_cookies(response.cookies, response.url)

    def learn(self, spec: SessionSpec | None, headers: Mapping[str, str], in_json: Any) -> None:
        """Keep the first session id the app hands out; later turns send it back.

        `in_json` is what the answer held at the `json:` session path, if that is where the id is.
        """
        if spec is None or self.session_id is not None:
            return
        found: Any = in_json
        if spec.kind == "header":
            found = headers.get(spec.name)
        elif spec.kind == "cookie":
            found = next((c.value for c in self.cookies or () if c.key == spec.name), None)
        if isinstance(found, (str, int)) and not isinstance(found, bool) and str(found).strip():
            # a header's bytes that are no UTF-8 come as lone surrogates: U+FFFD, so the id can be sent back
            self.session_id = replace_lone_surrogates(str(found).strip())[0]
