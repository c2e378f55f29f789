"""A chat app and an OpenAI-compatible server that answer after exactly a fixed delay, in a child process.

The scriptable fakes (``FakeChatApp``, ``FakeOpenAIServer``) run a thread per connection in the
test's own process: when many connections open at once, their threads queue for the interpreter
lock and a 20 ms app answers in 30–40 ms. Latency figures (the recorded latency tests, the
benchmarks) need an app whose own time is known, so this one is a single asyncio loop in its own
process: every answer leaves ``delay`` seconds after its request arrived.

Routes: ``POST .../chat/completions`` answers as an OpenAI chat completion whose content is
``--user-text`` (the user model); any other ``POST`` answers ``{"answer": ..., "reply": ...}``
with ``--app-text`` (a promptflow- or http-format app); ``GET /stats`` answers, at once, when
the first request arrived and the last answer left (``time.time()``, comparable across processes)
and how many requests and connections there were. Keep-alive, ``Content-Length`` bodies.

With ``--limit-rps`` (and ``--limit-tpm``) the user model has a rate limit
(``tests.servers.rate_limit``): a chat request above it is answered at once with 429 and
``Retry-After`` (``--retry-after-ms`` and ``--ratelimit-headers`` add Azure's and OpenAI's
headers); ``/stats`` then counts ``chat_requests`` and ``refused``.

Run as ``python -m tests.servers.steady_server --delay 0.02``; it prints its base URL on the first
line of stdout and serves until stdin closes. :class:`SteadyServer` does that for a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:  # run as a script too
    sys.path.insert(0, str(REPO))

from tests.servers.rate_limit import RateLimit, request_tokens  # noqa: E402


def _completion(text: str) -> dict[str, object]:
    return {
        "id": "chatcmpl-steady",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": "steady",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
    }


STATS: dict[str, float | int | None] = {
    "first_request_at": None,
    "last_answer_at": None,
    "requests": 0,
    "connections": 0,
    "chat_requests": 0,
    "refused": 0,
    "tokens": 0,
    "refused_in_first_second": 0,  # the first burst's refusals: before any answer could say anything
}
_FIRST_CHAT: list[float] = []
#: the user model's rate limit, when one is set
LIMIT: RateLimit | None = None
REFUSAL = json.dumps(
    {"error": {"message": "Rate limit reached for requests", "type": "requests", "code": "rate_limit_exceeded"}}
).encode()


def _tokens(body: bytes) -> int:
    """A chat request's cost in tokens: its prompt's words and the most it may answer."""
    try:
        return request_tokens(json.loads(body))
    except ValueError:
        return 0


async def _serve_connection(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, app: bytes, user: str
) -> None:
    STATS["connections"] = int(STATS["connections"] or 0) + 1
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            arrived = time.monotonic()
            request_line, *header_lines = head.decode("latin-1").split("\r\n")
            if request_line.startswith("GET /stats"):
                _write(writer, json.dumps(STATS).encode())
                await writer.drain()
                continue
            if STATS["first_request_at"] is None:
                STATS["first_request_at"] = time.time()
            STATS["requests"] = int(STATS["requests"] or 0) + 1
            length = 0
            for line in header_lines:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            sent = await reader.readexactly(length) if length else b""
            path = request_line.split(" ")[1] if " " in request_line else "/"
            chat = path.endswith("/chat/completions")
            headers: dict[str, str] = {}
            if chat:
                STATS["chat_requests"] = int(STATS["chat_requests"] or 0) + 1
                _FIRST_CHAT[:] = _FIRST_CHAT or [arrived]
            if chat and LIMIT is not None:
                cost = _tokens(sent)
                decision = LIMIT.take(cost, arrived)
                headers = decision.headers
                if not decision.admitted:
                    STATS["refused"] = LIMIT.refused
                    if arrived - _FIRST_CHAT[0] < 1.0:
                        STATS["refused_in_first_second"] = int(STATS["refused_in_first_second"] or 0) + 1
                    _write(writer, REFUSAL, 429, headers)
                    await writer.drain()
                    continue
                STATS["tokens"] = int(STATS["tokens"] or 0) + cost
            body = json.dumps(_completion(user)).encode() if chat else app
            await asyncio.sleep(max(0.0, delay - (time.monotonic() - arrived)))
            _write(writer, body, 200, headers)
            await writer.drain()
            STATS["last_answer_at"] = time.time()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


def _write(writer: asyncio.StreamWriter, body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> None:
    extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    head = f"HTTP/1.1 {status} {'OK' if status == 200 else 'Too Many Requests'}\r\nContent-Type: application/json\r\n"
    writer.write(f"{head}{extra}Content-Length: {len(body)}\r\n\r\n".encode("latin-1") + body)


async def _main(delay: float, app_text: str, user_text: str) -> None:
    app = json.dumps({"answer": app_text, "reply": app_text}).encode()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_connection(reader, writer, delay, app, user_text)

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    print(f"http://127.0.0.1:{port}", flush=True)
    loop = asyncio.get_running_loop()
    # serve until the parent closes our stdin (or dies)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()


class SteadyServer:
    """Starts the server in a child process for the length of a ``with`` block."""

    def __init__(
        self, delay: float, app_text: str = "fine", user_text: str = "Tell me more, please.", **limit: Any
    ) -> None:
        """``limit``: the user model's rate limit, as ``RateLimit``'s fields (``requests_per_second=20``)."""
        self.args = ["--delay", str(delay), "--app-text", app_text, "--user-text", user_text]
        if limit:
            self.args += ["--limit", json.dumps(limit)]
        self.url = ""
        self._child: subprocess.Popen[str] | None = None

    def __enter__(self) -> SteadyServer:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "tests.servers.steady_server", *self.args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._child.stdout is not None
        self.url = self._child.stdout.readline().strip()
        if not self.url:
            self.close()
            raise RuntimeError("the steady server did not start")
        return self

    @property
    def openai_base_url(self) -> str:
        return self.url + "/v1"

    def stats(self) -> dict[str, float | int | None]:
        """When the first request arrived (epoch seconds) and how many requests and connections came."""
        with urllib.request.urlopen(self.url + "/stats", timeout=5) as answer:
            return dict(json.load(answer))

    def close(self) -> None:
        if self._child is not None:
            if self._child.stdin is not None:
                self._child.stdin.close()
            try:
                self._child.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._child.kill()
                self._child.wait()
            if self._child.stdout is not None:
                self._child.stdout.close()
            self._child = None

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--app-text", default="fine")
    parser.add_argument("--user-text", default="Tell me more, please.")
    parser.add_argument("--limit", help="the user model's rate limit: RateLimit's fields as JSON")
    options = parser.parse_args()
    if options.limit:
        LIMIT = RateLimit(**json.loads(options.limit))
    asyncio.run(_main(options.delay, options.app_text, options.user_text))
