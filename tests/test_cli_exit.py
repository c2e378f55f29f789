"""How the `simulator` command ends: exit handlers run, the output is whole, the exit code is the gate's.

The command skips the interpreter's teardown (freeing every module took 0.17-0.19 s with the SDK
loaded); these tests hold it to everything that teardown would still have done.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

CALLBACK = """\
import atexit
import threading
import time
from pathlib import Path

def _flush_telemetry():
    Path({marker!r}).write_text("flushed")

atexit.register(_flush_telemetry)

def _upload_later():
    time.sleep(0.3)
    Path({marker!r}).with_suffix(".thread").write_text("uploaded")

threading.Thread(target=_upload_later).start()  # not a daemon: the process waits for it

def respond(question, history, meta):
    return "no" if "refund" in question else "sure"
"""


def _manifest(tmp_path: Path, turns: str) -> Path:
    (tmp_path / "app.py").write_text(CALLBACK.format(marker=str(tmp_path / "marker.txt")))
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\n"
        "target: {callback: 'app.py:respond'}\n"
        "simulations:\n"
        f"  - {{name: asks, persona: jane, task: ask, turns: [{turns}], repeat: 3,\n"
        "      expect: {contains: sure}}\n"
    )
    return manifest


@pytest.mark.parametrize(
    ("turns", "code"), [("hello, more please", 0), ("a refund please", 1)], ids=["gate passes", "gate fails"]
)
@pytest.mark.parametrize("command", ["module", "console script"])
def test_the_command_runs_exit_handlers_and_keeps_its_output_and_code(
    tmp_path: Path, turns: str, code: int, command: str
) -> None:
    manifest = _manifest(tmp_path, turns)
    script = shutil.which("simulator", path=str(Path(sys.executable).parent))
    prefix = [sys.executable, "-m", "simulator"] if command == "module" or script is None else [script]
    done = subprocess.run(
        [*prefix, "run", str(manifest), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == code, done.stderr
    assert (tmp_path / "marker.txt").read_text() == "flushed"  # the callback's atexit hook ran
    assert (tmp_path / "marker.thread").read_text() == "uploaded"  # and its own thread was waited for
    assert "asks" in done.stdout and done.stdout.endswith("\n")  # the table, to its last line
    assert (tmp_path / "out" / "conversations.jsonl").read_text().count("\n") == 3


def test_under_a_profiler_the_command_exits_the_usual_way_so_the_profile_is_written(tmp_path: Path) -> None:
    """`python -m cProfile -o FILE -m simulator run` writes FILE after the command returns."""
    manifest = _manifest(tmp_path, "hello")
    profile = tmp_path / "run.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "simulator", "run", str(manifest)]
    done = subprocess.run([*command, "--out", str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert profile.stat().st_size > 0
    assert (tmp_path / "marker.txt").read_text() == "flushed"


@pytest.mark.parametrize(
    ("file", "content", "said"),
    [
        ("plan.json", "[" * 5000 + "]" * 5000, "plan.json: not a readable plan: it is nested"),
        ("plan.json", '{"simulations": [["asks", 1' + "0" * 400 + ']], "order": null, "gate": null}', "out of range"),
        ("plan.json", '{"simulations": [["asks", 1000000000000]], "order": null, "gate": null}', "simulations"),
        ("conversations.jsonl", "[" * 5000 + "]" * 5000 + "\n", "conversations.jsonl:1: not a usable JSON line"),
    ],
)
def test_a_results_file_that_cannot_be_read_is_a_clear_error_with_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], file: str, content: str, said: str
) -> None:
    from simulator import cli

    manifest = _manifest(tmp_path, "hello")
    assert cli.main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    capsys.readouterr()
    (tmp_path / "out" / file).write_text(content)
    code = cli.main(["report", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 3 and said in err and "Traceback" not in err, err


def test_an_unexpected_exception_is_never_the_gate_failed_code(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator import cli, cli_commands

    def broken(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli_commands, "cmd_personas", broken)
    assert cli.main(["personas"]) == 3
    err = capsys.readouterr().err
    assert "RuntimeError: a bug" in err and "internal error" in err
