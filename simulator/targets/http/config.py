"""A URL target's manifest fields, checked in one pass that names every problem.

`check_config` is the only place the rules live: building a target (`load_settings`) raises what
it finds, and validating a manifest (`target_problems`) reports the same messages without building
anything, so `simulator validate` and `simulator run` agree. The fields common to every format are
checked here; each format checks its own (`HttpFormat.from_config`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

from ...aio.limiter import DEFAULT_RATE_LIMIT_WAIT, EndpointLimiter, check_rate_limit_wait
from ...errors import ConfigError
from ...parsing.json_path import Segment, parse_path
from ...parsing.template import PLACEHOLDER, check_placeholders
from ..redaction import credentials_twice, safe_url
from ..retry import RetryPolicy
from .format import HttpFormat, Template
from .problems import Field, Problem, Problems, TargetConfigError, where
from .registry import DEFAULT_FORMAT, FORMATS
from .session import SessionSpec

HISTORY_MODES = ("full", "latest")
#: fields every format reads; each format adds its own (`HttpFormat.keys`)
COMMON_KEYS = (
    "url",
    "format",
    "headers",
    "timeout",
    "history",
    "response",
    "session",
    "retry",
    "max_reply_bytes",
    "rate_limit_wait",
)


def config_keys() -> frozenset[str]:
    """Every field a URL target may have: the common ones and those of each registered format."""
    return frozenset(COMMON_KEYS).union(*(cls.keys for cls in FORMATS.values()))


def other_formats_keys(name: str) -> frozenset[str]:
    """The fields only formats other than `name` read."""
    return config_keys() - set(COMMON_KEYS) - set(FORMATS[name].keys)


#: the fields of the formats shipped (`config_keys()` also counts formats registered later)
CONFIG_KEYS = config_keys()
DEFAULT_TIMEOUT = 30.0
#: The most of an answer read, in bytes (`target.max_reply_bytes`). A result keeps at most
#: `MAX_REPLY_CHARS` (100,000) characters of a reply; as JSON that is up to ~1.2 MB (escaped
#: non-ASCII), and streamed as OpenAI-style events, one per few-character token with ~200-500 bytes
#: of envelope each, ~6-12 MB. 10 MiB reads such replies whole, yet 8 conversations at once hold
#: at most ~80 MB of answers however much an app sends.
DEFAULT_MAX_REPLY_BYTES = 10 * 1024 * 1024
#: the range `max_reply_bytes` may take: a smaller limit cuts ordinary replies, a larger one is no bound
REPLY_BYTES_RANGE = (1024, 1024 * 1024 * 1024)


@dataclass(frozen=True)
class HttpSettings:
    """A URL target's configuration, checked: what `HttpTarget` runs with."""

    url: str
    format: HttpFormat
    headers: dict[str, str]
    timeout: float
    history: str
    response: str | None
    #: `response` parsed (None when it is not set)
    path: list[Segment] | None
    session: SessionSpec | None
    retry: RetryPolicy
    max_reply_bytes: int

    def response_path(self, stream: bool = False) -> str:
        """Where the reply text is: in a JSON answer, or (`stream`) in each streamed event."""
        if self.response is not None and not (stream and self.format.stream_response_fixed):
            return self.response
        if stream:
            return self.format.stream_response
        return self.format.default_response or ""


def check_config(config: Any, source: str = "target") -> tuple[HttpSettings | None, list[Problem]]:
    """The settings of a target mapping (`${ENV}` already filled in), or None and every problem."""
    problems = Problems()
    if not isinstance(config, Mapping):
        problems.add((), f"{source}: must be a mapping with at least 'url'")
        return None, problems
    keys = config_keys()
    unknown = sorted(str(key) for key in set(config) - keys)
    if unknown:
        known = ", ".join(sorted(keys))
        problems.add((unknown[0],), f"{source}: unknown field(s) {', '.join(unknown)}; known: {known}")
    url = problems.call(("url",), _url, config.get("url"), f"{source}.url")
    dialect = _format(config, source, problems)
    history = config.get("history", "full")
    if history not in HISTORY_MODES:
        problems.add(("history",), f"{source}.history: must be 'full' or 'latest', got {history!r}")
    timeout = problems.call(("timeout",), _timeout, config.get("timeout", DEFAULT_TIMEOUT), f"{source}.timeout")
    max_reply_bytes = config.get("max_reply_bytes", DEFAULT_MAX_REPLY_BYTES)
    problems.call(("max_reply_bytes",), _reply_bytes, max_reply_bytes, f"{source}.max_reply_bytes")
    headers = _headers(config.get("headers"), source, problems)
    path = _response(config.get("response"), dialect, source, problems)
    session = _session(config.get("session"), source, problems)
    retry = problems.call(("retry",), RetryPolicy.from_config, config.get("retry"), f"{source}.retry")
    where = f"{source}.rate_limit_wait"
    wait = problems.call(
        ("rate_limit_wait",), check_rate_limit_wait, config.get("rate_limit_wait", DEFAULT_RATE_LIMIT_WAIT), where
    )
    twice = credentials_twice(url, headers, source) if url is not None and headers is not None else None
    if twice is not None:
        problems.add(("url",), twice)
    _check_templates(_templates(config, dialect), source, config.get("session") is not None, problems)
    if problems or url is None or headers is None or dialect is None or retry is None or timeout is None:
        return None, problems
    response = config.get("response")
    url = dialect.endpoint(url)
    # the app's own pause and window; a run gives every target of one endpoint the same one
    retry = replace(
        retry,
        limiter=EndpointLimiter("app", slow_start=False),
        rate_limit_wait=wait or DEFAULT_RATE_LIMIT_WAIT,
        source=source,
    )
    settings = HttpSettings(url, dialect, headers, timeout, history, response, path, session, retry, max_reply_bytes)
    return settings, problems


def target_problems(config: Any, where: str = "target") -> list[str]:
    """Every message building an HTTP target from `config` would raise, naming `where` and the field."""
    return [problem.message for problem in check_config(config, where)[1]]


def load_settings(config: Any, source: str = "target") -> HttpSettings:
    """The checked settings; a `TargetConfigError` naming every problem otherwise."""
    settings, problems = check_config(config, source)
    if settings is None:
        raise TargetConfigError(problems)
    return settings


# --- the checks, each of one field ---------------------------------------------------------------


def _url(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where}: required, the app's http(s) URL")
    url = value.strip()
    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in ("http", "https") and bool(parts.netloc)
    except ValueError:  # e.g. an unclosed [IPv6 address
        usable = False
    if not usable:
        raise ConfigError(f"{where}: {safe_url(url)!r} is not an http(s) URL")
    return url


def _timeout(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ConfigError(f"{where}: must be a positive number of seconds, got {value!r}")
    return float(value)


def _reply_bytes(value: Any, where: str) -> int:
    low, high = REPLY_BYTES_RANGE
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{where}: must be a whole number of bytes from {low:,} to {high:,}, got {value!r}")
    return value


def _path(value: Any, where: str) -> list[Segment]:
    try:
        return parse_path(value)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _headers(headers: Any, source: str, problems: Problems) -> dict[str, str] | None:
    if headers is None:
        return {}
    if not isinstance(headers, Mapping):
        problems.add(("headers",), f"{source}.headers: must be a mapping of header name to value")
        return None
    found = len(problems)
    for name, value in headers.items():
        if not isinstance(name, str) or not name.strip() or not isinstance(value, str):
            problems.add(("headers", str(name)), f"{source}.headers.{name}: header names and values must be strings")
    return dict(headers) if len(problems) == found else None


def _format(config: Mapping[str, Any], source: str, problems: Problems) -> HttpFormat | None:
    """The format's own settings; the fields of other formats are refused, as they would do nothing."""
    name = config.get("format", DEFAULT_FORMAT)
    cls = FORMATS.get(name) if isinstance(name, str) else None
    if cls is None:
        problems.add(("format",), f"{source}.format: must be one of {', '.join(FORMATS)}, got {name!r}")
        return None
    for key in sorted(other_formats_keys(name)):
        value = config.get(key)
        if value is not None and value is not False:  # null and false are as good as absent
            owners = " or ".join(other for other, oc in FORMATS.items() if key in oc.keys)
            problems.add((key,), f"{source}.{key}: only applies to format: {owners} (format is {name})")
    return cls.from_config(config, source, problems)


def _response(response: Any, dialect: HttpFormat | None, source: str, problems: Problems) -> list[Segment] | None:
    if response is not None:
        return problems.call(("response",), _path, response, f"{source}.response")
    if dialect is not None and dialect.default_response is None:
        problems.add(
            ("response",),
            f"{source}.response: required for format {dialect.name}: the path of the reply text in the "
            "app's JSON answer, e.g. data.reply.text or messages[*].text",
        )
    return None


def _session(session: Any, source: str, problems: Problems) -> SessionSpec | None:
    if session is None:
        return None
    if not isinstance(session, Mapping) or set(session) != {"read"}:
        problems.add(
            ("session",), f"{source}.session: must be {{read: 'json:<path>' | 'header:<Name>' | 'cookie:<name>'}}"
        )
        return None
    return problems.call(("session", "read"), SessionSpec.parse, session["read"], f"{source}.session.read")


def _templates(config: Mapping[str, Any], dialect: HttpFormat | None) -> list[Template]:
    """What is rendered per turn, as configured: a bad value beside them does not hide their problems."""
    url, headers = config.get("url"), config.get("headers")
    return [
        Template(("url",), url.strip() if isinstance(url, str) else None),
        Template(("headers",), headers if isinstance(headers, Mapping) else None),
        *(dialect.templates() if dialect is not None else []),
    ]


def _strings(node: Any, field: Field, place: str) -> Iterator[tuple[Field, str, str]]:
    """Every string inside `node`, with its field and its place as messages spell it."""
    if isinstance(node, str):
        yield field, place, node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _strings(value, (*field, key), f"{place}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _strings(value, (*field, index), f"{place}[{index}]")


def _check_templates(templates: list[Template], source: str, has_session: bool, problems: Problems) -> None:
    """Unknown placeholders anywhere, and `{{session_id}}` with no session to fill it."""
    uses: list[Template] = []
    for template in templates:
        used = False
        for field, place, text in _strings(template.value, template.field, where(source, template.field)):
            problems.call(field, check_placeholders, text, template.known, place)
            used = used or any(m.group(1) == "session_id" for m in PLACEHOLDER.finditer(text))
        if used:
            uses.append(template)
    if uses and not has_session:
        first = ".".join(map(str, uses[0].field))
        problems.add(
            uses[0].field,
            f"{source}.{first}: {{{{session_id}}}} is only filled from a server-issued session; "
            f"add {source}.session.read ('json:<path>', 'header:<Name>' or 'cookie:<name>'), "
            "or send the client's own id with {{conversation_id}}",
        )
