"""Checks, the LLM judge and the gate: each kind passing and failing, arithmetic, re-checks."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from simulator import ScriptedUser, Simulator
from simulator.checks import EvaluationContext, build_checks, decide_gate, evaluate, pass_at_k, pass_hat_k
from simulator.checks.deterministic import TextCheck
from simulator.checks.gate import simulation_verdict
from simulator.cli import EXIT_GATE_FAILED, EXIT_OK, EXIT_RUN_ERRORS, main
from simulator.errors import ConfigError
from simulator.llm.models import OpenAIChatCompletionsModel
from simulator.manifest import ManifestError, load_manifest
from simulator.results.folder import read_results
from tests.callback_project import callback_project
from tests.servers.chat_app import FakeChatApp
from tests.servers.openai_server import FakeOpenAIServer, Reply


def conversation(replies: list, user: list[str] | None = None, delays: list[float] | None = None) -> dict:
    """A real conversation_result: scripted user, a callback app answering `replies` in order."""
    answers = iter(replies)
    pauses = iter(delays or [])

    def app(question, history, meta):
        time.sleep(next(pauses, 0))
        return next(answers)

    turns = user or [f"question {i}" for i in range(len(replies))]
    return Simulator(simulate_callback=app, userConnection=ScriptedUser(turns)).simulate("jane", "get a refund", 20)


def check(expect: dict, result: dict, judge=None) -> dict:
    return asyncio.run(evaluate(result, build_checks(expect), EvaluationContext(judge=judge)))


REPLIES = ["Hello! How can I help?", "Your refund of $250 is approved.", "Label RL-501 is on its way."]


@pytest.mark.parametrize(
    ("expect", "status", "evidence"),
    [
        ({"contains": "refund"}, "pass", None),
        ({"contains": ["REFUND", "label"]}, "pass", None),
        ({"contains": "voucher"}, "fail", "no app reply has 'voucher'"),
        ({"contains": {"value": "Refund", "case_sensitive": True}}, "fail", "no app reply has 'Refund'"),
        ({"contains": {"value": "refund", "in": "every"}}, "fail", "turn 1 lacks 'refund'"),
        ({"contains": {"value": "RL-501", "in": "last"}}, "pass", None),
        ({"not_contains": "sorry"}, "pass", None),
        ({"not_contains": "$250"}, "fail", "turn 3 has '$250'"),
        ({"not_contains": {"value": "$250", "in": "last"}}, "pass", None),
        ({"regex": r"RL-\d{3}"}, "pass", None),
        ({"regex": r"^Your refund"}, "pass", None),
        ({"regex": {"value": r"\bvoucher\b", "in": "any"}}, "fail", "no app reply has"),
        ({"not_regex": r"\$\d+"}, "fail", "turn 3 has"),
        ({"turns": {"min": 2, "max": 6}}, "pass", None),
        ({"turns": {"max": 4}}, "fail", "6 turns, more than 4"),
        ({"turns": {"min": 8}}, "fail", "6 turns, fewer than 8"),
        ({"stop_reason": "user_done"}, "pass", None),
        ({"stop_reason": ["max_turns", "user_gave_up"]}, "fail", "ended by user_done"),
    ],
)
def test_deterministic_checks(expect: dict, status: str, evidence: str | None) -> None:
    evaluation = check(expect, conversation(REPLIES))
    assert evaluation["status"] == status, evaluation
    (result,) = evaluation["checks"]
    assert result["status"] == status
    if evidence:
        assert evidence in result["message"]
        assert evaluation["failed"] == [result["name"]]


@pytest.mark.parametrize(
    ("expect", "message"),
    [
        ({"regex": r"RF-\d+"}, r"no app reply has 'RF-\d+'"),
        ({"not_regex": r"\$\d+"}, r"turn 3 has '\$\d+'"),
        ({"regex": {"value": r"^\w+ [A-Z]", "in": "every"}}, r"turn 1 lacks '^\w+ [A-Z]'"),
    ],
)
def test_a_pattern_is_quoted_as_written_not_escaped_again(expect: dict, message: str) -> None:
    """As the manifest and the check's name have it (`RF-\\d+`), never as a Python string (`RF-\\\\d+`)."""
    (result,) = check(expect, conversation(REPLIES))["checks"]
    quoted = message[message.index("'") :]
    assert result["message"] == message and f"{result['check']} {quoted} in " in result["name"]


def test_failing_text_check_points_at_the_turn_and_text() -> None:
    (result,) = check({"not_contains": "approved"}, conversation(REPLIES))["checks"]
    assert result["evidence"]["turn"] == 3
    assert "approved" in result["evidence"]["text"]


def test_max_latency_per_reply() -> None:
    slow = conversation(REPLIES, delays=[0, 0.25, 0])
    assert check({"max_latency_ms": 2000}, slow)["status"] == "pass"
    evaluation = check({"max_latency_ms": 150}, slow)
    (result,) = evaluation["checks"]
    assert evaluation["status"] == "fail" and result["evidence"]["turn"] == 3
    assert result["evidence"]["latency_ms"] >= 250


def test_reply_schema_on_json_replies() -> None:
    replies = [{"answer": "hi", "citations": ["doc1"]}, {"answer": "there", "citations": "doc2"}]
    schema = {"type": "object", "required": ["citations"], "properties": {"citations": {"type": "array"}}}
    evaluation = check({"reply_schema": schema}, conversation(replies))
    (result,) = evaluation["checks"]
    assert evaluation["status"] == "fail" and result["evidence"]["turn"] == 3
    assert result["evidence"]["path"] == "citations" and "is not of type 'array'" in result["message"]
    assert check({"reply_schema": schema}, conversation(replies[:1]))["status"] == "pass"


def test_errors_are_not_failures_unless_no_errors_says_so() -> None:
    def broken(question, history, meta):
        raise RuntimeError("database down")

    errored = Simulator(simulate_callback=broken, userConnection=ScriptedUser(["hi"])).simulate("jane", "t", 4)
    evaluation = check({"contains": "x"}, errored)
    assert evaluation["status"] == "error" and "database down" in evaluation["errors"][0]
    evaluation = check({"contains": "x", "no_errors": True}, errored)
    assert evaluation["status"] == "fail" and evaluation["failed"] == ["no app errors"]
    assert "database down" in evaluation["checks"][0]["message"]


def test_text_check_config_errors() -> None:
    with pytest.raises(ConfigError, match="invalid regular expression"):
        build_checks({"regex": "(unclosed"})
    with pytest.raises(ConfigError, match="min .* greater than max"):
        build_checks({"turns": {"min": 5, "max": 2}})
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        build_checks({"reply_schema": {"type": "nope"}})
    with pytest.raises(ConfigError, match="use 'every'"):
        build_checks({"not_contains": {"value": "x", "in": "any"}})


# --- the judge -------------------------------------------------------------------------------


def judge_model(server: FakeOpenAIServer) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(endpoint_url=server.openai_base_url, name="judge-model", max_retries=0)


def test_goal_completed_verdicts(llm: FakeOpenAIServer) -> None:
    llm.script(
        '{"verdict": "pass", "reason": "Turn 3 confirms the refund."}',
        '```json\n{"verdict": "fail", "reason": "Only promised."}\n```',
    )
    result = conversation(REPLIES)
    passed = check({"goal_completed": True}, result, judge_model(llm))
    assert passed["status"] == "pass"
    assert passed["checks"][0]["evidence"]["reason"] == "Turn 3 confirms the refund."
    failed = check({"goal_completed": True}, result, judge_model(llm))
    assert failed["status"] == "fail" and failed["checks"][0]["message"] == "Only promised."
    request = llm.chat_requests[0].body
    assert request["response_format"]["type"] == "json_schema"
    prompt = request["messages"][-1]["content"]
    assert "get a refund" in prompt and "[3] ASSISTANT: Your refund of $250 is approved." in prompt
    assert "Jane" in prompt


@pytest.mark.parametrize(
    "answer",
    [
        "I think it passed.",
        '{"reason": "no verdict given"}',
        '{"verdict": "maybe", "reason": "unsure"}',
        '{"verdict": "pass"}',
        "",
    ],
)
def test_malformed_or_missing_verdicts_are_errors_never_passes(llm: FakeOpenAIServer, answer: str) -> None:
    llm.script(answer)
    evaluation = check({"goal_completed": True}, conversation(REPLIES), judge_model(llm))
    assert evaluation["status"] == "error"
    assert evaluation["checks"][0]["status"] == "error"
    assert "judge" in evaluation["errors"][0]


@pytest.mark.parametrize(
    ("expect", "answer"),
    [
        ({"goal_completed": True}, '{"verdict": "fail", "reason": "bad", "verdict": "pass"}'),
        ({"goal_completed": True}, '{"verdict": "pass", "reason": "ok", "reason": "ok"}'),
        ({"rubric": "The assistant is polite"}, '{"score": 1, "reason": "rude", "score": 5}'),
        ({"rubric": "The assistant is polite"}, '{"score": NaN, "reason": "?"}'),
        ({"rubric": "The assistant is polite"}, '{"score": 5' + "0" * 400 + ', "reason": "?"}'),
        ({"rubric": "The assistant is polite"}, '{"score": 1e400, "reason": "?"}'),
    ],
)
def test_a_judge_answer_that_repeats_a_key_or_holds_no_number_is_an_error_never_a_pass(
    llm: FakeOpenAIServer, expect: dict, answer: str
) -> None:
    llm.script(answer, answer)  # the same answer to the repair retry, if one is asked
    evaluation = check(expect, conversation(REPLIES), judge_model(llm))
    assert evaluation["status"] == "error", evaluation
    assert evaluation["checks"][0]["status"] == "error"
    assert "judge" in evaluation["errors"][0]


def test_a_judge_envelope_that_repeats_the_message_is_an_error_never_a_pass(llm: FakeOpenAIServer) -> None:
    verdict = json.dumps(json.dumps({"verdict": "fail", "reason": "bad"}))
    forged = json.dumps(json.dumps({"verdict": "pass", "reason": "good"}))
    body = (
        '{"id": "c", "object": "chat.completion", "created": 0, "model": "judge", "choices": [{"index": 0, '
        f'"finish_reason": "stop", "message": {{"role": "assistant", "content": {verdict}, "content": {forged}}}}}]}}'
    )
    llm.default = lambda request: Reply(body=body)
    evaluation = check({"goal_completed": True}, conversation(REPLIES), judge_model(llm))
    assert evaluation["status"] == "error", evaluation
    assert "repeats the key 'content'" in evaluation["errors"][0]


def test_rubric_scores_and_threshold(llm: FakeOpenAIServer) -> None:
    llm.script(
        '{"score": 5, "reason": "Polite throughout."}',
        '{"score": 3, "reason": "Curt in turn 1."}',
        '{"score": 9, "reason": "off the scale"}',
    )
    result = conversation(REPLIES)
    expect = {"rubric": [{"text": "The assistant is polite", "threshold": 4}, "The assistant cites the order"]}
    evaluation = check(expect, result, judge_model(llm))
    statuses = sorted(c["status"] for c in evaluation["checks"])
    assert statuses == ["fail", "pass"] and evaluation["status"] == "fail"
    failed = next(c for c in evaluation["checks"] if c["status"] == "fail")
    assert failed["evidence"]["score"] == 3 and "Curt in turn 1." in failed["message"]
    out_of_range = check({"rubric": "x"}, result, judge_model(llm))
    assert out_of_range["status"] == "error"


def test_judge_without_structured_output_support(llm: FakeOpenAIServer) -> None:
    llm.script(
        Reply.error(400, "'response_format' of type 'json_schema' is not supported with this model"),
        '{"verdict": "pass", "reason": "done"}',
    )
    evaluation = check({"goal_completed": True}, conversation(REPLIES), judge_model(llm))
    assert evaluation["status"] == "pass"
    first, second = (r.body["response_format"]["type"] for r in llm.chat_requests)
    assert (first, second) == ("json_schema", "json_object")  # one step down, not straight to free text


def test_judge_failing_is_a_check_error(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: Reply.error(500, "judge down")
    evaluation = check({"goal_completed": True, "contains": "refund"}, conversation(REPLIES), judge_model(llm))
    assert evaluation["status"] == "error" and "the judge failed" in evaluation["errors"][0]
    evaluation = check({"goal_completed": True, "contains": "voucher"}, conversation(REPLIES), judge_model(llm))
    assert evaluation["status"] == "fail"  # a known failure outranks a missing verdict


# --- gate arithmetic -------------------------------------------------------------------------


def test_pass_hat_k_and_pass_at_k() -> None:
    assert pass_hat_k(4, 4, 4) == 1.0
    assert pass_hat_k(4, 3, 1) == 0.75
    assert pass_hat_k(4, 3, 2) == pytest.approx(3 / 6)
    assert pass_hat_k(4, 3, 4) == 0.0
    assert pass_at_k(4, 1, 2) == pytest.approx(1 - 3 / 6)
    assert pass_at_k(4, 0, 3) == 0.0
    assert pass_hat_k(2, 1, 3) is None


def fake_results(name: str, statuses: list[str], **meta) -> list[dict]:
    return [{"meta_data": {"simulation": name, **meta}, "evaluation": {"status": s, "failed": []}} for s in statuses]


def test_simulation_verdicts_with_repeats_and_min_passes() -> None:
    flaky = simulation_verdict(fake_results("a", ["pass", "fail", "pass", "pass", "error"]))
    assert (flaky["passes"], flaky["failures"], flaky["errors"], flaky["status"]) == (3, 1, 1, "fail")
    assert flaky["pass_rate"] == 0.75 and flaky["pass_hat_k"]["2"] == 0.5 and flaky["pass_at_k"]["2"] == 1.0
    tolerant = simulation_verdict(fake_results("a", ["pass", "fail", "pass", "pass"], min_passes=3))
    assert tolerant["status"] == "pass"
    assert simulation_verdict(fake_results("a", ["error", "error"]))["status"] == "error"


def test_gate_rates_required_and_errors_apart() -> None:
    sims = {
        "a": simulation_verdict(fake_results("a", ["pass"] * 9 + ["fail"])),
        "b": simulation_verdict(fake_results("b", ["pass"] * 10)),
    }
    assert decide_gate(sims, None)["status"] == "fail"  # default: every conversation must pass
    gate = decide_gate(sims, {"min_pass_rate": 0.9})
    assert gate["status"] == "pass" and gate["pass_rate"] == 0.95
    gate = decide_gate(sims, {"min_pass_rate": 0.9, "required": ["a"]})
    assert gate["status"] == "fail" and "required simulation a failed (9/10 passed)" in gate["reasons"]
    sims["c"] = simulation_verdict(fake_results("c", ["error", "pass"]))
    gate = decide_gate(sims, {"min_pass_rate": 0.9, "max_error_rate": 0.1})
    assert gate["status"] == "pass" and gate["errors"] == 1 and gate["error_rate"] == pytest.approx(1 / 22, abs=1e-4)
    gate = decide_gate(sims, {"min_pass_rate": 0.9, "max_error_rate": 0.01})
    assert gate["status"] == "error" and gate["failures"] == 1 and "error rate" in gate["reasons"][0]
    assert gate["pass_hat_k"]["1"] == pytest.approx((0.9 + 1.0 + 1.0) / 3, abs=1e-4)


# --- through the manifest, the runner and `simulator check` ------------------------------------------


def test_manifest_expect_problems(tmp_path: Path) -> None:
    path = tmp_path / "m.yml"
    path.write_text(
        "version: 1\ntarget: {callback: 'x.py:f'}\ngate: {required: [nope]}\n"
        "defaults: {expect: {regex: '(open'}}\n"
        "simulations:\n"
        "  - {name: a, persona: jane, task: t, turns: [x], repeat: 2, min_passes: 3}\n"
        "  - {name: b, persona: jane, task: t, turns: [x], expect: {goal_completed: true, bogus: 1}}\n"
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(path, environ={})
    message = str(err.value)
    assert "expect.bogus: unknown field" in message and ":7:" in message
    path.write_text(path.read_text().replace(", bogus: 1", ""))
    with pytest.raises(ManifestError) as err:
        load_manifest(path, environ={})
    message = str(err.value)
    assert "invalid regular expression '(open'" in message and f"{path}:4:" in message
    assert "simulations[0].min_passes: 3 is more than repeat (2)" in message
    assert "gate.required[0]: no simulation is named 'nope'" in message
    assert "goal_completed and rubric need a judge model" in message


def refund_run(folder: Path, repeat: int) -> tuple[Path, Path]:
    """A passing run of `repeat` refund conversations with a callback app: its manifest and results folder."""
    manifest = callback_project(
        folder,
        "return 'Your refund is approved, label RL-1.'",
        f"  - {{name: refund, persona: jane, task: t, turns: [hi], repeat: {repeat}, expect: {{contains: refund}}}}\n",
    )
    out = folder / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet"]) == EXIT_OK
    return manifest, out


def test_gate_decides_the_exit_code_and_check_rejudges_without_calling_the_app(tmp_path: Path, capsys) -> None:
    manifest, out = refund_run(tmp_path, 3)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gate"]["status"] == "pass" and summary["simulations"]["refund"]["verdict"]["passes"] == 3
    before = (out / "conversations.jsonl").read_text()

    # tighten the checks and judge the same transcripts again: the app is not called
    (tmp_path / "app.py").write_text("def respond(q, h, m):\n    raise SystemExit('the app must not be called')\n")
    manifest.write_text(manifest.read_text().replace("expect: {contains: refund}", "expect: {contains: voucher}"))
    assert main(["check", str(out)]) == EXIT_GATE_FAILED
    err = capsys.readouterr().out
    assert "Gate: FAIL: 0 passed, 3 failed" in err
    results = read_results(out / "conversations.jsonl")
    assert [r["conversation_id"] for r in results] == [
        json.loads(line)["conversation_id"] for line in before.splitlines()
    ]
    assert all(r["evaluation"]["failed"] == ["contains 'voucher' in any reply"] for r in results)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["simulations"]["refund"]["verdict"]["failed_checks"] == {"contains 'voucher' in any reply": 3}
    assert "rechecked_at" in summary["run"]


def test_a_check_that_broke_holds_the_gate_only_until_the_next_check(tmp_path: Path, monkeypatch) -> None:
    _, out = refund_run(tmp_path, 2)

    async def broken(self, result, context):  # a check with a bug, as a later release may fix it
        raise RuntimeError("check bug")

    monkeypatch.setattr(TextCheck, "evaluate", broken)
    for _ in range(2):  # the same problem, checked twice, is listed once
        assert main(["check", str(out)]) == EXIT_RUN_ERRORS
        summary = json.loads((out / "summary.json").read_text())
        assert summary["gate"]["status"] == "error" and len(summary["run"]["check_errors"]) == 2
        assert all("check bug" in problem for problem in summary["run"]["check_errors"])
        assert "internal_errors" not in summary["run"] or summary["run"]["internal_errors"] == []
    monkeypatch.undo()
    assert main(["check", str(out)]) == EXIT_OK
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gate"]["status"] == "pass" and "check_errors" not in summary["run"]


def test_repeats_min_passes_and_required_through_the_runner(tmp_path: Path, llm: FakeOpenAIServer) -> None:
    llm.script(*(['{"verdict": "pass", "reason": "ok"}'] * 3 + ['{"verdict": "fail", "reason": "no"}'] * 1))
    with FakeChatApp() as app:
        manifest = tmp_path / "m.yml"
        manifest.write_text(
            "version: 1\n"
            f"target: {{url: '{app.url}/promptflow'}}\n"
            f"judge: {{model: judge, endpoint: '{llm.openai_base_url}'}}\n"
            "gate: {min_pass_rate: 0.7, max_error_rate: 0}\n"
            "simulations:\n"
            "  - {name: judged, persona: jane, task: t, turns: [hi], repeat: 4, min_passes: 3, required: true,\n"
            "     expect: {goal_completed: true, contains: 'you said'}}\n"
        )
        code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet", "--concurrency", "1"])
    assert code == EXIT_OK
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    verdict = summary["simulations"]["judged"]["verdict"]
    assert (verdict["passes"], verdict["failures"], verdict["status"]) == (3, 1, "pass")
    assert verdict["pass_hat_k"] == {"1": 0.75, "2": 0.5, "3": 0.25, "4": 0.0}
    assert summary["gate"]["status"] == "pass" and summary["gate"]["pass_rate"] == 0.75
    failed = [r for r in read_results(tmp_path / "out" / "conversations.jsonl") if r["evaluation"]["status"] == "fail"]
    assert failed[0]["evaluation"]["checks"][0]["evidence"]["reason"] == "no"


def test_errors_exceeding_the_gate_exit_with_the_errors_code(tmp_path: Path) -> None:
    manifest = callback_project(
        tmp_path, "raise ValueError('boom')", "  - {name: a, persona: jane, task: t, turns: [hi]}\n"
    )
    assert main(["run", str(manifest), "--out", str(tmp_path / "o1"), "--quiet"]) == EXIT_RUN_ERRORS
    manifest.write_text(manifest.read_text().replace("turns: [hi]", "turns: [hi], expect: {no_errors: true}"))
    assert main(["run", str(manifest), "--out", str(tmp_path / "o2"), "--quiet"]) == EXIT_GATE_FAILED


def test_the_manifest_schema_knows_exactly_the_registered_check_kinds() -> None:
    """A check kind is a class plus a CHECK_KINDS line; its `expect` entry in the schema must follow."""
    from simulator.checks.evaluate import CHECK_KINDS
    from simulator.parsing.schema_check import load_schema

    expect = load_schema("manifest")["$defs"]["expect"]
    assert set(expect["properties"]) == set(CHECK_KINDS)
    assert expect.get("additionalProperties") is False  # an unknown kind is a manifest error, not ignored


MERGE_MANIFEST = """\
version: 1
target: {callback: 'app.py:respond'}
defaults:
  expect: {not_contains: [Traceback], contains: "You said", max_latency_ms: 60000}
simulations:
  - {name: adds, persona: jane, task: t, turns: ["Traceback please"], expect: {not_contains: [sorry]}}
  - name: replaces
    persona: jane
    task: t
    turns: ["Traceback please"]
    expect: {not_contains: {value: [sorry], replace: true}, max_latency_ms: 1}
  - {name: inherits, persona: jane, task: t, turns: ["Traceback please"]}
"""


def test_default_text_checks_add_up_with_a_simulations_own(tmp_path: Path) -> None:
    """A safety `not_contains` set in defaults never vanishes; `replace: true` says so explicitly."""
    (tmp_path / "app.py").write_text("def respond(q, h, m):\n    return 'You said: ' + q\n")
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(MERGE_MANIFEST)
    loaded = load_manifest(manifest, environ={})
    names = {sim.name: sorted(c.name for c in sim.checks) for sim in loaded.simulations}
    assert "not_contains 'Traceback' in every reply" in names["adds"]
    assert "not_contains 'sorry' in every reply" in names["adds"]
    assert "not_contains 'Traceback' in every reply" not in names["replaces"]
    assert "not_contains 'sorry' in every reply" in names["replaces"]
    assert names["inherits"] == sorted(
        ["not_contains 'Traceback' in every reply", "contains 'You said' in any reply", "every reply within 60000 ms"]
    )
    # every other key: the simulation's value wins (one latency check, the simulation's)
    assert [n for n in names["replaces"] if "within" in n] == ["every reply within 1 ms"]
    assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_GATE_FAILED
    results = {
        r["meta_data"]["simulation"]: r["evaluation"] for r in read_results(tmp_path / "out" / "conversations.jsonl")
    }
    assert "not_contains 'Traceback' in every reply" in results["adds"]["failed"]
    assert "not_contains 'Traceback' in every reply" in results["inherits"]["failed"]
    assert "not_contains 'Traceback' in every reply" not in results["replaces"]["failed"]


REQUIRED_MANIFEST = """\
version: 1
target: {callback: 'app.py:respond'}
gate: {required: [bob-refund]}
simulations:
  - {name: jane-tent, persona: jane, task: t, turns: [hi], required: true, expect: {contains: "You said"}}
  - {name: bob-refund, persona: walter, task: t, turns: [hi], expect: {contains: "You said"}}
  - {name: ann-other, persona: priya, task: t, turns: [hi], expect: {contains: "You said"}}
"""


def test_one_resolved_set_of_required_simulations_everywhere(tmp_path: Path) -> None:
    """`gate.required` and `required: true` mean the same: one set in summary.json and the reports."""
    (tmp_path / "app.py").write_text("def respond(q, h, m):\n    return 'You said: ' + q\n")
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(REQUIRED_MANIFEST)
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet"]) == EXIT_OK
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(summary["gate"]["config"]["required"]) == ["bob-refund", "jane-tent"]
    marked = {name: sim["verdict"]["required"] for name, sim in summary["simulations"].items()}
    assert marked == {"jane-tent": True, "bob-refund": True, "ann-other": False}
    report = (out / "report.md").read_text()
    assert "jane-tent (required)" in report and "bob-refund (required)" in report
    assert "ann-other (required)" not in report


def test_a_filter_narrows_the_gate_to_what_was_selected(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("def respond(q, h, m):\n    return 'You said: ' + q\n")
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(REQUIRED_MANIFEST)
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--filter", "jane"]) == EXIT_OK
    summary = json.loads((out / "summary.json").read_text())
    assert summary["gate"]["status"] == "pass" and summary["gate"]["config"]["required"] == ["jane-tent"]
    assert summary["run"]["gate_narrowed"] == ["bob-refund"]
    assert "Not required of this run" in (out / "report.md").read_text()
    for shard in (1, 2, 3):  # each shard is judged on what it played; the merge on everything again
        assert (
            main(["run", str(manifest), "--out", str(tmp_path / f"s{shard}"), "--shard", f"{shard}/3", "--quiet"]) == 0
        )
    assert main(["merge", str(tmp_path / "merged"), *(str(tmp_path / f"s{i}") for i in (1, 2, 3))]) == EXIT_OK
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())
    assert sorted(merged["gate"]["config"]["required"]) == ["bob-refund", "jane-tent"]
