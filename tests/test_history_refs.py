"""Recorded requests refer to the turns they repeat, and expand back to the very request recorded."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import expand_request
from simulator.records.history_refs import compact_request, expand_value, history_messages, promptflow_pairs


def turns_of(*texts: str, error_at: int | None = None) -> list[dict[str, Any]]:
    """Recorded turns, user first, alternating; `error_at` marks a failed turn."""
    turns = []
    for number, text in enumerate(texts):
        failed = number == error_at
        turns.append(
            {
                "turn_number": number,
                "actor": "user" if number % 2 == 0 else "assistant",
                "response": "" if failed else text,
                "request": None,
                "full_json_response": None,
                "error": {"reason": "app_error", "message": "down"} if failed else None,
            }
        )
    return turns


def result_of(turns: list[dict[str, Any]]) -> dict[str, Any]:
    return {"conversation_id": "c", "conversation": turns, "meta_data": {}}


TURNS = turns_of("Hi", "Hello! How can I help?", "Where is order 5?", "It ships tomorrow.")
MESSAGES = [{"role": t["actor"], "content": t["response"]} for t in TURNS]


def round_trip(request: Any, turns: list[dict[str, Any]] = TURNS) -> Any:
    original = copy.deepcopy(request)
    compact = compact_request(request, turns)
    assert request == original, "compacting must not change the request it was given"
    assert expand_value(result_of(turns), json.loads(json.dumps(compact))) == original
    return compact


def test_promptflow_chat_history_becomes_one_reference() -> None:
    body = {"question": "And order 6?", "chat_history": promptflow_pairs(MESSAGES)}
    compact = round_trip({"method": "POST", "url": "http://app/score", "body": body})
    assert compact["body"] == {"question": "And order 6?", "chat_history": {"$turns": [0, 3], "$as": "promptflow"}}


def test_openai_messages_keep_the_system_prompt_and_the_new_message_in_full() -> None:
    messages = [{"role": "system", "content": "Be brief."}, *MESSAGES, {"role": "user", "content": "And order 6?"}]
    compact = round_trip({"body": {"model": "m", "messages": messages, "stream": True}})
    assert compact["body"]["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"$turns": [0, 3]},
        {"role": "user", "content": "And order 6?"},
    ]


def test_the_user_model_sees_the_roles_swapped() -> None:
    swapped = history_messages(TURNS, "swapped")
    assert [m["role"] for m in swapped] == ["assistant", "user", "assistant", "user"]
    request = {"model": "gpt", "messages": [{"role": "system", "content": "You are Jane"}, *swapped], "max_tokens": 9}
    compact = round_trip(request)
    assert compact["messages"][1] == {"$turns": [0, 3], "$as": "swapped"}


def test_a_whole_list_and_history_inside_a_string() -> None:
    as_json = json.dumps(MESSAGES, ensure_ascii=False)
    body = {"history": MESSAGES, "prompt": f"Conversation: {as_json}\nNow: hi", "again": as_json}
    compact = round_trip({"body": body})
    assert compact["body"]["history"] == {"$turns": [0, 3]}
    assert compact["body"]["prompt"] == {"$text": ["Conversation: ", {"$turns": [0, 3]}, "\nNow: hi"]}
    assert compact["body"]["again"] == {"$text": [{"$turns": [0, 3]}]}


def test_history_as_an_item_of_a_list_and_nested_lists() -> None:
    compact = round_trip({"batches": [MESSAGES, [MESSAGES[0]]], "flat": ["x", *MESSAGES, *MESSAGES]})
    assert compact["batches"] == [[{"$turns": [0, 3]}], [MESSAGES[0]]]
    assert compact["flat"] == ["x", {"$turns": [0, 3]}, {"$turns": [0, 3]}]


def test_own_fields_named_like_a_reference_are_kept_literally() -> None:
    body = {"$turns": "mine", "nested": {"$text": [1]}, "$literal": {"a": MESSAGES}}
    compact = round_trip({"body": body})
    assert compact["body"] == {"$literal": body}


def test_a_history_that_differs_from_the_turns_is_kept_as_it_is() -> None:
    scrubbed = [dict(m) for m in MESSAGES]
    scrubbed[1]["content"] = "***"  # e.g. a credential scrubbed from what was recorded
    request = {"body": {"messages": scrubbed}}
    assert round_trip(request) == request
    assert compact_request(request, []) is request and compact_request(None, TURNS) is None


def test_failed_turns_are_no_messages() -> None:
    turns = turns_of("Hi", "", "Hello?", error_at=1)
    shown = [t for t in turns if t["error"] is None]
    request = {"conversation_history": history_messages(shown)}
    compact = compact_request(request, shown)
    assert compact == {"conversation_history": {"$turns": [0, 2]}}
    assert expand_value(result_of(turns), compact) == request


def test_expand_by_turn_number_and_bad_references() -> None:
    turns = copy.deepcopy(TURNS)
    turns[3]["request"] = compact_request({"messages": MESSAGES[:3]}, turns[:3])
    assert turns[3]["request"] == {"messages": {"$turns": [0, 2]}}
    assert expand_request(result_of(turns), 3) == {"messages": MESSAGES[:3]}
    assert expand_request(result_of(turns), turns[3]) == {"messages": MESSAGES[:3]}
    with pytest.raises(ValueError, match="no turn 9"):
        expand_request(result_of(turns), 9)
    for bad in ({"$turns": [0]}, {"$turns": [0, 1], "$as": "xml"}, {"$turns": [0, "1"]}, {"$turns": [0, 1], "x": 1}):
        with pytest.raises(ValueError, match="not a history reference"):
            expand_value(result_of(turns), {"body": bad})
    with pytest.raises(ValueError, match="conversation_result"):
        expand_request({"conversation": None}, 0)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def requests_with_history(draw: st.DrawFn) -> tuple[Any, list[dict[str, Any]]]:
    """Any JSON value, with the history's forms (and pieces of them) dropped in at random places."""
    texts = draw(st.lists(st.text(min_size=0, max_size=6), min_size=1, max_size=5))
    turns = turns_of(*texts)
    forms: list[Any] = [history_messages(turns, shape) for shape in ("messages", "swapped", "promptflow")]
    forms += [json.dumps(forms[0], ensure_ascii=False), *history_messages(turns)]

    def with_forms(node: Any) -> Any:
        if isinstance(node, list):
            items = [with_forms(v) for v in node]
            for _ in range(draw(st.integers(0, 2))):
                form = draw(st.sampled_from(forms))
                at = draw(st.integers(0, len(items)))
                items[at:at] = list(form) if isinstance(form, list) and draw(st.booleans()) else [form]
            return items
        if isinstance(node, dict):
            out = {k: with_forms(v) for k, v in node.items()}
            if draw(st.booleans()):
                out[draw(st.sampled_from(["$turns", "h", "$text", "$literal"]))] = draw(st.sampled_from(forms))
            return out
        if isinstance(node, str) and draw(st.booleans()):
            return node + forms[3] + node
        return node

    return with_forms(draw(json_values)), turns


@settings(max_examples=300, deadline=None)
@given(requests_with_history())
def test_expanding_a_compact_request_gives_the_request_back(case: tuple[Any, list[dict[str, Any]]]) -> None:
    request, turns = case
    round_trip(request, turns)
