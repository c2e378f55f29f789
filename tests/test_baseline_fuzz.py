"""Whatever is wrong with a base run, this run's report, summary and exit code stand.

A base run comes from an artifact anyone with a branch could have shaped: its summary.json,
plan.json and conversations.jsonl are fuzzed here (fields replaced, removed, added; numbers that
are not numbers; nesting; repeated keys; files cut short or missing), and `simulator report
--baseline` must still write both reports, keep the gate's exit code, and either compare or say in
one line why it did not.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import cli
from tests.callback_project import callback_project
from tests.test_hostile_input import mutated, structures

SIMULATIONS = (
    "  - {name: asks, persona: jane, task: ask, turns: [hello], repeat: 2, expect: {contains: sure}}\n"
    "  - {name: other, persona: jane, task: ask, turns: [more], expect: {contains: sure}}\n"
)
#: numbers and shapes from outside that are not what a reader expects
HOSTILE_NUMBERS = [
    "1" + "0" * 400,
    "-1",
    "1e400",
    "-1e400",
    "NaN",
    "Infinity",
    "0.5",
    "true",
    "null",
    '"7"',
    "[]",
    "{}",
    "[" * 500 + "]" * 500,
    "9" * 30,
]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A base run that passes and a head run whose app changed and fails."""
    folders = {}
    for name, returns in (("base", "return 'sure'"), ("head", "return 'no'")):
        project = tmp_path_factory.mktemp(name)
        manifest = callback_project(project, returns, SIMULATIONS)
        code = cli.main(["run", str(manifest), "--out", str(project / "out"), "--quiet"])
        assert code == (0 if name == "base" else 1)
        folders[name] = project / "out"
    return folders


def report(head: Path, base: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    for name in ("report.html", "report.md"):
        (head / name).unlink(missing_ok=True)
    code = cli.main(["report", str(head), "--baseline", str(base)])
    err = capsys.readouterr().err
    return code, err


def assert_report_stands(head: Path, code: int, err: str) -> None:
    assert code == 0, err  # `report` ends 0 whatever the gate; a crash, an unreadable file would not
    assert "Traceback" not in err and "internal error" not in err, err
    assert (head / "report.html").stat().st_size > 0 and (head / "report.md").stat().st_size > 0
    assert "FAIL" in (head / "report.md").read_text(encoding="utf-8")


def fresh_base(runs: dict[str, Path], tmp: Path) -> Path:
    base = tmp / "base"
    shutil.rmtree(base, ignore_errors=True)
    shutil.copytree(runs["base"], base)
    return base


def test_an_intact_base_run_is_compared(runs: dict[str, Path], tmp_path: Path, capsys) -> None:
    code, err = report(runs["head"], fresh_base(runs, tmp_path), capsys)
    assert_report_stands(runs["head"], code, err)
    assert "No comparison" not in err
    assert "asks" in (runs["head"] / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("value", HOSTILE_NUMBERS)
@pytest.mark.parametrize(
    "where", [("totals", "conversations"), ("simulations", "asks", "verdict", "passes"), ("simulations", "asks")]
)
def test_numbers_from_a_base_summary_that_are_not_numbers_cost_only_the_comparison(
    runs: dict[str, Path], tmp_path: Path, capsys, value: str, where: tuple[str, ...]
) -> None:
    base = fresh_base(runs, tmp_path)
    summary = json.loads((base / "summary.json").read_text())
    node = summary
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "__HOSTILE__"
    (base / "summary.json").write_text(json.dumps(summary).replace('"__HOSTILE__"', value))
    code, err = report(runs["head"], base, capsys)
    assert_report_stands(runs["head"], code, err)
    if not (value == "{}" and where[-1] == "asks"):  # an empty simulation is a shape a summary may hold
        assert "No comparison with the base run" in err, err


@pytest.mark.parametrize(
    "damage",
    [
        "summary repeats a key",
        "summary missing",
        "summary empty",
        "summary cut",
        "results repeat a key",
        "results nested",
        "results cut",
        "results line of other shape",
        "plan nested",
        "plan of huge repeats",
    ],
)
def test_damaged_base_files_cost_only_the_comparison(
    runs: dict[str, Path], tmp_path: Path, capsys, damage: str
) -> None:
    base = fresh_base(runs, tmp_path)
    summary, results, plan = base / "summary.json", base / "conversations.jsonl", base / "plan.json"
    text = summary.read_text()
    lines = results.read_text().splitlines()
    if damage == "summary repeats a key":
        summary.write_text(text.replace('"simulations": {', '"simulations": {}, "simulations": {', 1))
    elif damage == "summary missing":
        summary.unlink()
    elif damage == "summary empty":
        summary.write_text("")
    elif damage == "summary cut":
        summary.write_text(text[: len(text) // 2])
    elif damage == "results repeat a key":
        results.write_text(lines[0][:-1] + ', "conversation_id": "forged"}\n')
    elif damage == "results nested":
        results.write_text(lines[0][:-1] + ', "x": ' + "[" * 3000 + "]" * 3000 + "}\n")
    elif damage == "results cut":
        results.write_text(lines[0][: len(lines[0]) // 2] + "\n" + lines[1] + "\n")
    elif damage == "results line of other shape":
        results.write_text(json.dumps({"conversation_id": 1, "meta_data": [], "conversation": {}}) + "\n")
    elif damage == "plan nested":
        plan.write_text("[" * 5000 + "]" * 5000)
    elif damage == "plan of huge repeats":
        record = json.loads(plan.read_text())
        record["simulations"] = [["asks", 10**18]]
        plan.write_text(json.dumps(record))
    code, err = report(runs["head"], base, capsys)
    assert_report_stands(runs["head"], code, err)


def test_a_run_given_a_damaged_base_says_so_before_it_plays_anything(
    runs: dict[str, Path], tmp_path: Path, capsys
) -> None:
    base = fresh_base(runs, tmp_path)
    (base / "summary.json").write_text('{"simulations": {"asks": {"verdict": {"passes": 1' + "0" * 400 + "}}}}")
    project = tmp_path / "project"
    project.mkdir()
    manifest = callback_project(project, "return 'no'", SIMULATIONS)
    code = cli.main(["run", str(manifest), "--out", str(project / "out"), "--baseline", str(base)])
    captured = capsys.readouterr()
    assert code == 2, captured.err  # a usage error, named before a single (paid) conversation
    assert str(base / "summary.json") in captured.err and "out of range" in captured.err
    assert not (project / "out" / "conversations.jsonl").exists()


def _base_documents(runs: dict[str, Path]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    summary = json.loads((runs["base"] / "summary.json").read_text())
    lines = [json.loads(line) for line in (runs["base"] / "conversations.jsonl").read_text().splitlines()]
    return summary, lines


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_fuzzed_base_runs_never_cost_the_report(runs: dict[str, Path], tmp_path_factory, capsys, data) -> None:
    summary, lines = _base_documents(runs)
    base = fresh_base(runs, tmp_path_factory.mktemp("fuzz"))
    values = structures(
        key_strategy=st.text(max_size=8),
        leaves=st.none()
        | st.booleans()
        | st.integers(min_value=-(2**70), max_value=2**70)
        | st.floats()
        | st.text(max_size=12)
        | st.sampled_from([10**300, -(10**19), float("inf"), float("nan")]),
    )
    names = st.sampled_from(["simulations", "verdict", "passes", "totals", "run", "asks", "conversation"]) | st.text(
        max_size=8
    )
    target = data.draw(st.sampled_from(["summary", "results", "both"]))
    if target in ("summary", "both"):
        text = json.dumps(data.draw(mutated(summary, names, values)), default=str)
        (base / "summary.json").write_text(text)
    if target in ("results", "both"):
        index = data.draw(st.integers(0, len(lines) - 1))
        lines[index] = data.draw(mutated(lines[index], names, values))
        (base / "conversations.jsonl").write_text("\n".join(json.dumps(line, default=str) for line in lines) + "\n")
    code, err = report(runs["head"], base, capsys)
    assert_report_stands(runs["head"], code, err)
