"""Paired replays: a run replays a baseline run's user messages while the app answers as it did."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, EXIT_OK, main
from simulator.errors import ConfigError
from simulator.results.folder import read_results
from simulator.run.replay import ReplyMatcher
from tests.servers.openai_server import FakeOpenAIServer

APP = """\
import os
def respond(question, history, meta):
    turn = len(history) // 2
    if turn == 1 and os.environ.get("APP_CHANGED"):
        return "Your order ships next week."
    return ["Hello! How can I help?", "Your order ships tomorrow.", "You're welcome."][min(turn, 2)]
"""


def _project(tmp_path: Path, llm: FakeOpenAIServer, scripted: str = "") -> Path:
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\n"
        "target: {callback: 'app.py:respond'}\n"
        f"user: {{model: sim-user, endpoint: '{llm.openai_base_url}'}}\n"
        "simulations:\n"
        "  - {name: order, persona: jane, task: Find out when my order ships, repeat: 3, max_turns: 10}\n" + scripted
    )
    return manifest


def _user_turns(request_count: int) -> str:
    return ["Hi there", "When does order 5 ship?", "Great, thanks! ###STOP###"][min(request_count, 2)]


def _script_llm(llm: FakeOpenAIServer) -> None:
    # the user model's answer depends on how far the conversation is (its prompt grows by two messages a turn)
    llm.default = lambda request: _user_turns((len(request.messages) - 2) // 2)


def _base_run(tmp_path: Path, llm: FakeOpenAIServer) -> Path:
    """The base run (`base/`) of the scripted user's order conversations; the manifest's path."""
    _script_llm(llm)
    manifest = _project(tmp_path, llm)
    _run(tmp_path, manifest, "base")
    return manifest


def _run(tmp_path: Path, manifest: Path, out: str, *extra: str) -> list[dict]:
    assert main(["run", str(manifest), "--out", str(tmp_path / out), "--quiet", *extra]) == EXIT_OK
    return read_results(tmp_path / out / "conversations.jsonl")


def test_an_unchanged_app_replays_identically_without_calling_the_user_model(
    tmp_path: Path, llm: FakeOpenAIServer
) -> None:
    _script_llm(llm)
    manifest = _project(tmp_path, llm)
    base = _run(tmp_path, manifest, "base")
    calls = len(llm.chat_requests)
    assert calls == 9  # 3 conversations x 3 user messages
    head = _run(tmp_path, manifest, "head", "--replay", str(tmp_path / "base"))
    assert len(llm.chat_requests) == calls  # not one call more
    by_repeat = {r["meta_data"]["repeat"]: r for r in base}
    for result in head:
        before = by_repeat[result["meta_data"]["repeat"]]
        assert [t["response"] for t in result["conversation"]] == [t["response"] for t in before["conversation"]]
        assert result["meta_data"]["stop_reason"] == before["meta_data"]["stop_reason"] == "user_done"
        assert result["meta_data"]["replay"] == {
            "from": str(tmp_path / "base"),
            "identical": True,
            "llm_calls_saved": 3,
            "llm_calls_made": 0,
        }
    summary = json.loads((tmp_path / "head" / "summary.json").read_text())
    assert summary["run"]["replay"] == {
        "from": str(tmp_path / "base"),
        "conversations": 3,
        "identical": 3,
        "diverged": 0,
        "llm_calls_saved": 9,
        "llm_calls_made": 0,
        "judge_calls_saved": 0,
        "judge_calls_made": 0,
        "llm_calls_total": 0,
    }


def test_a_changed_reply_hands_over_to_the_live_user_model_from_that_history(
    tmp_path: Path, llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = _base_run(tmp_path, llm)
    calls = len(llm.chat_requests)
    monkeypatch.setenv("APP_CHANGED", "1")
    head = _run(tmp_path, manifest, "head", "--replay", str(tmp_path / "base"))
    live = llm.chat_requests[calls:]
    assert len(live) == 3  # one live message per conversation: after the changed reply
    for request in live:  # the live user model saw the replayed history, the changed reply last
        assert request.messages[-1]["content"] == "Your order ships next week."
        assert any(m["content"] == "When does order 5 ship?" for m in request.messages)
    for result in head:
        replay = result["meta_data"]["replay"]
        assert replay["identical"] is False
        assert replay["diverged_at_turn"] == 3  # the app's second reply
        assert replay["diverged_because"] == "the app's reply differs from the baseline's"
        assert (replay["llm_calls_saved"], replay["llm_calls_made"]) == (2, 1)
    summary = json.loads((tmp_path / "head" / "summary.json").read_text())
    assert summary["run"]["replay"]["diverged"] == 3 and summary["run"]["replay"]["llm_calls_made"] == 3


def test_conversations_the_baseline_lacks_and_scripted_simulations_play_as_usual(
    tmp_path: Path, llm: FakeOpenAIServer
) -> None:
    _script_llm(llm)
    scripted = "  - {name: scripted, persona: jane, task: t, turns: [hi, bye]}\n"
    manifest = _project(tmp_path, llm, scripted)
    _run(tmp_path, manifest, "base")
    # the script changed since the baseline: the new script plays, never the old one
    manifest.write_text(manifest.read_text().replace("turns: [hi, bye]", "turns: [hello, goodbye]"))
    calls = len(llm.chat_requests)
    head = _run(tmp_path, manifest, "head", "--replay", str(tmp_path / "base"), "--repeat", "4")
    scripted_result = next(r for r in head if r["meta_data"]["simulation"] == "scripted")
    assert [t["response"] for t in scripted_result["conversation"] if t["actor"] == "user"] == ["hello", "goodbye"]
    assert "replay" not in scripted_result["meta_data"]
    fourth = [r for r in head if r["meta_data"]["simulation"] == "order" and r["meta_data"]["repeat"] == 4]
    assert len(fourth) == 1 and "replay" not in fourth[0]["meta_data"]
    assert len(llm.chat_requests) - calls == 3  # only the fourth conversation called the user model


def test_reply_matching_up_to_whitespace_and_ignored_parts() -> None:
    exact = ReplyMatcher()
    assert exact.same("Order 5 ships.", "Order 5 ships.") and not exact.same("Order 5  ships.", "Order 5 ships.")
    loose = ReplyMatcher("whitespace", (r"RL-\d+", r"\d{4}-\d{2}-\d{2}"))
    assert loose.same("Label RL-5003, sent 2026-11-27.\n", "label  RL-5001, sent 2026-11-20.")
    assert not loose.same("Label RL-5003, refused.", "Label RL-5001, sent.")


def test_bad_replay_options_are_config_errors(tmp_path: Path, llm: FakeOpenAIServer, capsys) -> None:
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        ReplyMatcher("exact", ("(unclosed",))
    manifest = _project(tmp_path, llm)
    assert main(["run", str(manifest), "--out", str(tmp_path / "o"), "--replay", str(tmp_path / "nowhere")]) == (
        EXIT_CONFIG
    )
    assert "no conversations.jsonl there" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "edit",
    [
        ("Find out when my order ships", "Cancel my subscription"),
        ("persona: jane", "persona: {name: Bob, profile: A grumpy man who wants a refund}"),
    ],
    ids=["task", "persona"],
)
def test_a_simulation_whose_persona_or_task_changed_plays_live_instead_of_replaying_another_user(
    tmp_path: Path, llm: FakeOpenAIServer, edit: tuple[str, str]
) -> None:
    manifest = _base_run(tmp_path, llm)
    manifest.write_text(manifest.read_text().replace(*edit))
    calls = len(llm.chat_requests)
    head = _run(tmp_path, manifest, "head", "--replay", str(tmp_path / "base"))
    assert len(llm.chat_requests) - calls == 9  # every user message from the user model, none from the old user
    for result in head:
        replay = result["meta_data"]["replay"]
        assert replay["identical"] is False  # the app answered another user: not "unchanged"
        assert replay["diverged_at_turn"] == 0
        assert replay["diverged_because"] == "the persona or task differs from the baseline's"
        assert (replay["llm_calls_saved"], replay["llm_calls_made"]) == (0, 3)


def test_a_base_run_that_recorded_empty_persona_fields_otherwise_still_replays(
    tmp_path: Path, llm: FakeOpenAIServer
) -> None:
    """Another version may leave an empty field out of the recorded persona, or write it: the same user."""
    manifest = _base_run(tmp_path, llm)
    results = tmp_path / "base" / "conversations.jsonl"
    lines = []
    for line in results.read_text().splitlines():
        result = json.loads(line)
        recorded = result["meta_data"]["persona"]
        for field, empty in (("template", None), ("instructions", ""), ("examples", []), ("meta_data", {})):
            recorded.setdefault(field, empty)  # written empty where the running version leaves it out
        lines.append(json.dumps(result))
    results.write_text("\n".join(lines) + "\n")
    calls = len(llm.chat_requests)
    head = _run(tmp_path, manifest, "head", "--replay", str(tmp_path / "base"))
    assert len(llm.chat_requests) == calls  # every user message replayed
    assert all(r["meta_data"]["replay"]["identical"] for r in head)


def test_a_verdict_that_moved_on_the_base_runs_own_conversations_is_put_down_to_the_checks_not_the_app(
    tmp_path: Path, llm: FakeOpenAIServer
) -> None:
    manifest = _base_run(tmp_path, llm)
    # the app did not change; a check was added that its replies do not meet
    manifest.write_text(manifest.read_text().replace("max_turns: 10}", "max_turns: 10, expect: {contains: refund}}"))
    base = str(tmp_path / "base")
    main(["run", str(manifest), "--out", str(tmp_path / "head"), "--quiet", "--replay", base, "--baseline", base])
    report = (tmp_path / "head" / "report.md").read_text()
    assert "**Verdict flipped, same conversations:** order pass → fail (3/3 → 0/3)" in report
    assert "the checks judged them differently" in report and "too few conversations" not in report
