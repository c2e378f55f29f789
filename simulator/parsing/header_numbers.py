"""Numbers in HTTP headers, read one way for every server the simulator talks to.

A header is text any server (or a proxy in front of it) writes: `nan`, `inf`, `-5`, `1e400`, `0x10`
or an empty value reach the client as readily as `30`. What is not one of the forms the header
allows reads as None, "absent", so the caller does what it does without the header (its own
back-off) instead of sleeping for NaN seconds or printing the year 10^400.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from datetime import timezone

#: delta-seconds as servers write them: ASCII digits, a fraction allowed (`0.5`); no sign, no exponent
_DECIMAL = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_DIGITS = re.compile(r"[0-9]+")
#: digits read at most: no wait or count a server means is longer (and `int()` of 5,000 digits raises)
MAX_DIGITS = 30
#: the largest count read by default: what a JSON number keeps exactly (and a Unix time for ages)
MAX_COUNT = 2**53


def seconds(
    value: str | None, cap: float, *, unit: float = 1.0, dates: bool = True, now: float | None = None
) -> float | None:
    """A wait header (`Retry-After`, `retry-after-ms`) as seconds from now, at most `cap`.

    `value` is delta-seconds (a fraction allowed) times `unit` (0.001 for milliseconds), or, when
    `dates`, an HTTP date (one in the past is 0). Anything else is None: absent, bad or not finite.
    """
    if not (math.isfinite(cap) and cap >= 0):
        raise ValueError(f"cap must be a finite number of seconds >= 0, got {cap!r}")
    if value is None:
        return None
    text = value.strip()
    wait: float | None = None
    if _DECIMAL.fullmatch(text):
        wait = float(text) * unit if len(text) <= MAX_DIGITS else None
    elif dates and text:
        wait = _until(text, time.time() if now is None else now)
    if wait is None or not math.isfinite(wait) or wait < 0:
        return None
    return min(wait, cap)


def _until(text: str, now: float) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:  # `-0000`: UTC, says RFC 5322, not the machine's zone
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, when.timestamp() - now)


def count(value: str | None, maximum: int = MAX_COUNT) -> int | None:
    """A count header (`x-ratelimit-remaining`, `x-ratelimit-reset`): a whole number from 0 to
    `maximum`; anything else (a sign, a fraction, `nan`, too many digits) is None."""
    if value is None:
        return None
    text = value.strip()
    if not _DIGITS.fullmatch(text) or len(text) > MAX_DIGITS:
        return None
    number = int(text)
    return number if number <= maximum else None
