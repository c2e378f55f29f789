"""Ids, sizes and counts in GitHub's JSON answers, checked where they are read.

An answer carries what the server (or whatever stands in its place) wrote: `true` where an id
belongs, `-1`, `2.5`, `"12"`, `1e400` or `NaN` (which Python's JSON reader turns into floats), an
integer of forty digits, or a body that is no JSON at all. An id goes into a URL and a size into a
limit, so each is taken only as what it must be, an integer (never a bool) in range; anything
else is None, and the caller treats the entry as unusable and says so.
"""

from __future__ import annotations

import json
import re
from typing import Any

import requests

from ..parsing import strict_json

#: GitHub's ids are 64-bit integers
MAX_ID = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}")


class NotJSON(ValueError):
    """The body is not JSON this reader can take (not JSON, nested too deep, a number too long)."""


def answer_json(response: requests.Response) -> Any:
    """The answer's JSON, read by the one strict reader (a repeated key, `NaN` or a number out of
    range is no answer); `NotJSON` for anything that is not, however it fails to parse."""
    try:
        return strict_json.loads(response.content)
    except strict_json.JSONError as exc:
        raise NotJSON(str(exc)) from None


def answer_id(value: Any) -> int | None:
    """An id: an integer from 1 to 2^63-1; a bool, a float, a string or anything else is None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        return None
    return value


def answer_count(value: Any, maximum: int = MAX_ID) -> int | None:
    """A size or count: an integer from 0 to `maximum`; anything else is None."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= maximum:
        return None
    return value


def int64_id(value: Any) -> int | None:
    """An id that protobuf's JSON mapping writes as a string (`"1234"`) or a number: as `answer_id`."""
    if isinstance(value, str):
        return answer_id(int(value)) if _DIGITS.fullmatch(value) else None
    return answer_id(value)


def shown(value: Any) -> str:
    """`value` as a message quotes it: its JSON form, cut to 40 characters."""
    try:
        text = json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
