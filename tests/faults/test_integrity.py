"""Nothing lost, nothing that reads as a pass by mistake: bad text, bugs, full disks, torn lines, resume.

Each test runs the real command (`python -m simulator ...` or `entrypoint.py`) or the real runner
against a local app, then reads what the results folder holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.checks.base import Check, CheckResult
from simulator.cli import EXIT_CONFIG, EXIT_OK, EXIT_RUN_ERRORS
from simulator.manifest import load_manifest
from simulator.results.folder import ReadNotes, read_results
from simulator.run.plan import plan_jobs
from simulator.run.runner import run_jobs
from tests.faults.harness import REPO, kill9_plan, kill9_run
from tests.servers.chat_app import AppReply, FakeChatApp
from tests.servers.github_api import FakeGitHub
from tests.test_action import make_workspace, run_entrypoint

#: an app whose reply size and delay come from the environment, so one file serves every case
APP = textwrap.dedent(
    """\
    import os, time

    def respond(question, history, meta):
        time.sleep(float(os.environ.get("APP_DELAY", "0")))
        return {"answer": "You said: " + question + " " + "x" * int(os.environ.get("APP_REPLY_BYTES", "0"))}
    """
)


def project(tmp_path: Path, simulations: str, target: str = "{callback: 'app.py:respond'}") -> Path:
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(f"version: 1\ntarget: {target}\nsimulations:\n" + textwrap.dedent(simulations))
    return manifest


def simulator(*args: str, env: dict[str, str] | None = None, timeout: float = 120, **kwargs: Any):
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        **kwargs,
    )


def keys(folder: Path) -> list[str]:
    return [
        f"{r['meta_data']['simulation']}#{r['meta_data']['repeat']}"
        for r in read_results(folder / "conversations.jsonl")
    ]


def summary_of(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "summary.json").read_text(encoding="utf-8"))


# --- text that UTF-8 cannot hold -----------------------------------------------------------------------

SURROGATE_REPLY = b'{"answer": "hello \\ud800 world"}'
SURROGATE_SIMULATIONS = """\
  - {name: surrogate-reply, persona: jane, task: Say hello, turns: [hi, again], repeat: 10, expect: {contains: hello}}
  - {name: surrogate-task, persona: walter, task: "Ask \\ud800 twice", turns: [hi]}
"""


def surrogate_app() -> FakeChatApp:
    app = FakeChatApp()
    app.default = lambda request: AppReply(body=SURROGATE_REPLY, content_type="application/json")
    return app


def test_a_lone_surrogate_from_the_app_or_the_manifest_is_replaced_with_a_note(tmp_path: Path) -> None:
    with surrogate_app() as app:
        manifest = project(tmp_path, SURROGATE_SIMULATIONS, target=f"{{url: '{app.url}/promptflow'}}")
        out = tmp_path / "out"
        proc = simulator("run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "3")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "Traceback" not in proc.stderr
    raw = (out / "conversations.jsonl").read_bytes()
    raw.decode("utf-8")  # valid UTF-8 throughout
    results = read_results(out / "conversations.jsonl")
    assert len(results) == 11
    for result in results:
        notes = [
            *result["meta_data"].get("notes", []),
            *(n for t in result["conversation"] for n in t.get("notes", [])),
        ]
        assert any("lone surrogates" in note for note in notes), result
    replies = [t["response"] for r in results for t in r["conversation"] if t["actor"] == "assistant"]
    assert replies and all(reply == "hello \ufffd world" for reply in replies)
    task = next(r for r in results if r["meta_data"]["simulation"] == "surrogate-task")["meta_data"]["task"]
    assert task == "Ask \ufffd twice"
    summary = summary_of(out)
    assert summary["gate"]["status"] == "pass" and summary["run"]["interrupted"] is False
    assert summary["run"]["planned"] == summary["run"]["finished"] == 11
    assert (out / "report.html").is_file() and (out / "report.md").is_file()


def test_a_lone_surrogate_through_the_action_still_reports_everywhere(tmp_path: Path) -> None:
    with surrogate_app() as app, FakeGitHub() as gh:
        manifest = SURROGATE_SIMULATIONS.replace("repeat: 10", "repeat: 2")
        workspace = make_workspace(
            tmp_path, f"version: 1\ntarget: {{url: '{app.url}/promptflow'}}\nsimulations:\n{manifest}"
        )
        run = run_entrypoint(tmp_path, workspace, gh, {"manifest": ".github/simulations.yml"})
        comments = gh.comments_on(7)
    assert run.code == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert run.outputs["verdict"] == "pass" and run.outputs["conversations"] == "3"
    assert "Conversation simulations: PASS" in run.step_summary
    assert len(comments) == 1 and "PASS" in comments[0]["body"]


# --- a bug inside the run ----------------------------------------------------------------------------


class BrokenCheck(Check):
    """A check with a bug, as a library user's own check kind might have."""

    kind = "broken"

    async def evaluate(self, result: dict[str, Any], context: Any) -> CheckResult:
        raise KeyError("a bug in a check")


def test_a_bug_in_a_check_never_reads_as_a_pass(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [one], repeat: 3}\n")
    loaded = load_manifest(manifest, environ={})
    loaded.simulations[0].checks.append(BrokenCheck("broken"))
    outcome = asyncio.run(run_jobs(loaded, plan_jobs(loaded), tmp_path / "out"))
    assert outcome.failed_internally and len(outcome.internal_errors) == 3
    summary = summary_of(tmp_path / "out")
    assert summary["gate"]["status"] == "error"
    assert any("internal error" in reason and "a bug in a check" in reason for reason in summary["gate"]["reasons"])
    assert len(summary["run"]["internal_errors"]) == 3
    results = read_results(tmp_path / "out" / "conversations.jsonl")
    assert len(results) == 3  # the conversations are kept, without a verdict
    assert all(r["evaluation"]["status"] == "error" for r in results)
    assert any("a bug in a check" in record.getMessage() for record in caplog.records)


# --- a full disk ----------------------------------------------------------------------------------------

BIG_SIMULATIONS = "  - {name: big, persona: jane, task: t, turns: [one], repeat: 30}\n"
BIG_REPLY = {"APP_REPLY_BYTES": "20000"}


def _file_size_limit() -> None:  # Python ignores SIGXFSZ, so a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))


@contextlib.contextmanager
def small_disk(folder: Path, kind: str) -> Iterator[dict[str, Any]]:
    """A 200 KB disk: a tmpfs (root can mount one, as in CI and the action's container), or a file size
    limit; where no tmpfs can be mounted the limit stands in, so the case still runs."""
    folder.mkdir()
    mounted = (
        kind == "tmpfs"
        and (
            subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)], capture_output=True)
        ).returncode
        == 0
    )
    try:
        yield {} if mounted else {"preexec_fn": _file_size_limit}
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("kind", ["tmpfs", "file-size-limit"])
def test_a_full_disk_stops_the_run_cleanly_and_resume_finishes_it(tmp_path: Path, kind: str) -> None:
    manifest = project(tmp_path, BIG_SIMULATIONS)
    disk = tmp_path / "disk"
    with small_disk(disk, kind) as options:
        out = disk / "out"
        proc = simulator(
            "run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "2", env=BIG_REPLY, **options
        )
        assert proc.returncode == EXIT_RUN_ERRORS, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "could not be written" in proc.stderr and "free about" in proc.stderr, proc.stderr
        data = (out / "conversations.jsonl").read_bytes()
        assert data.endswith(b"\n")  # cut back to the last complete line
        notes = ReadNotes()
        kept = read_results(out / "conversations.jsonl", notes)
        assert not notes.warnings and 0 < len(kept) < 30
        summary = summary_of(out)
        assert summary["gate"]["status"] == "error"
        run = summary["run"]
        assert run["storage_error"] and run["lost"] and run["missing_count"] == 30 - len(kept)
        assert run["lost"][0] in run["storage_error"]
        saved = tmp_path / "saved"
        shutil.copytree(out, saved)
    proc = simulator("run", str(manifest), "--out", str(saved), "--quiet", "--resume", env=BIG_REPLY)
    assert proc.returncode == EXIT_OK, proc.stderr
    assert f"Resuming: kept {len(kept)} finished conversation(s); {30 - len(kept)} to play" in proc.stderr
    assert sorted(keys(saved)) == sorted(f"big#{i}" for i in range(1, 31))
    assert summary_of(saved)["run"]["missing_count"] == 0 and summary_of(saved)["gate"]["status"] == "pass"


# --- torn lines, missing summaries, salvaged folders --------------------------------------------------

SMALL_SIMULATIONS = """\
  - {name: alpha, persona: jane, task: t, turns: [one, two], repeat: 3}
  - {name: beta, persona: walter, task: t, turns: [three], repeat: 3}
"""
TORN = b'{"conversation_id": "0b7c", "conversation": [{"turn_number": 0, "response": "hal'


def test_a_torn_last_line_is_dropped_and_what_is_missing_is_rebuilt(tmp_path: Path) -> None:
    manifest = project(tmp_path, SMALL_SIMULATIONS)
    out = tmp_path / "out"
    assert simulator("run", str(manifest), "--out", str(out), "--quiet").returncode == EXIT_OK
    with (out / "conversations.jsonl").open("ab") as handle:
        handle.write(TORN)
    for name in ("summary.json", "report.md", "report.html"):
        (out / name).unlink()

    proc = simulator("report", str(out))
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "dropped an incomplete last line" in proc.stderr and "rebuilt it" in proc.stderr
    assert "6 planned, 6 finished, 0 missing" in proc.stdout
    assert summary_of(out)["totals"]["conversations"] == 6 and (out / "report.html").is_file()

    shards = tmp_path / "merged"
    proc = simulator("merge", str(shards), str(out))
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "dropped an incomplete last line" in proc.stderr
    assert len(read_results(shards / "conversations.jsonl")) == 6

    proc = simulator("check", str(out))
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "dropped an incomplete last line" in proc.stderr
    assert (out / "conversations.jsonl").read_bytes().endswith(b"}\n")  # re-checking rewrote complete lines only


def test_every_command_says_what_a_killed_run_never_played(tmp_path: Path) -> None:
    manifest = project(tmp_path, "  - {name: slow, persona: jane, task: t, turns: [one], repeat: 40}\n")
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "2"],
        cwd=REPO,
        env={**os.environ, "APP_DELAY": "0.05"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _wait_for_lines(out / "conversations.jsonl", 4, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not (out / "summary.json").exists()
    finished = len(read_results(out / "conversations.jsonl"))
    assert 4 <= finished < 40

    for command in (["report", str(out)], ["check", str(out)], ["merge", str(tmp_path / "merged"), str(out)]):
        result = simulator(*command)
        assert f"40 planned, {finished} finished, {40 - finished} missing" in result.stdout, (command, result.stdout)
        assert "Gate: PASS" not in result.stdout
        if command[0] != "report":
            assert result.returncode == EXIT_RUN_ERRORS, (command, result.stderr)
        assert summary_of(out if command[0] != "merge" else tmp_path / "merged")["gate"]["status"] == "error"

    proc = simulator("run", str(manifest), "--out", str(out), "--quiet", "--resume")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert sorted(keys(out)) == sorted(f"slow#{i}" for i in range(1, 41))


def _wait_for_lines(path: Path, count: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if path.is_file() and path.read_bytes().count(b"\n") >= count:
            return
        assert proc.poll() is None, "the run ended before it could be killed"
        time.sleep(0.01)
    raise AssertionError(f"{path} never reached {count} lines")


@pytest.mark.parametrize("after_s", kill9_plan(3))
def test_kill_9_at_random_points_then_every_reader_and_resume_work(tmp_path: Path, after_s: float) -> None:
    """Big lines make a torn last line likely; whatever the kill left, readers and --resume cope."""
    run = kill9_run(tmp_path, after_s)
    assert not run.problems, "\n".join(run.problems)


def test_merge_counts_the_conversations_of_a_shard_it_was_not_given(tmp_path: Path) -> None:
    manifest = project(tmp_path, SMALL_SIMULATIONS)
    for shard in (1, 2):
        proc = simulator("run", str(manifest), "--out", str(tmp_path / f"s{shard}"), "--shard", f"{shard}/3", "--quiet")
        assert proc.returncode == EXIT_OK, proc.stderr
    proc = simulator("merge", str(tmp_path / "merged"), str(tmp_path / "s1"), str(tmp_path / "s2"))
    assert proc.returncode == EXIT_RUN_ERRORS
    assert "shard(s) 3/3 of this run were not given to merge (2 planned conversation(s))" in proc.stderr
    assert "6 planned, 4 finished, 2 missing" in proc.stdout
    assert summary_of(tmp_path / "merged")["gate"]["missing"] == 2


# --- resume refuses what it cannot continue ----------------------------------------------------------


def test_resume_refuses_another_manifest_or_other_options_and_starts_when_nothing_ran(tmp_path: Path) -> None:
    manifest = project(tmp_path, SMALL_SIMULATIONS)
    out = tmp_path / "out"
    proc = simulator("run", str(manifest), "--out", str(out), "--quiet", "--resume", "--filter", "beta")
    assert proc.returncode == EXIT_OK and "holds no interrupted run to resume; starting a new one" in proc.stderr

    assert simulator("run", str(manifest), "--out", str(out), "--quiet", "--filter", "alpha").returncode == EXIT_OK
    proc = simulator("run", str(manifest), "--out", str(out), "--quiet", "--resume")
    assert proc.returncode == EXIT_CONFIG and "--resume: filters differ" in proc.stderr, proc.stderr

    manifest.write_text(manifest.read_text().replace("repeat: 3}", "repeat: 4}", 1))
    proc = simulator("run", str(manifest), "--out", str(out), "--quiet", "--resume", "--filter", "alpha")
    assert proc.returncode == EXIT_CONFIG
    assert "is not the manifest the run in" in proc.stderr and "SHA-256" in proc.stderr
    assert len(read_results(out / "conversations.jsonl")) == 3  # nothing was touched


def test_resume_of_a_finished_run_plays_nothing(tmp_path: Path) -> None:
    manifest = project(tmp_path, SMALL_SIMULATIONS)
    out = tmp_path / "out"
    assert simulator("run", str(manifest), "--out", str(out), "--quiet").returncode == EXIT_OK
    before = {r["conversation_id"] for r in read_results(out / "conversations.jsonl")}
    proc = simulator("run", str(manifest), "--out", str(out), "--quiet", "--resume")
    assert proc.returncode == EXIT_OK, proc.stderr
    assert "Resuming: kept 6 finished conversation(s); 0 to play" in proc.stderr
    assert {r["conversation_id"] for r in read_results(out / "conversations.jsonl")} == before


# --- bounds on what a flag can ask for ---------------------------------------------------------------


def test_an_absurd_repeat_is_refused_at_once(tmp_path: Path) -> None:
    manifest = project(tmp_path, SMALL_SIMULATIONS)
    proc = simulator("run", str(manifest), "--out", str(tmp_path / "out"), "--repeat", "99999999")
    assert proc.returncode == EXIT_CONFIG
    assert "--repeat must be between 1 and 1000, got 99999999" in proc.stderr


def test_the_action_resumes_an_interrupted_run_found_in_the_results_folder(tmp_path: Path) -> None:
    with FakeGitHub() as gh:
        workspace = make_workspace(
            tmp_path, "version: 1\ntarget: {callback: 'app.py:respond'}\nsimulations:\n" + SMALL_SIMULATIONS
        )
        (workspace / ".github" / "app.py").write_text(APP)
        out = workspace / "simulation-results"
        proc = simulator("run", str(workspace / ".github" / "simulations.yml"), "--out", str(out), "--quiet")
        assert proc.returncode == EXIT_OK, proc.stderr
        lines = (out / "conversations.jsonl").read_bytes().splitlines(keepends=True)
        (out / "conversations.jsonl").write_bytes(b"".join(lines[:4]) + lines[4][:50])  # two lost, one torn
        kept = {r["conversation_id"] for r in read_results(out / "conversations.jsonl")}
        run = run_entrypoint(tmp_path, workspace, gh, {"resume": "true"})
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["conversations"] == "6" and run.outputs["verdict"] == "pass"
    results = read_results(out / "conversations.jsonl")
    assert kept <= {r["conversation_id"] for r in results} and len(results) == 6
    assert sorted(keys(out)) == sorted([*(f"alpha#{i}" for i in (1, 2, 3)), *(f"beta#{i}" for i in (1, 2, 3))])
