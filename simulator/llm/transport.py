"""An httpx2 transport that sends the `openai` SDK's requests over an aiohttp session.

The SDK keeps everything it does above the transport (auth, its error types; its retries are
`simulator.llm.retries`', since it is asked for none); only the connections change: httpx2's pool
costs several times aiohttp's CPU per request (bench/bench_http_clients.py), and the session is the
one every request of a run uses (`simulator.aio.http_sessions.new_session`, proxies from `proxy_for`).

What the SDK decides from depends on the exception class, so aiohttp's failures become the httpx2
errors httpx2's own transport would raise: a refused connection is a `ConnectError` ("cannot
reach"), a connection dropped mid-answer a `RemoteProtocolError` or `ReadError` (retried, "lost the
connection"), and only a timeout a `TimeoutException` (the SDK's `APITimeoutError`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import httpx2
from yarl import URL

from ..aio.http_sessions import new_session, proxy_for

#: aiohttp's failures, and the builtin ones its connections let through, as httpx2's; the first class
#: of the raised exception's MRO found here decides, so a subclass listed wins over its bases
ERRORS: dict[type[BaseException], type[httpx2.TransportError]] = {
    # no connection could be made: a proxy that failed, then refused / DNS / TLS (subclasses of
    # ClientConnectorError), a certificate that is not the pinned one
    aiohttp.ClientProxyConnectionError: httpx2.ProxyError,
    aiohttp.ClientHttpProxyError: httpx2.ProxyError,
    aiohttp.ClientConnectorError: httpx2.ConnectError,
    aiohttp.ServerFingerprintMismatch: httpx2.ConnectError,
    # no answer in time: `sock_connect` / `connect` raise the first, `sock_read` the second
    aiohttp.ConnectionTimeoutError: httpx2.ConnectTimeout,
    aiohttp.SocketTimeoutError: httpx2.ReadTimeout,
    aiohttp.ServerTimeoutError: httpx2.ReadTimeout,
    asyncio.TimeoutError: httpx2.ReadTimeout,  # aiohttp's `total`; not TimeoutError before Python 3.11
    TimeoutError: httpx2.ReadTimeout,
    # the server broke the exchange: closed before or during the answer, a body cut short or with a
    # broken chunked encoding, a status line or headers that do not parse
    aiohttp.ServerDisconnectedError: httpx2.RemoteProtocolError,
    aiohttp.ClientPayloadError: httpx2.RemoteProtocolError,
    aiohttp.ClientResponseError: httpx2.RemoteProtocolError,
    aiohttp.ClientConnectionResetError: httpx2.ReadError,
    aiohttp.ClientOSError: httpx2.ReadError,
    aiohttp.ClientConnectionError: httpx2.ReadError,
    ConnectionError: httpx2.ReadError,
    OSError: httpx2.ReadError,
    # the request cannot be sent: not an http(s) URL, or a header value aiohttp refuses
    aiohttp.InvalidURL: httpx2.UnsupportedProtocol,
    aiohttp.NonHttpUrlClientError: httpx2.UnsupportedProtocol,
    ValueError: httpx2.LocalProtocolError,
    aiohttp.ClientError: httpx2.TransportError,
}


def httpx2_error(exc: BaseException, request: httpx2.Request | None = None) -> httpx2.TransportError | None:
    """The httpx2 exception the SDK should see for `exc`, or None for anything else (a cancellation,
    a bug): the most specific class in `ERRORS`, whatever the order aiohttp's classes inherit in."""
    for cls in type(exc).__mro__:
        mapped = ERRORS.get(cls)
        if mapped is not None:
            return mapped(str(exc).strip() or type(exc).__name__, request=request)
    return None


def _headers(headers: httpx2.Headers) -> list[tuple[str, str]]:
    """The request's headers as aiohttp takes them, repeated names kept; the ASCII of nearly every
    request decoded directly (httpx2's `multi_items` guesses an encoding for each header)."""
    try:
        return [(name.decode("ascii"), value.decode("ascii")) for name, value in headers.raw]
    except UnicodeDecodeError:
        return headers.multi_items()


class _Body(httpx2.AsyncByteStream):
    """An aiohttp answer's body as it arrives, undecoded: httpx2 decodes a `Content-Encoding` itself."""

    __slots__ = ("_response", "_request")

    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except Exception as exc:
            mapped = httpx2_error(exc, self._request)
            if mapped is None:
                raise
            raise mapped from exc

    async def aclose(self) -> None:
        # back to the pool when the body was read to the end, closed otherwise (aiohttp's rule)
        self._response.release()


class LLMTransport(httpx2.AsyncBaseTransport):
    """Sends httpx2 requests over one aiohttp session of the running event loop.

    The session is made on first use, or by `open()`, inside the loop it will serve (aiohttp sessions
    cannot cross loops), and closed by `aclose()`, or else when `asyncio.run` ends that loop (as
    every session of `new_session` is).
    Redirects are left to the httpx2 client and `Content-Encoding` to the httpx2 response, so each
    is done once.
    """

    def __init__(self, make_session: Callable[[], aiohttp.ClientSession] = new_session) -> None:
        self._make_session = make_session
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._timeouts: dict[tuple[Any, ...], aiohttp.ClientTimeout] = {}

    def open(self) -> aiohttp.ClientSession:
        """The session, made now if it was not yet (call it inside the loop that will use it)."""
        if self._session is None:
            if self._closed:  # a session made now would never be closed
                raise RuntimeError("the LLM transport is closed")
            self._session = self._make_session()
        return self._session

    def _timeout(self, extension: dict[str, Any]) -> aiohttp.ClientTimeout:
        """httpx2's `timeout` extension as aiohttp's: `connect` and `read` per socket operation, and
        `connect` (aiohttp's wait for a pool slot plus the connection's set-up) from `pool` + `connect`."""
        connect, read, pool = extension.get("connect"), extension.get("read"), extension.get("pool")
        key = (connect, read, pool)
        found = self._timeouts.get(key)
        if found is None:
            found = aiohttp.ClientTimeout(
                total=None,
                connect=None if pool is None or connect is None else pool + connect,
                sock_connect=connect,
                sock_read=read,
            )
            if len(self._timeouts) < 64:  # requests carry a model's few timeouts; never grow without end
                self._timeouts[key] = found
        return found

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        session = self._session or self.open()
        headers = _headers(request.headers)
        try:
            data: Any = request.content or None
        except httpx2.RequestNotRead:  # a streamed upload: aiohttp sends it chunked itself
            data = request.stream
            headers = [(k, v) for k, v in headers if k.lower() != "transfer-encoding"]
        url = str(request.url)
        extensions = request.extensions
        try:
            response = await session.request(
                request.method,
                URL(url, encoded=True),  # httpx2 has percent-encoded it already
                headers=headers,
                data=data,
                allow_redirects=False,
                auto_decompress=False,
                timeout=self._timeout(extensions.get("timeout") or {}),
                proxy=proxy_for(url),
                server_hostname=extensions.get("sni_hostname"),
            )
        except Exception as exc:
            mapped = httpx2_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
        reason = response.reason
        version = response.version
        return httpx2.Response(
            response.status,
            headers=response.raw_headers,
            stream=_Body(response, request),
            request=request,
            extensions={
                "http_version": b"HTTP/%d.%d" % (version.major, version.minor) if version else b"HTTP/1.1",
                **({"reason_phrase": reason.encode("latin-1", "replace")} if reason else {}),
            },
        )

    async def aclose(self) -> None:
        """Close the session and its connections; the transport cannot be used afterwards."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
