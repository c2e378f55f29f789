"""Awaiting with a deadline, without losing a cancellation; a turn's clock stopped while it waits its turn.

Before Python 3.12, `asyncio.wait_for` returns the result instead of raising when a cancellation
(Ctrl-C, SIGTERM) reaches the caller just as what it waits for completes: the cancellation is lost,
and an interrupted run played its conversations in flight to their end. `asyncio.timeout` (3.11+;
aio-libs' `async_timeout` on 3.10) never drops one. What is awaited still runs in a task of its own,
as with `wait_for`: its end (an answer read, its clock stopped) is not held up behind the caller's
next step, so a latency recorded inside it stays the app's own.

A `pausable` deadline (a conversation's turn) does not run while the work inside waits for a
rate-limited endpoint (`clock_stopped`, used by `simulator.aio.limiter`): waiting for a limit to
lift is no slowness of the endpoint, and has its own bound (`rate_limit_wait`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import sys
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

T = TypeVar("T")


class _Clock:
    """A pausable deadline's timer: stopped (rescheduled to never) while any wait inside it lasts."""

    def __init__(self) -> None:
        self.timer: Any = None  # the entered asyncio.Timeout (async_timeout's Timeout on 3.10)
        self.stopped = 0
        self.left: float | None = None

    def stop(self) -> None:
        self.stopped += 1
        when = _when(self.timer) if self.timer is not None and self.stopped == 1 else None
        if when is not None:
            with contextlib.suppress(RuntimeError):  # the deadline has fired or ended already
                _reschedule(self.timer, None)
                self.left = max(0.0, when - asyncio.get_running_loop().time())

    def start(self) -> None:
        self.stopped -= 1
        if self.stopped == 0 and self.left is not None and self.timer is not None:
            with contextlib.suppress(RuntimeError):
                _reschedule(self.timer, asyncio.get_running_loop().time() + self.left)
            self.left = None


def _when(timer: Any) -> float | None:
    """When the timer fires (loop time); async_timeout before 5.0 calls it `deadline`."""
    when = getattr(timer, "when", None)
    return when() if callable(when) else getattr(timer, "deadline", None)


def _reschedule(timer: Any, when: float | None) -> None:
    if hasattr(timer, "reschedule"):
        timer.reschedule(when)
    elif when is None:
        timer.reject()  # async_timeout 4: never fire
    else:
        timer.update(when)


_CLOCK: contextvars.ContextVar[_Clock | None] = contextvars.ContextVar("deadline_clock", default=None)


@contextlib.contextmanager
def clock_stopped() -> Iterator[None]:
    """While inside, the pausable deadline this code runs under (if any) does not count down."""
    clock = _CLOCK.get()
    if clock is None:
        yield
        return
    clock.stop()
    try:
        yield
    finally:
        clock.start()


async def deadline(awaitable: Awaitable[T], seconds: float | None, *, pausable: bool = False) -> T:
    """`await awaitable`, raising `TimeoutError` (`asyncio.TimeoutError`) after `seconds` (None: never).

    `pausable`: the time spent inside `clock_stopped` does not count."""
    clock = _Clock() if pausable and seconds is not None else None
    token = _CLOCK.set(clock) if clock is not None else None
    try:
        task = asyncio.ensure_future(awaitable)  # the task's context carries the clock
    finally:
        if token is not None:
            _CLOCK.reset(token)
    # cancelled (from outside, or by the deadline), the caller cancels the task and waits for its end
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(seconds) as timer:
            if clock is not None:
                clock.timer = timer
            return await task
    else:
        import async_timeout  # a dependency on Python 3.10 only

        async with async_timeout.timeout(seconds) as timer:
            if clock is not None:
                clock.timer = timer
            return await task
