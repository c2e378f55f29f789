"""What a chat-completions server's failure says: its message, what it names, whether to retry.

The SDK's own message for a FastAPI validation body is only "Error code: 500"; these read the
body so a failure names the field the server rejected, and tell a passing failure (the SDK would
retry it) from a deterministic one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..aio.rate_headers import over_the_limit
from ..parsing import header_numbers
from ..text.known_secrets import scrub_text

if TYPE_CHECKING:
    import openai

#: a Retry-After longer than this is not waited for (the SDK's own rule)
MAX_RETRY_AFTER = 60.0
#: a retry-after read as at most this (a day): longer is as good as "not now", which MAX_RETRY_AFTER says
LONGEST_RETRY_AFTER = 24 * 3600.0


def refusal_over_the_limit(exc: openai.APIStatusError | openai.APIConnectionError) -> tuple[int, int] | None:
    """(limit, requested) when a model's 429 says the request alone is over the limit; its text is
    read by `aio.rate_headers.over_the_limit`, as the app's is."""
    if getattr(exc, "status_code", None) != 429:
        return None
    return over_the_limit(f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}")


#: how servers say a request is longer than the model's context: llama.cpp `request (4476 tokens)
#: exceeds the available context size (4096 tokens)`; OpenAI and vLLM `This model's maximum context
#: length is 4096 tokens. However, you requested 5000 tokens (4000 in the messages, 1000 in the
#: completion)`; vLLM `The prompt (total length 25938) is too long to fit into the model (context
#: length 4096)`; llama-cpp-python `Requested tokens (5000) exceed context window of 4096`
_CONTEXT_WORDS = re.compile(
    r"exceeds? the available context size|maximum context length|context[_ ]length[_ ]exceeded|"
    r"context window (?:exceeded|full)|exceed context window|too long to fit into the model|ContextWindowExceeded",
    re.IGNORECASE,
)
_NUMBER = r"([\d,]{1,12})"
_HOLDS = re.compile(rf"context (?:size|length)(?: is|:)? \(?{_NUMBER}|context window of {_NUMBER}")
#: the messages' own tokens, said apart from what the answer may take
_PROMPT = re.compile(
    rf"{_NUMBER} in the messages|request has {_NUMBER} input tokens|messages resulted in {_NUMBER} tokens|"
    rf"prompt \(total length {_NUMBER}\)|\brequest \({_NUMBER} tokens\)"
)
_ASKED = re.compile(rf"you requested {_NUMBER} tokens|Requested tokens \({_NUMBER}\)")
_OVERFLOW_TYPES = {"exceed_context_size_error", "context_length_exceeded"}


@dataclass(frozen=True)
class Overflow:
    """A refusal saying the request is longer than the model's context; each figure None when not said."""

    #: tokens the context holds
    holds: int | None
    #: tokens the request asked for in all (its messages and the most its answer may take)
    asked: int | None
    #: tokens its messages take
    prompt: int | None

    @property
    def room(self) -> int | None:
        """Tokens left for the answer once the messages are in: an answer held to it still fits."""
        if self.holds is None or self.prompt is None:
            return None
        return self.holds - self.prompt if self.holds > self.prompt else None


def _number(pattern: re.Pattern[str], text: str) -> int | None:
    found = pattern.search(text)
    group = next((g for g in found.groups() if g), None) if found else None
    digits = group.replace(",", "") if group else ""
    return int(digits) if digits else None


def context_overflow(exc: openai.APIStatusError | openai.APIConnectionError) -> Overflow | None:
    """What a refusal says when the request is longer than the model's context: no retry or wait
    passes it, only a shorter answer (`Overflow.room`), a shorter conversation or a longer context."""
    if getattr(exc, "status_code", None) not in (400, 413, 422, 500):
        return None
    body = getattr(exc, "body", None)
    fields = body if isinstance(body, dict) else {}
    text = f"{getattr(exc, 'message', '')} {body if isinstance(body, (str, dict)) else ''}"
    said = {str(fields.get("type")), str(fields.get("code")), str(getattr(exc, "code", None))}
    if not (said & _OVERFLOW_TYPES or _CONTEXT_WORDS.search(text)):
        return None

    def field(name: str) -> int | None:  # llama.cpp says its figures as fields too
        value = fields.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None

    holds = field("n_ctx")
    prompt = field("n_prompt_tokens")
    return Overflow(
        holds=holds if holds is not None else _number(_HOLDS, text),
        asked=_number(_ASKED, text),
        prompt=prompt if prompt is not None else _number(_PROMPT, text),
    )


def validation_problems(body: object) -> list[tuple[str, str]]:
    """(where, what) of each problem in a FastAPI request-validation body, `{"detail": [...]}`
    (or `{"detail": "text"}`): the SDK's message is only "Error code: 500" for those."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return [("", detail)]
    problems = []
    for item in detail if isinstance(detail, list) else []:
        if isinstance(item, dict):
            loc = item.get("loc")
            where = ".".join(str(part) for part in loc) if isinstance(loc, list) else ""
            problems.append((where, str(item.get("msg", ""))))
    return problems


def error_text(exc: openai.APIStatusError) -> str:
    """The server's error message, credentials scrubbed before the cut so no piece of one is left."""
    message = getattr(exc, "message", "") or str(exc)
    problems = validation_problems(exc.body)
    if problems:
        message += " - " + "; ".join(f"{where}: {what}" if where else what for where, what in problems[:3])
    message = scrub_text(message)
    return message if len(message) <= 500 else message[:497] + "..."


#: a refusal said on one line is cut to this many characters
SUMMARY_LENGTH = 160
#: the SDK's prefix to a server's message: the status is said beside it already
_SDK_PREFIX = re.compile(r"^Error code: \d+ - ")
#: one of pydantic's errors as FastAPI's text quotes it (llama-cpp-python's 500 and vLLM's 400 carry
#: it in their message, LiteLLM inside its own): `'loc': ('body', 'response_format', 'type'), 'msg': "..."`
_QUOTED_PROBLEM = re.compile(r"""'loc': \(([^)]*)\), 'msg': ('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")""")


def refusal_summary(exc: openai.APIStatusError) -> str:
    """What a refusal says, on one short line for a log: the field a validation error names and
    its complaint, else the message's first line; never the body's traceback, endpoint context or
    a proxy's notes around the backend's message."""
    problems = validation_problems(exc.body)
    text = ""
    if problems:
        where, what = next((p for p in problems if "response_format" in p[0]), problems[0])
        text = f"{where}: {what}" if where else what
    else:
        message = _SDK_PREFIX.sub("", getattr(exc, "message", "") or str(exc))
        # a proxy quotes its backend's body as JSON: unescape once so its quoted errors read as pydantic wrote them
        unescaped = message.replace("\\n", "\n").replace('\\"', '"').replace("\\'", "'")
        found = next((m for m in _QUOTED_PROBLEM.finditer(unescaped) if "response_format" in m.group(1)), None)
        found = found or _QUOTED_PROBLEM.search(unescaped)
        if found:
            loc = ".".join(part.strip().strip("'\"") for part in found.group(1).split(",") if part.strip())
            text = f"{loc}: {found.group(2)[1:-1]}"
        else:
            text = next((line for line in message.splitlines() if line.strip()), "")
    text = scrub_text(" ".join(text.split()))
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 3] + "..."


def names_response_format(exc: openai.APIStatusError) -> bool:
    """The error is about `response_format`: it says so in its message, its `param` or a validation
    `loc`, whatever the status (OpenAI 400, FastAPI 422, llama-cpp-python 500)."""
    if "response_format" in (exc.param or "") or "response_format" in (getattr(exc, "message", "") or ""):
        return True
    # the `loc`, not the echoed `input` (which may be the whole request, response_format included)
    problems = validation_problems(exc.body)
    return any("response_format" in where or "response_format" in what for where, what in problems)


def transient(exc: openai.APIStatusError | openai.APIConnectionError) -> bool:
    """A failure the SDK would retry: no answer, or the status and headers its retry rule accepts."""
    response = getattr(exc, "response", None)
    if response is None:
        return True  # a connection error or a timeout
    should_retry = response.headers.get("x-should-retry")
    if should_retry in ("true", "false"):
        return should_retry == "true"
    delay = retry_after(exc)
    if delay is not None and delay > MAX_RETRY_AFTER:
        return False
    return response.status_code in (408, 409, 429) or response.status_code >= 500


def retry_after(exc: openai.APIStatusError | openai.APIConnectionError) -> float | None:
    response = getattr(exc, "response", None)
    if response is None:
        return None
    # milliseconds have no date form; a bad value (`nan`, `-5`) is as if the header were absent
    for header, unit, dates in (("retry-after-ms", 0.001, False), ("retry-after", 1.0, True)):
        delay = header_numbers.seconds(response.headers.get(header), LONGEST_RETRY_AFTER, unit=unit, dates=dates)
        if delay is not None:
            return delay
    return None


def is_content_filter(exc: openai.APIStatusError) -> bool:
    body = exc.body if isinstance(exc.body, dict) else {}
    inner = body.get("innererror")
    inner = inner if isinstance(inner, dict) else {}
    return (
        exc.code == "content_filter"
        or inner.get("code") == "ResponsibleAIPolicyViolation"
        or "content management policy" in error_text(exc).lower()
    )
