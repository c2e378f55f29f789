"""Path expectations on JSON (equals, contains, matches, exists, min/max, schema) and `expect.reply_json`."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from simulator import ScriptedUser, Simulator
from simulator.checks import EvaluationContext, build_checks, evaluate
from simulator.checks.expectations import PathExpectation
from simulator.errors import ConfigError, FieldErrors

ORDER = {
    "status": "refund_issued",
    "refund": {"amount": 250.0, "currency": "USD"},
    "lines": [{"sku": "tent-x4", "qty": 1}, {"sku": "stakes", "qty": 12}],
    "notes": "Refund RF-118 sent to the card on file",
    "flags": [],
    "gift": False,
}


@pytest.mark.parametrize(
    ("config", "ok", "problem"),
    [
        ({"path": "status", "equals": "refund_issued"}, True, ""),
        ({"path": "status", "equals": "delivered"}, False, 'status is "refund_issued", expected "delivered"'),
        ({"path": "refund.amount", "equals": 250}, True, ""),  # 250 equals 250.0, as JSON compares
        ({"path": "gift", "equals": 0}, False, "gift is false, expected 0"),  # false is not 0
        ({"path": "lines[*].sku", "equals": ["tent-x4", "stakes"]}, True, ""),
        ({"path": "lines[*].sku", "contains": "stakes"}, True, ""),
        ({"path": "lines[*].sku", "contains": "poles"}, False, 'expected it to contain "poles"'),
        ({"path": "notes", "contains": "RF-118"}, True, ""),
        ({"path": "refund", "contains": "currency"}, True, ""),  # an object contains its keys
        ({"path": "refund.amount", "contains": "2"}, False, "is 250.0, expected it to contain"),
        ({"path": "notes", "matches": r"RF-\d+"}, True, ""),
        ({"path": "lines[*].sku", "matches": "^st"}, True, ""),
        ({"path": "notes", "matches": r"^RF-\d+$"}, False, "which does not match '^RF-\\d+$'"),
        ({"path": "refund.amount", "matches": r"\d+"}, False, "not text to match '\\d+'"),
        ({"path": "lines[1]", "exists": True}, True, ""),
        ({"path": "lines[2]", "exists": True}, False, "lines[2] is missing"),
        ({"path": "refund.reason", "exists": False}, True, ""),
        ({"path": "refund", "exists": False}, False, "refund exists ("),
        ({"path": "refund.amount", "min": 1, "max": 500}, True, ""),
        ({"path": "refund.amount", "min": 300}, False, "refund.amount is 250.0, below the min 300"),
        ({"path": "lines[-1].qty", "max": 10}, False, "above the max 10"),
        ({"path": "status", "min": 1}, False, 'is "refund_issued", not a number'),
        ({"path": "lines", "schema": {"type": "array", "minItems": 2}}, True, ""),
        ({"path": "flags", "schema": {"type": "array", "minItems": 1}}, False, "does not match the schema"),
        ({"schema": {"required": ["status", "refund"]}}, True, ""),  # no path: the whole answer
        ({"path": "refund.id", "equals": "x"}, False, "refund.id is missing, expected it to equals"),
    ],
)
def test_path_expectations(config: dict, ok: bool, problem: str) -> None:
    verdict = PathExpectation.from_config(config, "expect").judge(ORDER)
    assert verdict.ok is ok, verdict
    assert problem in verdict.problem


def test_a_missing_path_says_what_was_there_instead() -> None:
    verdict = PathExpectation.from_config({"path": "refund.id", "exists": True}, "x").judge(ORDER)
    assert not verdict.ok and "key 'id' is missing at refund, which is an object with keys: amount, currency" in (
        verdict.missing
    )


@pytest.mark.parametrize(
    ("config", "field", "message"),
    [
        ({"path": "a..b", "equals": 1}, ("path",), "empty segment"),
        ({"path": "a[", "equals": 1}, ("path",), "cannot read it"),
        ({"path": "a"}, (), "no expectation; add one of equals, contains"),
        ({"path": "a", "equal": 1}, ("equal",), "unknown field"),
        ({"path": "a", "matches": "(open"}, ("matches",), "invalid regular expression"),
        ({"path": "a", "schema": {"type": "nothing"}}, ("schema",), "not a valid JSON Schema"),
        ({"path": "a", "min": 5, "max": 1}, ("min",), "5 is greater than max (1)"),
        ({"path": "a", "min": "5"}, ("min",), "must be a number"),
        ({"path": "a", "exists": False, "equals": 1}, ("exists",), "cannot hold together with equals"),
    ],
)
def test_expectation_config_errors_name_the_field(config: dict, field: tuple, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        PathExpectation.from_config(config, "simulations[0].expect.outcome")
    assert message in str(caught.value) and str(caught.value).startswith("simulations[0].expect.outcome")
    assert caught.value.field == field  # type: ignore[attr-defined]


# --- reply_json ---------------------------------------------------------------------------------


def conversation(replies: list[Any]) -> dict:
    """A real conversation_result: a callback app answering `replies` (dicts: raw JSON replies) in order."""
    answers = iter(replies)
    user = ScriptedUser([f"question {i}" for i in range(len(replies))])
    return Simulator(simulate_callback=lambda q, h, m: next(answers), userConnection=user).simulate("jane", "t", 20)


def judged(expect: dict, result: dict) -> dict:
    return asyncio.run(evaluate(result, build_checks(expect), EvaluationContext()))


TOOLS = [
    {"answer": "Let me look.", "tools": [{"name": "lookup_order", "args": {"id": 5}}], "citations": []},
    {"answer": "Refunded.", "tools": [{"name": "lookup_order"}, {"name": "issue_refund"}], "citations": ["policy.md"]},
    {"answer": "Anything else?", "tools": [], "citations": ["faq.md"]},
]


@pytest.mark.parametrize(
    ("expect", "status", "message"),
    [
        ({"path": "tools[*].name", "contains": "issue_refund"}, "pass", "ok"),
        ({"path": "tools[*].name", "contains": "cancel_order"}, "fail", "no reply has it; the last (turn 5)"),
        ({"path": "tools[*].name", "contains": "lookup_order", "in": "every"}, "fail", "turn 5: tools[*].name is []"),
        ({"path": "tools[0].args.id", "equals": 5, "in": "any"}, "pass", "ok"),
        ({"path": "citations[0]", "exists": True}, "pass", "ok"),
        ({"path": "citations[0]", "exists": True, "in": "every"}, "fail", "turn 1: citations[0] is missing"),
        ({"path": "citations", "schema": {"type": "array", "minItems": 1}, "in": "last"}, "pass", "ok"),
        ({"path": "tools[*].name", "contains": "issue_refund", "in": "last"}, "fail", "turn 5:"),
        ({"path": "debug", "exists": False}, "pass", "ok"),  # absent from every reply (the default scope)
        ({"path": "tools[*].args.id", "exists": True, "in": "every"}, "fail", "turn 3: tools[*].args.id is missing"),
    ],
)
def test_reply_json_on_lists_and_wildcards(expect: dict, status: str, message: str) -> None:
    evaluation = judged({"reply_json": expect}, conversation(TOOLS))
    (result,) = evaluation["checks"]
    assert (result["status"], evaluation["status"]) == (status, status), result
    assert message in result["message"]


def test_reply_json_failure_evidence_points_at_the_turn_and_the_value() -> None:
    evaluation = judged(
        {
            "reply_json": [
                {"path": "citations", "schema": {"minItems": 1}, "in": "every"},
                {"path": "answer", "exists": True},
            ]
        },
        conversation(TOOLS),
    )
    failed, passed = evaluation["checks"]
    assert evaluation["status"] == "fail" and passed["status"] == "pass"
    assert failed["evidence"]["turn"] == 1 and failed["evidence"]["found"] == []
    assert failed["evidence"]["expected"] == {"schema": {"minItems": 1}}
    assert failed["name"] == "reply_json citations matches the schema in every reply"


def test_reply_json_reads_an_http_targets_json_body() -> None:
    result = conversation(["plain text reply"])
    result["conversation"][1]["full_json_response"] = {"status": 200, "body": {"data": {"tools": ["a", "b"]}}}
    evaluation = judged({"reply_json": {"path": "data.tools", "contains": "b"}}, result)
    assert evaluation["status"] == "pass", evaluation


def test_every_bad_reply_json_item_is_named_at_once() -> None:
    with pytest.raises(FieldErrors) as caught:
        build_checks({"reply_json": [{"path": "a..b", "equals": 1}, {"path": "ok", "equals": 1}, {"path": "c"}]})
    assert [error.field for error in caught.value.errors] == [(0, "path"), (2,)]
    assert "expect.reply_json[2]: no expectation" in str(caught.value)
