"""One endpoint's rate limit, shared by every conversation that calls it: one pause for all, and AIMD.

When 32 conversations each retried a 429 on a schedule of their own, the endpoint stayed over its
limit (refused requests count against it too) and some conversations ran out of retries. One
`EndpointLimiter` serves every request of a run to one endpoint (base URL and model):

- a 429 pauses every request to the endpoint until the server's wait has passed (`Retry-After`,
  `retry-after-ms`, the reset of the budget it used up: `rate_headers`; when it says none, a pause
  that doubles with each 429 in a row, from 0.5 s to 8 s, as the `openai` SDK backs off);
- at a model's endpoint (where limits are the rule) the number of requests in flight starts small
  and grows by one with each good answer until the first 429 or timeout (TCP's slow start: doubled
  each round trip), so a limit is found by a few requests, not by a first burst of `--concurrency`;
  the app's starts at `--concurrency`, which a run of an app without a limit should not wait for;
- then it follows TCP's congestion control (AIMD): halved on a 429 or a
  timeout (once for the requests that were in flight together; each further 429 among those takes
  one more), grown steadily while answers come back fine and requests wait for a slot, up to
  `ceiling` (the run's concurrency); below one request in flight, requests go one at a time, spaced
  out (a limit of 5 requests a second with 100 ms answers needs half a request in flight); only a
  cut that follows a good answer goes below one: refusals or timeouts in a row (one request refused
  until `rate_limit_wait`; an app that hangs on one question) say the endpoint is shut, not that it
  is paced too fast: the pause (for a 429) and the caller's retry back-off (for a timeout) back off
  for those, as TCP's retransmission timer does, and the rest of the run goes on at one at a time,
  not at one every few seconds;
- an answer saying its budget is spent (`x-ratelimit-remaining-*` at 0, or fewer tokens left than
  a request takes) holds the next requests until it refills, before the server has to refuse one.

Whether to send a refused request again, or give up after `rate_limit_wait`, is the caller's call:
it knows the endpoint's name and its settings. Time spent waiting here stops a turn's clock
(`deadlines.clock_stopped`). The limiter serves one event loop at a time (a run's).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..errors import ConfigError
from .deadlines import clock_stopped
from .rate_headers import RateHints

log = logging.getLogger("simulator.aio.limiter")

#: the window after a 429 or a timeout, as a share of the requests that were in flight
DECREASE = 0.5
#: the window grows, per second of good answers while requests wait for a slot, by this share of
#: the window the last cut left: per second, not per round trip as TCP grows, since a server's
#: bucket hides the limit for about a second (the burst it holds), and in proportion, so a limit of
#: 5 requests a second is approached as carefully as one of 500. Past the window the limit's pace
#: sustains (TCP's slow-start threshold, learnt here from the answers between two 429s) it grows
#: by the smaller share: each 429 costs a pause for everyone, so the wall is approached slowly
GROWTH, GROWTH_PAST_PACE = 0.25, 0.02
#: below one request in flight the window paces: one at a time, `latency / window` apart; not below this
SMALLEST_WINDOW = 1 / 64
#: requests in flight before any answer came back: slow start grows it from there
INITIAL_WINDOW = 4
#: the pause after a 429 that says no wait, doubled by each 429 in a row up to the last
BLIND_PAUSE, LONGEST_BLIND_PAUSE = 0.5, 8.0
#: the ceiling of a limiter nobody bounded: only the requests waiting limit the window's growth
UNBOUNDED = 1 << 20
#: how long a request may stay refused by a rate limit before its turn fails (`rate_limit_wait`)
DEFAULT_RATE_LIMIT_WAIT = 600.0


def check_rate_limit_wait(value: object, where: str = "rate_limit_wait") -> float:
    """`rate_limit_wait` as set: a positive, finite number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{where}: must be a number of seconds > 0, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class LimitEvent:
    """What changed at an endpoint: for progress lines (`rate-limited by user model: waiting 2.1 s`)."""

    endpoint: str
    #: seconds every request to the endpoint now waits (0: none)
    wait: float
    #: requests at a time from now on, and before
    concurrency: int
    previous: int
    #: `HTTP 429`, `timeout` or `budget spent`
    why: str


Listener = Callable[[LimitEvent], None]


class Slot:
    """The right to send one request; report how it went exactly once (or `release` it)."""

    __slots__ = ("_limiter", "epoch", "started", "done")

    def __init__(self, limiter: EndpointLimiter, epoch: int, started: float) -> None:
        self._limiter = limiter
        #: the cuts made before it was granted: a refusal halves the window only if none came since
        self.epoch = epoch
        self.started = started
        self.done = False

    def answered(self, hints: RateHints | None = None, cost: float = 0.0) -> None:
        """A good answer; `hints` are its rate-limit headers, `cost` the tokens a request takes."""
        if self._finish():
            self._limiter._answered(self, hints, cost)

    def refused(self, hints: RateHints | None = None, cap: float | None = None) -> float:
        """A 429: everyone pauses; the seconds until the endpoint may be called again (at most `cap`)."""
        if self._finish():
            self._limiter._refused(self, hints, cap)
        return self._limiter.pause_left()

    def timed_out(self) -> None:
        """No answer in time: fewer requests at a time, no pause."""
        if self._finish():
            self._limiter._cut(self, "timeout")
            self._limiter._release()

    def release(self) -> None:
        """Any other outcome (an error, a cancellation): the slot is free, nothing learnt."""
        if self._finish():
            self._limiter._release()

    def _finish(self) -> bool:
        first, self.done = not self.done, True
        return first


class EndpointLimiter:
    """The shared pause and the AIMD window of one endpoint; see the module's docstring."""

    def __init__(
        self,
        name: str,
        ceiling: int = UNBOUNDED,
        clock: Callable[[], float] = time.monotonic,
        *,
        slow_start: bool = True,
    ) -> None:
        #: who the endpoint is in messages: `user model`, `judge`, `app`
        self.name = name
        self.ceiling = max(1, ceiling)
        #: start with `INITIAL_WINDOW` requests in flight, not the ceiling (see the module)
        self.slow_start = slow_start
        #: requests allowed in flight; below 1, the share of the time one is (they are spaced out)
        self.window = float(min(self.ceiling, INITIAL_WINDOW) if slow_start else self.ceiling)
        self.in_flight = 0
        self.paused_until = 0.0
        #: cuts so far; a slot granted before the last cut does not halve again
        self.epoch = 0
        #: 429s since the last good answer (the exponent of the pause when the server says none)
        self.streak = 0
        #: 429s and seconds paused in all, for progress and benchmarks
        self.refusals = 0
        self.paused_seconds = 0.0
        #: seconds a good answer takes (a moving average), to space requests out below one in flight
        self.latency: float | None = None
        self._clock = clock
        self._waiters: deque[asyncio.Future[int]] = deque()
        self._listeners: list[Listener] = []
        self._base = float(self.ceiling)  # the window the last cut left, which growth steps by
        #: good answers a second the limit lets through, learnt between two 429s (None: not yet)
        self.pace: float | None = None
        self._cut_at: float | None = None
        self._answers_since_cut = 0
        #: whether a good answer came since the last cut: only then may a cut go below one
        self._answered_since_cut = True
        self._grown_at = clock()
        self._next_start = 0.0  # paced: when the next request may go
        self._timer: asyncio.TimerHandle | None = None
        self._timer_loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"EndpointLimiter({self.name!r}, window={self.window:.2f}, ceiling={self.ceiling})"

    @property
    def concurrency(self) -> int:
        """Requests allowed in flight now (1 when they are spaced out)."""
        return max(1, int(self.window))

    def pause_left(self) -> float:
        """Seconds until requests may go again (0: not paused)."""
        return max(0.0, self.paused_until - self._clock())

    def set_ceiling(self, ceiling: int) -> None:
        """The most requests at a time (a run's concurrency); a window never cut starts there."""
        self.ceiling = max(1, ceiling)
        if self.epoch == 0:  # never cut: where it starts (or has grown to since)
            start = min(self.ceiling, INITIAL_WINDOW) if self.slow_start else self.ceiling
            self.window = min(max(self.window, float(start)), float(self.ceiling))
        else:
            self.window = min(self.window, float(self.ceiling))
        self._base = min(self._base, self.ceiling)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    # --- taking a slot ---------------------------------------------------------------------------

    async def acquire(self, *, first: bool = False) -> Slot:
        """Wait for the pause to pass and a free slot; `first`: ahead of the queue (a request sent again)."""
        now = self._clock()
        if not self._waiters and self.in_flight < self.concurrency and now >= self._ready_at():
            self._start(now)
            return Slot(self, self.epoch, now)
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        (self._waiters.appendleft if first else self._waiters.append)(waiter)
        with clock_stopped():
            try:
                self._grant()
                epoch = await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._release()  # granted as it was cancelled: hand the slot on
                else:
                    waiter.cancel()
                    with contextlib.suppress(ValueError):
                        self._waiters.remove(waiter)
                raise
        return Slot(self, epoch, self._clock())

    def _ready_at(self) -> float:
        return max(self.paused_until, self._next_start)

    def _start(self, now: float) -> None:
        self.in_flight += 1
        if self.window < 1 and self.latency:  # one request every latency / window seconds
            self._next_start = now + self.latency / max(self.window, SMALLEST_WINDOW)

    def _grant(self) -> None:
        """Hand free slots to the waiters in order; while paused (or spaced out), come back then."""
        now = self._clock()
        left = self._ready_at() - now
        if left > 0:
            if self._waiters:
                self._wake_in(left)
            return
        while self._waiters and self.in_flight < self.concurrency and now >= self._ready_at():
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._start(now)
                waiter.set_result(self.epoch)
        if self._waiters and self._ready_at() > now:
            self._wake_in(self._ready_at() - now)

    def _wake_in(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop to wait in: the next acquire grants
            return
        if self._timer is not None and self._timer_loop is loop and self._timer.when() >= loop.time() + delay:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer, self._timer_loop = loop.call_later(delay + 0.001, self._grant), loop

    # --- what the answers say --------------------------------------------------------------------

    def _release(self) -> None:
        self.in_flight = max(0, self.in_flight - 1)
        self._grant()

    def _answered(self, slot: Slot, hints: RateHints | None, cost: float) -> None:
        self.streak = 0
        now = self._clock()
        took = max(0.0, now - slot.started)
        self.latency = took if self.latency is None else 0.8 * self.latency + 0.2 * took
        self._answers_since_cut += 1
        self._answered_since_cut = True
        if self.window < self.ceiling and self._waiters:  # the window, not the demand, held requests back
            self.window = min(float(self.ceiling), self.window + self._growth(now))
        self._grown_at = now
        if hints is not None:
            for budget, amount in ((hints.requests, 1.0), (hints.tokens, cost)):
                wait = budget.time_for(amount) if budget is not None and amount > 0 else None
                if wait:
                    self._pause(wait, "budget spent", self.concurrency)
        self._release()

    def _growth(self, now: float) -> float:
        if self.epoch == 0:  # slow start: one more with each good answer
            return 1.0
        sustained = self.sustained()
        share = GROWTH_PAST_PACE if sustained is not None and self.window >= sustained else GROWTH
        return max(self._base * share, SMALLEST_WINDOW / 4) * min(now - self._grown_at, 1.0)

    def _refused(self, slot: Slot, hints: RateHints | None, cap: float | None) -> None:
        self.refusals += 1
        self.streak += 1
        previous = self.concurrency
        self._cut(slot, "HTTP 429", tell=False)
        wait = hints.refusal_wait if hints is not None else None
        if wait is None:
            wait = min(BLIND_PAUSE * 2 ** (self.streak - 1), LONGEST_BLIND_PAUSE)
        self._pause(min(wait, cap) if cap is not None else wait, "HTTP 429", previous)
        self._release()

    def _cut(self, slot: Slot, why: str, tell: bool = True) -> None:
        """Halve the window, once for the requests that were in flight together; each further 429
        among those takes one more slot back (not below one): it was one request too many."""
        previous = self.concurrency
        if slot.epoch != self.epoch:
            if why == "HTTP 429" and slot.epoch == self.epoch - 1 and self.window > 1:
                self.window = max(1.0, self.window - 1.0)
            return
        halved = min(self.window, float(self.in_flight)) if self.window >= 1 else self.window
        window = halved * DECREASE
        if why == "HTTP 429":
            self._learn_pace()
            sustained = self.sustained()
            if sustained is not None:  # no lower than the limit's own pace sustains
                window = max(window, min(halved, sustained))
        if not self._answered_since_cut:  # failures in a row: the pause backs off, not the window
            window = max(window, min(halved, 1.0))
        self._answered_since_cut = False
        self.window = self._base = max(SMALLEST_WINDOW, window)
        self.epoch += 1
        if tell:
            self._tell(LimitEvent(self.name, self.pause_left(), self.concurrency, previous, why))

    def sustained(self) -> float | None:
        """The window the limit's pace sustains (that pace times an answer's time), once learnt."""
        return None if self.pace is None or self.latency is None else self.pace * self.latency

    def _learn_pace(self) -> None:
        """A 429 comes when the server's budget is spent, so the answers between two of them are
        what the budget let through in that time: the limit's pace (a token bucket's exactly)."""
        now = self._clock()
        if self._cut_at is not None and now - self._cut_at >= 1.0:
            pace = self._answers_since_cut / (now - self._cut_at)
            self.pace = pace if self.pace is None else (self.pace + pace) / 2
        self._cut_at, self._answers_since_cut = now, 0

    def _pause(self, wait: float, why: str, previous: int) -> None:
        now = self._clock()
        until = now + max(0.0, wait)
        began = until > now and self.paused_until <= now
        if until > self.paused_until:
            self.paused_seconds += until - max(now, self.paused_until)
            self.paused_until = until
        if began or previous != self.concurrency:
            self._tell(LimitEvent(self.name, self.pause_left(), self.concurrency, previous, why))

    def _tell(self, event: LimitEvent) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception as exc:  # progress output failing must not stop a request
                log.warning("rate-limit listener failed: %s: %s", type(exc).__name__, exc)


class Limiters:
    """A run's limiters, one per endpoint (base URL and model) whichever side calls it, so the user
    model, the judge and the app each have one pause and one window however many settings use them."""

    def __init__(self, ceiling: int = UNBOUNDED) -> None:
        self.ceiling = ceiling
        self._by_key: dict[str, EndpointLimiter] = {}
        self._listeners: list[Listener] = []

    def get(self, key: str, name: str, *, slow_start: bool = True) -> EndpointLimiter:
        """The limiter of the endpoint `key`; `name` is what the caller calls it (`user model`);
        `slow_start`: see the module (the first caller of an endpoint decides)."""
        limiter = self._by_key.get(key)
        if limiter is None:
            limiter = self._by_key[key] = EndpointLimiter(name, self.ceiling, slow_start=slow_start)
            limiter.listen(self._tell)
        elif name not in limiter.name.split(" and "):
            limiter.name = f"{limiter.name} and {name}"
        return limiter

    def set_ceiling(self, ceiling: int) -> None:
        self.ceiling = ceiling
        for limiter in self._by_key.values():
            limiter.set_ceiling(ceiling)

    def listen(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def __iter__(self) -> Iterator[EndpointLimiter]:
        return iter(list(self._by_key.values()))

    def _tell(self, event: LimitEvent) -> None:
        for listener in self._listeners:
            listener(event)
