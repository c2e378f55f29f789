"""One `requests` session for every GitHub call (REST API, results service, blob storage), with one
retry policy: 429, 5xx, dropped connections and rate limits (a 403 or 429 with
`x-ratelimit-remaining: 0` or `Retry-After`) are tried again after the wait GitHub asks for, or a
growing back-off; a wait longer than `max_wait` is not waited for, and `rate_limit_note` says until
when the limit holds."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from ..parsing import header_numbers

USER_AGENT = "chat-simulator-action"
TRANSIENT = frozenset({429, 500, 502, 503, 504})
#: the longest wait for a rate limit or a Retry-After; past it the call gives up and says why
MAX_WAIT = 60.0
#: a Retry-After or rate limit reset further off than this is not believed (a day; GitHub's reset hourly)
LONGEST_WAIT = 24 * 3600.0


def _used_up(response: requests.Response) -> bool:
    """`x-ratelimit-remaining: 0`: the primary rate limit is used up."""
    return header_numbers.count(response.headers.get("x-ratelimit-remaining")) == 0


def rate_limited(response: requests.Response) -> bool:
    """GitHub's primary (remaining 0) or secondary (Retry-After, "secondary rate limit") limit."""
    if response.status_code not in (403, 429):
        return False
    if _used_up(response) or "Retry-After" in response.headers:
        return True
    return response.status_code == 429 or "rate limit" in response.text[:1000].lower()


def requested_wait(response: requests.Response) -> float | None:
    """Seconds GitHub asks to wait (Retry-After, else until x-ratelimit-reset when none remain), at
    most `LONGEST_WAIT`; None when it says none, or nothing readable (`nan`, `-1`, `1e400`)."""
    retry_after = header_numbers.seconds(response.headers.get("Retry-After"), LONGEST_WAIT)
    if retry_after is not None:
        return retry_after
    reset = header_numbers.count(response.headers.get("x-ratelimit-reset"))
    if _used_up(response) and reset is not None:
        wait = reset - time.time()
        return max(wait, 0.0) + 1.0 if wait <= LONGEST_WAIT else None
    return None


def rate_limit_note(response: requests.Response) -> str:
    """What a rate-limited answer means for the user, with the time it lifts when GitHub says it."""
    wait = requested_wait(response)
    if _used_up(response):
        resource = response.headers.get("x-ratelimit-resource", "core")
        what = f"GitHub's API rate limit ({resource}) for this token is used up"
    else:
        what = "GitHub's secondary rate limit stopped the call"
    if wait is None:
        return f"{what}; run the job again later"
    lifts = datetime.fromtimestamp(time.time() + wait, timezone.utc).strftime("%H:%M:%S UTC")
    return f"{what} until {lifts} (more than the {MAX_WAIT:.0f} s the action waits); run the job again after that"


class GitHubSession(requests.Session):
    """A session whose `send` applies the retry policy to the methods it may repeat."""

    def __init__(
        self, retries: int, backoff: float, factor: float, methods: frozenset[str], max_wait: float = MAX_WAIT
    ) -> None:
        super().__init__()
        self.retries = retries
        self.backoff = backoff
        self.factor = factor
        self.methods = methods
        self.max_wait = max_wait

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        repeatable = request.method in self.methods
        attempt = 0
        while True:
            final = not repeatable or attempt >= self.retries
            delay = self.backoff * self.factor**attempt
            attempt += 1
            try:
                response = super().send(request, **kwargs)
            except (requests.ConnectionError, requests.Timeout) as exc:
                setattr(exc, "attempts", attempt)  # noqa: B010 - read back with getattr
                if final:
                    raise
                wait = delay
            else:
                setattr(response, "attempts", attempt)  # noqa: B010 - read back with getattr
                if response.status_code in TRANSIENT or rate_limited(response):
                    asked = requested_wait(response)
                    wait = delay if asked is None else asked
                    # a 403 is a rate limit to wait for when GitHub says so (a wait, or a Retry-After
                    # too garbled to read: then the growing back-off), else a refusal
                    told = asked is not None or "Retry-After" in response.headers
                    if final or wait > self.max_wait or (response.status_code == 403 and not told):
                        return response
                    response.close()
                else:
                    return response
            time.sleep(wait)


def session(
    retries: int = 4,
    backoff: float = 1.0,
    methods: frozenset[str] | None = None,
    factor: float = 2.0,
    max_wait: float = MAX_WAIT,
) -> requests.Session:
    """A session that tries the given (idempotent) methods `retries` more times: after
    `backoff × factor^n` seconds, or the wait GitHub asks for up to `max_wait`."""
    http = GitHubSession(retries, backoff, factor, methods or frozenset({"GET", "PUT", "PATCH", "DELETE"}), max_wait)
    adapter = HTTPAdapter(max_retries=0)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers["User-Agent"] = USER_AGENT
    return http


def next_page(response: requests.Response, base: str) -> str | None:
    """The `Link: rel=next` page of a listing, only on `base`'s own scheme and host: the session
    carries the token, and an answer must not be able to send it (or the reader) elsewhere."""
    url = response.links.get("next", {}).get("url")
    if not url:
        return None
    here, there = urlsplit(base), urlsplit(url)
    return url if (there.scheme, there.netloc) == (here.scheme, here.netloc) else None
