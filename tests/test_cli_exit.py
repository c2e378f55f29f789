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
