"""`baseline: auto` end to end: `entrypoint.py` run as the runner runs it, against a fake GitHub
holding artifacts of earlier runs (helpers from tests/test_action.py).

A run on `push` to main leaves the results artifact; a pull request's run finds the newest live
one of this repository's main among expired ones, a fork's branch named main, other branches and
pages of listing, downloads it through the storage redirect without the token, and comments
what changed. Whatever stands in the way is one line in the comment, never a failed job.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import zipfile
from pathlib import Path

import pytest

from tests.servers.github_api import FakeGitHub, RunArtifact, make_runtime_token
from tests.test_action import PR, ActionRun, make_workspace, run_entrypoint
from tests.test_safe_unzip import forge_size

APP = """\
BROKEN = {broken}
FIXED = {fixed}
CALLS = []


def respond(question, conversation_history, meta_data):
    CALLS.append(question)
    if "flaky" in question:
        flaky = [q for q in CALLS if "flaky" in q]
        return "no" if len(flaky) <= {flaky_fails} else "ok"
    if "broken" in question:
        return "no, never" if BROKEN else "ok, done"
    if "fixed" in question:
        return "ok, fixed" if FIXED else "no"
    return "ok"
"""

MANIFEST = """\
version: 1
target: {callback: 'app.py:respond'}
gate: {min_pass_rate: 0.1}
simulations:
  - {name: steady, persona: jane, task: t, repeat: 4, turns: ['hello'], expect: {contains: ok}}
  - {name: broken, persona: jane, task: t, repeat: 5, turns: ['broken question', 'broken, go on'], expect: {contains: ok}}
  - {name: fixed, persona: walter, task: t, repeat: 5, turns: ['fixed question'], expect: {contains: ok}}
  - {name: flaky, persona: alex, task: t, repeat: 4, turns: ['flaky question'], expect: {contains: ok}}
"""
BASE_APP = {"broken": 0, "fixed": 0, "flaky_fails": 1}
HEAD_APP = {"broken": 1, "fixed": 1, "flaky_fails": 2}


def write_event(folder: Path, event: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{event}-event.json"
    repo = {"full_name": "octo-org/octo-repo"}
    payload = (
        {
            "pull_request": {
                "number": PR,
                "head": {"ref": "feature", "repo": repo},
                "base": {"ref": "main", "repo": repo},
            }
        }
        if event == "pull_request"
        else {"ref": "refs/heads/main"}
    )
    path.write_text(json.dumps(payload))
    return path


def run_action(
    tmp_path: Path,
    gh: FakeGitHub,
    app: dict[str, int],
    inputs: dict[str, str] | None = None,
    event: str = "pull_request",
) -> ActionRun:
    return run_in(tmp_path, gh, MANIFEST, APP.format(**app), event, {"concurrency": "1", **(inputs or {})})


def run_in(path: Path, gh: FakeGitHub, manifest: str, app: str, event: str, inputs: dict[str, str]) -> ActionRun:
    """`entrypoint.py` in a workspace under `path` holding `manifest` and the app `app`, for `event`."""
    path.mkdir(parents=True, exist_ok=True)
    workspace = make_workspace(path, manifest)
    (workspace / ".github" / "app.py").write_text(app)
    (path / "tmp").mkdir(exist_ok=True)  # the container's temporary folder: the download goes there
    env = {
        "GITHUB_EVENT_NAME": event,
        "GITHUB_EVENT_PATH": str(write_event(path / "events", event)),
        "TMPDIR": str(path / "tmp"),
    }
    if event == "pull_request":
        env["GITHUB_BASE_REF"] = "main"
    return run_entrypoint(path, workspace, gh, inputs, env)


def base_run_artifact(tmp_path: Path, gh: FakeGitHub) -> RunArtifact:
    """A push to main runs the action, which uploads the results artifact; it becomes a run artifact."""
    push = run_action(tmp_path / "push", gh, BASE_APP, event="push")
    assert push.code == 0, push.stdout + push.stderr
    assert "No baseline: not a pull request (push): nothing to compare with." in push.step_summary
    uploaded = gh.artifacts.pop("simulation-results")
    gh.runtime_token = make_runtime_token("run-backend-2", "job-backend-2")  # the next run is another run
    return gh.add_run_artifact("simulation-results", content=uploaded.content, branch="main")


def comment(gh: FakeGitHub) -> str:
    (posted,) = [c["body"] for c in gh.comments_on(PR)]
    return posted


def zip_of(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_a_pull_request_compares_with_the_newest_live_artifact_of_its_base_branch(
    tmp_path: Path, gh: FakeGitHub
) -> None:
    stale = gh.add_run_artifact("simulation-results", {"summary.json": b'{"simulations": {"stale": {}}}'})
    good = base_run_artifact(tmp_path, gh)
    for i in range(120):  # newer artifacts of other branches push the right one to the listing's second page
        gh.add_run_artifact("simulation-results", {"summary.json": b"{}"}, branch=f"feature-{i}")
    gh.add_run_artifact("other-results", {"summary.json": b"{}"})
    expired = gh.add_run_artifact("simulation-results", {"summary.json": b"{}"}, expired=True)
    fork = gh.add_run_artifact("simulation-results", {"summary.json": b'{"simulations": {}}'}, fork=True)

    run = run_action(tmp_path / "pr", gh, HEAD_APP)
    assert run.code == 0, run.stdout + run.stderr
    body = comment(gh)
    lead, folded = body.split("<details><summary>All 4 simulations", 1)
    assert f"Compared with artifact simulation-results of run {good.run_id} on main (commit {good.head_sha[:7]}" in lead
    assert "- **broken**: 5/5 → 0/5 passed (p = 0.008)" in lead and "- **fixed**: 0/5 → 5/5 passed (p = 0.008)" in lead
    assert lead.index("📉 Regressed") < lead.index("📈 Improved") and "flaky" not in lead
    assert "| flaky |" in folded and "〰️ within noise (3/4 → 2/4, p = 1.000)" in folded
    assert f"[base run]({gh.server_url}/octo-org/octo-repo/actions/runs/{good.run_id})" in body
    assert "What changed since base" in run.step_summary

    pages = [r.query.get("page", "1") for r in gh.artifact_list_requests]
    assert pages == ["1", "2"] and all(r.query["name"] == "simulation-results" for r in gh.artifact_list_requests)
    zips = [r.route for r in gh.api_requests if r.route.endswith("/zip")]
    assert zips == [f"/repos/octo-org/octo-repo/actions/artifacts/{good.id}/zip"]
    assert all(str(a.id) not in "".join(zips) for a in (stale, expired, fork))
    (download,) = gh.storage_requests
    assert download.route == str(good.id) and "authorization" not in download.headers

    html = (run.workspace / "simulation-results" / "report.html").read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert len(data["base_conversations"]) == 18 and data["baseline"]["broken"]["verdict"] == "regressed"
    assert not list((tmp_path / "pr" / "tmp").iterdir())  # the downloaded baseline is removed
    uploaded = gh.artifacts["simulation-results"].files()  # this run's artifact holds this run only
    assert set(uploaded) == {"plan.json", "conversations.jsonl", "summary.json", "report.md", "report.html"}
    assert len(uploaded["conversations.jsonl"].splitlines()) == 18


def test_without_actions_read_the_comment_says_why_and_the_run_goes_on(tmp_path: Path, gh: FakeGitHub) -> None:
    gh.add_run_artifact("simulation-results", {"summary.json": b'{"simulations": {}}'})
    gh.actions_read = False
    run = run_action(tmp_path, gh, HEAD_APP)
    assert run.code == 0, run.stdout + run.stderr
    line = (
        "No baseline: listing the artifacts: the token may not read this repository's artifacts (HTTP 403); "
        "add actions: read to the job's permissions."
    )
    assert f"> ℹ️ {line}" in comment(gh) and line in run.step_summary
    assert f"::warning title=No baseline::{line}" in run.stdout
    assert "vs base" not in comment(gh) and not gh.storage_requests
    assert run.outputs["verdict"] == "pass" and run.outputs["artifact-id"]


def test_no_base_artifact_only_a_fork_one_or_baseline_none(tmp_path: Path, gh: FakeGitHub) -> None:
    gh.add_run_artifact("simulation-results", {"summary.json": b'{"simulations": {}}'}, fork=True)
    gh.add_run_artifact("simulation-results", {"summary.json": b'{"simulations": {}}'}, branch="release")
    run = run_action(tmp_path / "auto", gh, HEAD_APP)
    assert run.code == 0, run.stdout + run.stderr
    assert (
        "> ℹ️ No baseline: no artifact simulation-results from a run on main of this repository yet (or they "
        "expired); the workflow must also run on push to main to leave one." in comment(gh)
    )
    assert not gh.storage_requests and len(gh.artifact_list_requests) == 1

    gh.reset()
    gh.comments.clear()
    gh.artifacts.clear()
    none = run_action(tmp_path / "none", gh, HEAD_APP, {"baseline": "none"})
    assert none.code == 0 and "baseline" not in comment(gh).lower() and not gh.artifact_list_requests


def test_a_folder_baseline_still_works(tmp_path: Path, gh: FakeGitHub) -> None:
    push = run_action(tmp_path / "push", gh, BASE_APP, event="push")
    gh.artifacts.clear()
    workspace = make_workspace(tmp_path / "pr", MANIFEST)
    (workspace / "base").mkdir()
    for name in ("summary.json", "conversations.jsonl"):
        (workspace / "base" / name).write_bytes((push.workspace / "simulation-results" / name).read_bytes())
    (workspace / ".github" / "app.py").write_text(APP.format(**HEAD_APP))
    env = {"GITHUB_EVENT_PATH": str(write_event(tmp_path / "events", "pull_request")), "GITHUB_BASE_REF": "main"}
    run = run_entrypoint(tmp_path / "pr", workspace, gh, {"baseline": "base", "concurrency": "1"}, env)
    assert run.code == 0, run.stdout + run.stderr
    assert "Compared with base." in comment(gh) and "- **broken**: 5/5 → 0/5 passed" in comment(gh)
    assert not gh.artifact_list_requests


@pytest.mark.parametrize(
    ("archive", "reason"),
    [
        (zip_of({"summary.json": b"{}", "../escape.txt": b"pwned"}), "member '../escape.txt' would be written outside"),
        (
            forge_size(zip_of({"summary.json": b"{}", "conversations.jsonl": b"x"}), "conversations.jsonl", 3 << 30),
            "it unpacks to 3,221,225,474 bytes, more than the 2,147,483,648 allowed",
        ),
    ],
    ids=["zip-slip", "oversized"],
)
def test_an_unsafe_archive_is_refused_with_a_line_in_the_comment(
    tmp_path: Path, gh: FakeGitHub, archive: bytes, reason: str
) -> None:
    bad = gh.add_run_artifact("simulation-results", content=archive)
    run = run_action(tmp_path, gh, HEAD_APP)
    assert run.code == 0, run.stdout + run.stderr
    line = next(line for line in comment(gh).splitlines() if line.startswith("> ℹ️ No baseline:"))
    assert f"artifact simulation-results of run {bad.run_id} on main" in line and "was refused" in line
    assert reason in line
    assert "::warning title=No baseline::" in run.stdout and "Traceback" not in run.stdout + run.stderr
    assert not list(tmp_path.rglob("escape.txt")) and not list((tmp_path / "tmp").iterdir())
    assert run.outputs["verdict"] == "pass"


def compared_in_report(results: Path) -> bool:
    """Whether report.html shows a comparison: a base run's label, verdicts or conversations."""
    html = (results / "report.html").read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.DOTALL).group(1))  # type: ignore[union-attr]
    return bool(data.get("base_conversations") or data.get("baseline_label") or data.get("baseline"))


def merge_shards(tmp_path: Path, gh: FakeGitHub, manifest: str, app: str, folders: list[Path], event: str) -> ActionRun:
    """The job that merges the shards, as sharded.yml runs it: the checkout, the shards' folders
    downloaded into the workspace, the action with `merge:`."""
    final = make_workspace(tmp_path, manifest)
    (final / ".github" / "app.py").write_text(app)
    for i, folder in enumerate(folders, 1):
        shutil.copytree(folder, final / "shards" / str(i))
    env = {"GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(write_event(tmp_path / "events", event))}
    if event == "pull_request":
        env["GITHUB_BASE_REF"] = "main"
    merge = "\n".join(f"shards/{i}" for i in range(1, len(folders) + 1))
    return run_entrypoint(tmp_path, final, gh, {"merge": merge}, env)


def test_shards_are_compared_once_by_the_merge_job_with_the_merged_artifact(tmp_path: Path, gh: FakeGitHub) -> None:
    good = base_run_artifact(tmp_path, gh)
    gh.add_run_artifact("simulation-results-shard-1", {"summary.json": b'{"simulations": {}}'})
    folders = []
    for i in (1, 2):
        shard = run_action(tmp_path / f"shard{i}", gh, HEAD_APP, {"shard": f"{i}/2", "comment": "never"})
        assert shard.code == 0, shard.stdout + shard.stderr
        # a shard fetches the merged artifact for its replay only (scripted users replay nothing)
        line = (
            f"> ℹ️ Nothing to replay from artifact simulation-results of run {good.run_id} on main (commit "
            f"{good.head_sha[:7]}, {good.created_at}): no LLM-played conversation of this shard is in it; "
            "the job that merges the shards compares."
        )
        assert line in shard.step_summary
        assert "What changed since base" not in shard.step_summary and "Compared with" not in shard.step_summary
        assert not compared_in_report(shard.workspace / "simulation-results")
        folders.append(shard.workspace / "simulation-results")
    assert [r.query["name"] for r in gh.artifact_list_requests] == ["simulation-results"] * 2
    zips = [r.route for r in gh.api_requests if r.route.endswith("/zip")]
    assert zips == [f"/repos/octo-org/octo-repo/actions/artifacts/{good.id}/zip"] * 2
    assert not gh.comments_on(PR)
    gh.runtime_token = make_runtime_token("run-backend-3", "job-backend-3")
    merged = merge_shards(tmp_path / "merge", gh, MANIFEST, APP.format(**HEAD_APP), folders, "pull_request")
    assert merged.code == 0, merged.stdout + merged.stderr
    assert f"Compared with artifact simulation-results of run {good.run_id} on main" in comment(gh)
    assert "- **broken**: 5/5 → 0/5 passed (p = 0.008)" in comment(gh)
    assert [r.query["name"] for r in gh.artifact_list_requests] == ["simulation-results"] * 3


LLM_MANIFEST = """\
version: 1
target: {{callback: 'app.py:respond'}}
user: {{model: sim-user, endpoint: '{endpoint}'}}
simulations:
  - {{name: order, persona: jane, task: Ask when order 5 ships, repeat: 2, max_turns: 6, expect: {{contains: ships}}}}
"""
LLM_APP = "def respond(question, conversation_history, meta_data):\n    return 'It ships tomorrow.'\n"


def run_llm(
    path: Path, gh: FakeGitHub, manifest: str, event: str = "pull_request", inputs: dict[str, str] | None = None
) -> ActionRun:
    """The action in a fresh workspace whose manifest has an LLM-played user (the `llm` server)."""
    assert not path.exists()
    keys = {"concurrency": "1", "openai-api-key": "sk-user-model-key", **(inputs or {})}
    return run_in(path, gh, manifest, LLM_APP, event, keys)


def ask_twice(request) -> str:
    return "When does order 5 ship?" if len(request.messages) < 4 else "Thanks! ###STOP###"


def test_a_pull_requests_run_replays_the_base_runs_users(tmp_path: Path, gh: FakeGitHub, llm) -> None:
    """With the base artifact found, the PR run plays the same user messages again: an unchanged app
    costs no user-model call and the comparison is of the app alone."""
    llm.default = ask_twice
    manifest = LLM_MANIFEST.format(endpoint=llm.openai_base_url)

    push = run_llm(tmp_path / "push", gh, manifest, "push")
    assert push.code == 0, push.stdout + push.stderr
    base_calls = len(llm.chat_requests)
    assert base_calls == 4  # 2 conversations x 2 user messages
    uploaded = gh.artifacts.pop("simulation-results")
    gh.runtime_token = make_runtime_token("run-backend-2", "job-backend-2")
    gh.add_run_artifact("simulation-results", content=uploaded.content, branch="main")

    pr = run_llm(tmp_path / "pr", gh, manifest)
    assert pr.code == 0, pr.stdout + pr.stderr
    assert len(llm.chat_requests) == base_calls  # replayed: no user-model call at all
    assert "Replaying the user messages of 2 base conversation(s)" in pr.stdout
    summary = json.loads((tmp_path / "pr" / "workspace" / "simulation-results" / "summary.json").read_text())
    assert summary["run"]["replay"]["identical"] == 2 and summary["run"]["replay"]["llm_calls_saved"] == 4

    gh.runtime_token = make_runtime_token("run-backend-3", "job-backend-3")
    live = run_llm(tmp_path / "live", gh, manifest, inputs={"replay": "false"})
    assert live.code == 0, live.stdout + live.stderr
    assert len(llm.chat_requests) == base_calls + 4  # replay: false plays every conversation live


SHARDED_LLM_MANIFEST = (
    LLM_MANIFEST
    + """\
  - {{name: parcel, persona: alex, task: Ask when order 5 ships, repeat: 2, max_turns: 6, expect: {{contains: ships}}}}
"""
)


def sharded_base_run(tmp_path: Path, gh: FakeGitHub, manifest: str) -> RunArtifact:
    """A push to main runs sharded.yml: two shards, then the merge job, whose artifact
    simulation-results becomes a run artifact of main."""
    folders = []
    for i in (1, 2):
        shard = run_llm(tmp_path / f"shard{i}", gh, manifest, "push", {"shard": f"{i}/2", "comment": "never"})
        assert shard.code == 0, shard.stdout + shard.stderr
        assert "No baseline: not a pull request (push)" in shard.step_summary
        folders.append(shard.workspace / "simulation-results")
    merged = merge_shards(tmp_path / "merge", gh, manifest, LLM_APP, folders, "push")
    assert merged.code == 0, merged.stdout + merged.stderr
    assert merged.outputs["conversations"] == "4"
    uploaded = gh.artifacts.pop("simulation-results")
    gh.artifacts.clear()
    gh.runtime_token = make_runtime_token("run-backend-2", "job-backend-2")  # the pull request's run
    return gh.add_run_artifact("simulation-results", content=uploaded.content, branch="main")


def test_pull_request_shards_replay_the_base_branchs_merged_artifact(tmp_path: Path, gh: FakeGitHub, llm) -> None:
    """Each shard fetches the merged artifact and replays its own conversations from it: an unchanged
    app costs no user-model call in any shard. No shard compares or comments; the merge job does, once."""
    llm.default = ask_twice
    manifest = SHARDED_LLM_MANIFEST.format(endpoint=llm.openai_base_url)
    base = sharded_base_run(tmp_path / "push", gh, manifest)
    base_calls = len(llm.chat_requests)
    assert base_calls == 8  # 4 conversations x 2 user messages
    gh.reset()

    folders = []
    for i in (1, 2):
        shard = run_llm(tmp_path / f"pr-shard{i}", gh, manifest, inputs={"shard": f"{i}/2", "comment": "never"})
        assert shard.code == 0, shard.stdout + shard.stderr
        results = shard.workspace / "simulation-results"
        replay = json.loads((results / "summary.json").read_text())["run"]["replay"]
        assert {k: v for k, v in replay.items() if k != "from"} == {
            "conversations": 2,
            "identical": 2,
            "diverged": 0,
            "llm_calls_saved": 4,
            "llm_calls_made": 0,
            "judge_calls_saved": 0,
            "judge_calls_made": 0,
            "llm_calls_total": 0,
        }
        line = (
            f"Replayed the users of 2 base conversation(s) of artifact simulation-results of run {base.run_id} "
            f"on main (commit {base.head_sha[:7]}, {base.created_at}): 2 identical, 0 diverged; user-model calls "
            "saved 4, made 0; the job that merges the shards compares."
        )
        assert f"> ℹ️ {line}" in shard.step_summary and line in shard.stdout
        assert "What changed since base" not in shard.step_summary and "vs base" not in shard.step_summary
        assert not compared_in_report(results)
        assert set(gh.artifacts) == {f"simulation-results-shard-{j}" for j in range(1, i + 1)}
        folders.append(results)
    assert len(llm.chat_requests) == base_calls  # no shard asked the user model anything
    assert not gh.comments_on(PR) and not gh.comment_posts
    assert [r.query["name"] for r in gh.artifact_list_requests] == ["simulation-results"] * 2
    assert [r.route for r in gh.storage_requests] == [str(base.id)] * 2

    gh.runtime_token = make_runtime_token("run-backend-2", "job-backend-3")  # the same run's merge job
    merged = merge_shards(tmp_path / "pr-merge", gh, manifest, LLM_APP, folders, "pull_request")
    assert merged.code == 0, merged.stdout + merged.stderr
    assert merged.outputs["conversations"] == "4" and len(gh.comment_posts) == 1
    body = comment(gh)
    assert f"Compared with artifact simulation-results of run {base.run_id} on main" in body
    assert "What changed since base" in merged.step_summary
    assert [r.query["name"] for r in gh.artifact_list_requests] == ["simulation-results"] * 3


def test_a_shard_with_its_own_artifact_name_replays_with_baseline_artifact(tmp_path: Path, gh: FakeGitHub, llm) -> None:
    """sharded.yml names each shard's artifact; without baseline-artifact the shard looks for that
    name on main, finds none (one line, the job goes on), and plays live; with it, it replays."""
    llm.default = ask_twice
    manifest = SHARDED_LLM_MANIFEST.format(endpoint=llm.openai_base_url)
    base = sharded_base_run(tmp_path / "push", gh, manifest)
    base_calls = len(llm.chat_requests)
    gh.reset()
    own = {"shard": "1/2", "comment": "never", "artifact-name": "results: shard/1"}

    lone = run_llm(tmp_path / "own-name", gh, manifest, inputs=own)
    assert lone.code == 0, lone.stdout + lone.stderr
    (line,) = [line for line in lone.step_summary.splitlines() if "No baseline" in line]
    assert line == (
        "> ℹ️ No baseline: no artifact results- shard-1 from a run on main of this repository yet (or they "
        "expired); the workflow must also run on push to main to leave one; a shard with an artifact-name of "
        "its own sets baseline-artifact to the merge job's artifact."
    )
    assert "::warning" not in lone.stdout and lone.outputs["verdict"] == "pass"
    assert set(gh.artifacts) == {"results- shard-1"} and not gh.storage_requests
    assert "replay" not in json.loads((lone.workspace / "simulation-results" / "summary.json").read_text())["run"]
    assert len(llm.chat_requests) == base_calls + 4  # played live

    gh.runtime_token = make_runtime_token("run-backend-3", "job-backend-3")
    named = run_llm(tmp_path / "named", gh, manifest, inputs={**own, "baseline-artifact": " simulation-results "})
    assert named.code == 0, named.stdout + named.stderr
    assert f"Replayed the users of 2 base conversation(s) of artifact simulation-results of run {base.run_id}" in (
        named.step_summary
    )
    assert len(llm.chat_requests) == base_calls + 4  # replayed: no further call
    names = [r.query["name"] for r in gh.artifact_list_requests]
    assert names == ["results- shard-1", "simulation-results"]


SHARD_TROUBLES = {
    "expired": "No baseline: no artifact simulation-results from a run on main",
    "forbidden": "add actions: read to the job's permissions",
    "damaged": "No replay: the conversations of artifact simulation-results",
    "replay-false": "No baseline: a shard is not compared on its own (the job that merges the shards compares) and "
    "replay is false.",
}


@pytest.mark.parametrize("trouble", list(SHARD_TROUBLES))
def test_a_shard_without_a_usable_base_artifact_plays_live_and_keeps_its_results(
    tmp_path: Path, gh: FakeGitHub, llm, trouble: str
) -> None:
    """Whatever keeps a shard from replaying is one line in its job summary; it plays live and uploads."""
    llm.default = ask_twice
    manifest = SHARDED_LLM_MANIFEST.format(endpoint=llm.openai_base_url)
    inputs = {"shard": "2/2", "comment": "never"}
    if trouble == "expired":
        gh.add_run_artifact("simulation-results", {"conversations.jsonl": b""}, expired=True)
    elif trouble == "forbidden":
        gh.add_run_artifact("simulation-results", {"conversations.jsonl": b""})
        gh.actions_read = False
    elif trouble == "damaged":
        gh.add_run_artifact("simulation-results", {"conversations.jsonl": b'{"conversation_id": "x"}\n'})
    else:
        gh.add_run_artifact("simulation-results", {"conversations.jsonl": b""})
        inputs["replay"] = "false"
    shard = run_llm(tmp_path / "shard", gh, manifest, inputs=inputs)
    assert shard.code == 0, shard.stdout + shard.stderr
    assert "Traceback" not in shard.stdout + shard.stderr
    (note,) = [line for line in shard.step_summary.splitlines() if line.startswith("> ℹ️")]
    assert SHARD_TROUBLES[trouble] in note
    assert shard.outputs["verdict"] == "pass" and shard.outputs["conversations"] == "2"
    assert set(gh.artifacts) == {"simulation-results-shard-2"} and len(llm.chat_requests) == 4
    assert bool(gh.artifact_list_requests) is (trouble != "replay-false")
