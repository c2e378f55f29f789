"""The PR comment's "What changed" at the `repeat` teams use, end to end through `entrypoint.py`:
a push run on the base branch leaves its artifact, a pull request's run replays its users.

Three simulations × `repeat: 2`, LLM-played users, and an app whose reply at turn 3 stops offering
a return label: every replayed conversation sent the base's messages and got the new reply there,
so the comment says the simulations regressed and which reply caused it, though 2/2 → 0/2 alone
is within noise. An app that samples its replies, run twice unchanged, is still called noise.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.servers.github_api import FakeGitHub, make_runtime_token
from tests.test_action import user_says
from tests.test_action_baseline import comment, run_in

MANIFEST = """\
version: 1
target: {{callback: 'app.py:respond'}}
user: {{model: sim-user, endpoint: '{endpoint}'}}
gate: {{min_pass_rate: 0}}
simulations:
  - {{name: returns-0, persona: jane, task: Return the shoes of order 55, repeat: 2, expect: {{contains: return label}}}}
  - {{name: returns-1, persona: walter, task: Return the shoes of order 56, repeat: 2, expect: {{contains: return label}}}}
  - {{name: returns-2, persona: alex, task: Return the shoes of order 57, repeat: 2, expect: {{contains: return label}}}}
"""
LABEL = "I have emailed you a prepaid return label."
APP = """\
import itertools
REPLIES = {replies!r}
NEXT = itertools.count()


def respond(question, conversation_history, meta_data):
    if "send them back" not in question:
        return "Sure, which order is it?"
    return REPLIES[next(NEXT) % len(REPLIES)]
"""
USERS = user_says("I want to return my shoes", "How do I send them back?")


def run(tmp_path: Path, gh: FakeGitHub, llm, name: str, replies: list[str], event: str, backend: int):
    gh.runtime_token = make_runtime_token(f"run-backend-{backend}", f"job-backend-{backend}")
    inputs = {"concurrency": "1", "openai-api-key": "sk-user-model-key"}
    manifest = MANIFEST.format(endpoint=llm.openai_base_url)
    result = run_in(tmp_path / name, gh, manifest, APP.format(replies=replies), event, inputs)
    assert result.code == 0, result.stdout + result.stderr
    if event == "push":
        uploaded = gh.artifacts.pop("simulation-results")
        gh.add_run_artifact("simulation-results", content=uploaded.content, branch="main")
    return result


def what_changed(gh: FakeGitHub) -> list[str]:
    text = comment(gh)
    section = text.split("### What changed since base", 1)[1].split("<details>", 1)[0]
    return [line for line in section.splitlines() if line.strip()]


def test_a_reply_changed_at_turn_3_reads_as_caused_regressions_at_repeat_2(tmp_path: Path, gh: FakeGitHub, llm) -> None:
    llm.default = USERS
    run(tmp_path, gh, llm, "push", [LABEL], "push", 1)
    calls = len(llm.chat_requests)
    pr = run(tmp_path, gh, llm, "pr", ["Please post them back to us."], "pull_request", 2)
    # the base's user messages replayed up to the changed reply; then the user model takes over (one each)
    assert len(llm.chat_requests) == calls + 6
    lines = what_changed(gh)
    assert lines[1].startswith("**Run as a whole: 📉 regressed** — 6/6 → 0/6 passed (p = 0.002)"), lines
    assert "6 pass → fail, 0 fail → pass (paired, p = 0.031)" in lines[1]
    regressed = lines[lines.index("**📉 Regressed** (3):") + 1 :][:3]
    for name, line in zip(("returns-0", "returns-1", "returns-2"), sorted(regressed), strict=True):
        assert line.startswith(f"- **{name}**: 2/2 → 0/2 passed (p = 0.333)"), line
        assert (
            "caused by the app's changed reply at turn 3: 2 of 2 conversation(s) sent the base run's messages" in line
        )
        assert "base “I have emailed you a prepaid return label.” → now “Please post them back to us.”" in line
    assert "within noise" not in "\n".join(lines)
    summary = json.loads((pr.workspace / "simulation-results" / "summary.json").read_text())
    comparison = summary["comparison"]
    assert comparison["run"]["verdict"] == "regressed" and comparison["run"]["paired"]["down"] == 6
    assert comparison["simulations"]["returns-1"]["evidence"] == "caused"
    assert comparison["simulations"]["returns-1"]["paired"]["example"]["turn"] == 3


def test_an_app_that_samples_its_replies_rerun_unchanged_is_noise(tmp_path: Path, gh: FakeGitHub, llm) -> None:
    llm.default = USERS
    sampled = [LABEL, "Post them to us, please.", "A return label is in your inbox.", "Use any parcel service."]
    run(tmp_path, gh, llm, "push", sampled, "push", 1)
    pr = run(tmp_path, gh, llm, "pr", sampled[1:] + sampled[:1], "pull_request", 2)
    lines = "\n".join(what_changed(gh))
    assert "Regressed" not in lines and "caused by" not in lines and "📉 regressed" not in lines, lines
    summary = json.loads((pr.workspace / "simulation-results" / "summary.json").read_text())
    nondeterministic = [s for s in summary["comparison"]["simulations"].values() if s.get("nondeterministic")]
    assert nondeterministic, summary["comparison"]
