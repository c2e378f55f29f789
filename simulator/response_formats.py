"""How much structured output an endpoint takes: json_schema, json_object or none.

Local OpenAI-compatible servers reject what they cannot do in their own way (llama-cpp-python
answers HTTP 500 with a validation body, FastAPI 422, OpenAI 400). An error that names
`response_format` steps down to the next kind, for good: the step is remembered for the model and
taken once, however many conversations learn it at the same time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from . import known_secrets
from .event_loops import PerLoop
from .model_errors import error_text

if TYPE_CHECKING:
    import openai

log = known_secrets.scrub_logs(logging.getLogger("simulator.models"))

#: Structured output from most to least strict. A server that rejects one gets the next; the last
#: sends no `response_format` (the judge's prompt asks for JSON anyway).
RESPONSE_FORMATS: tuple[str | None, ...] = ("json_schema", "json_object", None)


class FormatNegotiation:
    """One endpoint's structured-output support, learnt from its answers."""

    def __init__(self) -> None:
        self._step = 0  # the first kind of RESPONSE_FORMATS still worth sending
        self._accepted: set[str] = set()  # kinds the endpoint answered
        self._probes: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)

    def to_send(self, wanted: dict[str, Any] | None) -> dict[str, Any] | None:
        """What to send for `wanted`, after the steps down this endpoint needed."""
        kind = wanted.get("type") if wanted is not None else None
        if wanted is None or kind not in RESPONSE_FORMATS:
            return wanted
        step = RESPONSE_FORMATS[max(RESPONSE_FORMATS.index(kind), self._step)]
        if step == kind:
            return wanted
        return None if step is None else {"type": step}

    def unsettled(self, sent: dict[str, Any] | None) -> bool:
        """True while nobody knows whether this endpoint takes `sent`: the request is a probe."""
        return sent is not None and sent.get("type") in RESPONSE_FORMATS and sent["type"] not in self._accepted

    def probe_lock(self) -> asyncio.Lock:
        """One probe at a time: conversations judged concurrently wait for what the first learns."""
        return self._probes.get()

    def accepted(self, sent: dict[str, Any] | None) -> None:
        if sent is not None and sent.get("type") in RESPONSE_FORMATS:
            self._accepted.add(sent["type"])

    def step_down(self, sent: dict[str, Any], exc: openai.APIStatusError, who: str) -> None:
        """The endpoint rejected `sent`: from now on send the next kind. Said once."""
        step = RESPONSE_FORMATS.index(sent["type"]) + 1
        if step <= self._step:
            return
        self._step = step
        instead = RESPONSE_FORMATS[step]
        log.warning(
            "%s rejects response_format %s (HTTP %s: %s); sending %s from now on",
            who,
            sent["type"],
            exc.status_code,
            error_text(exc),
            f"response_format {instead}" if instead else "no response_format",
        )
