"""What the terminal shows at the end of a run: plain text (no Markdown escapes, no invisible word
joiners), under the gate each failed simulation's failing checks with what they saw, and with
`--quiet --baseline` still what changed since the base run."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.cli import EXIT_GATE_FAILED, EXIT_OK, main
from simulator.cli_output import gate_lines
from simulator.report import inline
from simulator.report.escape import plain_text
from simulator.text.unicode_safety import visible_controls
from tests.callback_project import callback_project

REFUND_APP = "return 'Sorry, we cannot refund order s#4 today: see www.example.com or mail help@example.com'"
SIMULATIONS = """\
  - name: refund_flow
    persona: jane
    task: ask for a refund
    turns: [I want a refund, it is order 4, thanks]
    repeat: 3
    required: true
    expect:
      contains: return label
      regex: 'RF-\\d+'
      not_contains: {value: Sorry, in: every}
  - name: greets
    persona: jane
    task: say hello
    turns: [hello]
"""


def run(tmp_path: Path, capsys, *options: str, app: str = REFUND_APP, simulations: str = SIMULATIONS) -> str:
    manifest = callback_project(tmp_path, app, simulations)
    main(["run", str(manifest), "--out", str(tmp_path / "out"), *options])
    return capsys.readouterr().out


def gate_block(out: str) -> list[str]:
    lines = out.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("Gate: ")) :]


def test_the_gate_names_each_failed_simulations_failing_checks_and_what_they_saw(tmp_path: Path, capsys) -> None:
    block = gate_block(run(tmp_path, capsys, "--quiet"))
    assert block[:3] == [
        "Gate: FAIL: 1 passed, 3 failed, 0 errors (pass rate 25%)",
        "  - pass rate 25% is below 100%",
        "  - required simulation refund_flow failed (0/3 passed)",
    ]
    said = "Sorry, we cannot refund order s#4 today: see www.example.com or mail help@example.com"
    assert block[3:] == [
        f"  - refund_flow: 0/3 passed — contains 'return label' in any reply failed in 3 of 3: \"{said}\"",
        f"  - refund_flow: 0/3 passed — regex 'RF-\\d+' in any reply failed in 3 of 3: \"{said}\"",
        f"  - refund_flow: 0/3 passed — not_contains 'Sorry' in every reply failed in 3 of 3 at turn 1: \"{said[:65]}…\"",
    ]


def test_each_evidence_line_is_one_clipped_line_and_a_few_per_simulation(tmp_path: Path, capsys) -> None:
    long_reply = "return 'Sorry\\n\\x1b[31m' + 'x' * 500"
    expect = "{contains: a1, regex: 'b[0-9]', not_contains: Sorry, turns: {min: 5}, stop_reason: max_turns}"
    simulations = f"  - {{name: many, persona: jane, task: t, turns: [hi], expect: {expect}}}\n"
    block = gate_block(run(tmp_path, capsys, "--quiet", app=long_reply, simulations=simulations))
    evidence = [line for line in block if line.startswith("  - many: ")]
    assert len(evidence) == 3  # the most frequent failing checks, at most three
    for line in evidence:
        assert len(line) < 240 and "\x1b" not in line and "\\x1b[31m" in line
        assert line.endswith('…"'), line  # the reply, clipped


def test_without_results_the_gate_still_names_the_failing_checks() -> None:
    verdict = {
        "status": "fail",
        "passes": 0,
        "failures": 2,
        "runs": 2,
        "failed_checks": {"contains 'x' in any reply": 2},
    }
    summary = {
        "gate": {"status": "fail", "passes": 0, "failures": 2, "errors": 0, "pass_rate": 0.0, "reasons": []},
        "simulations": {"s": {"verdict": verdict}},
    }
    assert gate_lines(summary).splitlines()[1:] == ["  - s: 0/2 passed — contains 'x' in any reply failed in 2 of 2"]


def test_the_terminal_shows_plain_text_and_the_report_keeps_its_escapes(tmp_path: Path, capsys) -> None:
    out = run(tmp_path, capsys)
    assert "\\_" not in out and "\\#" not in out and "\\\\" not in out and "\u2060" not in out, out
    assert "&lt;" not in out and "**" not in out and "<details>" not in out and "## " not in out
    assert "| ❌ | refund_flow (required) |" in out
    assert "- required simulation refund_flow failed (0/3 passed)" in out
    assert "regex 'RF-\\d+' in any reply" in out and "s#4" in out and "www.example.com" in out
    report = (tmp_path / "out" / "report.md").read_text()  # the comment keeps what GitHub needs
    assert "refund\\_flow" in report and "regex 'RF-\\\\d+'" in report and "www\u2060.example.com" in report
    [result] = [
        json.loads(line)
        for line in (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()
        if '"repeat": 1' in line and "refund_flow" in line
    ]
    messages = [check["message"] for check in result["evaluation"]["checks"]]
    assert "no app reply has 'RF-\\d+'" in messages  # the pattern as written, not its repr


def test_quiet_with_a_base_run_keeps_what_changed(tmp_path: Path, capsys) -> None:
    base = tmp_path / "base"
    base.mkdir()
    simulations = SIMULATIONS.replace("      regex: 'RF-\\d+'\n", "")
    manifest = callback_project(base, "return 'Here is your return label'", simulations)
    assert main(["run", str(manifest), "--out", str(base / "out"), "--quiet"]) == EXIT_OK
    capsys.readouterr()
    head = tmp_path / "head"
    head.mkdir()
    manifest = callback_project(head, "return 'Sorry, no'", simulations)
    code = main(["run", str(manifest), "--out", str(head / "out"), "--quiet", "--baseline", str(base / "out")])
    out = capsys.readouterr().out
    assert code == EXIT_GATE_FAILED
    assert "| Simulation |" not in out  # quiet: no table
    lines = out.splitlines()
    start = lines.index("What changed since base")
    assert start < next(i for i, line in enumerate(lines) if line.startswith("Gate: "))
    assert "📉 Regressed (1):" in lines and any(line.startswith("- refund_flow: 3/3 → 0/3 passed") for line in lines)
    assert "\\_" not in out and "**" not in out


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_characters="\u2060"), max_size=80))
def test_plain_text_undoes_every_escape_of_inline_text(text: str) -> None:
    """Whatever an app or an LLM wrote reads as written, but for control characters, which stay
    shown as escapes, and runs of whitespace, which are one space."""
    assert plain_text(inline(text, 10_000)) == visible_controls(" ".join(text.split())).strip("\n")
