"""CPU per request of the HTTP clients a run can use, at the runner's concurrency.

Framework CPU per turn is mostly the HTTP stack's (see the Performance section of the README):
this measures the candidates alone, against the single-loop steady server in a child process that
answers at once, so the figures compare clients and nothing else:

    python bench/bench_http_clients.py                 # 3,000 requests at concurrency 32
    python bench/bench_http_clients.py --requests 5000 --concurrency 64

- `httpx2` as the HTTP targets use it (one pool), and split over 4 and 8 pools (the pool checks
  every connection it holds on each request, so its cost grows with the connections per pool);
- the `openai` SDK's generic `post`, as the user model and the judge call it, on its default client,
  and on `DefaultAioHttpClient` when `aiohttp` is installed (`pip install aiohttp`).
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


async def openai_sdk(url: str, aiohttp: bool, requests: int, concurrency: int) -> float:
    import openai

    extra = {"http_client": openai.DefaultAioHttpClient()} if aiohttp else {}
    client = openai.AsyncOpenAI(base_url=url + "/v1", api_key="bench", max_retries=0, **extra)

    async def send(index: int) -> object:
        return await client.post("/chat/completions", body=MESSAGES, cast_to=httpx2.Response)

    try:
        return await _measure(send, requests, concurrency)
    finally:
        await client.close()


def _has_aiohttp() -> bool:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    shape = (args.requests, args.concurrency)
    figures: dict[str, float | str] = {}
    with SteadyServer(0.0) as server:
        for pools in (1, 4, 8):
            figures[f"httpx2, {pools} pool(s)"] = round(asyncio.run(httpx2_pools(server.url, pools, *shape)), 3)
        figures["openai SDK, default client"] = round(asyncio.run(openai_sdk(server.url, False, *shape)), 3)
        if _has_aiohttp():
            figures["openai SDK, DefaultAioHttpClient"] = round(asyncio.run(openai_sdk(server.url, True, *shape)), 3)
        else:
            figures["openai SDK, DefaultAioHttpClient"] = "aiohttp not installed"
    print(json.dumps({"requests": args.requests, "concurrency": args.concurrency, "cpu_ms_per_request": figures}))
    for name, value in figures.items():
        print(f"  {name}: {value} ms CPU per request", file=sys.stderr)


if __name__ == "__main__":
    main()
