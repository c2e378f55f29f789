"""Awaiting with a deadline, without losing a cancellation.

Before Python 3.12, `asyncio.wait_for` runs what it waits for in a task of its own, and when a
cancellation (Ctrl-C, SIGTERM) reaches the caller just as that task completes, it returns the result
instead of raising: the cancellation is lost, and an interrupted run played its conversations in
flight to their end. `asyncio.timeout` (3.11+) awaits in the caller's own task, so a cancellation
always arrives; it also spares a task per call. On Python 3.10, aio-libs' `async_timeout` does the same.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def deadline(awaitable: Awaitable[T], seconds: float | None) -> T:
    """`await awaitable`, raising `TimeoutError` (`asyncio.TimeoutError`) after `seconds` (None: never)."""
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds):
            return await awaitable
    else:
        import async_timeout  # a dependency on Python 3.10 only

        async with async_timeout.timeout(seconds):
            return await awaitable
