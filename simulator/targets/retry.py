"""Retrying a flaky call: exponential back-off with jitter, honouring a server's `Retry-After`.

The policy lives here, apart from HTTP, so every connector retries the same way. An attempt is any
async callable; it says "this may pass if tried again" by raising `RetryLater` (wrapping the error
to raise when the retries run out). Anything else it raises ends the retries at once.

A policy with a `limiter` (an app target's: one per endpoint in a run) sends each attempt through
it: a 429 pauses every conversation's requests to the app for its `Retry-After` (at most
`max_backoff`) and fewer go at a time; it costs no retry, and only a limit still refusing after
`rate_limit_wait` seconds ends the turn. A timeout makes fewer go at a time too.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..aio.limiter import DEFAULT_RATE_LIMIT_WAIT, EndpointLimiter, Slot
from ..aio.rate_headers import RateHints, read_hints
from ..errors import ConfigError, TurnError
from ..parsing import header_numbers

T = TypeVar("T")

DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF = 0.5
DEFAULT_MAX_BACKOFF = 30.0
#: a Retry-After read as at most this (a day); the policy's `max_backoff` caps the wait itself
LONGEST_RETRY_AFTER = 24 * 3600.0


class RetryLater(Exception):
    """Raised by an attempt whose failure may pass; `error` is raised if no retry is left."""

    def __init__(self, error: BaseException, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        #: seconds the server asked to wait (Retry-After), or None to back off exponentially
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry: `attempts` retries after the first try."""

    attempts: int = DEFAULT_ATTEMPTS
    backoff: float = DEFAULT_BACKOFF
    max_backoff: float = DEFAULT_MAX_BACKOFF
    #: the endpoint's shared pause and window (None: each call retries a 429 as any other failure)
    limiter: EndpointLimiter | None = field(default=None, compare=False, repr=False)
    #: seconds a request may stay refused by a rate limit before the turn fails
    rate_limit_wait: float = DEFAULT_RATE_LIMIT_WAIT
    #: where the settings are written, for the message of a limit that does not lift (`target`)
    source: str = "target"

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None, source: str = "retry") -> RetryPolicy:
        """Read `{attempts, backoff, max_backoff}`; missing keys keep their defaults."""
        if config is None:
            return cls()
        if not isinstance(config, Mapping):
            raise ConfigError(f"{source}: must be a mapping with attempts, backoff, max_backoff")
        unknown = sorted(set(config) - {"attempts", "backoff", "max_backoff"})
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) {', '.join(unknown)}; use attempts, backoff, max_backoff")
        attempts = config.get("attempts", DEFAULT_ATTEMPTS)
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 0:
            raise ConfigError(f"{source}.attempts: must be a whole number >= 0 (retries after the first try)")
        values: dict[str, float] = {}
        for key, default in (("backoff", DEFAULT_BACKOFF), ("max_backoff", DEFAULT_MAX_BACKOFF)):
            value = config.get(key, default)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise ConfigError(f"{source}.{key}: must be a number of seconds >= 0")
            values[key] = float(value)
        return cls(attempts=attempts, backoff=values["backoff"], max_backoff=values["max_backoff"])

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (1-based).

        A server's Retry-After wins (capped at max_backoff); otherwise backoff * 2**(retry-1),
        capped, with jitter in its upper half so concurrent conversations do not retry in lockstep.
        """
        if retry_after is not None:
            return max(0.0, min(retry_after, self.max_backoff))
        base = min(self.backoff * (2 ** max(retry - 1, 0)), self.max_backoff)
        return base / 2 + random.uniform(0, base / 2)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """A `Retry-After` header as seconds from now: delta-seconds or an HTTP date; None if absent or
    not one of those (`nan`, `-5`, `1e400`): then the policy backs off exponentially."""
    return header_numbers.seconds(value, LONGEST_RETRY_AFTER, now=now)


async def retry_async(
    attempt: Callable[[int], Awaitable[T]],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    on_retry: Callable[[int, RetryLater, float], None] | None = None,
) -> T:
    """Call `attempt(n)` (n: the attempts before this one) until it returns, retrying on `RetryLater`.

    When the retries run out, the last `RetryLater.error` is raised. `on_retry(retry, exc, wait)`
    is told about each retry before its wait, e.g. to log it or count it. With `policy.limiter`, a
    429 is waited out with every other request to the endpoint and not counted (see the module).
    """
    retry = 0  # retries spent; a 429 waited out with the limiter spends none
    resent = 0  # every attempt after the first: what the attempt is told, and records
    limited_since: float | None = None
    while True:
        again = resent > 0
        slot = await policy.limiter.acquire(first=again) if policy.limiter else None
        try:
            result = await attempt(resent)
        except RetryLater as exc:
            resent += 1
            if slot is not None and _status(exc) == 429:
                now = time.monotonic()
                limited_since = now if limited_since is None else limited_since
                pause = slot.refused(RateHints(retry_after=exc.retry_after), cap=policy.max_backoff)
                if now - limited_since + pause <= policy.rate_limit_wait:
                    continue
                raise _never_lifted(exc, now - limited_since, pause, policy) from exc.error.__cause__
            if slot is not None and getattr(exc.error, "reason", None) == "timeout":
                slot.timed_out()
            if retry >= policy.attempts:
                raise exc.error from exc.error.__cause__
            retry += 1
            wait = policy.delay(retry, exc.retry_after)
            if on_retry is not None:
                on_retry(retry, exc, wait)
            await sleep(wait)
        else:
            if slot is not None:
                slot.answered(read_hints(getattr(result, "headers", None)))
            return result
        finally:
            _release(slot)


def _release(slot: Slot | None) -> None:
    if slot is not None:
        slot.release()  # a no-op once the outcome was reported


def _status(exc: RetryLater) -> object:
    detail = getattr(exc.error, "detail", None)
    return detail.get("status") if isinstance(detail, dict) else None


def _never_lifted(exc: RetryLater, waited: float, more: float, policy: RetryPolicy) -> BaseException:
    """The turn's error when the app's rate limit did not lift within `rate_limit_wait`."""
    error = exc.error
    if not isinstance(error, TurnError):
        return error
    still = f"; it asks for {more:.1f} s more" if more > 0.05 else ""
    where = f"{policy.source}.rate_limit_wait"
    return TurnError(
        error.reason,
        f"{error}; still refused after {waited:.1f} s of waiting{still}, and {where} allows "
        f"{policy.rate_limit_wait:g} s: lower --concurrency, raise {where}, or raise the app's rate limit",
        detail=error.detail,
        fatal=error.fatal,
    )
