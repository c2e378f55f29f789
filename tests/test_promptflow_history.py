"""Prompt flow history pairs under a flow's own names, and recorded requests that refer to them with
`$names`: compact, and expanded to exactly the pairs sent."""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.parsing.schema_check import load_schema
from simulator.records.history_refs import compact_request, expand_value, history_messages, promptflow_pairs

MESSAGES = [
    {"role": "user", "content": "Hi"},
    {"role": "assistant", "content": "Hello!"},
    {"role": "user", "content": "Order 5?"},
    {"role": "assistant", "content": "Shipped."},
]
TURNS = [
    {"turn_number": n, "actor": m["role"], "response": m["content"], "error": None} for n, m in enumerate(MESSAGES)
]


def test_pairs_use_the_names_given() -> None:
    assert promptflow_pairs(MESSAGES, "chat_input", "chat_output") == [
        {"inputs": {"chat_input": "Hi"}, "outputs": {"chat_output": "Hello!"}},
        {"inputs": {"chat_input": "Order 5?"}, "outputs": {"chat_output": "Shipped."}},
    ]
    assert promptflow_pairs(MESSAGES)[0] == {"inputs": {"question": "Hi"}, "outputs": {"answer": "Hello!"}}


def test_the_result_schema_describes_a_reference_with_names() -> None:
    definition = load_schema("conversation_result")["$defs"]["history_reference"]
    names = {"input": "chat_input", "output": "chat_output"}
    jsonschema.validate({"$turns": [0, 3], "$as": "promptflow", "$names": names}, definition)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"$turns": [0, 3], "$as": "promptflow", "$names": {"input": "chat_input"}}, definition)


def test_a_reference_with_bad_names_is_refused() -> None:
    result = {"conversation": TURNS}
    names = {"input": "a", "output": "b"}
    assert expand_value(result, {"$turns": [0, 1], "$as": "promptflow", "$names": names}) == [
        {"inputs": {"a": "Hi"}, "outputs": {"b": "Hello!"}}
    ]
    for bad in (
        {"$turns": [0, 1], "$names": names},
        {"$turns": [0, 1], "$as": "swapped", "$names": names},
        {"$turns": [0, 1], "$as": "promptflow", "$names": {"input": "a"}},
        {"$turns": [0, 1], "$as": "promptflow", "$names": {"input": "a", "output": 2}},
    ):
        with pytest.raises(ValueError, match="not a history reference"):
            expand_value(result, bad)


a_name = st.text(min_size=1, max_size=6)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.text(max_size=5), min_size=1, max_size=6),
    st.tuples(a_name, a_name),
    st.sampled_from(["value", "item", "nested"]),
)
def test_pairs_under_any_names_round_trip(texts: list[str], pair: tuple[str, str], where: str) -> None:
    turns = [
        {"turn_number": n, "actor": "user" if n % 2 == 0 else "assistant", "response": t, "error": None}
        for n, t in enumerate(texts)
    ]
    pairs = history_messages(turns, "promptflow", {"input": pair[0], "output": pair[1]})
    history: Any = {"value": pairs, "item": ["first", *pairs, "last"], "nested": {"x": [pairs, pairs]}}[where]
    request = {"body": {pair[0]: "new", "chat_history": history}}
    original = copy.deepcopy(request)
    compact = compact_request(request, turns)
    assert request == original
    assert expand_value({"conversation": turns}, json.loads(json.dumps(compact))) == original
    if pairs:
        assert "$turns" in json.dumps(compact)
