"""The SDK's requests over `simulator.llm.transport` (aiohttp), against real servers on 127.0.0.1.

What the SDK does next depends on the httpx2 exception the transport raises: a refused connection
must read as unreachable (not as a timeout), a connection dropped mid-answer as a passing failure the
SDK retries, only a slow server as a timeout. Each server here is started by the test and bound to
port 0; the faults are real (a closed port, a socket closed mid-body, a full accept queue).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx2
import pytest

from simulator import OpenAIChatCompletionsModel, PlainTokenManager, TurnError
from simulator.aio.http_sessions import _proxy
from simulator.llm.transport import LLMTransport, httpx2_error
from tests.servers.base import chat_completion
from tests.servers.openai_server import FakeOpenAIServer, Reply
from tests.servers.steady_server import SteadyServer

REPO = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "hello"}]
PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def complete(model: OpenAIChatCompletionsModel) -> str:
    async def once() -> str:
        try:
            return (await model.complete(HELLO)).content
        finally:
            await model.aclose()

    return asyncio.run(once())


def closed_port_url() -> str:
    """A URL where nothing listens: connecting to it is refused at once."""
    with FakeOpenAIServer() as closed:
        return closed.openai_base_url


# --- small servers of their own ----------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        """Quiet."""

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, handler: type[_Handler]) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.lock = threading.Lock()
        self.requests = 0
        self.lines: list[str] = []
        self.broken = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def count(self, line: str) -> int:
        with self.lock:
            self.requests += 1
            self.lines.append(line)
            return self.requests


@contextlib.contextmanager
def serving(handler: type[_Handler]) -> Iterator[_Server]:
    server = _Server(handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


COMPLETION = json.dumps(chat_completion("chatcmpl-1", "m", "whole answer", "stop", {"total_tokens": 3})).encode()


class _CutsAnswersShort(_Handler):
    """Its first `server.broken` answers promise the whole completion, send half, and close the socket."""

    def do_POST(self) -> None:
        self._body()
        number = self.server.count(self.requestline)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(COMPLETION)))
        self.end_headers()
        if number <= self.server.broken:
            self.wfile.write(COMPLETION[: len(COMPLETION) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(COMPLETION)


HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailers", "upgrade"}


class _ForwardProxy(_Handler):
    """A plain HTTP forward proxy: records each request line (absolute-form) and forwards the request;
    refuses CONNECT (no tunnels here)."""

    def do_POST(self) -> None:
        body = self._body()
        self.server.count(self.requestline)
        target = urlsplit(self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname or "", target.port, timeout=10)
        try:
            upstream.request(self.command, target.path + (f"?{target.query}" if target.query else ""), body, headers)
            answer = upstream.getresponse()
            data = answer.read()
        finally:
            upstream.close()
        self.send_response(answer.status)
        for name, value in answer.getheaders():
            if name.lower() not in HOP_BY_HOP | {"content-length", "transfer-encoding", "server", "date"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_CONNECT(self) -> None:
        self.server.count(self.requestline)
        self.send_response(403)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def proxy_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No proxy variable from the machine, and `proxy_for`'s per-host answers forgotten before and after."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    _proxy.cache_clear()
    yield monkeypatch
    _proxy.cache_clear()


# --- the failures, as the model reports them --------------------------------------------------


def test_a_refused_connection_is_unreachable_not_a_timeout() -> None:
    url = closed_port_url()
    model = OpenAIChatCompletionsModel(endpoint_url=url, name="m", max_retries=1, timeout=30)
    started = time.monotonic()
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.reason == "llm_error"
    assert f"cannot reach {url}/chat/completions" in str(err.value)
    assert "Cannot connect to host" in str(err.value) and "timeout" not in str(err.value).lower()
    assert time.monotonic() - started < 5  # refused at once, retried once after the SDK's short back-off


def test_an_answer_cut_short_is_retried_by_the_sdk() -> None:
    with serving(_CutsAnswersShort) as server:
        server.broken = 1
        model = OpenAIChatCompletionsModel(endpoint_url=server.url + "/v1", name="m", max_retries=2)
        assert complete(model) == "whole answer"
        assert server.requests == 2


def test_answers_always_cut_short_are_a_lost_connection_after_the_retries() -> None:
    with serving(_CutsAnswersShort) as server:
        server.broken = 99
        model = OpenAIChatCompletionsModel(endpoint_url=server.url + "/v1", name="m", max_retries=1)
        with pytest.raises(TurnError) as err:
            complete(model)
        assert server.requests == 2
    assert err.value.reason == "llm_error" and "lost the connection to" in str(err.value)
    assert "(after 1 retries)" in str(err.value)


def test_a_connection_reset_before_the_answer_is_retried(llm: FakeOpenAIServer) -> None:
    llm.script(Reply(close_connection=True), "after the reset")
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=2)
    assert complete(model) == "after the reset"
    assert len(llm.chat_requests) == 2


def test_a_slow_server_is_a_timeout(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: Reply(content="late", delay=1.0)
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", timeout=0.2, max_retries=0)
    started = time.monotonic()
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.reason == "timeout" and "no answer within 0.2 s" in str(err.value)
    assert time.monotonic() - started < 0.9


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a full accept queue drops SYNs on Linux")
def test_a_connection_that_cannot_be_set_up_in_time_is_a_connect_timeout() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)  # never accepted: once the queue is full, new connections hang
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.05)

        async def send() -> None:
            timeout = httpx2.Timeout(10.0, connect=0.3)
            async with httpx2.AsyncClient(transport=LLMTransport(), timeout=timeout) as client:
                await client.post(f"http://127.0.0.1:{port}/v1/chat/completions", json={})

        started = time.monotonic()
        with pytest.raises(httpx2.ConnectTimeout):
            asyncio.run(send())
        assert time.monotonic() - started < 3
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def test_a_gzip_encoded_answer_is_decoded_once(llm: FakeOpenAIServer) -> None:
    body = json.dumps(chat_completion("chatcmpl-z", "m", "zipped " * 50, "stop", {"total_tokens": 1})).encode()
    llm.script(Reply(body=gzip.compress(body), headers={"Content-Encoding": "gzip"}))
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")
    assert complete(model) == "zipped " * 50
    assert "gzip" in llm.last_request.headers["accept-encoding"]


def test_a_rate_limit_is_retried_after_its_retry_after(llm: FakeOpenAIServer) -> None:
    llm.script(Reply.rate_limited(0.5), "after the wait")
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=2)
    started = time.monotonic()
    assert complete(model) == "after the wait"
    assert time.monotonic() - started >= 0.45
    assert len(llm.chat_requests) == 2


def test_azure_requests_go_through_the_transport_too(llm: FakeOpenAIServer) -> None:
    llm.script(Reply(close_connection=True), "azure ok")
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.azure_endpoint,
        api_version="2024-06-01",
        name="dep",
        max_retries=1,
        token_manager=PlainTokenManager("azure-key", auth_header="api-key"),
    )
    assert complete(model) == "azure ok"
    assert [r.deployment for r in llm.chat_requests] == ["dep", "dep"]
    assert llm.last_request.query["api-version"] == "2024-06-01"
    assert llm.last_request.headers["api-key"] == "azure-key"


def test_redirects_are_followed_once_by_the_httpx2_client(llm: FakeOpenAIServer) -> None:
    """aiohttp is told not to follow them, so a redirect is followed once, as the SDK's own client does."""
    location = llm.openai_base_url + "/chat/completions"
    llm.script(Reply(status=307, body=b"", headers={"Location": location}), "after the redirect")
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")
    assert complete(model) == "after the redirect"
    assert len(llm.chat_requests) == 2 and llm.last_request.body["messages"] == HELLO


def test_a_streamed_request_body_is_sent_whole(llm: FakeOpenAIServer) -> None:
    async def parts() -> AsyncIterator[bytes]:
        yield b'{"model": "m", '
        yield b'"messages": [{"role": "user", "content": "streamed"}]}'

    async def send() -> int:
        async with httpx2.AsyncClient(transport=LLMTransport()) as client:
            answer = await client.post(llm.openai_base_url + "/chat/completions", content=parts())
            return answer.status_code

    assert asyncio.run(send()) == 200
    assert llm.last_request.body["messages"] == [{"role": "user", "content": "streamed"}]
    assert llm.last_request.headers["transfer-encoding"] == "chunked"


# --- proxies ----------------------------------------------------------------------------------


def test_the_proxy_from_http_proxy_is_used(llm: FakeOpenAIServer, proxy_env: pytest.MonkeyPatch) -> None:
    with serving(_ForwardProxy) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        llm.script("through the proxy")
        model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")
        assert complete(model) == "through the proxy"
        assert proxy.lines == [f"POST {llm.openai_base_url}/chat/completions HTTP/1.1"]
    assert len(llm.chat_requests) == 1


def test_no_proxy_is_honoured(llm: FakeOpenAIServer, proxy_env: pytest.MonkeyPatch) -> None:
    with serving(_ForwardProxy) as proxy:
        proxy_env.setenv("HTTP_PROXY", proxy.url)
        proxy_env.setenv("NO_PROXY", "127.0.0.1")
        model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")
        assert complete(model) == "ok"
        assert proxy.lines == []


def test_a_proxy_that_cannot_be_reached_is_a_proxy_error(proxy_env: pytest.MonkeyPatch) -> None:
    proxy_env.setenv("HTTP_PROXY", closed_port_url().removesuffix("/v1"))
    model = OpenAIChatCompletionsModel(endpoint_url="http://127.0.0.1:9/v1", name="m", max_retries=0)
    with pytest.raises(TurnError) as err:
        complete(model)
    assert err.value.reason == "llm_error"
    assert "cannot reach http://127.0.0.1:9/v1/chat/completions through the proxy" in str(err.value)


def test_a_proxy_that_refuses_the_tunnel_is_a_proxy_error(proxy_env: pytest.MonkeyPatch) -> None:
    with serving(_ForwardProxy) as proxy:
        proxy_env.setenv("HTTPS_PROXY", proxy.url)

        async def send() -> None:
            async with httpx2.AsyncClient(transport=LLMTransport()) as client:
                await client.post("https://127.0.0.1:9/v1/chat/completions", json={})

        with pytest.raises(httpx2.ProxyError):
            asyncio.run(send())
        assert proxy.lines == ["CONNECT 127.0.0.1:9 HTTP/1.1"]


# --- the mapping itself -----------------------------------------------------------------------


def _connection_key() -> Any:
    from aiohttp.client_reqrep import ConnectionKey

    fields: dict[str, Any] = dict.fromkeys(ConnectionKey._fields)
    return ConnectionKey(**{**fields, "host": "example.invalid", "port": 443, "is_ssl": True})


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (
            lambda: aiohttp.ClientConnectorDNSError(_connection_key(), OSError(-2, "Name or service not known")),
            httpx2.ConnectError,
        ),
        (lambda: aiohttp.ClientProxyConnectionError(_connection_key(), OSError(111, "refused")), httpx2.ProxyError),
        (lambda: aiohttp.ConnectionTimeoutError("connect"), httpx2.ConnectTimeout),
        (lambda: aiohttp.SocketTimeoutError("read"), httpx2.ReadTimeout),
        (lambda: asyncio.TimeoutError(), httpx2.ReadTimeout),
        (lambda: aiohttp.ServerDisconnectedError(), httpx2.RemoteProtocolError),
        (lambda: aiohttp.ClientPayloadError("cut short"), httpx2.RemoteProtocolError),
        (lambda: aiohttp.ClientConnectionResetError("reset"), httpx2.ReadError),
        (lambda: ConnectionResetError(104, "reset"), httpx2.ReadError),
        (lambda: aiohttp.InvalidUrlClientError("http://[::1"), httpx2.UnsupportedProtocol),
        (lambda: aiohttp.NonHttpUrlClientError("ftp://x"), httpx2.UnsupportedProtocol),
        (lambda: ValueError("Newline or carriage return character detected in HTTP header"), httpx2.LocalProtocolError),
    ],
)
def test_each_aiohttp_failure_becomes_its_most_specific_httpx2_error(make: Any, expected: type[Exception]) -> None:
    mapped = httpx2_error(make())
    assert type(mapped) is expected


def test_what_is_not_a_transport_failure_is_left_alone() -> None:
    assert httpx2_error(asyncio.CancelledError()) is None
    assert httpx2_error(KeyError("bug")) is None


def test_real_failures_map_as_the_table_says() -> None:
    """A TLS handshake with a plain HTTP server, a scheme aiohttp cannot send, a socket closed before
    any answer, and a status line that is not HTTP."""

    def serve_once(reply: bytes) -> socket.socket:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer() -> None:
            with contextlib.suppress(OSError):
                conn, _ = listener.accept()
                with conn:
                    conn.recv(65536)
                    conn.sendall(reply)

        threading.Thread(target=answer, daemon=True).start()
        return listener

    async def send(url: str) -> type[BaseException]:
        async with httpx2.AsyncClient(transport=LLMTransport()) as client:
            try:
                await client.post(url, json={})
            except httpx2.TransportError as exc:
                return type(exc)
        raise AssertionError("no failure")

    with FakeOpenAIServer() as plain:
        assert asyncio.run(send(plain.url.replace("http:", "https:") + "/v1/chat/completions")) is httpx2.ConnectError
    assert asyncio.run(send("ftp://127.0.0.1/file")) is httpx2.UnsupportedProtocol
    for reply, expected in [(b"", httpx2.RemoteProtocolError), (b"HELLO THERE\r\n\r\n", httpx2.RemoteProtocolError)]:
        listener = serve_once(reply)
        try:
            assert asyncio.run(send(f"http://127.0.0.1:{listener.getsockname()[1]}/")) is expected
        finally:
            listener.close()


# --- closing ----------------------------------------------------------------------------------

_SCRIPT = """
import asyncio, gc, sys, warnings
warnings.simplefilter("always", ResourceWarning)
from simulator import OpenAIChatCompletionsModel

model = OpenAIChatCompletionsModel(endpoint_url=sys.argv[1], name="m")

async def closed():
    await model.warm(4)
    print((await model.complete([{"role": "user", "content": "hi"}])).content)
    await model.aclose()

asyncio.run(closed())
gc.collect()
# never closed: the session goes when asyncio.run ends its loop
print(asyncio.run(model.complete([{"role": "user", "content": "hi"}])).content)
gc.collect()
print("done")
"""


def test_no_session_or_connection_is_left_unclosed(llm: FakeOpenAIServer) -> None:
    done = subprocess.run(
        [sys.executable, "-X", "dev", "-c", _SCRIPT, llm.openai_base_url],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["ok", "ok", "done"]
    assert "Unclosed" not in done.stderr and "unclosed" not in done.stderr, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr


def test_a_run_with_an_llm_user_leaves_nothing_unclosed(tmp_path: Path) -> None:
    with SteadyServer(0.0) as server:
        manifest = tmp_path / "simulations.yml"
        manifest.write_text(
            "version: 1\n"
            "target: {url: '" + server.url + "/score', format: promptflow, "
            "promptflow: {input: question, history: chat_history, output: answer}}\n"
            f"user: {{model: sim-user, endpoint: '{server.openai_base_url}'}}\n"
            "simulations:\n"
            "  - {name: talk, persona: jane, task: ask, repeat: 4, max_turns: 4}\n"
        )
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "always::ResourceWarning", "-m", "simulator", "run", str(manifest)]
            + ["--out", str(tmp_path / "out"), "--concurrency", "4", "--quiet"],
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
    assert done.returncode == 0, done.stderr
    assert "Unclosed" not in done.stderr and "unclosed" not in done.stderr, done.stderr
    assert "ResourceWarning" not in done.stderr, done.stderr


def test_aclose_closes_the_session_and_the_transport_stays_closed() -> None:
    async def play() -> tuple[bool, bool]:
        transport = LLMTransport()
        session = transport.open()
        await transport.aclose()
        try:
            transport.open()
        except RuntimeError:
            reopened = False
        else:
            reopened = True
        return session.closed, reopened

    assert asyncio.run(play()) == (True, False)
