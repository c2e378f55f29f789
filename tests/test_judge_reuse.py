"""A replay that gets the base run's app replies again reuses the base run's judge verdicts.

The fake OpenAI server plays both the user model and the judge; every request it receives is
counted, so "no LLM call" means no request reached it. Each judge answer names its own call
number, so a verdict taken over from the base run is told from one judged again.
"""

from __future__ import annotations

import asyncio
import json
import re
from itertools import count
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator.checks import EvaluationContext, build_checks, evaluate, judge
from simulator.checks.reuse import BaseVerdicts, config_sha
from simulator.cli import main
from simulator.llm.models import OpenAIChatCompletionsModel
from simulator.parsing.schema_check import load_schema
from simulator.results.folder import read_results
from simulator.text import known_secrets
from tests.servers.chat_app import FakeChatApp
from tests.servers.github_api import FakeGitHub, make_runtime_token
from tests.servers.openai_server import FakeOpenAIServer, RecordedRequest
from tests.test_action_baseline import PR, comment, run_in
from tests.test_replay import APP

POLITE = "{text: The assistant is polite, threshold: 4}"
REFUND = "{text: The assistant offers a refund, threshold: 3}"
JUDGE_CHECKS = 3  # per conversation: goal_completed and two rubric items


def is_judge(request: RecordedRequest) -> bool:
    return request.messages[0]["content"] == judge.JUDGE_SYSTEM


def play_user_and_judge(llm: FakeOpenAIServer) -> None:
    """The user asks when order 5 ships and thanks; the judge passes the goal, scores politeness 5
    and a refund offer 2, and says which of its calls gave the verdict."""
    calls = count(1)

    def reply(request: RecordedRequest) -> str:
        if not is_judge(request):
            turns = ["Hi there", "When does order 5 ship?", "Great, thanks! ###STOP###"]
            return turns[min((len(request.messages) - 2) // 2, 2)]
        call, prompt = next(calls), request.messages[-1]["content"]
        if "Did the user's task get done" in prompt:
            return json.dumps({"verdict": "pass", "reason": f"it ships tomorrow (judge call {call})"})
        score = 5 if "polite" in prompt else 2
        return json.dumps({"score": score, "reason": f"scored {score} (judge call {call})"})

    llm.default = reply


def project(tmp_path: Path, llm: FakeOpenAIServer) -> Path:
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\n"
        "target: {callback: 'app.py:respond'}\n"
        f"user: {{model: sim-user, endpoint: '{llm.openai_base_url}'}}\n"
        f"judge: {{model: judge-model, endpoint: '{llm.openai_base_url}'}}\n"
        "gate: {min_pass_rate: 0}\n"
        "simulations:\n"
        "  - name: order\n"
        "    persona: jane\n"
        "    task: Find out when my order ships\n"
        "    repeat: 3\n"
        "    max_turns: 10\n"
        "    expect:\n"
        "      contains: ships\n"
        "      goal_completed: true\n"
        f"      rubric: [{POLITE}, {REFUND}]\n"
    )
    return manifest


def run(tmp_path: Path, manifest: Path, out: str, *extra: str) -> list[dict]:
    main(["run", str(manifest), "--out", str(tmp_path / out), "--quiet", "--concurrency", "1", *extra])
    return sorted(read_results(tmp_path / out / "conversations.jsonl"), key=lambda r: r["meta_data"]["repeat"])


def replay(tmp_path: Path, manifest: Path) -> list[dict]:
    base = str(tmp_path / "base")
    return run(tmp_path, manifest, "head", "--replay", base, "--baseline", base)


def base_run(tmp_path: Path, llm: FakeOpenAIServer) -> tuple[Path, list[dict]]:
    play_user_and_judge(llm)
    manifest = project(tmp_path, llm)
    base = run(tmp_path, manifest, "base")
    assert len([r for r in llm.requests if is_judge(r)]) == 3 * JUDGE_CHECKS
    return manifest, base


def verdicts(result: dict) -> dict[str, tuple[str, str]]:
    return {c["name"]: (c["status"], c["message"]) for c in result["evaluation"]["checks"]}


def reused(result: dict) -> set[str]:
    return {c["name"] for c in result["evaluation"]["checks"] if c.get("reused_from_baseline")}


def replay_totals(tmp_path: Path) -> dict[str, Any]:
    totals = json.loads((tmp_path / "head" / "summary.json").read_text())["run"]["replay"]
    return {key: value for key, value in totals.items() if key != "from"}


GOAL = "goal completed (judge)"
POLITE_NAME = "rubric: The assistant is polite (>= 4)"
REFUND_NAME = "rubric: The assistant offers a refund (>= 3)"


def test_an_unchanged_app_and_manifest_cost_no_llm_call_and_keep_the_base_verdicts(
    tmp_path: Path, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, base = base_run(tmp_path, llm)
    before = len(llm.requests)
    capsys.readouterr()
    head = replay(tmp_path, manifest)
    assert len(llm.requests) == before  # neither the user model nor the judge was asked anything

    for old, new in zip(base, head, strict=True):
        assert new["meta_data"]["replay"]["identical"] is True
        assert verdicts(new) == verdicts(old)  # the same verdicts, the base's judge calls named in them
        assert new["evaluation"]["status"] == old["evaluation"]["status"] == "fail"  # the refund rubric fails
        assert reused(new) == {GOAL, POLITE_NAME, REFUND_NAME}  # the judge's; contains ran again
        for check in new["evaluation"]["checks"]:
            assert "usage" not in check["evidence"]  # no token was spent on it in this run
        assert [c["config_sha"] for c in new["evaluation"]["checks"]] == [
            c["config_sha"] for c in old["evaluation"]["checks"]
        ]
    described = load_schema("conversation_result")["$defs"]["evaluation"]["properties"]["checks"]["items"]
    assert {"config_sha", "reused_from_baseline"} <= set(described["properties"])
    assert replay_totals(tmp_path) == {
        "conversations": 3,
        "identical": 3,
        "diverged": 0,
        "llm_calls_saved": 9,
        "llm_calls_made": 0,
        "judge_calls_saved": 9,
        "judge_calls_made": 0,
        "llm_calls_total": 0,
    }
    line = "Replay: 3 conversations identical to base; 0 LLM calls; 18 saved (9 user messages replayed, 9 judge verdicts reused)"
    assert line in capsys.readouterr().out.splitlines()
    assert f"> ♻️ {line}" in (tmp_path / "head" / "report.md").read_text()


@pytest.mark.parametrize(
    ("edit", "live"),
    [
        (
            (REFUND, "{text: The assistant offers a voucher, threshold: 3}"),
            {"rubric: The assistant offers a voucher (>= 3)"},
        ),
        (
            (REFUND, "{text: The assistant offers a refund, threshold: 2}"),
            {"rubric: The assistant offers a refund (>= 2)"},
        ),
        (("model: judge-model", "model: judge-model-2"), {GOAL, POLITE_NAME, REFUND_NAME}),
    ],
    ids=["rubric-text", "threshold", "judge-model"],
)
def test_a_changed_check_or_judge_is_judged_live_and_the_others_reused(
    tmp_path: Path, llm: FakeOpenAIServer, edit: tuple[str, str], live: set[str]
) -> None:
    manifest, base = base_run(tmp_path, llm)
    manifest.write_text(manifest.read_text().replace(*edit))
    before = len(llm.requests)
    head = replay(tmp_path, manifest)
    asked = llm.requests[before:]
    assert all(is_judge(r) for r in asked)  # the users replayed: every request is the judge's
    assert len(asked) == 3 * len(live)
    for old, new in zip(base, head, strict=True):
        names = {c["name"] for c in new["evaluation"]["checks"] if c["check"] != "contains"}
        assert reused(new) == names - live
        for check in new["evaluation"]["checks"]:
            if check["name"] in live:
                assert "judge call" in check["message"] and check["message"] not in str(verdicts(old))
            elif check["name"] in reused(new):
                assert (check["status"], check["message"]) == verdicts(old)[check["name"]]
    totals = replay_totals(tmp_path)
    assert (totals["judge_calls_made"], totals["judge_calls_saved"]) == (3 * len(live), 3 * (JUDGE_CHECKS - len(live)))
    assert totals["llm_calls_total"] == 3 * len(live)


def test_a_new_judge_prompt_version_judges_again(
    tmp_path: Path, llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest, _ = base_run(tmp_path, llm)
    monkeypatch.setattr(judge, "JUDGE_PROMPT_VERSION", judge.JUDGE_PROMPT_VERSION + 1)
    before = len(llm.requests)
    head = replay(tmp_path, manifest)
    assert len(llm.requests) - before == 3 * JUDGE_CHECKS and all(is_judge(r) for r in llm.requests[before:])
    assert not any(reused(result) for result in head)


def test_conversations_that_diverged_run_every_check_live(
    tmp_path: Path, llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _ = base_run(tmp_path, llm)
    monkeypatch.setenv("APP_CHANGED", "1")  # the app's second reply differs
    before = len(llm.requests)
    capsys.readouterr()
    head = replay(tmp_path, manifest)
    asked = llm.requests[before:]
    assert len([r for r in asked if is_judge(r)]) == 3 * JUDGE_CHECKS
    assert len([r for r in asked if not is_judge(r)]) == 3  # the user model took over after the changed reply
    for result in head:
        assert result["meta_data"]["replay"]["diverged_at_turn"] == 3
        assert not reused(result)
        assert all(c["config_sha"] for c in result["evaluation"]["checks"])
    line = (
        "Replay: 0 of 3 conversations identical to base; 12 LLM calls; 6 saved "
        "(6 user messages replayed, 0 judge verdicts reused)"
    )
    assert line in capsys.readouterr().out.splitlines()


def test_a_base_run_recorded_without_fingerprints_is_judged_again(tmp_path: Path, llm: FakeOpenAIServer) -> None:
    manifest, _ = base_run(tmp_path, llm)
    results = tmp_path / "base" / "conversations.jsonl"
    lines = []
    for line in results.read_text().splitlines():
        result = json.loads(line)
        for check in result["evaluation"]["checks"]:
            del check["config_sha"]  # as a version before fingerprints wrote it
        lines.append(json.dumps(result))
    results.write_text("\n".join(lines) + "\n")
    before = len(llm.requests)
    head = replay(tmp_path, manifest)
    assert len(llm.requests) - before == 3 * JUDGE_CHECKS and all(is_judge(r) for r in llm.requests[before:])
    assert all(r["meta_data"]["replay"]["identical"] and not reused(r) for r in head)


def test_merged_shards_add_up_what_their_replays_cost(
    tmp_path: Path, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, _ = base_run(tmp_path, llm)
    before = len(llm.requests)
    for shard in ("1/2", "2/2"):
        run(tmp_path, manifest, f"shard{shard[0]}", "--replay", str(tmp_path / "base"), "--shard", shard)
    assert len(llm.requests) == before
    capsys.readouterr()
    main(["merge", str(tmp_path / "merged"), str(tmp_path / "shard1"), str(tmp_path / "shard2")])
    merged = json.loads((tmp_path / "merged" / "summary.json").read_text())["run"]["replay"]
    assert merged["conversations"] == 3 and merged["judge_calls_saved"] == 9 and merged["llm_calls_total"] == 0
    line = "Replay: 3 conversations identical to base; 0 LLM calls; 18 saved (9 user messages replayed, 9 judge verdicts reused)"
    assert line in capsys.readouterr().out.splitlines()


# --- outcome checks: the app's state is not in the transcript -------------------------------------------

NAMES = "{input: question, history: chat_history, output: answer}"


def test_an_outcome_check_asks_the_app_again_on_an_identical_replay(tmp_path: Path, llm: FakeOpenAIServer) -> None:
    """The setup seeds another price: the replies are the same, the refund's amount is not."""
    calls = count(1)

    def reply(request: RecordedRequest) -> str:
        if is_judge(request):
            return json.dumps({"verdict": "pass", "reason": f"refunded (judge call {next(calls)})"})
        return ["refund order 5", "thanks ###STOP###"][min((len(request.messages) - 2) // 2, 1)]

    llm.default = reply
    with FakeChatApp() as app:
        app.default = app.order_desk
        manifest = tmp_path / "simulations.yml"
        manifest.write_text(
            "version: 1\n"
            f"target: {{url: '{app.url}/promptflow', retry: {{attempts: 0}}, timeout: 5, promptflow: {NAMES}}}\n"
            f"user: {{model: sim-user, endpoint: '{llm.openai_base_url}'}}\n"
            f"judge: {{model: judge-model, endpoint: '{llm.openai_base_url}'}}\n"
            "simulations:\n"
            "  - name: refund\n"
            "    persona: jane\n"
            "    task: Get the refund for order 5\n"
            "    max_turns: 6\n"
            '    setup: {method: PUT, url: "{{base}}/orders/5", body: {status: delivered, price: 250}}\n'
            "    expect:\n"
            "      goal_completed: true\n"
            '      outcome: {url: "{{base}}/orders/5", path: refund.amount, equals: 250}\n'
        )
        (base,) = run(tmp_path, manifest, "base")
        assert base["evaluation"]["status"] == "pass"
        manifest.write_text(manifest.read_text().replace("price: 250", "price: 300"))
        before, reads = len(llm.requests), len([r for r in app.requests if r.method == "GET"])
        (head,) = replay(tmp_path, manifest)
        assert len(llm.requests) == before  # the user replayed, the judge's verdict reused
        assert len([r for r in app.requests if r.method == "GET"]) == reads + 1  # the outcome was asked again
    assert head["meta_data"]["replay"]["identical"] is True
    goal, outcome = head["evaluation"]["checks"]
    assert goal["reused_from_baseline"] is True and goal["message"] == base["evaluation"]["checks"][0]["message"]
    assert "reused_from_baseline" not in outcome
    assert outcome["status"] == "fail" and outcome["evidence"]["found"] == 300
    assert head["evaluation"]["status"] == "fail"


# --- the fingerprint and the verdicts a replay may take ---------------------------------------------------


def judge_at(url: str, name: str = "judge-model", **settings: Any) -> OpenAIChatCompletionsModel:
    return OpenAIChatCompletionsModel(endpoint_url=url, name=name, max_retries=0, **settings)


def sha(expect: dict[str, Any], model: OpenAIChatCompletionsModel | None = None) -> list[str]:
    return [config_sha(check, model) for check in build_checks(expect)]


def test_the_fingerprint_follows_what_decides_a_verdict_and_nothing_else(monkeypatch: pytest.MonkeyPatch) -> None:
    url = "http://127.0.0.1:9/v1"
    model = judge_at(url)
    rubric = {"rubric": [{"text": "polite", "threshold": 4}, {"text": "refund", "threshold": 3}]}
    first = sha(rubric, model)
    assert first == sha(rubric, judge_at(url)) and len(set(first)) == 2  # stable, and one per item
    assert re.fullmatch(r"[0-9a-f]{64}", first[0])
    edited = sha({"rubric": [{"text": "polite", "threshold": 4}, {"text": "refund", "threshold": 2}]}, model)
    assert edited[0] == first[0] and edited[1] != first[1]  # only the edited item moves
    for other in (
        judge_at("http://127.0.0.1:10/v1"),  # another endpoint
        judge_at(url, name="judge-model-2"),
        judge_at(url, temperature=0.7),
    ):
        assert not set(sha(rubric, other)) & set(first)
    # a password in the endpoint, the timeout and the retries are not which judge answers
    assert sha(rubric, judge_at("http://user:secret@127.0.0.1:9/v1", timeout=5)) == first
    monkeypatch.setattr(judge, "JUDGE_SYSTEM", judge.JUDGE_SYSTEM + " Be brief.")
    assert not set(sha(rubric, model)) & set(first)  # the prompt's text is part of it
    monkeypatch.undo()
    # a credential the run knows is no part of it (a digest of a weak one could be guessed back)
    known_secrets.register_all(["token-one-111", "token-two-222"])
    outcome = (
        '{{url: "http://127.0.0.1:9/orders/5", headers: {{Authorization: "Bearer {}"}}, path: status, equals: ok}}'
    )
    with_one, with_two = (
        sha({"outcome": yaml.safe_load(outcome.format(token))}) for token in ("token-one-111", "token-two-222")
    )
    assert with_one == with_two
    # a deterministic check does not depend on the judge
    assert sha({"contains": "ships"}, model) == sha({"contains": "ships"}) != sha({"contains": "shipped"})


def test_only_a_judge_verdict_with_the_same_fingerprint_is_taken_never_an_error(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: json.dumps({"verdict": "fail", "reason": "judged live"})
    model = judge_at(llm.openai_base_url)
    checks = build_checks({"goal_completed": True, "rubric": "polite", "contains": "ships"})
    goal, rubric, contains = (config_sha(check, model) for check in checks)
    base = BaseVerdicts(
        [
            {"name": "g", "status": "pass", "message": "base verdict", "config_sha": goal, "evidence": {"usage": {}}},
            {"name": "r", "status": "error", "message": "the judge failed", "config_sha": rubric},
            {"name": "c", "status": "pass", "message": "ok", "config_sha": contains},
        ]
    )
    result = {
        "conversation_id": "c",
        "conversation": [
            {"turn_number": 0, "actor": "user", "response": "hi", "request": None, "full_json_response": None},
            {"turn_number": 1, "actor": "assistant", "response": "no", "request": None, "full_json_response": None},
        ],
        "meta_data": {"persona": {"name": "Jane", "profile": "p"}, "task": "t", "stop_reason": "user_done"},
    }
    evaluation = asyncio.run(evaluate(result, checks, EvaluationContext(judge=model), base))  # type: ignore[arg-type]
    first, second, third = evaluation["checks"]
    assert first == {
        "check": "goal_completed",
        "name": "goal completed (judge)",
        "status": "pass",
        "message": "base verdict",
        "evidence": {},
        "config_sha": goal,
        "reused_from_baseline": True,
    }
    assert "reused_from_baseline" not in second  # judged live: a goal's answer is no rubric score
    assert second["status"] == "error" and "not a valid verdict" in second["message"]
    assert third["status"] == "fail" and "reused_from_baseline" not in third  # contains ran on this transcript
    # the rubric whose base verdict was an error: its answer and the one repair retry it got
    assert len(llm.chat_requests) == 2
    assert model.calls == 2


# --- the action: a pull request that changes nothing ------------------------------------------------------

ACTION_MANIFEST = """\
version: 1
target: {{callback: 'app.py:respond'}}
user: {{model: sim-user, endpoint: '{endpoint}'}}
judge: {{model: judge-model, endpoint: '{endpoint}'}}
simulations:
  - {{name: order, persona: jane, task: Ask when order 5 ships, repeat: 2, max_turns: 6, expect: {{goal_completed: true}}}}
"""
ACTION_APP = "def respond(question, conversation_history, meta_data):\n    return 'It ships tomorrow.'\n"


def test_a_pull_request_that_changes_nothing_makes_no_llm_call_and_says_so(
    tmp_path: Path, gh: FakeGitHub, llm: FakeOpenAIServer
) -> None:
    def reply(request: RecordedRequest) -> str:
        if is_judge(request):
            return json.dumps({"verdict": "pass", "reason": "it ships tomorrow"})
        return "When does order 5 ship?" if len(request.messages) < 4 else "Thanks! ###STOP###"

    llm.default = reply
    manifest = ACTION_MANIFEST.format(endpoint=llm.openai_base_url)
    inputs = {"concurrency": "1", "openai-api-key": "sk-user-model-key"}
    push = run_in(tmp_path / "push", gh, manifest, ACTION_APP, "push", inputs)
    assert push.code == 0, push.stdout + push.stderr
    assert len(llm.requests) == 2 * 2 + 2  # two user messages and one verdict per conversation
    uploaded = gh.artifacts.pop("simulation-results")
    gh.runtime_token = make_runtime_token("run-backend-2", "job-backend-2")
    gh.add_run_artifact("simulation-results", content=uploaded.content, branch="main")

    before = len(llm.requests)
    pr = run_in(tmp_path / "pr", gh, manifest, ACTION_APP, "pull_request", inputs)
    assert pr.code == 0, pr.stdout + pr.stderr
    assert len(llm.requests) == before  # the base branch's artifact replayed, its verdicts reused
    line = "Replay: 2 conversations identical to base; 0 LLM calls; 6 saved (4 user messages replayed, 2 judge verdicts reused)"
    body = comment(gh)
    assert f"> ♻️ {line}" in body and "Compared with artifact simulation-results" in body
    assert f"> ♻️ {line}" in pr.step_summary
    results = read_results(pr.workspace / "simulation-results" / "conversations.jsonl")
    assert all(r["evaluation"]["checks"][0]["reused_from_baseline"] for r in results)
    assert pr.outputs["verdict"] == "pass" and gh.comments_on(PR)
