"""How much structured output an endpoint takes, learnt from its answers: the ladder.

A caller (the judge) asks for `json_schema`. Servers take different forms and refuse the rest in
their own way (OpenAI and vLLM answer 400, llama-server 400 or, before it knew `json_schema`, 500,
llama-cpp-python 500 wrapping FastAPI's 422, LiteLLM its backend's refusal inside its own error;
docs/guides/local-models.md, "The judge's structured output"). An error that names `response_format`
takes the endpoint one step down, and each step keeps the schema where the server can still use it:

1. `json_schema`: `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`;
2. `json_object+schema`: `{"type": "json_object", "schema": {...}}`, from which llama-cpp-python
   (and llama-server) build a grammar;
3. `json_object`: any JSON object; the schema is written into the prompt;
4. `prompt`: no `response_format`; the schema is written into the prompt.

The step is remembered for the model, so every conversation using it shares it, and taken once,
however many conversations learn it at the same time. Below a schema-holding step the answer may
not fit the schema: the caller validates it (the judge asks once more, saying what was wrong).
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..aio.event_loops import PerLoop
from ..text import known_secrets
from .errors import refusal_summary

if TYPE_CHECKING:
    import openai

log = known_secrets.scrub_logs(logging.getLogger("simulator.llm.models"))

JSON_SCHEMA = "json_schema"
JSON_OBJECT_SCHEMA = "json_object+schema"
JSON_OBJECT = "json_object"
PROMPT = "prompt"
#: the steps, from the most to the least the server does; an endpoint that refuses one gets the next
LADDER: tuple[str, ...] = (JSON_SCHEMA, JSON_OBJECT_SCHEMA, JSON_OBJECT, PROMPT)
#: steps at which nothing holds the answer to the schema: the prompt carries it
SCHEMA_IN_PROMPT = frozenset({JSON_OBJECT, PROMPT})
#: how a warning names what was refused
REFUSED = {
    JSON_SCHEMA: "response_format json_schema",
    JSON_OBJECT_SCHEMA: "response_format json_object with a schema",
    JSON_OBJECT: "response_format json_object",
}
#: how a warning names what a step sends from now on
SENDS = {
    JSON_SCHEMA: "response_format json_schema",
    JSON_OBJECT_SCHEMA: "response_format json_object with the schema",
    JSON_OBJECT: "response_format json_object, the schema in the prompt,",
    PROMPT: "no response_format, the schema in the prompt,",
}
#: what the prompt says at a step that does not hold the answer to the schema
SCHEMA_NOTE = "Reply with only a JSON object that follows this JSON Schema:\n{schema}"


def step_of(response_format: Any) -> str | None:
    """The step `response_format` is on the ladder; None for one the ladder leaves alone
    (none, `text`, another type)."""
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        return JSON_SCHEMA
    if kind == "json_object":
        return JSON_OBJECT_SCHEMA if isinstance(response_format.get("schema"), dict) else JSON_OBJECT
    return None


def schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON Schema `response_format` carries, wherever its step puts it."""
    step = step_of(response_format)
    found: Any = None
    if step == JSON_SCHEMA:
        inner = response_format.get("json_schema")
        found = inner.get("schema") if isinstance(inner, dict) else None
    elif step == JSON_OBJECT_SCHEMA:
        found = response_format["schema"]
    return found if isinstance(found, dict) else None


@dataclass(frozen=True)
class Ask:
    """What one request carries for the structured output its caller wants, at the endpoint's step."""

    #: the ladder's step; None when the caller wants nothing the ladder knows (sent as given)
    step: str | None
    response_format: dict[str, Any] | None
    #: the schema the prompt must carry, because the server will not hold the answer to it
    schema_in_prompt: dict[str, Any] | None = None

    def messages(self, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`messages` with the schema written into the last user message when the step asks for it
        (a message of its own when the last is not a user's text: chat templates take that anywhere)."""
        if self.schema_in_prompt is None:
            return messages
        note = SCHEMA_NOTE.format(schema=json.dumps(self.schema_in_prompt))
        last = messages[-1] if messages else None
        if isinstance(last, dict) and last.get("role") == "user" and isinstance(last.get("content"), str):
            return [*messages[:-1], {**last, "content": f"{last['content']}\n\n{note}"}]
        return [*messages, {"role": "user", "content": note}]


class FormatNegotiation:
    """One endpoint's structured-output support, learnt from its answers."""

    def __init__(self) -> None:
        self._step = 0  # the first step of LADDER still worth sending
        self._accepted: set[str] = set()  # steps the endpoint answered
        self._probes: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)

    def ask(self, wanted: dict[str, Any] | None) -> Ask:
        """What to send for `wanted`, after the steps down this endpoint needed."""
        start = step_of(wanted)
        if start is None:
            return Ask(None, wanted)
        step = LADDER[max(LADDER.index(start), self._step)]
        schema = schema_of(wanted)
        sent: dict[str, Any] | None
        if step == start:
            sent = wanted
        elif step == JSON_OBJECT_SCHEMA and schema is not None:
            sent = {"type": "json_object", "schema": schema}
        elif step in (JSON_OBJECT_SCHEMA, JSON_OBJECT):
            sent = {"type": "json_object"}
        else:
            sent = None
        return Ask(step, sent, schema if step in SCHEMA_IN_PROMPT else None)

    def unsettled(self, ask: Ask) -> bool:
        """True while nobody knows whether this endpoint takes what `ask` sends: the request is a probe."""
        return ask.step is not None and ask.response_format is not None and ask.step not in self._accepted

    def probe_lock(self) -> asyncio.Lock:
        """One probe at a time: conversations judged concurrently wait for what the first learns."""
        return self._probes.get()

    def accepted(self, ask: Ask) -> None:
        if ask.step is not None and ask.response_format is not None:
            self._accepted.add(ask.step)

    def step_down(self, ask: Ask, exc: openai.APIStatusError, who: str) -> None:
        """The endpoint refused what `ask` sent: from now on send the next step. Said once, on one line."""
        assert ask.step is not None
        step = LADDER.index(ask.step) + 1
        if step <= self._step:
            return
        self._step = step
        log.warning(
            "%s refused %s (HTTP %s: %s); sending %s from now on",
            " ".join(who.split()),
            REFUSED[ask.step],
            exc.status_code,
            refusal_summary(exc),
            SENDS[LADDER[step]],
        )
