"""The aiohttp sessions every HTTP request of a run goes through: app targets, state requests, the SDK.

One kind of session for all of them, so they behave alike: no shared cookie store (concurrent
conversations must never share a session; cookies are kept per conversation by the caller),
proxies and `NO_PROXY` from the environment (`proxy_for`), no redirects followed unless asked, and
the verified TLS context aiohttp builds once at import (loading the CA store costs tens of
milliseconds; `SSL_CERT_FILE` and `SSL_CERT_DIR` are honoured by it).

aiohttp, not httpx2, because of CPU per request: at 32 requests at a time against a local server
it spends about 0.1 ms where httpx2's pool spends 0.6-0.8 ms (bench/bench_http_clients.py), and
that CPU is most of a turn's cost. aiohttp is imported on first use: `validate`, reports and
reading results never need it (its import is a tenth of a second).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections.abc import AsyncGenerator, Awaitable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from .deadlines import deadline

if TYPE_CHECKING:
    import aiohttp

T = TypeVar("T")

USER_AGENT = "chat-simulator"
#: connections kept open per session; conversations beyond this wait for a free one
MAX_CONNECTIONS = 128
#: an idle kept-alive connection is closed after this long
KEEPALIVE_SECONDS = 30.0


class ExchangeClock:
    """The app's own time for one exchange, told apart from the client's.

    Passed as a request's `trace_request_ctx`: the session's trace hooks mark when the request
    headers are sent and how long a new connection took to set up, so the latency recorded is the
    app's (first byte sent to the end of the answer) and a new connection's set-up is reported apart.
    """

    __slots__ = ("connect_ms", "_sent", "_setup_started")

    def __init__(self) -> None:
        self.connect_ms: float | None = None
        self._sent: float | None = None
        self._setup_started: float | None = None

    def headers_sent(self) -> None:
        if self._sent is None:
            self._sent = time.monotonic()

    def setup_started(self) -> None:
        self._setup_started = time.monotonic()

    def setup_ended(self) -> None:
        if self._setup_started is not None:
            self.connect_ms = (self.connect_ms or 0.0) + (time.monotonic() - self._setup_started) * 1000
            self._setup_started = None

    def latency_ms(self) -> float | None:
        """From the first byte sent until now (call it when the answer has been read)."""
        return None if self._sent is None else (time.monotonic() - self._sent) * 1000


def _clock(context: Any) -> ExchangeClock | None:
    found = getattr(context, "trace_request_ctx", None)
    return found if isinstance(found, ExchangeClock) else None


async def _on_headers_sent(session: Any, context: Any, params: Any) -> None:
    if (clock := _clock(context)) is not None:
        clock.headers_sent()


async def _on_connection_start(session: Any, context: Any, params: Any) -> None:
    if (clock := _clock(context)) is not None:
        clock.setup_started()


async def _on_connection_end(session: Any, context: Any, params: Any) -> None:
    if (clock := _clock(context)) is not None:
        clock.setup_ended()


def _timing() -> aiohttp.TraceConfig:
    import aiohttp

    config = aiohttp.TraceConfig()
    config.on_request_headers_sent.append(_on_headers_sent)
    config.on_connection_create_start.append(_on_connection_start)
    config.on_connection_create_end.append(_on_connection_end)
    return config


@functools.lru_cache(maxsize=256)
def _proxy(scheme: str, host: str) -> str | None:
    import urllib.request  # on first use: it brings http.client, email and ssl, 20 ms of a start-up

    proxies = urllib.request.getproxies_environment()
    if not host or urllib.request.proxy_bypass(host):
        return None
    return proxies.get(scheme) or proxies.get("all") or None


def proxy_for(url: str) -> str | None:
    """The proxy the environment names for `url` (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, minus
    `NO_PROXY`), or None.

    Looked up once per scheme and host: aiohttp's own lookup (`trust_env`) reads the environment on
    every request and costs more CPU than the rest of the request (0.45 ms against 0.13 ms).
    """
    parts = urlsplit(url)
    return _proxy(parts.scheme.lower(), (parts.hostname or "").lower())


def new_session(
    *, headers: dict[str, str] | None = None, limit: int = MAX_CONNECTIONS, timed: bool = False
) -> aiohttp.ClientSession:
    """A session for the running event loop (sessions cannot cross loops), closed by its owner's
    `aclose`, or else when `asyncio.run` ends the loop (`_close_with_loop`).

    Requests pass `proxy=proxy_for(url)`. `timed`: requests made with
    `trace_request_ctx=ExchangeClock()` have their exchange timed. Timeouts are the caller's
    (`asyncio.wait_for` around the exchange), so none is set here.
    """
    import aiohttp

    connector = aiohttp.TCPConnector(limit=limit, limit_per_host=0, keepalive_timeout=KEEPALIVE_SECONDS)
    session = aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=aiohttp.ClientTimeout(total=None),
        headers={"User-Agent": USER_AGENT, **(headers or {})},
        trace_configs=[_timing()] if timed else None,
    )
    _close_with_loop(session)
    return session


#: the closers waiting for their loop's end, by session: the loop holds them only weakly
_CLOSERS: dict[int, AsyncGenerator[None, None]] = {}


async def _closes(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        _CLOSERS.pop(id(session), None)
        if not session.closed:
            await session.close()


def _close_with_loop(session: aiohttp.ClientSession) -> None:
    """Close `session` when the running loop shuts down, if nobody closed it before.

    A library user may well call `asyncio.run(target.respond(...))` and never `aclose()`: aiohttp
    then reports "Unclosed client session" at exit. An async generator left suspended is closed by
    `asyncio.run` when its coroutine ends (`loop.shutdown_asyncgens`), and this one closes the session
    then; stepping it to its `yield` now registers it with the running loop.
    """
    closer = _CLOSERS[id(session)] = _closes(session)
    with contextlib.suppress(StopIteration):
        closer.asend(None).send(None)


#: what a failed exchange was, for the caller's retry decision and message
TIMEOUT, UNREACHABLE, BROKEN, FATAL = "timeout", "unreachable", "broken", "fatal"


def failure_kind(exc: BaseException) -> str | None:
    """How an exchange failed, or None when `exc` is not a transport failure.

    `timeout`: no answer in time. `unreachable`: no connection could be made (refused, DNS, TLS) —
    worth retrying. `broken`: the connection was dropped or the answer was malformed mid-way — worth
    retrying. `fatal`: retrying cannot help (a bad URL or scheme, a proxy that refuses, a header
    value that cannot be sent).
    """
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):  # aiohttp's own timeouts are TimeoutErrors
        return TIMEOUT
    import aiohttp

    if isinstance(exc, (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError, aiohttp.InvalidURL)):
        return FATAL
    if isinstance(exc, (aiohttp.NonHttpUrlClientError, aiohttp.InvalidUrlClientError)):
        return FATAL
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UNREACHABLE
    if isinstance(exc, (aiohttp.ClientError, ConnectionError)):
        return BROKEN
    if isinstance(exc, ValueError) and "header" in str(exc).lower():
        return FATAL  # aiohttp refuses a header value with a line break before anything is sent
    return None


class ExchangeFailed(Exception):
    """An exchange that failed on the way, not an answer: `kind` (`failure_kind`) and the `cause`."""

    def __init__(self, kind: str, cause: Exception) -> None:
        super().__init__(str(cause))
        self.kind = kind
        self.cause = cause


async def within(exchange: Awaitable[T], timeout: float) -> T:
    """`exchange`, given `timeout` seconds: a transport failure (a timeout included) comes out as
    `ExchangeFailed`, anything else as it was raised. Every caller decides on the kind alone."""
    try:
        return await deadline(exchange, timeout)
    except Exception as exc:
        kind = failure_kind(exc)
        if kind is None:
            raise
        raise ExchangeFailed(kind, exc) from exc
