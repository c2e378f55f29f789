"""The record types (simulator.records) say what a run really writes: every required key is there, and no
key is written that they do not declare."""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import simulator
from simulator import records
from simulator.results.folder import read_results
from tests.test_runner import project, run

SIMULATIONS = """\
  - {name: alpha, persona: jane, task: t, turns: [one, two], repeat: 2, max_turns: 4, expect: {contains: answer}}
  - {name: beta, persona: walter, task: t, turns: [hello, "explode please"], max_turns: 4, expect: {no_errors: true}}
  - {name: gamma, persona: priya, task: t, turns: [x], max_turns: 4, expect: {contains: "never said"}}
"""


def _is_typeddict(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__required_keys__")


def _check(value: Any, tp: Any, where: str) -> None:
    """Raise AssertionError where `value` does not have the shape of `tp`."""
    if tp is Any:
        return
    if _is_typeddict(tp):
        assert isinstance(value, dict), f"{where}: {type(value).__name__}, not an object"
        missing = tp.__required_keys__ - value.keys()
        assert not missing, f"{where}: {tp.__name__} is missing {sorted(missing)}"
        unknown = value.keys() - tp.__required_keys__ - tp.__optional_keys__
        assert not unknown, f"{where}: {tp.__name__} does not declare {sorted(unknown)}"
        hints = get_type_hints(tp)
        for key, item in value.items():
            _check(item, hints[key], f"{where}.{key}")
        return
    origin = get_origin(tp)
    if origin in (Union, types.UnionType):
        problems = []
        for option in get_args(tp):
            try:
                _check(value, option, where)
                return
            except AssertionError as exc:
                problems.append(str(exc))
        raise AssertionError(" / ".join(problems))
    if tp is type(None):
        assert value is None, f"{where}: {value!r}, not null"
    elif origin is list:
        assert isinstance(value, list), f"{where}: {type(value).__name__}, not a list"
        for i, item in enumerate(value):
            _check(item, get_args(tp)[0], f"{where}[{i}]")
    elif origin is dict:
        assert isinstance(value, dict), f"{where}: {type(value).__name__}, not an object"
        for key, item in value.items():
            _check(item, get_args(tp)[1], f"{where}.{key}")
    elif tp is float:
        assert isinstance(value, (int, float)) and not isinstance(value, bool), f"{where}: {value!r}, not a number"
    elif tp is int:
        assert isinstance(value, int) and not isinstance(value, bool), f"{where}: {value!r}, not an integer"
    elif tp in (str, bool):
        assert isinstance(value, tp), f"{where}: {value!r}, not {tp.__name__}"


def test_what_a_run_writes_has_the_shape_of_the_record_types(tmp_path: Path) -> None:
    outcome = run(project(tmp_path, SIMULATIONS), tmp_path / "out", concurrency=2)
    out = tmp_path / "out"
    results = read_results(out / "conversations.jsonl")
    assert len(results) == 4
    statuses = {(r.get("evaluation") or {}).get("status") for r in results}
    assert statuses == {"pass", "fail"}, statuses
    assert any(r["meta_data"].get("error") for r in results), "one conversation ends in an app error"
    for result in results:
        _check(result, records.ConversationResult, "result")
    summary = json.loads((out / "summary.json").read_text())
    assert summary == outcome.summary
    _check(summary, records.Summary, "summary")
    _check(json.loads((out / "plan.json").read_text()), records.PlanRecord, "plan")


def test_a_bare_simulator_result_has_the_shape_of_a_conversation_result() -> None:
    async def respond(question: str, history: list[dict[str, str]], meta: dict[str, Any]) -> str:
        return f"you said {question}"

    sim = simulator.Simulator(simulate_callback=respond, userConnection=simulator.ScriptedUser(["hi", "bye"]))
    result = sim.simulate("jane", "say hi", max_conversation_turns=4)
    _check(result, records.ConversationResult, "result")
    assert "evaluation" not in result


def test_the_checker_finds_a_missing_and_an_undeclared_key() -> None:
    usage = {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3, "reasoning_tokens": 0}
    _check(usage, records.Usage, "usage")
    for wrong in ({"prompt_tokens": 1, "completion_tokens": 2}, {**usage, "cost": 1}, {**usage, "total_tokens": "3"}):
        try:
            _check(wrong, records.Usage, "usage")
        except AssertionError:
            continue
        raise AssertionError(f"{wrong} passed as Usage")


def test_the_record_types_are_exported_for_library_users() -> None:
    for name in ("ConversationResult", "Turn", "MetaData", "Evaluation", "CheckOutcome", "Summary", "PlanRecord"):
        assert getattr(simulator, name) is getattr(records, name)
        assert name in simulator.__all__
    assert typing.is_typeddict(simulator.ConversationResult)
