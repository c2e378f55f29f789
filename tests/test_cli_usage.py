"""What the command line says before anything runs: bad options, failed merges, YAML pitfalls."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, EXIT_GATE_FAILED, EXIT_OK, main

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


def test_quiet_prints_only_how_the_run_ended(tmp_path: Path, capsys) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi]}\n")
    assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    said = capsys.readouterr().out
    assert "| Simulation |" not in said and "Gate: PASS" in said and "1 planned, 1 finished, 0 missing" in said
    assert main(["run", str(manifest), "--out", str(tmp_path / "out")]) == EXIT_OK
    assert "| Simulation |" in capsys.readouterr().out


def test_the_result_goes_to_stdout_and_progress_to_stderr(tmp_path: Path) -> None:
    """`simulator run m.yml > out.txt` keeps the result; progress and warnings stay on the terminal."""
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi], repeat: 2}\n")
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert done.returncode == EXIT_OK, done.stderr
    assert "| Simulation |" in done.stdout and "Gate: PASS" in done.stdout
    assert "2 planned, 2 finished, 0 missing" in done.stdout and "Results: " in done.stdout
    assert "Running 2 conversation(s)" in done.stderr and "[1/2]" in done.stderr
    assert "Running" not in done.stdout and "[1/2]" not in done.stdout and "Gate:" not in done.stderr


@pytest.mark.parametrize("command", ["run", "check", "report", "merge"])
def test_format_json_prints_one_document_and_nothing_else(tmp_path: Path, command: str) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi], expect: {contains: zzz}}\n")
    out = tmp_path / "out"

    def simulator(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "simulator", *args, "--format", "json"], capture_output=True, text=True, cwd=tmp_path
        )

    done = simulator("run", str(manifest), "--out", str(out))
    if command == "check":
        done = simulator("check", str(out))
    elif command == "report":
        done = simulator("report", str(out))
    elif command == "merge":
        done = simulator("merge", str(tmp_path / "merged"), str(out))
    document = json.loads(done.stdout)  # the whole of stdout is the document
    expected = EXIT_OK if command == "report" else EXIT_GATE_FAILED
    assert done.returncode == expected == document["exit_code"], done.stderr
    assert document["verdict"] == "fail" and document["plan"] == "1 planned, 1 finished, 0 missing"
    assert document["summary"]["gate"]["failures"] == 1
    assert Path(document["files"]["report_html"]).is_file() and Path(document["files"]["results"]).is_file()
    assert "Gate:" not in done.stderr


def test_validate_format_json(tmp_path: Path) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi], repeat: 3}\n")
    done = subprocess.run(
        [sys.executable, "-m", "simulator", "validate", str(manifest), "--format", "json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == EXIT_OK
    assert json.loads(done.stdout) == {
        "manifest": str(manifest),
        "valid": True,
        "simulations": ["a"],
        "conversations": 3,
        "played_by_llm": 0,
        "warnings": [],
    }


def test_an_error_names_the_field_where_the_url_was_written(tmp_path: Path, capsys) -> None:
    """A 404 from the top-level target's URL points at `target.url`, not at the first simulation."""
    from tests.servers.chat_app import AppReply, FakeChatApp

    with FakeChatApp() as app:
        app.default = lambda request: AppReply.error(404, "no such route")
        manifest = tmp_path / "simulations.yml"
        manifest.write_text(
            f"version: 1\ntarget: {{url: '{app.url}/nowhere', retry: {{attempts: 0}}}}\nsimulations:\n"
            "  - {name: a, persona: jane, task: t, turns: [hi]}\n"
            "  - {name: b, persona: jane, task: t, turns: [hi]}\n"
        )
        main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet", "--concurrency", "1"])
    said = capsys.readouterr().err
    assert "check target.url" in said and "simulations[0].target.url" not in said, said


def test_a_missing_persona_file_is_one_problem_not_two(tmp_path: Path, capsys) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: personas/gone.yaml, task: t, turns: [hi]}\n")
    manifest.write_text(manifest.read_text().replace("simulations:\n", "gate: {required: [a]}\nsimulations:\n"))
    assert main(["validate", str(manifest)]) == EXIT_CONFIG
    said = capsys.readouterr().err
    assert "gone.yaml" in said and "no simulation is named" not in said, said


def test_a_missing_persona_file_is_reported_alongside_other_problems(tmp_path: Path, capsys) -> None:
    """A typo elsewhere in the manifest must not hide that a persona file is missing: every problem, once,
    in file order."""
    manifest = project(
        tmp_path,
        """\
  - {name: a, persona: personas/gone.yaml, task: t, turns: [hi]}
  - {name: b, persona: jane, task: t, turns: [hi], expect: {contanis: x}}
  - {name: c, persona: nobody-known, task: t, turns: [hi]}
""",
    )
    assert main(["validate", str(manifest)]) == EXIT_CONFIG
    said = capsys.readouterr().err
    lines = [line for line in said.splitlines() if line.startswith("  - ")]
    assert len(lines) == 3, said
    assert "gone.yaml: persona file not found" in lines[0]
    assert "expect.contanis: unknown field" in lines[1]
    assert "nobody-known" in lines[2]


def test_a_wrong_option_in_a_long_form_check_is_named(tmp_path: Path, capsys) -> None:
    """Not "expected string, got dict": the part of the mapping that is wrong."""
    manifest = project(
        tmp_path,
        "  - {name: a, persona: jane, task: t, turns: [hi], expect: {not_contains: {value: [x], in: sometimes}}}\n",
    )
    assert main(["validate", str(manifest)]) == EXIT_CONFIG
    said = capsys.readouterr().err
    assert "simulations[0].expect.not_contains.in: 'sometimes' is not one of ['any', 'every', 'last']" in said, said


COUNTING_APP = (
    "from pathlib import Path\n\n"
    "def respond(question, history, meta):\n"
    "    with open(Path(__file__).with_name('calls.txt'), 'a') as calls:\n"
    "        calls.write(question + '\\n')\n"
    "    return 'You said: ' + question\n"
)


def counting_project(tmp_path: Path) -> Path:
    """A manifest whose app writes down every question it is asked (`calls.txt`)."""
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi, again], repeat: 2}\n")
    (tmp_path / "app.py").write_text(COUNTING_APP)
    return manifest


def damaged_base(tmp_path: Path, damage: str) -> Path:
    """A base-run folder that cannot be compared with, and what it would take."""
    base = tmp_path / "base"
    if damage == "missing folder":
        return base
    base.mkdir()
    if damage == "no summary.json":
        (base / "conversations.jsonl").write_text("")
    elif damage == "summary.json not JSON":
        (base / "summary.json").write_text('{"simulations": {')
    elif damage == "summary.json not ours":
        (base / "summary.json").write_text('{"verdict": "pass"}')
    elif damage == "summary.json a folder":
        (base / "summary.json").mkdir()
    return base


@pytest.mark.parametrize(
    "damage",
    ["missing folder", "no summary.json", "summary.json not JSON", "summary.json not ours", "summary.json a folder"],
)
def test_a_base_run_that_cannot_be_compared_with_is_refused_before_any_conversation(
    tmp_path: Path, capsys, damage: str
) -> None:
    """Not after every conversation (and its LLM calls) was paid for: usage error 2, naming the path
    and what to give, the app never asked, no results folder made."""
    manifest = counting_project(tmp_path)
    base = damaged_base(tmp_path, damage)
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--baseline", str(base)])
    said = capsys.readouterr()
    assert code == EXIT_CONFIG, said.err
    assert not (tmp_path / "calls.txt").exists() and not (tmp_path / "out").exists()
    assert "Running" not in said.err and said.out == ""
    [error] = [line for line in said.err.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: --baseline {base}: ") and "give the " in error, error


@pytest.mark.parametrize("damage", ["missing folder", "no conversations.jsonl", "a line that is not JSON"])
def test_a_replay_folder_that_cannot_be_read_is_refused_before_any_conversation(
    tmp_path: Path, capsys, damage: str
) -> None:
    manifest = counting_project(tmp_path)
    earlier = tmp_path / "earlier"
    if damage != "missing folder":
        earlier.mkdir()
    if damage == "a line that is not JSON":
        (earlier / "conversations.jsonl").write_text("this is no conversation\n")
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--replay", str(earlier)])
    said = capsys.readouterr()
    assert code == EXIT_CONFIG, said.err
    assert not (tmp_path / "calls.txt").exists() and not (tmp_path / "out").exists()
    [error] = [line for line in said.err.splitlines() if line.startswith("error: ")]
    assert error.startswith(f"error: --replay {earlier}") and "; give " in error, error


def test_a_base_run_damaged_while_the_run_plays_costs_only_the_comparison(tmp_path: Path, capsys) -> None:
    """Read before the run and usable then; unusable when the run ends: one line says why there is
    no comparison, and the run keeps its report and its gate's exit code."""
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [hi], expect: {contains: zzz}}\n")
    assert main(["run", str(manifest), "--out", str(tmp_path / "base"), "--quiet"]) == EXIT_GATE_FAILED
    summary = tmp_path / "base" / "summary.json"
    (tmp_path / "app.py").write_text(
        "def respond(question, history, meta):\n"
        f"    open({str(summary)!r}, 'w').write('{{\"simulations\": ')\n"
        "    return 'You said: ' + question\n"
    )
    capsys.readouterr()
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--baseline", str(tmp_path / "base")])
    said = capsys.readouterr()
    assert code == EXIT_GATE_FAILED, said.err
    assert said.err.count("No comparison with the base run") == 1 and "Gate: FAIL" in said.out
    assert "No comparison with the base run" in (tmp_path / "out" / "report.md").read_text()


def test_a_replay_of_scripted_users_only_says_at_once_there_is_nothing_to_replay(tmp_path: Path, capsys) -> None:
    manifest = counting_project(tmp_path)
    assert main(["run", str(manifest), "--out", str(tmp_path / "earlier"), "--quiet"]) == EXIT_OK
    capsys.readouterr()
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--replay", str(tmp_path / "earlier")])
    said = capsys.readouterr()
    assert code == EXIT_OK, said.err
    first = said.err.splitlines()[0]
    assert first.startswith(f"Nothing to replay from {tmp_path / 'earlier'}: ") and "scripted" in first, said.err
    assert "Replaying" not in said.err and "Replay of" not in said.out and "identical" not in said.out
    assert "replay" not in json.loads((tmp_path / "out" / "summary.json").read_text())["run"]
