"""The results folder as a fault: not writable, or already holding an older run."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, EXIT_OK
from simulator.manifest import load_manifest
from simulator.results.folder import PREVIOUS_DIR, read_results
from simulator.run.plan import plan_jobs
from simulator.run.runner import RunOutcome, run_jobs
from tests.faults.harness import REPO

APP = "def respond(question, history, meta):\n    return {'answer': f'You said: {question}'}\n"
SIMULATIONS = """\
  - {name: alpha, persona: jane, task: t, turns: [one, two], repeat: 2}
  - {name: beta, persona: walter, task: t, turns: [three]}
"""


def project(tmp_path: Path) -> Path:
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {callback: 'app.py:respond'}\nsimulations:\n" + textwrap.dedent(SIMULATIONS)
    )
    return manifest


def run(manifest: Path, out: Path) -> RunOutcome:
    loaded = load_manifest(manifest, environ={})
    return asyncio.run(run_jobs(loaded, plan_jobs(loaded), out))


# --- not writable -----------------------------------------------------------------------------------


@pytest.mark.parametrize("under", ["a-file/results", "a-file", "a-file/deeper/results"])
def test_results_under_a_file_are_a_clear_config_error(tmp_path: Path, under: str) -> None:
    """chmod does not stop root, a regular file in the way stops everyone."""
    manifest = project(tmp_path)
    (tmp_path / "a-file").write_text("not a folder")
    out = tmp_path / under
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(out), "--quiet"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == EXIT_CONFIG, proc.stderr
    assert "Traceback" not in proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: {out}: cannot create the results folder"), error
    assert f"{tmp_path / 'a-file'} is a file, not a folder" in error
    assert (tmp_path / "a-file").read_text() == "not a folder"


# --- an older run in the folder ---------------------------------------------------------------------


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_an_older_run_is_moved_aside_not_mixed_with_the_new_one(tmp_path: Path, caplog) -> None:
    manifest, out = project(tmp_path), tmp_path / "out"
    first = run(manifest, out)
    assert first.previous_run is None
    (out / "report.md").write_text("# the first run's report\n")
    (out / "notes.txt").write_text("not a run file")
    old = snapshot(out)
    old_ids = {r["conversation_id"] for r in read_results(out / "conversations.jsonl")}
    started_at = json.loads(old["summary.json"])["run"]["started_at"]

    with caplog.at_level(logging.WARNING, logger="simulator.run.runner"):
        second = run(manifest, out)

    moved = out / PREVIOUS_DIR / started_at.replace(":", "-")
    assert second.previous_run == moved
    assert [r.getMessage() for r in caplog.records] == [f"{out} held an older run: moved its files to {moved}"]
    assert snapshot(moved) == {
        name: old[name] for name in ("plan.json", "conversations.jsonl", "summary.json", "report.md")
    }
    new = read_results(out / "conversations.jsonl")
    assert len(new) == 3 and not ({r["conversation_id"] for r in new} & old_ids)
    assert {r["conversation_id"] for r in second.results} == {r["conversation_id"] for r in new}
    assert json.loads((out / "summary.json").read_text())["totals"]["conversations"] == 3
    assert not (out / "report.md").exists()  # the old report does not describe the new results
    assert (out / "notes.txt").read_text() == "not a run file"  # only a run's own files move

    third = run(manifest, out)  # a second older run goes to its own folder, even within the same second
    assert third.previous_run is not None and third.previous_run != moved
    assert third.previous_run.parent == out / PREVIOUS_DIR
    assert snapshot(moved)["conversations.jsonl"] == old["conversations.jsonl"]
    assert {r["conversation_id"] for r in read_results(third.previous_run / "conversations.jsonl")} == {
        r["conversation_id"] for r in new
    }


@pytest.mark.parametrize("summary", [None, "{not json", '{"totals": {}}', '{"run": {"started_at": 5}}', "[]"])
def test_an_older_run_without_a_usable_start_time_is_named_by_its_mtime(tmp_path: Path, summary: str | None) -> None:
    manifest, out = project(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "conversations.jsonl").write_text('{"partial": tru')  # a run that crashed mid-line
    if summary is not None:
        (out / "summary.json").write_text(summary)
    for name in ("conversations.jsonl", "summary.json"):
        if (out / name).exists():
            os.utime(out / name, (1_700_000_000, 1_700_000_000))
    outcome = run(manifest, out)
    assert outcome.previous_run == out / PREVIOUS_DIR / "2023-11-14T22-13-20Z"
    assert (outcome.previous_run / "conversations.jsonl").read_text() == '{"partial": tru'
    assert len(read_results(out / "conversations.jsonl")) == 3


def test_an_odd_start_time_still_gives_a_safe_folder_name(tmp_path: Path) -> None:
    manifest, out = project(tmp_path), tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps({"run": {"started_at": "../../etc/2024 06:11 ~x*"}}))
    outcome = run(manifest, out)
    assert outcome.previous_run == out / PREVIOUS_DIR / "etc-2024-06-11-x"
    assert (outcome.previous_run / "summary.json").is_file()


def test_the_cli_says_where_the_older_run_went(tmp_path: Path) -> None:
    manifest, out = project(tmp_path), tmp_path / "out"
    command = [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(out), "--quiet"]
    first = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert first.returncode == EXIT_OK and "older run" not in first.stderr, first.stderr
    second = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == EXIT_OK, second.stderr
    moved = next((out / PREVIOUS_DIR).iterdir())
    assert second.stderr.count(f"{out} held an older run: moved its files to {moved}\n") == 1, second.stderr
    assert len(read_results(moved / "conversations.jsonl")) == 3
    assert len(read_results(out / "conversations.jsonl")) == 3
