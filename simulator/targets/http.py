"""A chat app reached over HTTP: Prompt flow, OpenAI chat completions, or any JSON API.

`HttpTarget.from_config(manifest["target"])` builds one. Each turn is one request (retried on
429/503/5xx, timeouts and dropped connections); the reply text is read from the JSON answer with a
path (`json_path`), or assembled from a `text/event-stream`. Answers are read as a stream and never
past `max_reply_bytes`, so an endless or huge answer costs a bounded amount of memory.
Per-conversation state (a server-issued session id, cookies) is kept apart so concurrent
conversations never share a session. What is recorded never holds a credential: sensitive headers
and query values are replaced by "***".
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import json
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from http.cookiejar import Cookie, CookieJar
from typing import Any
from urllib.parse import quote, urlsplit

import httpx2

from .. import known_secrets
from ..errors import ConfigError, TurnError
from ..history_refs import promptflow_pairs
from ..known_secrets import scrub, scrub_text
from ..sync import PerLoop
from ..template import PLACEHOLDER, check_placeholders, render
from .base import AppReply, Target
from .json_path import PathError, Segment, extract, format_path, parse_path
from .redaction import (
    BENIGN_HEADERS,
    REDACTED,
    credential_values,
    is_sensitive_header,
    redact_body,
    safe_url,
)
from .retry import RetryLater, RetryPolicy, parse_retry_after, retry_async

FORMATS = ("promptflow", "openai", "http")
HISTORY_MODES = ("full", "latest")
METHODS = ("POST", "PUT", "GET")
#: placeholders usable in url, header values, query values and body strings
PLACEHOLDERS = ("question", "conversation_id", "session_id", "turn_number", "persona", "task")
#: body strings may also use {{history}}: exactly "{{history}}" becomes the list of messages
BODY_PLACEHOLDERS = (*PLACEHOLDERS, "history")
CONFIG_KEYS = frozenset(
    {
        "url",
        "format",
        "headers",
        "timeout",
        "history",
        "model",
        "system_prompt",
        "stream",
        "request",
        "response",
        "session",
        "retry",
        "max_reply_bytes",
    }
)
DEFAULT_TIMEOUT = 30.0
#: The most of an answer read, in bytes (`target.max_reply_bytes`). A result keeps at most
#: `MAX_REPLY_CHARS` (100,000) characters of a reply; as JSON that is up to ~1.2 MB (escaped
#: non-ASCII), and streamed as OpenAI-style events, one per few-character token with ~200-500 bytes
#: of envelope each, ~6-12 MB. 10 MiB reads such replies whole, yet 8 conversations at once hold
#: at most ~80 MB of answers however much an app sends.
DEFAULT_MAX_REPLY_BYTES = 10 * 1024 * 1024
#: the range `max_reply_bytes` may take: a smaller limit cuts ordinary replies, a larger one is no bound
REPLY_BYTES_RANGE = (1024, 1024 * 1024 * 1024)
#: an error answer (4xx/5xx, a redirect) is read to at most this many bytes: only a snippet of it is kept
ERROR_BODY_BYTES = 64 * 1024
#: of an event stream, the raw answer keeps the first events within this many bytes of data and counts
#: the others: parsed, a stream of many small events takes some 30 times its size (a result keeps less)
RAW_EVENT_BYTES = 256 * 1024
DEFAULT_PATHS = {"promptflow": "answer", "openai": "choices.0.message.content"}
OPENAI_DELTA_PATH = "choices.0.delta.content"
SSE_DEFAULT_PATH = "delta"
SNIPPET_CHARS = 300
#: after `[DONE]`, how long to wait for the stream's end so its connection can be reused
DRAIN_SECONDS = 0.25
FATAL_STATUSES = (401, 403, 404)
#: enough pooled connections for 64 concurrent conversations, kept alive between turns
LIMITS = httpx2.Limits(max_connections=128, max_keepalive_connections=64, keepalive_expiry=30.0)
USER_AGENT = "chat-simulator"


def encode_body(body: Any) -> bytes:
    """A JSON request body as the connector sends it (and as `expand_request` gives it back)."""
    return json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")


def _after(retries: int) -> str:
    return f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""


def _kind(value: Any) -> str:
    return "objects" if isinstance(value, dict) else "lists"


def _describe_transport(exc: BaseException) -> str:
    """A dropped connection's error for a message. A reset raises ReadError with no text at all, which
    left the recorded reason reading "ReadError: "; say what it means instead."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else f"{type(exc).__name__} (the connection was closed or reset)"


def _snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- configuration helpers -----------------------------------------------------------------


class _NoCookies(CookieJar):
    """The shared client's cookie store, kept empty: cookies live per conversation instead."""

    def set_cookie(self, cookie: Cookie) -> None:
        return None

    def extract_cookies(self, response: Any, request: Any) -> None:
        return None


def _only_placeholder(value: Any, name: str) -> bool:
    """True when `value` is exactly `{{name}}` (such a body value may become a list or be left out)."""
    if not isinstance(value, str):
        return False
    match = PLACEHOLDER.fullmatch(value.strip())
    return bool(match and match.group(1) == name)


def _check_body(node: Any, known: tuple[str, ...], where: str) -> None:
    if isinstance(node, str):
        check_placeholders(node, known, where)
    elif isinstance(node, dict):
        for key, value in node.items():
            _check_body(value, known, f"{where}.{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            _check_body(value, known, f"{where}[{index}]")


def _uses_placeholder(node: Any, name: str) -> bool:
    if isinstance(node, str):
        return any(m.group(1) == name for m in PLACEHOLDER.finditer(node))
    if isinstance(node, dict):
        return any(_uses_placeholder(v, name) for v in node.values())
    if isinstance(node, list):
        return any(_uses_placeholder(v, name) for v in node)
    return False


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


@dataclass
class _Conversation:
    """What one conversation carries from turn to turn."""

    session_id: str | None = None
    cookies: httpx2.Cookies = field(default_factory=httpx2.Cookies)


@dataclass
class _Answer:
    """One HTTP exchange, read to the end."""

    status: int
    headers: httpx2.Headers
    content: bytes = b""
    stream: _StreamReply | None = None  # what a text/event-stream added up to
    retries: int = 0
    cut: bool = False  # the answer went on past the byte limit; only its beginning was read

    @property
    def text(self) -> str:
        if self.stream is not None:
            return "\n".join(e if isinstance(e, str) else json.dumps(e) for e in self.stream.events)
        return self.content.decode("utf-8", errors="replace")

    @property
    def snippet(self) -> str:
        """The beginning of the answer, credentials scrubbed before the cut so no piece of one is left."""
        if self.stream is not None:
            return _snippet(scrub_text(self.text))
        # only the beginning is shown: decoding megabytes for it would cost as much as the answer
        return _snippet(scrub_text(self.content.lstrip()[: 8 * SNIPPET_CHARS].decode("utf-8", errors="replace")))


# --- the target ------------------------------------------------------------------------------


class HttpTarget(Target):
    """An app under test behind an HTTP endpoint; one instance serves many concurrent conversations."""

    def __init__(
        self,
        url: str,
        format: str = "promptflow",
        *,
        headers: Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        history: str = "full",
        model: str | None = None,
        system_prompt: str | None = None,
        stream: bool = False,
        request: Mapping[str, Any] | None = None,
        response: str | None = None,
        session: Mapping[str, Any] | None = None,
        retry: Mapping[str, Any] | None = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        source: str = "target",
    ) -> None:
        self.source = source
        if not isinstance(url, str) or not url.strip():
            raise ConfigError(f"{source}.url: required, the app's http(s) URL")
        self.url = url.strip()
        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in ("http", "https") or not urlsplit(self.url).netloc:
            raise ConfigError(f"{source}.url: {safe_url(self.url)!r} is not an http(s) URL")
        if format not in FORMATS:
            raise ConfigError(f"{source}.format: must be one of {', '.join(FORMATS)}, got {format!r}")
        self.format = format
        if history not in HISTORY_MODES:
            raise ConfigError(f"{source}.history: must be 'full' or 'latest', got {history!r}")
        self.history = history
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
            raise ConfigError(f"{source}.timeout: must be a positive number of seconds, got {timeout!r}")
        self.timeout = float(timeout)
        low, high = REPLY_BYTES_RANGE
        bad = isinstance(max_reply_bytes, bool) or not isinstance(max_reply_bytes, int)
        if bad or not low <= max_reply_bytes <= high:
            raise ConfigError(
                f"{source}.max_reply_bytes: must be a whole number of bytes from {low:,} to {high:,}, "
                f"got {max_reply_bytes!r}"
            )
        self.max_reply_bytes = max_reply_bytes
        self.headers = self._check_headers(headers)
        self._check_openai_fields(model, system_prompt, stream)
        self.model, self.system_prompt, self.stream = model, system_prompt, bool(stream)
        self.method, self.body, self.query = self._check_request(request)
        self.response = response
        self._path = self._check_response(response)
        if session is not None and (not isinstance(session, Mapping) or set(session) != {"read"}):
            raise ConfigError(f"{source}.session: must be {{read: 'json:<path>' | 'header:<Name>' | 'cookie:<name>'}}")
        self.session = SessionSpec.parse(session["read"], f"{source}.session.read") if session is not None else None
        self.retry = RetryPolicy.from_config(retry, f"{source}.retry")
        self._check_placeholders()
        known_secrets.register_all(credential_values(self.url, self.headers, self.query, self.body))
        known_secrets.register_url(self.url)
        self._clients: PerLoop[httpx2.AsyncClient] = PerLoop(self._make_client)
        self._conversations: dict[str, _Conversation] = {}

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str = "target") -> HttpTarget:
        """Build from the manifest's `target` mapping (validated, `${ENV}` already filled in)."""
        if not isinstance(config, Mapping):
            raise ConfigError(f"{source}: must be a mapping with at least 'url'")
        unknown = sorted(set(config) - CONFIG_KEYS)
        if unknown:
            raise ConfigError(
                f"{source}: unknown field(s) {', '.join(unknown)}; known: {', '.join(sorted(CONFIG_KEYS))}"
            )
        if "url" not in config:
            raise ConfigError(f"{source}.url: required, the app's http(s) URL")
        return cls(**{k: v for k, v in config.items()}, source=source)

    # --- validation ----------------------------------------------------------------------

    def _check_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        if headers is None:
            return {}
        if not isinstance(headers, Mapping):
            raise ConfigError(f"{self.source}.headers: must be a mapping of header name to value")
        for name, value in headers.items():
            if not isinstance(name, str) or not name.strip() or not isinstance(value, str):
                raise ConfigError(f"{self.source}.headers.{name}: header names and values must be strings")
        return dict(headers)

    def _check_openai_fields(self, model: Any, system_prompt: Any, stream: Any) -> None:
        given = [k for k, v in (("model", model), ("system_prompt", system_prompt)) if v is not None]
        if stream:
            given.append("stream")
        if self.format != "openai" and given:
            raise ConfigError(f"{self.source}: {', '.join(given)} only apply to format: openai")
        for key, value in (("model", model), ("system_prompt", system_prompt)):
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{self.source}.{key}: must be a string")
        if not isinstance(stream, bool):
            raise ConfigError(f"{self.source}.stream: must be true or false")

    def _check_request(self, request: Mapping[str, Any] | None) -> tuple[str, Any, dict[str, str]]:
        where = f"{self.source}.request"
        if self.format != "http":
            if request is not None:
                raise ConfigError(f"{where}: only applies to format: http (format is {self.format})")
            return "POST", None, {}
        request = request or {}
        if not isinstance(request, Mapping):
            raise ConfigError(f"{where}: must be a mapping with method, body, query")
        unknown = sorted(set(request) - {"method", "body", "query"})
        if unknown:
            raise ConfigError(f"{where}: unknown field(s) {', '.join(unknown)}; use method, body, query")
        method = str(request.get("method", "POST")).upper()
        if method not in METHODS:
            raise ConfigError(f"{where}.method: must be one of {', '.join(METHODS)}, got {request.get('method')!r}")
        body = request.get("body")
        if method in ("POST", "PUT") and body is None:
            raise ConfigError(f'{where}.body: required for {method}; e.g. {{"message": "{{{{question}}}}"}}')
        if method == "GET" and body is not None:
            raise ConfigError(f"{where}.body: a GET request sends no body; put the values in request.query")
        query = request.get("query") or {}
        if not isinstance(query, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in query.items()
        ):
            raise ConfigError(f"{where}.query: must be a mapping of parameter name to string value")
        return method, body, dict(query)

    def _check_response(self, response: Any) -> list[Segment] | None:
        if response is None:
            if self.format == "http":
                raise ConfigError(
                    f"{self.source}.response: required for format http: the path of the reply text in the "
                    "app's JSON answer, e.g. data.reply.text or messages[*].text"
                )
            return None
        try:
            return parse_path(response)
        except ConfigError as exc:
            raise ConfigError(f"{self.source}.response: {exc}") from None

    def _check_placeholders(self) -> None:
        check_placeholders(self.url, PLACEHOLDERS, f"{self.source}.url")
        for name, value in self.headers.items():
            check_placeholders(value, PLACEHOLDERS, f"{self.source}.headers.{name}")
        for name, value in self.query.items():
            check_placeholders(value, PLACEHOLDERS, f"{self.source}.request.query.{name}")
        _check_body(self.body, BODY_PLACEHOLDERS, f"{self.source}.request.body")
        if self.session is None:
            uses = [
                where
                for where, node in (
                    ("url", self.url),
                    ("headers", self.headers),
                    ("request.query", self.query),
                    ("request.body", self.body),
                )
                if _uses_placeholder(node, "session_id")
            ]
            if uses:
                raise ConfigError(
                    f"{self.source}.{uses[0]}: {{{{session_id}}}} is only filled from a server-issued session; "
                    f"add {self.source}.session.read ('json:<path>', 'header:<Name>' or 'cookie:<name>'), "
                    "or send the client's own id with {{conversation_id}}"
                )

    # --- description and lifecycle ----------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        return {"kind": "http", "format": self.format, "url": safe_url(self.url)}

    def __repr__(self) -> str:
        return f"HttpTarget(format={self.format!r}, url={safe_url(self.url)!r})"

    def _client(self) -> httpx2.AsyncClient:
        """The connection pool of the running event loop."""
        return self._clients.get()

    def _make_client(self) -> httpx2.AsyncClient:
        return httpx2.AsyncClient(
            timeout=httpx2.Timeout(self.timeout),
            limits=LIMITS,
            cookies=_NoCookies(),  # a shared store would mix sessions of concurrent conversations
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
        )

    async def aclose(self) -> None:
        client = self._clients.pop()
        if client is not None:
            await client.aclose()

    async def end_conversation(self, conversation_id: str) -> None:
        self._conversations.pop(conversation_id, None)

    # --- building the request ------------------------------------------------------------------

    def _values(self, question: str, meta_data: Mapping[str, Any], state: _Conversation) -> dict[str, Any]:
        return {
            "question": question,
            "conversation_id": meta_data.get("conversation_id") or "",
            "session_id": state.session_id or "",
            "turn_number": meta_data.get("turn_number", ""),
            "persona": meta_data.get("persona") or "",
            "task": meta_data.get("task") or "",
        }

    def _json_body(self, question: str, history: list[dict[str, str]], values: dict[str, Any], known: bool) -> Any:
        if self.format == "promptflow":
            return {"question": question, "chat_history": promptflow_pairs(history)}
        if self.format == "openai":
            messages: list[dict[str, Any]] = []
            if self.system_prompt:
                messages.append({"role": "system", "content": self.system_prompt})
            messages.extend({"role": m["role"], "content": m["content"]} for m in history)
            messages.append({"role": "user", "content": question})
            body: dict[str, Any] = {}
            if self.model:
                body["model"] = self.model
            body["messages"] = messages
            if self.stream:
                body["stream"] = True
            return body
        if self.body is None:
            return None
        messages = [{"role": m["role"], "content": m["content"]} for m in history]
        text_values = {**values, "history": json.dumps(messages, ensure_ascii=False)}
        return self._render_body(self.body, text_values, messages, known, f"{self.source}.request.body")

    def _render_body(self, node: Any, values: dict[str, Any], messages: list[Any], known: bool, where: str) -> Any:
        if isinstance(node, str):
            if _only_placeholder(node, "history"):
                return messages
            return render(node, values, where)
        if isinstance(node, dict):
            return {
                key: self._render_body(value, values, messages, known, f"{where}.{key}")
                for key, value in node.items()
                if known or not _only_placeholder(value, "session_id")
            }
        if isinstance(node, list):
            return [self._render_body(v, values, messages, known, f"{where}[{i}]") for i, v in enumerate(node)]
        return node

    def _build(
        self, question: str, history: list[dict[str, str]], meta_data: Mapping[str, Any], state: _Conversation
    ) -> tuple[str, dict[str, str], dict[str, str], Any]:
        """Method-less parts of the request: URL, query, headers and JSON body, all rendered."""
        known = state.session_id is not None
        values = self._values(question, meta_data, state)
        url_values = {k: quote(str(v), safe="") for k, v in values.items()}
        url = render(self.url, url_values, f"{self.source}.url")
        query = {
            name: render(value, values, f"{self.source}.request.query.{name}")
            for name, value in self.query.items()
            if known or not _only_placeholder(value, "session_id")
        }
        headers: dict[str, str] = {}
        for name, template in self.headers.items():
            value = render(template, values, f"{self.source}.headers.{name}")
            value = " ".join(value.splitlines()).strip()  # a header value cannot span lines
            if value:  # e.g. a session header before the app issued the session
                headers[name] = value
        sent_history = history if self.history == "full" else []
        body = self._json_body(question, sent_history, values, known)
        if body is not None and not any(k.lower() == "content-type" for k in headers):
            headers["Content-Type"] = "application/json"
        if self.format == "openai" and self.stream and not any(k.lower() == "accept" for k in headers):
            headers["Accept"] = "text/event-stream"
        return url, query, headers, body

    # --- one turn ------------------------------------------------------------------------------

    async def respond(self, question: str, history: list[dict[str, str]], meta_data: dict[str, Any]) -> AppReply:
        conversation_id = str(meta_data.get("conversation_id") or "")
        state = self._conversations.setdefault(conversation_id, _Conversation())
        url, query, headers, body = self._build(question, history, meta_data, state)
        content = None if body is None else encode_body(body)
        # query values are merged into the URL's own query (params= would replace it)
        full_url = httpx2.URL(url).copy_merge_params(query) if query else httpx2.URL(url)
        client = self._client()
        record: dict[str, Any] = {}

        async def attempt(retry: int) -> _Answer:
            request = client.build_request(self.method, full_url, headers=headers, content=content)
            state.cookies.set_cookie_header(request)
            record.clear()
            record.update(self._record(request, headers, body))
            try:
                answer = await asyncio.wait_for(self._exchange(client, request, state), self.timeout)
            except (httpx2.TimeoutException, asyncio.TimeoutError):
                raise RetryLater(self._timeout_error(record, retry)) from None
            except httpx2.ConnectError as exc:
                raise RetryLater(self._unreachable_error(record, exc, retry)) from None
            except (httpx2.TransportError, httpx2.DecodingError) as exc:
                if isinstance(exc, (httpx2.UnsupportedProtocol, httpx2.ProxyError, httpx2.LocalProtocolError)):
                    raise self._transport_error(record, exc, retry, fatal=True) from None
                raise RetryLater(self._transport_error(record, exc, retry)) from None
            answer.retries = retry
            if answer.status in (429, 503) or answer.status >= 500:
                wait = parse_retry_after(answer.headers.get("retry-after")) if answer.status in (429, 503) else None
                raise RetryLater(self._status_error(answer, record), retry_after=wait)
            return answer

        answer = await retry_async(attempt, self.retry)
        if answer.status >= 300:
            raise self._status_error(answer, record)
        return self._reply(answer, record, state)

    async def _exchange(self, client: httpx2.AsyncClient, request: httpx2.Request, state: _Conversation) -> _Answer:
        """Send and read the answer, to its end or `max_reply_bytes`; a stream until `[DONE]`.

        An answer cut at the limit has its connection closed (`aclose` before the end), never drained.
        """
        response = await client.send(request, stream=True)
        try:
            state.cookies.extract_cookies(response)
            answer = _Answer(status=response.status_code, headers=response.headers)
            if not response.is_success:
                answer.content, answer.cut = await _read_body(response, min(self.max_reply_bytes, ERROR_BODY_BYTES))
            elif "text/event-stream" in response.headers.get("content-type", "").lower():
                answer.stream = self._new_stream()
                answer.cut = await _read_events(response, self.max_reply_bytes, answer.stream.add)
            else:
                answer.content, answer.cut = await _read_body(response, self.max_reply_bytes)
            return answer
        finally:
            await response.aclose()

    def _record(self, request: httpx2.Request, headers: Mapping[str, str], body: Any) -> dict[str, Any]:
        """The request as results keep it: no credential in headers, query or body."""
        shown = {}
        for name, value in headers.items():
            template = self.headers.get(name)
            placeholders_only = template is not None and not PLACEHOLDER.sub("", template).strip()
            keep = name.lower() in BENIGN_HEADERS or template is None or placeholders_only
            shown[name] = value if keep and not is_sensitive_header(name) else REDACTED
        if "cookie" in request.headers:
            shown["Cookie"] = REDACTED
        record: dict[str, Any] = {"method": request.method, "url": safe_url(str(request.url)), "headers": shown}
        if body is not None:
            record["body"] = scrub(redact_body(body))
        return record

    # --- reading the answer ----------------------------------------------------------------------

    def _reply(self, answer: _Answer, record: dict[str, Any], state: _Conversation) -> AppReply:
        raw: dict[str, Any] = {"status": answer.status}
        if answer.retries:
            raw["retries"] = answer.retries
        usage: dict[str, Any] | None = None
        notes: list[str] = []
        stream = answer.stream
        if stream is not None:
            if answer.cut and not stream.count:
                raise self._error(
                    f"{self._over_limit()}; no event was complete by then: {self._raise_limit()}", answer, record
                )
            raw["events"] = stream.events
            if stream.count > len(stream.events):
                raw["events_total"] = stream.count  # only the first ones are kept
            text, usage, parts = self._text_from_stream(stream, answer, record)
            session = stream.session
            if answer.cut:
                raw["cut_at_bytes"] = self.max_reply_bytes
                notes.append(
                    f"the app {self._over_limit()}: the connection was closed there and the {stream.count:,} "
                    "events completed before are the reply"
                )
        elif answer.cut:
            raise self._error(
                f"{self._over_limit()}; the connection was closed there and the cut JSON cannot be parsed: "
                f"{self._raise_limit()}",
                answer,
                record,
            )
        else:
            try:
                document = json.loads(answer.content) if answer.content.strip() else None
            except ValueError:
                document = None
            if document is None:
                what = "an empty body" if not answer.content.strip() else "a body that is not JSON"
                ctype = answer.headers.get("content-type", "no content type")
                raise self._error(f"answered with {what} ({ctype})", answer, record)
            raw["body"] = document
            text, usage, parts = self._text_from_document(document, answer, record)
            session = None
            if self.session is not None and self.session.kind == "json":
                with contextlib.suppress(PathError):
                    session = extract(document, self.session.path)
        if parts is not None:
            raw["parts"] = parts
        if not text.strip():
            where = "the stream" if stream is not None else f"path {self._path_text()!r}"
            raise self._error(f"gave an empty reply (the text at {where} is empty)", answer, record)
        self._learn_session(state, answer, session)
        return AppReply(text=scrub_text(text), raw=scrub(raw), request=dict(record), usage=usage, notes=notes)

    def _over_limit(self) -> str:
        return f"sent more than {self.max_reply_bytes:,} bytes ({self.source}.max_reply_bytes)"

    def _raise_limit(self) -> str:
        return f"raise {self.source}.max_reply_bytes if the app's answers are that big"

    def _path_text(self, stream: bool = False) -> str:
        if self.response is not None and not (stream and self.format == "openai"):
            return self.response
        if stream:
            return OPENAI_DELTA_PATH if self.format == "openai" else SSE_DEFAULT_PATH
        return DEFAULT_PATHS[self.format]

    def _text_from_document(
        self, document: Any, answer: _Answer, record: dict[str, Any]
    ) -> tuple[str, dict[str, Any] | None, list[str] | None]:
        usage = None
        if self.format == "openai" and isinstance(document, dict):
            usage = document.get("usage") if isinstance(document.get("usage"), dict) else None
            self._check_content_filter(document, answer, record)
        path = self._path_text()
        try:
            value = extract(document, self._path or path)
        except PathError as exc:
            raise self._error(f"answered without the reply text: {exc}", answer, record) from None
        if isinstance(value, list):
            parts = []
            for index, part in enumerate(value):
                if isinstance(part, (dict, list)):
                    raise self._error(
                        f"answered with {_kind(part)} at path {path!r} (item {index}), not text; "
                        f"point {self.source}.response at the text inside, e.g. messages[*].text",
                        answer,
                        record,
                    )
                if part is not None:
                    parts.append(part if isinstance(part, str) else str(part))
            return "\n\n".join(parts), usage, parts
        if isinstance(value, dict):
            keys = ", ".join(map(str, list(value)[:12]))
            raise self._error(
                f"answered with an object at path {path!r} (keys: {keys}), not text; point {self.source}.response "
                "at the text inside it",
                answer,
                record,
            )
        return ("" if value is None else value if isinstance(value, str) else str(value)), usage, None

    def _new_stream(self) -> _StreamReply:
        session = self.session.path if self.session is not None and self.session.kind == "json" else None
        return _StreamReply(parse_path(self._path_text(stream=True)), self.format == "openai", session)

    def _text_from_stream(
        self, stream: _StreamReply, answer: _Answer, record: dict[str, Any]
    ) -> tuple[str, dict[str, Any] | None, list[str] | None]:
        if not stream.count:
            raise self._error("sent an event stream with no events", answer, record)
        if stream.filtered is not None:
            self._check_content_filter(stream.filtered, answer, record)
        if not stream.found:
            first = _snippet(json.dumps(stream.events[0]), 120)
            raise self._error(
                f"sent {stream.count} events but none has the reply text at path {format_path(stream.path)!r} "
                f"(first event: {first}); set {self.source}.response to the path of the text piece in each event",
                answer,
                record,
            )
        return stream.text, stream.usage, None

    def _check_content_filter(self, document: dict[str, Any], answer: _Answer, record: dict[str, Any]) -> None:
        choices = document.get("choices")
        first = choices[0] if isinstance(choices, list) and choices else None
        if isinstance(first, dict) and first.get("finish_reason") == "content_filter":
            raise TurnError(
                "content_filter",
                f"the app at {record.get('url')} withheld its answer (finish_reason content_filter)",
                detail=self._detail(answer, record),
            )

    def _learn_session(self, state: _Conversation, answer: _Answer, in_json: Any) -> None:
        """Keep the first session id the app hands out; later turns send it back.

        `in_json` is what the answer held at the `json:` session path, if that is where the id is.
        """
        spec = self.session
        if spec is None or state.session_id is not None:
            return
        found: Any = in_json
        if spec.kind == "header":
            found = answer.headers.get(spec.name)
        elif spec.kind == "cookie":
            found = next((c.value for c in state.cookies.jar if c.name == spec.name), None)
        if isinstance(found, (str, int)) and not isinstance(found, bool) and str(found).strip():
            state.session_id = str(found).strip()

    # --- errors ----------------------------------------------------------------------------------

    def _detail(self, answer: _Answer, record: dict[str, Any]) -> dict[str, Any]:
        snippet = answer.snippet
        detail: dict[str, Any] = {
            "status": answer.status,
            "url": record.get("url"),
            "body_snippet": snippet,
            "response": snippet,
            "request": dict(record),
        }
        if answer.retries:
            detail["retries"] = answer.retries
        return detail

    def _error(self, what: str, answer: _Answer, record: dict[str, Any], fatal: bool = False) -> TurnError:
        url = record.get("url")
        return TurnError(
            "app_error",
            f"the app at {url} {what} (HTTP {answer.status}); body: {answer.snippet or '(empty)'}",
            detail=self._detail(answer, record),
            fatal=fatal,
        )

    def _status_error(self, answer: _Answer, record: dict[str, Any]) -> TurnError:
        status = answer.status
        if status in (401, 403):
            what = f"refused the request; check the target's headers/token ({self.source}.headers)"
        elif status == 404:
            what = f"has no such endpoint; check {self.source}.url (or --app-url)"
        elif status == 429:
            what = "kept rate-limiting" + _after(answer.retries)
        elif status >= 500:
            what = "failed" + _after(answer.retries)
        elif 300 <= status < 400:
            location = answer.headers.get("location")
            target = safe_url(location) if location else "another address"
            what = f"redirected to {target}; point {self.source}.url there"
        else:
            what = "rejected the request"
        if self.format == "openai" and status == 400 and "content_filter" in answer.text:
            return TurnError(
                "content_filter",
                f"the app at {record.get('url')} blocked the question by content filtering (HTTP 400)",
                detail=self._detail(answer, record),
            )
        return self._error(what, answer, record, fatal=status in FATAL_STATUSES)

    def _timeout_error(self, record: dict[str, Any], retries: int) -> TurnError:
        after = f" ({_after(retries).strip()})" if retries else ""
        return TurnError(
            "timeout",
            f"the app at {record.get('url')} gave no complete answer within {self.timeout:g} s{after}",
            detail={"url": record.get("url"), "timeout": self.timeout, "retries": retries, "request": dict(record)},
        )

    def _unreachable_error(self, record: dict[str, Any], exc: Exception, retries: int) -> TurnError:
        url = record.get("url")
        after = f" ({_after(retries).strip()})" if retries else ""
        return TurnError(
            "app_error",
            f"the app is unreachable at {url}: {exc or type(exc).__name__}{after}; is it running? "
            f"check {self.source}.url (or --app-url)",
            detail={"url": url, "status": None, "retries": retries, "request": dict(record)},
            fatal=True,
        )

    def _transport_error(self, record: dict[str, Any], exc: Exception, retries: int, fatal: bool = False) -> TurnError:
        url = record.get("url")
        after = f" ({_after(retries).strip()})" if retries else ""
        return TurnError(
            "app_error",
            f"the connection to the app at {url} failed before a complete answer: {_describe_transport(exc)}{after}",
            detail={"url": url, "status": None, "retries": retries, "request": dict(record)},
            fatal=fatal,
        )


# --- reading answers, bounded ------------------------------------------------------------------

#: line ends of an event stream: CRLF, LF or CR
_LINE_END = re.compile(r"\r\n|\r|\n")


class _BoundedBody:
    """A response body in pieces, never more than `limit` bytes in all; `cut` once it went on past them."""

    def __init__(self, response: httpx2.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.read = 0
        self.cut = False

    async def pieces(self) -> AsyncIterator[bytes]:
        async with contextlib.aclosing(self.response.aiter_bytes()) as chunks:
            async for chunk in chunks:
                room = self.limit - self.read
                if len(chunk) > room:
                    self.cut = True
                    chunk = chunk[:room]
                self.read += len(chunk)
                if chunk:
                    yield chunk
                if self.cut:
                    return


async def _read_body(response: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    """The body, or its first `limit` bytes and True when there was more."""
    body = _BoundedBody(response, limit)
    parts = [piece async for piece in body.pieces()]
    return b"".join(parts), body.cut


class _Lines:
    """Decoded text split into lines at CRLF, LF or CR, whatever the pieces it arrives in."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._rest: list[str] = []  # the start of a line whose end has not arrived
        self._after_cr = False

    def feed(self, data: bytes) -> list[str]:
        text = self._decoder.decode(data)
        if self._after_cr and text.startswith("\n"):
            text = text[1:]  # the LF of a CRLF split across pieces
            self._after_cr = False
        if text:
            self._after_cr = text.endswith("\r")
        parts = _LINE_END.split(text)
        if len(parts) == 1:
            if text:
                self._rest.append(text)
            return []
        lines = ["".join(self._rest) + parts[0], *parts[1:-1]]
        self._rest = [parts[-1]] if parts[-1] else []
        return lines

    def end(self) -> str:
        """What is left after the last line end (a stream may end without one)."""
        return "".join(self._rest) + self._decoder.decode(b"", final=True)


class _StreamReply:
    """An event stream's reply, gathered event by event as it arrives: the text, the usage, the first
    events for the raw answer, and what the checks after the reading need to know."""

    def __init__(self, path: list[Segment], openai: bool, session_path: list[Segment] | None) -> None:
        self.path = path
        self.openai = openai
        self.session_path = session_path
        self.count = 0
        self.events: list[Any] = []  # the first events, within RAW_EVENT_BYTES
        self.found = False  # an event held the reply text
        self.usage: dict[str, Any] | None = None
        self.filtered: dict[str, Any] | None = None  # the first event that says content_filter
        self.session: Any = None
        self._pieces: list[str] = []
        self._kept_bytes = 0
        self._keeping = True

    @property
    def text(self) -> str:
        return "".join(self._pieces)

    def add(self, event: Any, size: int) -> None:
        """Take one event (`size`: the length of its data)."""
        self.count += 1
        if self._keeping and (self._kept_bytes + size <= RAW_EVENT_BYTES or not self.events):
            self.events.append(event)
            self._kept_bytes += size
        else:
            self._keeping = False  # the kept events stay the first ones, with no gap
        if isinstance(event, str):  # a plain-text `data:` line is a piece of the text itself
            self._piece(event)
            self.found = True
            return
        if self.openai and isinstance(event, dict):
            if isinstance(event.get("usage"), dict):
                self.usage = event["usage"]
            choices = event.get("choices")
            first = choices[0] if isinstance(choices, list) and choices else None
            if self.filtered is None and isinstance(first, dict) and first.get("finish_reason") == "content_filter":
                self.filtered = event
        if self.session_path is not None and self.session in (None, ""):
            with contextlib.suppress(PathError):
                self.session = extract(event, self.session_path)
        try:
            value = extract(event, self.path)
        except PathError:
            return  # role-only, finish and usage chunks carry no text
        self.found = True
        for piece in value if isinstance(value, list) else [value]:
            if isinstance(piece, str):
                self._piece(piece)
            elif piece is not None and not isinstance(piece, (dict, list)):
                self._piece(str(piece))

    def _piece(self, text: str) -> None:
        self._pieces.append(text)
        if len(self._pieces) >= 4096:  # many small strings cost far more than their text
            self._pieces[:] = ["".join(self._pieces)]


async def _read_events(response: httpx2.Response, limit: int, on_event: Callable[[Any, int], None]) -> bool:
    """Hand each `data:` payload of an event stream (JSON parsed, else as text) and its length to
    `on_event`, until `[DONE]`, the stream's end or `limit` bytes; True when cut at the limit, and
    then only the events completed before were handed on.

    After `[DONE]` the rest is drained briefly (and within the limit) so the connection can go back to
    the pool.
    """
    body = _BoundedBody(response, limit)
    data: list[str] = []
    lines = _Lines()

    def dispatch() -> bool:
        if not data:
            return False
        payload = "\n".join(data)
        data.clear()
        if payload.strip() == "[DONE]":
            return True
        try:
            event = json.loads(payload)
        except ValueError:
            event = payload
        on_event(event, len(payload))
        return False

    def take(line: str) -> bool:
        if not line.strip():
            return dispatch()
        if not line.startswith(":"):  # a comment / keep-alive
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value[1:] if value.startswith(" ") else value)
        return False

    done = False
    async with contextlib.aclosing(body.pieces()) as pieces:
        async for piece in pieces:
            for line in lines.feed(piece):
                done = take(line)
                if done:
                    break
            if done:
                break
        else:
            if not body.cut:  # a stream may end without a blank line after its last event
                take(lines.end())
                dispatch()
        cut = body.cut and not done
        if done:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(_drain(pieces), DRAIN_SECONDS)
    return cut


async def _drain(pieces: AsyncIterator[bytes]) -> None:
    async for _ in pieces:
        pass
