"""What the command line says before anything runs: bad options, failed merges, YAML pitfalls."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from simulator.cli import EXIT_CONFIG, EXIT_OK, main

REPO = Path(__file__).resolve().parent.parent
APP = "def respond(question, history, meta):\n    return 'You said: ' + question\n"


def project(tmp_path: Path, simulations: str) -> Path:
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {callback: 'app.py:respond'}\nsimulations:\n" + textwrap.dedent(simulations)
    )
    return manifest


def test_a_bad_concurrency_is_refused_before_anything_is_printed_or_written(tmp_path: Path) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi]}\n")
    for value in ("0", "-3", "many"):
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "simulator",
                "run",
                str(manifest),
                "--out",
                str(tmp_path / "out"),
                "--concurrency",
                value,
            ],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == EXIT_CONFIG, proc.stderr
        assert "--concurrency must be" in proc.stderr and "Running" not in proc.stderr
        assert not (tmp_path / "out").exists()


def test_a_failed_merge_leaves_no_folder_behind(tmp_path: Path) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi], repeat: 2}\n")
    assert main(["run", str(manifest), "--out", str(tmp_path / "s1"), "--quiet"]) == EXIT_OK
    assert main(["merge", str(tmp_path / "twice"), str(tmp_path / "s1"), str(tmp_path / "s1")]) == EXIT_CONFIG
    assert not (tmp_path / "twice").exists()  # the same shard twice: refused, nothing created
    assert main(["merge", str(tmp_path / "none"), str(tmp_path / "s1"), str(tmp_path / "missing")]) == EXIT_CONFIG
    assert not (tmp_path / "none").exists()


def test_an_unquoted_stop_marker_is_a_warning_at_its_line(tmp_path: Path, capsys) -> None:
    manifest = project(
        tmp_path,
        """\
          - name: a
            persona: jane
            task: t
            turns:
              - Hello there
              - Thanks ###STOP###
              - "Quoted ###STOP###"
          # ###STOP### in a comment line of its own is fine
        """,
    )
    assert main(["validate", str(manifest)]) == EXIT_OK
    said = capsys.readouterr().err
    assert f"{manifest}:9: '###STOP###' is a YAML comment here" in said
    assert said.count("is a YAML comment here") == 1
