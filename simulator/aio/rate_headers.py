"""What a server says about its rate limit, read from its headers one way for the models and the app.

A 429 says how long to wait in `retry-after-ms` (Azure OpenAI), `Retry-After` (seconds or an HTTP
date) or, failing those, the `x-ratelimit-reset-requests` / `x-ratelimit-reset-tokens` of the
budget it used up. Any answer of OpenAI or Azure OpenAI also says what is left:
`x-ratelimit-{limit,remaining,reset}-{requests,tokens}`, the resets written as Go durations (`1s`,
`6m0s`, `20ms`, `1h2m3.5s`). The limiter reads them to slow down before the wall. A value that is
none of those forms (`nan`, `-5`, `soon`) reads as absent, as `header_numbers` reads every header.

One 429 is no rate limit to wait out: a request larger than the whole limit (`over_the_limit`),
refused whenever it is sent; a model's and an app's refusals are read for it the same way.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from ..parsing import header_numbers

#: a wait read as at most this (a day): longer is as good as "not now"
LONGEST_WAIT = 24 * 3600.0
#: one part of a Go duration; `µs` and `us` are the same unit
_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(h|ms|m|s|µs|us|ns)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6, "ns": 1e-9}


#: OpenAI's 429 for one request larger than the whole budget: `Request too large for gpt-4o in
#: organization org-… on tokens per min (TPM): Limit 30000, Requested 36278. The input or output
#: tokens must be reduced in order to run successfully.`
_LIMIT_REQUESTED = re.compile(r"\bLimit:? ([\d,]{1,20}), Requested:? ([\d,]{1,20})")


def over_the_limit(refusal: str) -> tuple[int, int] | None:
    """(limit, requested) when a 429's text says the request alone is over the limit: waiting cannot
    help, and every other request to the endpoint would wait with it until `rate_limit_wait`."""
    found = _LIMIT_REQUESTED.search(refusal)
    if found is None:
        return None
    limit, requested = (int(group.replace(",", "") or 0) for group in found.groups())
    return (limit, requested) if requested > limit else None


def parse_duration(value: str | None) -> float | None:
    """OpenAI's reset header as seconds: a Go duration (`6m0s`, `20ms`) or plain seconds (`0.5`)."""
    if value is None:
        return None
    text = value.strip()
    if not text or len(text) > 40:
        return None
    if re.fullmatch(r"[0-9]+(?:\.[0-9]+)?", text):
        seconds = float(text)
    else:
        parts = _PART.findall(text)
        if not parts or "".join(number + unit for number, unit in parts) != text:
            return None
        seconds = sum(float(number) * _UNITS[unit] for number, unit in parts)
    return min(seconds, LONGEST_WAIT) if math.isfinite(seconds) else None


@dataclass(frozen=True)
class Budget:
    """One kind of budget (requests or tokens) as the server counted it when it answered."""

    remaining: int
    #: seconds until the budget is full again (None: not said)
    reset: float | None = None
    limit: int | None = None

    def time_for(self, amount: float) -> float | None:
        """Seconds until `amount` is left, at the rate the budget refills; None when unknown."""
        if amount <= self.remaining:
            return 0.0
        if self.reset is None:
            return None
        if self.limit is not None and self.limit > self.remaining and self.reset > 0:
            per_second = (self.limit - self.remaining) / self.reset
            return min((amount - self.remaining) / per_second, self.reset)
        return self.reset


@dataclass(frozen=True)
class RateHints:
    """Everything an answer's headers say about the rate limit; each part None when not said."""

    #: seconds to wait before the next request (a 429's `retry-after-ms` or `Retry-After`)
    retry_after: float | None = None
    requests: Budget | None = None
    tokens: Budget | None = None
    #: the resets said without a remaining count beside them
    reset_requests: float | None = None
    reset_tokens: float | None = None

    @property
    def refusal_wait(self) -> float | None:
        """How long a 429 asks everyone to wait: its retry-after, else the reset of the budget it used
        up (the later of both when both are), else the nearest reset said; None: it does not say."""
        if self.retry_after is not None:
            return self.retry_after
        spent = [b.reset for b in (self.requests, self.tokens) if b is not None and b.remaining <= 0 and b.reset]
        if spent:
            return max(spent)
        resets = [r for r in (self.reset_requests, self.reset_tokens) if r is not None]
        return min(resets) if resets else None


#: a header each answer that says anything about its rate limit has
_ANY: tuple[str, ...] = ("retry-after", "retry-after-ms", "x-ratelimit-remaining-requests")
_ANY += ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-requests", "x-ratelimit-reset-tokens")


def read_hints(headers: Mapping[str, str] | None, now: float | None = None) -> RateHints:
    """The rate-limit headers of an answer (names in any case); `now` (epoch seconds) reads a date."""
    if not headers:
        return RateHints()
    # the clients' headers (httpx2's, aiohttp's) look names up in any case; a plain mapping is read once
    found = {str(name).lower(): str(value) for name, value in headers.items()} if isinstance(headers, dict) else headers
    if not any(found.get(name) is not None for name in _ANY):
        return RateHints()
    retry_after = header_numbers.seconds(found.get("retry-after-ms"), LONGEST_WAIT, unit=0.001, dates=False)
    if retry_after is None:
        retry_after = header_numbers.seconds(found.get("retry-after"), LONGEST_WAIT, now=now)
    budgets: dict[str, Budget | None] = {}
    resets: dict[str, float | None] = {}
    for kind in ("requests", "tokens"):
        remaining = header_numbers.count(found.get(f"x-ratelimit-remaining-{kind}"))
        resets[kind] = parse_duration(found.get(f"x-ratelimit-reset-{kind}"))
        limit = header_numbers.count(found.get(f"x-ratelimit-limit-{kind}"))
        budgets[kind] = None if remaining is None else Budget(remaining, resets[kind], limit)
    return RateHints(
        retry_after=retry_after,
        requests=budgets["requests"],
        tokens=budgets["tokens"],
        reset_requests=resets["requests"],
        reset_tokens=resets["tokens"],
    )
