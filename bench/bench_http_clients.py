"""CPU per request of the HTTP clients a run can use, at the runner's concurrency.

Framework CPU per turn is mostly the HTTP stack's (see docs/guides/performance.md):
this measures the candidates alone, against the single-loop steady server in a child process that
answers at once, so the figures compare clients and nothing else:

    python bench/bench_http_clients.py                 # 3,000 requests at concurrency 32
    python bench/bench_http_clients.py --requests 5000 --concurrency 64

- the run's aiohttp session (`simulator.aio.http_sessions.new_session`), as HTTP targets and state
  requests send: a timed exchange, the proxy looked up per request;
- `httpx2`, which HTTP targets used before, in one pool and split over 4 and 8 pools (its pool checks
  every connection it holds on each request, so its cost grows with the connections per pool);
- the `openai` SDK's generic `post`, as the user model and the judge call it, on its default
  httpx2 client, one and over 4, and on its own `DefaultAioHttpClient`;
- the SDK on `simulator.llm.transport` (an aiohttp session under an httpx2 client), as the user
  model and the judge send, and over 4 SDK clients sharing that one session;
- the SDK alone, on a transport that answers from memory without a connection: the CPU the SDK
  costs per request whatever carries it, the floor of an LLM call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import httpx2  # noqa: E402

from tests.servers.steady_server import SteadyServer  # noqa: E402

BODY = {"question": "hi", "chat_history": []}
MESSAGES = {"model": "bench", "messages": [{"role": "user", "content": "hi"}]}
COMPLETION = json.dumps(
    {
        "id": "bench",
        "object": "chat.completion",
        "created": 0,
        "model": "bench",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "hi"}, "finish_reason": "stop"}],
    }
).encode()


class InMemory(httpx2.AsyncBaseTransport):
    """Answers every request at once with the same completion, so only the SDK's own work is left."""

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(
            200, headers=[(b"content-type", b"application/json")], content=COMPLETION, request=request
        )


async def _measure(send: Callable[[int], Awaitable[object]], requests: int, concurrency: int) -> float:
    """CPU milliseconds per request, after a warm-up that opens the connections."""
    gate = asyncio.Semaphore(concurrency)

    async def one(index: int) -> None:
        async with gate:
            await send(index)

    await asyncio.gather(*(one(i) for i in range(min(requests, concurrency * 4))))
    started = time.process_time()
    await asyncio.gather(*(one(i) for i in range(requests)))
    return (time.process_time() - started) * 1000 / requests


async def httpx2_pools(url: str, pools: int, requests: int, concurrency: int) -> float:
    limits = httpx2.Limits(max_connections=128, max_keepalive_connections=64)
    clients = [httpx2.AsyncClient(limits=limits) for _ in range(pools)]

    async def send(index: int) -> object:
        answer = await clients[index % pools].post(url + "/score", json=BODY)
        return answer.json()

    try:
        return await _measure(send, requests, concurrency)
    finally:
        for client in clients:
            await client.aclose()


async def openai_sdk(url: str, under: str, requests: int, concurrency: int, pools: int = 1) -> float:
    """The SDK's `post`, over `pools` clients in turn, as the user model sends; `under` is the HTTP
    client beneath: "httpx2" (the SDK's default, one TLS context), "aiohttp" (its
    `DefaultAioHttpClient`), "llm_transport" (`simulator.llm.transport`, one session for all) or
    "memory" (no connection at all: `InMemory`)."""
    import openai

    from simulator.llm.transport import LLMTransport

    tls = httpx2.create_ssl_context()
    transport = LLMTransport()

    def http_client() -> httpx2.AsyncClient:
        if under in ("llm_transport", "memory"):
            beneath = transport if under == "llm_transport" else InMemory()
            return httpx2.AsyncClient(transport=beneath, timeout=60.0, trust_env=False)
        return openai.DefaultAioHttpClient() if under == "aiohttp" else openai.DefaultAsyncHttpxClient(verify=tls)

    clients = [
        openai.AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0, http_client=http_client())
        for _ in range(pools)
    ]

    async def send(index: int) -> object:
        return await clients[index % pools].post("/chat/completions", body=MESSAGES, cast_to=httpx2.Response)

    try:
        return await _measure(send, requests, concurrency)
    finally:
        for client in clients:
            await client.close()
        await transport.aclose()


async def run_session(url: str, requests: int, concurrency: int) -> float:
    from simulator.aio.http_sessions import ExchangeClock, new_session, proxy_for

    session = new_session(timed=True)
    address = url + "/score"
    body = json.dumps(BODY).encode()
    headers = {"Content-Type": "application/json"}

    async def send(index: int) -> object:
        response = await session.post(
            address,
            data=body,
            headers=headers,
            proxy=proxy_for(address),
            allow_redirects=False,
            trace_request_ctx=ExchangeClock(),
        )
        try:
            return json.loads(await response.read())
        finally:
            response.release()

    try:
        return await _measure(send, requests, concurrency)
    finally:
        await session.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rounds", type=int, default=3, help="each client measured this often, interleaved; the least counts"
    )
    args = parser.parse_args()
    shape = (args.requests, args.concurrency)
    with SteadyServer(0.0) as server:
        cases: dict[str, Callable[[], Awaitable[float]]] = {
            "the run's aiohttp session (targets)": lambda: run_session(server.url, *shape)
        }
        cases |= {
            f"httpx2, {pools} pool(s)": (lambda pools=pools: httpx2_pools(server.url, pools, *shape))
            for pools in (1, 4, 8)
        }
        cases["openai SDK, default client"] = lambda: openai_sdk(server.url, "httpx2", *shape)
        cases["openai SDK, 4 clients"] = lambda: openai_sdk(server.url, "httpx2", *shape, pools=4)
        cases["openai SDK, DefaultAioHttpClient"] = lambda: openai_sdk(server.url, "aiohttp", *shape)
        cases["SDK on simulator.llm.transport"] = lambda: openai_sdk(server.url, "llm_transport", *shape)
        cases["SDK on simulator.llm.transport, 4 clients"] = lambda: openai_sdk(
            server.url, "llm_transport", *shape, pools=4
        )
        cases["openai SDK alone, answered from memory"] = lambda: openai_sdk(server.url, "memory", *shape)
        measured: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(args.rounds):  # interleaved: a busy moment of the machine does not favour one client
            for name, case in cases.items():
                measured[name].append(asyncio.run(case()))
    figures: dict[str, float] = {name: round(min(values), 3) for name, values in measured.items()}
    print(json.dumps({"requests": args.requests, "concurrency": args.concurrency, "cpu_ms_per_request": figures}))
    for name, value in figures.items():
        print(f"  {name}: {value} ms CPU per request", file=sys.stderr)


if __name__ == "__main__":
    main()
