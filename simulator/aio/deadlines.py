"""Awaiting with a deadline, without losing a cancellation.

Before Python 3.12, `asyncio.wait_for` returns the result instead of raising when a cancellation
(Ctrl-C, SIGTERM) reaches the caller just as what it waits for completes: the cancellation is lost,
and an interrupted run played its conversations in flight to their end. `asyncio.timeout` (3.11+;
aio-libs' `async_timeout` on 3.10) never drops one. What is awaited still runs in a task of its own,
as with `wait_for`: its end (an answer read, its clock stopped) is not held up behind the caller's
next step, so a latency recorded inside it stays the app's own.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def deadline(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`await awaitable`, raising `TimeoutError` (`asyncio.TimeoutError`) after `seconds` (None: never)."""
    task = asyncio.ensure_future(awaitable)
    # cancelled (from outside, or by the deadline), the caller cancels the task and waits for its end
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await task
    else:
        import async_timeout  # a dependency on Python 3.10 only

        async with async_timeout.timeout(seconds):
            return await task
