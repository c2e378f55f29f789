"""Asking the model for JSON, as the judge does: structured output where the server takes it (the
model's ladder, `simulator.llm.response_formats`), the answer read with `strict_json` and checked
against the call's schema and its own rules, and sent back once with what was wrong.

A second answer that cannot be used is a `GenerationError` naming the call (which documents, which
cluster, which attack), what was wrong and the start of the answer: the command stops before
writing anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..checks.judge import repair_request
from ..errors import GenerationError, TurnError
from ..llm.thinking import only_thinking
from ..parsing import strict_json
from ..text.clip import clip

if TYPE_CHECKING:
    from ..llm.models import OpenAIChatCompletionsModel

SYSTEM = (
    "You write test scenarios for a chat app: the users who will talk to it, what each wants, and how to "
    "tell whether the app did right. Stay faithful to the material you are given: never invent features, "
    "policies or prices it does not state. Answer with a JSON object only, no other text."
)


@dataclass
class Call:
    """One request to the model: what it is about (for messages), the prompt, and what the answer must be."""

    label: str
    prompt: str
    schema: dict[str, Any]
    schema_name: str
    #: the answer's own rules beyond the schema (a passage id that exists, ...): what is wrong, or ""
    check: Callable[[dict[str, Any]], str] | None = None
    #: completion tokens the answer is expected to take (for the cost estimate)
    expected_tokens: int = 400
    #: filled in once answered
    answer: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": self.prompt}]

    @property
    def chars(self) -> int:
        return len(SYSTEM) + len(self.prompt)


def read_answer(text: str, call: Call) -> tuple[dict[str, Any] | None, str]:
    """The answer as JSON that fits the call, or None and what was wrong. Code fences and words
    around the object are forgiven (small models add them); a repeated key is not."""
    cleaned = strict_json.without_fence(text)
    try:
        data = strict_json.loads(cleaned)
    except strict_json.NotJSON as exc:
        first, last = cleaned.find("{"), cleaned.rfind("}")
        if first < 0 or last <= first:
            return None, f"it is not JSON ({exc})"
        try:
            data = strict_json.loads(cleaned[first : last + 1])
        except strict_json.JSONError as again:
            return None, f"it is not JSON ({again})"
    except strict_json.JSONError as exc:
        return None, f"it cannot be used as JSON: {exc}"
    import jsonschema  # here: most commands never generate

    validator = jsonschema.Draft202012Validator(call.schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path)
        return None, f"{where + ': ' if where else ''}{error.message}"
    problem = call.check(data) if call.check is not None else ""
    return (None, problem) if problem else (data, "")


async def _complete(model: OpenAIChatCompletionsModel, call: Call, messages: list[dict[str, Any]]) -> str:
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": call.schema_name, "schema": call.schema, "strict": True},
    }
    try:
        reply = await model.complete(messages, response_format=response_format)
    except TurnError as exc:
        raise GenerationError(f"{call.label}: the model failed: {exc}") from None
    if reply.only_thinking:
        limit = model.max_completion_tokens or model.max_tokens
        raise GenerationError(
            f"{call.label}: {only_thinking(f'the model {model.name}', 'answer', limit, reply.thinking_cut_off)}"
        )
    return reply.content


async def ask(model: OpenAIChatCompletionsModel, call: Call) -> dict[str, Any]:
    """The model's answer to `call`, checked; one repair retry, then a `GenerationError`."""
    first = await _complete(model, call, call.messages)
    data, why = read_answer(first, call)
    if data is None:
        second = await _complete(model, call, [*call.messages, *repair_request(first, why)])
        data, again = read_answer(second, call)
        if data is None:
            raise GenerationError(
                f"{call.label}: the model's answer cannot be used, even after one repair retry: {again}; "
                f"it answered {clip(second.strip(), 300)!r}. Try a larger model, or --max-tokens if it was cut off"
            )
    call.answer = data
    return data
