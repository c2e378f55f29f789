"""The compiled schema predicate accepts exactly what jsonschema accepts.

Only its True is trusted (jsonschema explains every False), so a wrong True would let an invalid
manifest through: each keyword is compared with jsonschema, and the shipped schemas on generated
documents.
"""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest
from hypothesis import given

from simulator.parsing.schema_check import load_schema
from simulator.parsing.schema_fast import compile_schema
from tests.test_hostile_input import SETTINGS, VALID_MANIFEST, VALID_PERSONA, mutated, structures


def agrees(schema: dict[str, Any], document: Any) -> None:
    quick = compile_schema(schema)
    assert quick is not None
    assert quick(document) == jsonschema.Draft202012Validator(schema).is_valid(document)


@SETTINGS
@given(document=mutated(VALID_MANIFEST))
def test_the_compiled_manifest_schema_agrees_with_jsonschema(document: Any) -> None:
    agrees(load_schema("manifest"), document)


@SETTINGS
@given(document=mutated(VALID_PERSONA) | structures())
def test_the_compiled_persona_schema_agrees_with_jsonschema(document: Any) -> None:
    agrees(load_schema("persona"), document)


VALID_RESULT: dict[str, Any] = {
    "conversation_id": "c-1",
    "conversation": [
        {
            "turn_number": 0,
            "response": "Hi",
            "actor": "user",
            "request": {"scripted_turn": 0},
            "full_json_response": {"scripted": True},
            "latency_ms": 0.1,
            "usage": None,
            "error": None,
        },
        {
            "turn_number": 1,
            "response": "Hello!",
            "actor": "assistant",
            "request": {"method": "POST", "url": "http://app/score"},
            "full_json_response": {"status": 200, "body": {"answer": "Hello!"}},
            "latency_ms": 21.5,
            "connect_ms": 0.4,
            "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "reasoning_tokens": 0},
            "error": None,
        },
    ],
    "meta_data": {
        "persona": {"name": "Jane", "profile": "p", "tone": "t", "meta_data": {}},
        "task": "t",
        "stop_reason": "user_done",
        "is_error": False,
        "error": None,
        "turn_count": 2,
        "max_conversation_turns": 6,
        "usage": {
            "user": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
            "assistant": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "reasoning_tokens": 0},
            "total": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
        },
        "latency_ms": {"per_turn": [0.1, 21.5], "app_p50": 21.5},
        "replay": {
            "from": "base",
            "identical": False,
            "diverged_at_turn": 1,
            "llm_calls_saved": 1,
            "llm_calls_made": 0,
        },
    },
}


@SETTINGS
@given(result=mutated(VALID_RESULT))
def test_the_compiled_result_schema_agrees_with_jsonschema(result: Any) -> None:
    """Result lines are read through the predicate (reports, check, merge, resume)."""
    agrees(load_schema("conversation_result"), result)


@SETTINGS
@given(target=mutated(VALID_MANIFEST["target"]))
def test_the_compiled_target_definition_agrees_with_jsonschema(target: Any) -> None:
    schema = load_schema("manifest")
    agrees({"$defs": schema["$defs"], "$ref": "#/$defs/target"}, target)


@pytest.mark.parametrize(
    ("schema", "valid", "invalid"),
    [
        ({"const": 1}, [1, 1.0], [True, "1", [1]]),
        ({"enum": [False, [1], {"a": 1}]}, [False, [1.0], {"a": 1}], [0, [True], {"a": True}]),
        ({"type": "integer"}, [1, 2.0, -3], [True, 1.5, "1"]),
        ({"type": "number", "exclusiveMinimum": 0, "maximum": 2}, [0.5, 2], [0, 2.5, True, "x"]),
        ({"type": ["string", "null"], "minLength": 2, "pattern": "^a"}, ["ab", None], ["a", "ba", 1]),
        ({"oneOf": [{"type": "string"}, {"minLength": 1}]}, [1, []], ["x"]),
        (
            {"type": "object", "minProperties": 1, "additionalProperties": {"type": "integer"}},
            [{"a": 1}],
            [{}, {"a": "x"}],
        ),
    ],
)
def test_keywords_mean_what_jsonschema_means(schema: dict[str, Any], valid: list[Any], invalid: list[Any]) -> None:
    for document in valid + invalid:
        agrees(schema, document)
    quick = compile_schema(schema)
    assert quick is not None and all(quick(d) for d in valid) and not any(quick(d) for d in invalid)


def test_schemas_with_other_keywords_are_left_to_jsonschema() -> None:
    assert compile_schema({"type": "array", "uniqueItems": True}) is None
    assert compile_schema({"$ref": "https://example.com/schema"}) is None
    assert compile_schema({"patternProperties": {"^a": {}}}) is None
