"""Blocking entry points over the async core."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import signal
import weakref
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

#: True while `run_sync` runs its work on a private loop because the caller's loop was busy: an
#: error about a future "attached to a different loop" then most likely comes from the caller's code
#: using an object of its own loop, and the message can say what to do instead.
_beside_caller_loop: contextvars.ContextVar[bool] = contextvars.ContextVar("beside_caller_loop", default=False)


def beside_caller_loop() -> bool:
    """Whether this code runs on `run_sync`'s private loop while the caller's loop is running."""
    return _beside_caller_loop.get()


def run_sync(make: Callable[[], Awaitable[T]]) -> T:
    """Run `make()` to completion from sync code, even where an event loop is already running
    (a notebook, a test harness): then on a private loop in a worker thread."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())

    async def beside() -> T:
        _beside_caller_loop.set(True)
        return await make()

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, beside()).result()


class PerLoop(Generic[T]):
    """One object per event loop: connection pools cannot cross loops, and a model or target may
    serve several (each blocking `simulate()` call runs its own)."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._objects: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get(self) -> T:
        """The running loop's object, made on first use."""
        loop = asyncio.get_running_loop()
        made = self._objects.get(loop)
        if made is None:
            made = self._make()
            self._objects[loop] = made
        return made

    def pop(self) -> T | None:
        """Forget the running loop's object and hand it back for closing (None if never made)."""
        return self._objects.pop(asyncio.get_running_loop(), None)


def run_with_signals(make: Callable[[], Awaitable[T]]) -> tuple[T, signal.Signals | None]:
    """Run `make()` on a new event loop; SIGINT/SIGTERM cancel it (the run keeps what finished).

    Returns the result and the signal that interrupted it, if any.
    """
    received: dict[str, signal.Signals] = {}

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):

            def on_signal(sig: signal.Signals = sig) -> None:
                received.setdefault("signal", sig)
                if task is not None:
                    task.cancel()

            loop.add_signal_handler(sig, on_signal)
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        result = asyncio.run(main())
        return result, received.get("signal")
    return run_sync(make), None
