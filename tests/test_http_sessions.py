"""The HTTP sessions of a run: proxies from the environment, and how a failed exchange is classed."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from simulator.aio import http_sessions
from simulator.aio.http_sessions import BROKEN, FATAL, TIMEOUT, UNREACHABLE, failure_kind, new_session, proxy_for
from simulator.targets import HttpTarget
from tests.servers.chat_app import FakeChatApp
from tests.servers.json_answer import serving

NAMES = {"input": "question", "history": "chat_history", "output": "answer"}


@pytest.fixture
def proxy() -> Iterator[tuple[str, list[str]]]:
    """A forward proxy that answers every request itself, as the app would, and records its request line."""
    with serving(lambda body: {"answer": "through the proxy"}) as (address, seen):
        yield address, seen


@pytest.fixture(autouse=True)
def fresh_proxy_lookup() -> Iterator[None]:
    http_sessions._proxy.cache_clear()
    yield
    http_sessions._proxy.cache_clear()


def test_a_target_goes_through_the_proxy_the_environment_names(
    proxy: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's host does not resolve: only the proxy can have answered, and it saw the absolute URL."""
    address, seen = proxy
    monkeypatch.setenv("HTTP_PROXY", address)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    target = HttpTarget("http://chat-app.invalid/score", format="promptflow", promptflow=NAMES)

    async def turn() -> str:
        try:
            return (await target.respond("hi", [], {"conversation_id": "c1"})).text
        finally:
            await target.aclose()

    assert asyncio.run(turn()) == "through the proxy"
    assert seen == ["POST http://chat-app.invalid/score HTTP/1.1"]


def test_no_proxy_and_https_proxy_are_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTPS_PROXY", "http://secure-proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,127.0.0.1")
    assert proxy_for("http://app.example/chat") == "http://proxy.example:3128"
    assert proxy_for("https://app.example/chat") == "http://secure-proxy.example:3128"
    assert proxy_for("http://internal.example/chat") is None
    assert proxy_for("http://127.0.0.1:8000/chat") is None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _failure(url: str, timeout: float = 5.0) -> BaseException:
    async def send() -> BaseException:
        session = new_session()
        try:
            await asyncio.wait_for(session.post(url, data=b"{}", proxy=proxy_for(url)), timeout)
        except BaseException as exc:  # noqa: BLE001 - the failure is what is looked at
            return exc
        finally:
            await session.close()
        raise AssertionError(f"{url} answered")

    return asyncio.run(send())


def test_real_failures_are_classed_for_the_retry_decision(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert failure_kind(_failure(f"http://127.0.0.1:{_free_port()}/")) == UNREACHABLE
    assert failure_kind(_failure("ftp://127.0.0.1/file")) == FATAL

    listener = socket.create_server(("127.0.0.1", 0))
    dropped = threading.Event()

    def drop_once() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.close()  # after the request, before any answer
        dropped.set()

    threading.Thread(target=drop_once, daemon=True).start()
    try:
        assert failure_kind(_failure(f"http://127.0.0.1:{listener.getsockname()[1]}/")) == BROKEN
        assert dropped.wait(5)
        silent = socket.create_server(("127.0.0.1", 0))  # accepts (backlog) and never answers
        try:
            assert failure_kind(_failure(f"http://127.0.0.1:{silent.getsockname()[1]}/", timeout=0.2)) == TIMEOUT
        finally:
            silent.close()
    finally:
        listener.close()
    assert failure_kind(ValueError("not a transport failure")) is None


_LIBRARY_USE = """
import asyncio, sys
from simulator import HttpTarget, Persona, ScriptedUser, Simulator

target = HttpTarget(sys.argv[1], format="promptflow",
                    promptflow={"input": "question", "history": "chat_history", "output": "answer"})
print(asyncio.run(target.respond("hi", [], {"conversation_id": "c1"})).text)
simulator = Simulator(systemConnection=target, userConnection=ScriptedUser(["hello"]))
result = asyncio.run(simulator.simulate_async(Persona.load("jane"), "greet", max_conversation_turns=2))
print(result["conversation"][1]["response"])
"""


def test_a_library_user_who_never_closes_the_target_sees_no_unclosed_session() -> None:
    """Each `asyncio.run` ends its loop with the target's session still open: it is closed then, so
    aiohttp has nothing to report at exit (it printed "Unclosed client session" twice)."""
    with FakeChatApp() as app:
        done = subprocess.run(
            [sys.executable, "-X", "dev", "-W", "always::ResourceWarning", "-c", _LIBRARY_USE, app.url + "/promptflow"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["You said: hi", "You said: hello"]
    assert "nclosed" not in done.stderr, done.stderr
