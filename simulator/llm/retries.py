"""A completion's retries: a failure that may pass is retried `max_retries` times; a rate limit is
waited out with every other request to the endpoint, and never counted.

The `openai` SDK is asked for no retries of its own: it would retry a 429 on a schedule of its own,
spending the conversation's retries while the other conversations kept the endpoint over its limit.
Its rule is kept here (`errors.transient`: no answer, 408, 409, 429, 5xx, `x-should-retry`) with its
back-off: the server's wait up to 60 s, else 0.5 s doubling up to 8 s, less up to a quarter at
random. A 429 goes to the endpoint's limiter (`simulator.aio.limiter`): everyone pauses for the
server's wait and fewer requests go at a time; only one that is still refused after
`rate_limit_wait` seconds ends the turn.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..aio.limiter import DEFAULT_RATE_LIMIT_WAIT, EndpointLimiter, Slot, check_rate_limit_wait
from ..aio.rate_headers import read_hints
from .errors import MAX_RETRY_AFTER, context_overflow, refusal_over_the_limit, retry_after, transient

if TYPE_CHECKING:
    import openai

#: the SDK's back-off when the server says no wait
INITIAL_RETRY_DELAY, MAX_RETRY_DELAY = 0.5, 8.0
__all__ = ["DEFAULT_RATE_LIMIT_WAIT", "Retries", "check_rate_limit_wait", "rate_limited", "request_tokens"]

#: characters per token when a request's size is estimated (no tokenizer: the server's is unknown)
CHARS_PER_TOKEN = 4


def rate_limited(exc: openai.APIStatusError | openai.APIConnectionError) -> bool:
    """A 429 that asks to slow down, not one that will never pass (no quota, `x-should-retry: false`,
    a request larger than the limit itself)."""
    response = getattr(exc, "response", None)
    if response is None or response.status_code != 429:
        return False
    if response.headers.get("x-should-retry") == "false" or getattr(exc, "code", None) == "insufficient_quota":
        return False
    return refusal_over_the_limit(exc) is None


def request_tokens(request: dict[str, Any]) -> float:
    """About how many tokens a request takes from a tokens-per-minute budget: its messages and the
    most it may answer, as the server counts them when it takes the request."""
    chars = sum(len(str(message.get("content") or "")) for message in request.get("messages") or ())
    limit = request.get("max_completion_tokens") or request.get("max_tokens") or 0
    return chars / CHARS_PER_TOKEN + (limit if isinstance(limit, (int, float)) else 0)


class Retries:
    """One completion's retries, counted, and the time it has spent refused by a rate limit."""

    def __init__(
        self,
        limiter: EndpointLimiter,
        max_retries: int,
        rate_limit_wait: float,
        *,
        sleep: Callable[[float], Any] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limiter = limiter
        self.max_retries = max_retries
        self.rate_limit_wait = rate_limit_wait
        #: retries spent on failures that may pass (never on a rate limit)
        self.used = 0
        #: when the first 429 of this completion came
        self.limited_since: float | None = None
        self._sleep = sleep
        self._clock = clock

    async def slot(self) -> Slot:
        """A slot at the endpoint; a request sent again goes ahead of those not sent yet."""
        return await self.limiter.acquire(first=self.used > 0 or self.limited_since is not None)

    @staticmethod
    def answered(slot: Slot, headers: Any, cost: float) -> None:
        slot.answered(read_hints(headers), cost)

    def refused(self, slot: Slot, exc: openai.APIStatusError) -> tuple[bool, float, float]:
        """A 429: everyone pauses. (wait it out?, seconds refused so far, seconds the pause lasts)."""
        now = self._clock()
        if self.limited_since is None:
            self.limited_since = now
        pause = slot.refused(read_hints(exc.response.headers))
        waited = now - self.limited_since
        return waited + pause <= self.rate_limit_wait, waited, pause

    @staticmethod
    def failed(slot: Slot, exc: openai.APIStatusError | openai.APIConnectionError) -> None:
        """Any failure but a 429: a timeout makes fewer requests go at a time; others teach nothing."""
        import openai

        if isinstance(exc, openai.APITimeoutError):
            slot.timed_out()
        else:
            slot.release()

    async def back_off(self, exc: openai.APIStatusError | openai.APIConnectionError) -> bool:
        """Wait before sending again a failure that may pass; False when it may not, or no retry is left.
        A 429 that comes here is one that will not pass (a spent quota, `x-should-retry: false`)."""
        if self.used >= self.max_retries or not transient(exc) or getattr(exc, "status_code", None) == 429:
            return False
        if context_overflow(exc) is not None:  # a 500 saying so (llama-cpp-python) fails the same way again
            return False
        delay = retry_after(exc)
        if delay is None or not 0 < delay <= MAX_RETRY_AFTER:
            delay = min(INITIAL_RETRY_DELAY * 2.0**self.used, MAX_RETRY_DELAY) * (1 - 0.25 * random.random())
        self.used += 1
        await self._sleep(delay)
        return True
