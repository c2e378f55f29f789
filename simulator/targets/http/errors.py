"""What a failed turn says: each way an exchange fails as a `TurnError` that names the fix.

Every message carries the recorded request (never a credential) and a scrubbed snippet of the
answer, so a failure is understood from the results alone.
"""

from __future__ import annotations

import errno
from typing import Any

from ...aio.rate_headers import over_the_limit
from ...errors import TurnError
from ..redaction import safe_url
from .answer import Answer
from .format import HttpFormat

FATAL_STATUSES = (401, 403, 404)


def after(retries: int) -> str:
    """A message's " after 2 retries", or nothing for a first try."""
    return f" after {retries} {'retry' if retries == 1 else 'retries'}" if retries else ""


def describe_transport(exc: BaseException) -> str:
    """A transport error for a message. A dropped connection says so in words ("Server disconnected",
    "[Errno 104]" and an empty text all mean the app closed or reset it), with the error after."""
    text = str(exc).strip()
    shown = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    if _dropped(exc) or not text:
        return f"the connection was closed or reset ({shown})"
    return shown


def _dropped(exc: BaseException) -> bool:
    import aiohttp  # loaded already: the exchange that failed used it

    if isinstance(exc, aiohttp.ClientConnectorError):  # never connected: not a drop
        return False
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, ConnectionError)):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED)


def detail(answer: Answer, record: dict[str, Any]) -> dict[str, Any]:
    """The evidence a failed turn keeps: status, URL, the answer's beginning and the request."""
    shown = answer.snippet
    found: dict[str, Any] = {
        "status": answer.status,
        "url": record.get("url"),
        "body_snippet": shown,
        "response": shown,
        "request": dict(record),
    }
    if answer.retries:
        found["retries"] = answer.retries
    return found


def app_error(
    what: str, answer: Answer, record: dict[str, Any], fatal: bool = False, mistake: bool = False
) -> TurnError:
    """The app answered, but not with a usable reply.

    `mistake`: the answer's status or shape says the request or the settings are wrong (a 404, an HTML
    page, a reply path the answer does not have), so every conversation's request would get it alike.
    The detail then keeps `mistake`, what is wrong in words of no conversation's own (no URL, no body):
    a runner whose conversations all fail with the same one at their first turn stops early."""
    found = detail(answer, record)
    if mistake:
        found["mistake"] = f"HTTP {answer.status}: {what}"
    return TurnError(
        "app_error",
        f"the app at {record.get('url')} {what} (HTTP {answer.status}); body: {answer.snippet or '(empty)'}",
        detail=found,
        fatal=fatal,
    )


def withheld_error(answer: Answer, record: dict[str, Any]) -> TurnError:
    """The app's content filter withheld its answer."""
    return TurnError(
        "content_filter",
        f"the app at {record.get('url')} withheld its answer (finish_reason content_filter)",
        detail=detail(answer, record),
    )


def status_error(answer: Answer, record: dict[str, Any], source: str, format: HttpFormat) -> TurnError:
    """An answer with an error status (or a redirect), saying what to check."""
    status = answer.status
    if status in (401, 403):
        what = f"refused the request; check the target's headers/token ({source}.headers)"
    elif status == 404:
        what = f"has no such endpoint; check {source}.url (or --app-url)"
    elif status == 429 and (over := over_the_limit(answer.text)) is not None:
        what = (
            f"refused a request larger than its whole rate limit ({over[1]:,} asked, {over[0]:,} allowed): "
            f"waiting cannot help; shorten the conversation (max_turns, the persona, the task) or raise "
            f"the app's limit"
        )
    elif status == 429:
        what = "kept rate-limiting" + after(answer.retries)
    elif status >= 500:
        what = "failed" + after(answer.retries)
    elif 300 <= status < 400:
        location = answer.headers.get("location")
        target = safe_url(location) if location else "another address"
        what = f"redirected to {target}; point {source}.url there"
    else:
        what = "rejected the request"
    if format.refused(status, answer.text):
        return TurnError(
            "content_filter",
            f"the app at {record.get('url')} blocked the question by content filtering (HTTP {status})",
            detail=detail(answer, record),
        )
    fix = format.rejection(status, answer.text)
    if fix:
        return app_error(f"rejected the request: {fix}", answer, record, fatal=True)
    # a redirect or a refusal (4xx but 429) is the request's own: every conversation's would get it
    mistake = 300 <= status < 500 and status != 429
    return app_error(what, answer, record, fatal=status in FATAL_STATUSES, mistake=mistake)


def timeout_error(record: dict[str, Any], retries: int, timeout: float) -> TurnError:
    """No complete answer within the timeout."""
    waited = f" ({after(retries).strip()})" if retries else ""
    return TurnError(
        "timeout",
        f"the app at {record.get('url')} gave no complete answer within {timeout:g} s{waited}",
        detail={"url": record.get("url"), "timeout": timeout, "retries": retries, "request": dict(record)},
    )


def unreachable_error(record: dict[str, Any], exc: Exception, retries: int, source: str) -> TurnError:
    """No connection at all: the app is not running there."""
    url = record.get("url")
    waited = f" ({after(retries).strip()})" if retries else ""
    return TurnError(
        "app_error",
        f"the app is unreachable at {url}: {exc or type(exc).__name__}{waited}; is it running? "
        f"check {source}.url (or --app-url)",
        detail={"url": url, "status": None, "retries": retries, "request": dict(record)},
        fatal=True,
    )


def transport_error(record: dict[str, Any], exc: Exception, retries: int, fatal: bool = False) -> TurnError:
    """The connection broke before the answer was complete."""
    url = record.get("url")
    waited = f" ({after(retries).strip()})" if retries else ""
    return TurnError(
        "app_error",
        f"the connection to the app at {url} failed before a complete answer: {describe_transport(exc)}{waited}",
        detail={"url": url, "status": None, "retries": retries, "request": dict(record)},
        fatal=fatal,
    )
