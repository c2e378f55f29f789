"""A server-side rate limit for the test servers: requests per second and tokens per minute.

``RateLimit.take(tokens, now)`` admits a request or refuses it with the headers a real server
sends: ``Retry-After`` (whole seconds, rounded up, as HTTP writes it; or a fraction), optionally
Azure's ``retry-after-ms`` and OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``
(resets as Go durations: ``20ms``, ``1s``, ``1m0s``). Two shapes of limit:

* ``bucket`` (default): a token bucket per budget, refilled continuously, holding ``burst``
  seconds of its rate (OpenAI and Azure OpenAI limit this way);
* ``window``: a fixed window of one second, ``rate`` requests (or tokens) in each.

Requests refused are counted in :attr:`RateLimit.refused`, admitted ones in
:attr:`RateLimit.admitted`. Not thread-safe: the server calls it under its own lock.
:class:`LimitedServer` is the half of a fake server that holds one (``FakeOpenAIServer.limit``).
Standard library only.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any, TypeVar

__all__ = ["Decision", "LimitedServer", "RateLimit", "go_duration", "request_tokens"]


def request_tokens(body: Any) -> int:
    """What a chat request costs a tokens-per-minute limit, as OpenAI counts it when it takes the
    request: its prompt (in words, the fakes' tokens) and the most it may answer."""
    body = body if isinstance(body, dict) else {}
    messages = body.get("messages") if isinstance(body.get("messages"), list) else []
    prompt = sum(
        len(m["content"].split()) for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str)
    )
    most = body.get("max_completion_tokens") or body.get("max_tokens") or 0
    return prompt + (most if isinstance(most, int) else 0)


def go_duration(seconds: float) -> str:
    """``seconds`` as OpenAI writes a reset: ``20ms`` under a second, else ``1s``, ``6m0s``, ``1h0m0s``."""
    if seconds < 1:
        return f"{max(0, math.ceil(seconds * 1000))}ms"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = f"{secs:.3f}".rstrip("0").rstrip(".") + "s"
    if hours or minutes:
        text = f"{int(minutes)}m{text}"
    if hours:
        text = f"{int(hours)}h{text}"
    return text


@dataclass
class _Budget:
    """One budget (requests or tokens): ``rate`` per second, holding ``capacity``."""

    rate: float
    capacity: float
    mode: str
    level: float | None = None  # a bucket's content; None until the first request (then full)
    window_start: float = 0.0
    used: float = 0.0  # a window's spend
    now: float = 0.0  # when it was last refilled

    def refill(self, now: float) -> None:
        self.now = now
        if self.mode == "window":
            start = math.floor(now)
            if start != self.window_start:
                self.window_start, self.used = start, 0.0
            return
        if self.level is None:
            self.level, self.window_start = self.capacity, now
        self.level = min(self.capacity, self.level + (now - self.window_start) * self.rate)
        self.window_start = now

    def remaining(self) -> float:
        return self.capacity - self.used if self.mode == "window" else (self.level or 0.0)

    def wait_for(self, amount: float, now: float) -> float:
        """Seconds until ``amount`` fits (0 when it does now)."""
        amount = min(amount, self.capacity)
        if self.remaining() >= amount - 1e-9:  # a refill measured in floats: 0.1 s at 10 a second is 1
            return 0.0
        if self.mode == "window":
            return self.window_start + 1 - now
        return (amount - self.remaining()) / self.rate

    def spend(self, amount: float) -> None:
        amount = min(amount, self.capacity)
        if self.mode == "window":
            self.used += amount
        else:
            self.level = self.remaining() - amount

    def reset(self) -> float:
        """Seconds until the budget is whole again."""
        if self.mode == "window":
            return self.window_start + 1 - self.now if self.used else 0.0
        return (self.capacity - self.remaining()) / self.rate


@dataclass(frozen=True)
class Decision:
    """Whether a request is admitted, and the headers to send with the answer (or the 429)."""

    admitted: bool
    headers: dict[str, str]
    #: seconds until the request would have been admitted (0 when it was)
    wait: float = 0.0


@dataclass
class RateLimit:
    """Requests per second and, optionally, tokens per minute; see the module's docstring."""

    requests_per_second: float | None = None
    tokens_per_minute: float | None = None
    mode: str = "bucket"
    #: seconds of its rate a bucket holds (a burst that long goes through at once)
    burst: float = 1.0
    #: ``Retry-After`` in whole seconds (rounded up); False: the exact fraction (``0.05``)
    whole_seconds: bool = True
    #: send ``retry-after-ms`` with a 429, as Azure OpenAI does
    retry_after_ms: bool = False
    #: send ``x-ratelimit-*`` with every answer, as OpenAI does
    ratelimit_headers: bool = False
    refused: int = 0
    admitted: int = 0
    _budgets: dict[str, _Budget] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if self.mode not in ("bucket", "window"):
            raise ValueError(f"mode must be 'bucket' or 'window', got {self.mode!r}")
        for kind, per_second in (
            ("requests", self.requests_per_second),
            ("tokens", None if self.tokens_per_minute is None else self.tokens_per_minute / 60),
        ):
            if per_second is not None:
                capacity = per_second * (self.burst if self.mode == "bucket" else 1.0)
                self._budgets[kind] = _Budget(per_second, max(capacity, 1.0), self.mode)

    def take(self, tokens: float, now: float) -> Decision:
        """Admit a request that costs ``tokens`` at ``now`` (seconds, any clock), or refuse it."""
        costs = {"requests": 1.0, "tokens": float(tokens)}
        for budget in self._budgets.values():
            budget.refill(now)
        wait = max((b.wait_for(costs[kind], now) for kind, b in self._budgets.items()), default=0.0)
        if wait > 0:
            self.refused += 1
            return Decision(False, self._headers(wait), wait)
        for kind, budget in self._budgets.items():
            budget.spend(costs[kind])
        self.admitted += 1
        return Decision(True, self._headers(0.0) if self.ratelimit_headers else {})

    def _headers(self, wait: float) -> dict[str, str]:
        headers: dict[str, str] = {}
        if wait > 0:
            headers["Retry-After"] = str(max(1, math.ceil(wait))) if self.whole_seconds else f"{wait:.3f}"
            if self.retry_after_ms:
                headers["retry-after-ms"] = str(max(1, math.ceil(wait * 1000)))
        if self.ratelimit_headers:
            for kind, budget in self._budgets.items():
                headers[f"x-ratelimit-limit-{kind}"] = str(int(budget.capacity))
                headers[f"x-ratelimit-remaining-{kind}"] = str(max(0, math.floor(budget.remaining())))
                headers[f"x-ratelimit-reset-{kind}"] = go_duration(budget.reset())
        return headers


ServerT = TypeVar("ServerT", bound="LimitedServer")


class LimitedServer:
    """A fake server's rate limit: :meth:`limit` sets it, :meth:`_admit` asks it about a request."""

    _lock: threading.Lock
    rate_limit: RateLimit | None = None
    """The limit above which chat requests are refused with 429 (see :meth:`limit`)."""
    refused_at: list[float]
    """When (``time.monotonic()``) each request refused by the rate limit arrived."""

    def limit(
        self: ServerT, requests_per_second: float | None = None, tokens_per_minute: float | None = None, **options: Any
    ) -> ServerT:
        """Refuse chat requests above these rates with 429 (``options``: ``RateLimit``'s ``mode``,
        ``burst``, ``whole_seconds``, ``retry_after_ms``, ``ratelimit_headers``); returns the server.
        A request costs its prompt's words plus its ``max_tokens`` in tokens."""
        with self._lock:
            self.rate_limit = RateLimit(requests_per_second, tokens_per_minute, **options)
            self.refused_at = []
        return self

    @property
    def refused(self) -> int:
        """Chat requests refused by the rate limit so far."""
        with self._lock:
            return 0 if self.rate_limit is None else self.rate_limit.refused

    def _admit(self, body: Any) -> Decision:
        """Whether the rate limit (if any) takes a request with this JSON body, and the headers to send."""
        with self._lock:
            if self.rate_limit is None:
                return Decision(True, {})
            now = time.monotonic()
            decision = self.rate_limit.take(request_tokens(body), now)
            if not decision.admitted:
                self.refused_at.append(now)
            return decision
