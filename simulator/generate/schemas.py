"""The JSON Schemas the model's answers must match, and the pieces every answer shares.

Written for structured output everywhere: every property required, no other properties (OpenAI's
strict mode), strings and lists bounded (llama.cpp builds a grammar from the schema, and a small
model held to a bounded grammar cannot ramble until `max_tokens` cuts its JSON in half). Optional
things are empty strings or empty lists, not missing keys.
"""

from __future__ import annotations

from typing import Any


def text(max_length: int, min_length: int = 1) -> dict[str, Any]:
    return {"type": "string", "minLength": min_length, "maxLength": max_length}


def obj(properties: dict[str, Any]) -> dict[str, Any]:
    """An object with exactly these properties."""
    return {"type": "object", "properties": properties, "required": list(properties), "additionalProperties": False}


def array(items: dict[str, Any], max_items: int, min_items: int = 0) -> dict[str, Any]:
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


FACTS = array(obj({"name": text(40), "value": text(120)}), 6)
PERSONA = obj({"name": text(60), "profile": text(600), "tone": text(200)})
STATE_CHANGE = obj({"resource": text(120, 0), "field": text(60, 0), "value": text(80, 0)})
EXPECT = obj(
    {
        "contains": array(text(60), 3),
        "not_contains": array(text(60), 3),
        "rubric": text(300),
        "state_change": STATE_CHANGE,
    }
)
#: what the prompt asks for in each task, after its own fields
TASK_FIELDS = {"task": text(400), "facts": FACTS, "persona": PERSONA, "expect": EXPECT}

#: how the prompt explains the shared fields
FIELDS_TEXT = """\
- "task": the user's goal in one or two sentences, as they would pursue it (e.g. "Return the unworn \
boots from order 5 and get the refund"), with concrete details
- "facts": what the user knows and may be asked for (order numbers, product names, dates, account \
e-mail), as [{"name": ..., "value": ...}]; make up plausible values where the task needs them
- "persona": {"name", "profile", "tone"}: a realistic person (profile: who they are and their \
situation, two or three sentences; tone: how they write), fitting the description given for the task
- "expect": how to tell the app answered right, per the material: "contains": up to 3 short phrases \
copied from the material that a correct answer must include (empty if none fits); "not_contains": \
phrases that would show a wrong answer (may be empty); "rubric": one sentence a judge scores the \
answer by; "state_change": when the material says the app changes something for the user (starts a \
return, cancels an order, books a slot), {"resource": where that state is read, as a short URL path \
such as "orders/5", "field": the field that changes, "value": its value afterwards}, else all three \
empty strings"""


def tasks_schema(item: dict[str, Any], count: int) -> dict[str, Any]:
    """`{"tasks": [item, ...]}` with one to `count` items."""
    return obj({"tasks": array(item, count, 1)})


def task_item(own: dict[str, Any]) -> dict[str, Any]:
    """A task with the call's own fields first (`passage`, `quote`...), then the shared ones."""
    return obj({**own, **TASK_FIELDS})
