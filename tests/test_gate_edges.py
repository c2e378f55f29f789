"""The gate at its edges: failures and errors together, flaky simulations with errors, rates near
their thresholds, merged shards that overlap, re-checks of narrowed runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator.checks import decide_gate
from simulator.checks.gate import simulation_verdict
from simulator.cli import main
from simulator.cli_output import gate_lines
from simulator.report import render_markdown
from simulator.results.summary import summarize
from simulator.run.exit_codes import EXIT_CONFIG, EXIT_GATE_FAILED, EXIT_OK, EXIT_RUN_ERRORS, exit_code
from tests.browser import open_report
from tests.callback_project import callback_project
from tests.servers.chat_app import AppReply, FakeChatApp
from tests.test_action import make_workspace, run_entrypoint


def fake_results(name: str, statuses: list[str], **meta) -> list[dict]:
    return [{"meta_data": {"simulation": name, **meta}, "evaluation": {"status": s, "failed": []}} for s in statuses]


# --- fail-on: errors ------------------------------------------------------------------------------


def test_too_many_errors_fail_on_errors_even_when_conversations_also_failed() -> None:
    sims = {
        "broken": simulation_verdict(fake_results("broken", ["error"] * 5)),
        "wrong": simulation_verdict(fake_results("wrong", ["fail"])),
    }
    gate = decide_gate(sims, {"max_error_rate": 0.1})
    assert gate["status"] == "fail"  # the app misbehaved: that is the verdict ...
    assert any("error rate" in reason for reason in gate["reasons"])
    summary = {"gate": gate, "run": {}}
    # ... but `fail-on: errors` is there to fail on too many errors, and there are
    assert exit_code(summary, fail_on="errors") == EXIT_RUN_ERRORS
    only_failures = {"gate": decide_gate({"wrong": sims["wrong"]}, None), "run": {}}
    assert exit_code(only_failures, fail_on="errors") == EXIT_OK


def test_missing_conversations_fail_on_errors_even_when_conversations_also_failed() -> None:
    sims = {"wrong": simulation_verdict(fake_results("wrong", ["fail", "pass"]))}
    gate = decide_gate(sims, {"max_error_rate": 0.5}, missing=1)
    assert gate["status"] == "fail"
    assert exit_code({"gate": gate, "run": {}}, fail_on="errors") == EXIT_RUN_ERRORS


def test_action_with_fail_on_errors_fails_the_job_when_the_app_errors_and_fails(tmp_path: Path) -> None:
    def reply(request) -> AppReply:
        return AppReply.error(400, "bad request") if "crash" in (request.user_text or "") else AppReply(text="no")

    manifest = (
        "version: 1\ntarget: {url: '${APP_URL}'}\n"
        "simulations:\n"
        "  - {name: crashes, persona: jane, task: t, turns: [crash], repeat: 3}\n"
        "  - {name: answers, persona: jane, task: t, turns: [hi], expect: {contains: sure}}\n"
    )
    with FakeChatApp() as app:
        app.default = reply
        workspace = make_workspace(tmp_path, manifest)
        run = run_entrypoint(
            tmp_path, workspace, None, {"fail-on": "errors", "comment": "never"}, {"APP_URL": app.url + "/promptflow"}
        )
    assert run.outputs["verdict"] == "fail" and run.outputs["errors"] == "3", run.stdout
    assert run.code == EXIT_RUN_ERRORS, run.stdout


# --- min_passes with errors -------------------------------------------------------------------------


def test_a_flaky_simulation_short_of_min_passes_only_by_errors_has_no_verdict_not_a_failure() -> None:
    # 4 of 5 must pass; 3 passed and 2 errored: the app failed nothing, the errors hide the answer
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 3 + ["error"] * 2, min_passes=4, required=True))
    assert (verdict["passes"], verdict["failures"], verdict["errors"], verdict["status"]) == (3, 0, 2, "error")
    gate = decide_gate({"flaky": verdict}, {"max_error_rate": 0.5, "min_pass_rate": 0.5})
    assert gate["status"] == "error" and not any("failed" in reason for reason in gate["reasons"]), gate["reasons"]
    # with one real failure the errored runs could still have made it: no verdict either
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 3 + ["fail", "error"], min_passes=4))
    assert verdict["status"] == "error"
    # and where even passing errored runs would not reach min_passes, the simulation failed
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 2 + ["fail", "fail", "error"], min_passes=4))
    assert verdict["status"] == "fail"
    verdict = simulation_verdict(fake_results("flaky", ["pass"] * 4 + ["error"], min_passes=4))
    assert verdict["status"] == "pass"


# --- merged shards ------------------------------------------------------------------------------


def _sharded_manifest(tmp_path: Path) -> Path:
    return callback_project(
        tmp_path,
        "return 'no' if 'bad' in q else 'sure'",
        "  - {name: good, persona: jane, task: t, turns: [hi], repeat: 2, expect: {contains: sure}}\n"
        "  - {name: bad, persona: jane, task: t, turns: [bad], repeat: 2, expect: {contains: sure}}\n",
    )


def test_merge_refuses_a_conversation_two_shard_folders_both_played(tmp_path: Path) -> None:
    manifest = _sharded_manifest(tmp_path)
    shard = {name: tmp_path / name for name in ("s1", "s2", "s1-again", "t1of3")}
    for name, spec in (("s1", "1/2"), ("s2", "2/2"), ("s1-again", "1/2"), ("t1of3", "1/3")):
        main(["run", str(manifest), "--out", str(shard[name]), "--quiet", "--shard", spec])
    merged = tmp_path / "merged"
    # a shard re-run into another folder, or shards of two different splits: the same conversations twice
    for extra in ("s1-again", "t1of3"):
        code = main(["merge", str(merged), str(shard["s1"]), str(shard["s2"]), str(shard[extra])])
        assert code == EXIT_CONFIG
        assert not (merged / "summary.json").exists()
    # a shard killed before it finished anything still planned conversations another shard played
    (shard["t1of3"] / "conversations.jsonl").write_text("")
    assert main(["merge", str(merged), str(shard["s1"]), str(shard["s2"]), str(shard["t1of3"])]) == EXIT_CONFIG
    assert main(["merge", str(merged), str(shard["s1"]), str(shard["s2"])]) == EXIT_GATE_FAILED
    summary = json.loads((merged / "summary.json").read_text())
    assert summary["gate"]["passes"] == 2 and summary["gate"]["failures"] == 2
    assert summary["totals"]["conversations"] == summary["run"]["planned"] == 4


# --- rates at their thresholds ------------------------------------------------------------------------


def _percents(text: str) -> list[str]:
    return re.findall(r"[\d.]+%", text)


def test_a_rate_just_short_of_its_threshold_never_reads_as_reaching_it() -> None:
    sims = {
        "many": simulation_verdict(fake_results("many", ["pass"] * 999 + ["fail"])),
        "more": simulation_verdict(fake_results("more", ["pass"] * 999 + ["error"])),
    }
    gate = decide_gate(sims, None)  # every conversation must pass, none may error
    assert gate["status"] == "fail" and gate["pass_rate"] < 1.0 and gate["error_rate"] > 0.0
    markdown = render_markdown({"run": {}, "gate": gate, "totals": summarize([]).get("totals"), "simulations": {}})
    line = next(line for line in markdown.splitlines() if "pass rate" in line)
    assert "pass rate 99.9% (gate ≥ 100%)" in line and "error rate 0.1% (gate ≤ 0%)" in line, line
    assert all(p not in ("100.0%", "0.0%") for reason in gate["reasons"] for p in _percents(reason)), gate["reasons"]
    assert "pass rate 99.9%" in gate_lines({"gate": gate, "run": {}})

    # 1899/1999 = 94.997%: below a 95% gate, so neither summary.json nor the comment may say 95%
    sims = {"big": simulation_verdict(fake_results("big", ["pass"] * 1899 + ["fail"] * 100))}
    gate = decide_gate(sims, {"min_pass_rate": 0.95})
    assert gate["status"] == "fail" and gate["pass_rate"] < 0.95
    assert not any(p == "95.0%" for p in _percents(" ".join(gate["reasons"]))), gate["reasons"]
    # and a sub-percent threshold is shown as it is, not rounded to 100% or 0%
    gate = decide_gate(sims, {"min_pass_rate": 0.945, "max_error_rate": 0.005})
    markdown = render_markdown({"run": {}, "gate": gate, "totals": summarize([]).get("totals"), "simulations": {}})
    assert "(gate ≥ 94.5%)" in markdown and "(gate ≤ 0.5%)" in markdown


def test_the_html_report_does_not_round_a_failing_pass_rate_up_to_100_percent(browser, tmp_path: Path) -> None:
    manifest = callback_project(
        tmp_path,
        "return 'no' if 'bad' in q else 'sure'",
        "  - {name: good, persona: jane, task: t, turns: [hi], repeat: 199, expect: {contains: sure}}\n"
        "  - {name: bad, persona: jane, task: t, turns: [bad], expect: {contains: sure}}\n",
    )
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "32"]) == EXIT_GATE_FAILED
    page = open_report(browser, out / "report.html")
    stats = page.eval_on_selector_all("#stats .stat", "els => els.map(e => e.textContent)")
    assert "99.5%pass rate" in stats, stats
    assert page.problems == []  # type: ignore[attr-defined]


# --- re-checks -------------------------------------------------------------------------------------------


def test_check_of_a_filtered_or_sharded_run_holds_it_to_what_it_planned(tmp_path: Path) -> None:
    manifest = _sharded_manifest(tmp_path)
    manifest.write_text(
        manifest.read_text()
        .replace(
            "expect: {contains: sure}}\n  - {name: bad", "expect: {contains: sure}, required: true}\n  - {name: bad"
        )
        .replace("version: 1\n", "version: 1\ngate: {required: [bad]}\n")
    )
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet", "--filter", "good"]) == EXIT_OK
    before = json.loads((out / "summary.json").read_text())
    assert before["gate"]["status"] == "pass" and before["run"]["gate_narrowed"] == ["bad"]
    assert main(["check", str(out)]) == EXIT_OK
    after = json.loads((out / "summary.json").read_text())
    assert after["gate"]["status"] == "pass", after["gate"]["reasons"]
    assert after["gate"]["config"]["required"] == before["gate"]["config"]["required"]


@pytest.mark.parametrize("how", ["same path", "through a link", "spelled another way"])
def test_merge_into_one_of_its_own_shards_is_refused_before_anything_moves(tmp_path: Path, capsys, how: str) -> None:
    manifest = _sharded_manifest(tmp_path)
    s1, s2 = tmp_path / "s1", tmp_path / "s2"
    for folder, spec in ((s1, "1/2"), (s2, "2/2")):
        main(["run", str(manifest), "--out", str(folder), "--quiet", "--shard", spec])
    before = {path.name: path.read_bytes() for path in s1.iterdir() if path.is_file()}
    out = {"same path": s1, "through a link": tmp_path / "link", "spelled another way": tmp_path / "s2" / ".." / "s1"}[
        how
    ]
    if how == "through a link":
        out.symlink_to(s1)
    capsys.readouterr()
    assert main(["merge", str(out), str(s1), str(s2)]) == EXIT_CONFIG
    assert "is also a shard given to merge" in capsys.readouterr().err
    assert {path.name: path.read_bytes() for path in s1.iterdir() if path.is_file()} == before
    assert not (s1 / "previous").exists()


def test_a_results_line_written_twice_is_counted_once_and_named(tmp_path: Path, capsys) -> None:
    manifest = _sharded_manifest(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(manifest), "--out", str(out), "--quiet"]) == EXIT_GATE_FAILED
    results = out / "conversations.jsonl"
    lines = results.read_text().splitlines(keepends=True)
    failed = next(line for line in lines if '"bad"' in line)
    passed = next(line for line in lines if '"good"' in line)
    results.write_text("".join(lines) + failed + passed + passed)  # appended again, and again
    (out / "summary.json").unlink()
    capsys.readouterr()
    main(["report", str(out)])
    err = capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["totals"]["conversations"] == summary["run"]["planned"] == 4
    assert summary["gate"]["passes"] == 2 and summary["gate"]["failures"] == 2
    assert "appears 2 times" in err or "appears 3 times" in err, err
