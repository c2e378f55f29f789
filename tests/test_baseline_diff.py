"""What changed since a base run, as the CLI, the comment's Markdown and report.html show it.

Two real runs of one manifest against two versions of a callback app: one simulation breaks
(5/5 → 0/5), one is fixed, one is flaky either side (3/4 → 2/4), one stays, one is removed and
one added.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from simulator.cli import EXIT_OK, main
from simulator.report import compare, render_markdown, write_reports
from simulator.results.reading import read_results
from tests.browser import open_report
from tests.servers.openai_server import FakeOpenAIServer
from tests.test_action import user_says

APP = """\
from pathlib import Path

BROKEN = {broken}
FIXED = {fixed}
FLAKY_FAILS = {flaky_fails}  # the first calls of the flaky question that fail


def respond(question, conversation_history, meta_data):
    if "flaky" in question:
        counter = Path(__file__).with_name("flaky-calls")
        calls = int(counter.read_text()) + 1 if counter.exists() else 1
        counter.write_text(str(calls))
        return "no" if calls <= FLAKY_FAILS else "ok"
    if "broken" in question:
        return "no, never" if BROKEN else "ok, done"
    if "fixed" in question:
        return "ok, fixed" if FIXED else "no"
    return "ok"
"""

SIMULATIONS = {
    "steady": "{name: steady, persona: jane, task: t, repeat: 4, turns: ['hello'], expect: {contains: ok}}",
    "broken": (
        "{name: broken, persona: jane, task: t, repeat: 5, turns: ['broken question', 'broken, and then?'],"
        " expect: {contains: ok}}"
    ),
    "fixed": "{name: fixed, persona: walter, task: t, repeat: 5, turns: ['fixed question'], expect: {contains: ok}}",
    "flaky": "{name: flaky, persona: alex, task: t, repeat: 4, turns: ['flaky question'], expect: {contains: ok}}",
    "gone": "{name: gone, persona: jane, task: t, turns: ['hello'], expect: {contains: ok}}",
    "fresh": "{name: fresh, persona: jane, task: t, turns: ['hello'], expect: {contains: ok}}",
}


def run(folder: Path, names: list[str], **app: int) -> Path:
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(APP.format(**app))
    manifest = folder / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {callback: 'app.py:respond'}\ngate: {min_pass_rate: 0.1}\nsimulations:\n"
        + "".join(f"  - {SIMULATIONS[name]}\n" for name in names)
    )
    out = folder / "out"
    main(["run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "1"])
    return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("diff")
    base = run(root / "base", ["steady", "broken", "fixed", "flaky", "gone"], broken=0, fixed=0, flaky_fails=1)
    head = run(root / "head", ["steady", "broken", "fixed", "flaky", "fresh"], broken=1, fixed=1, flaky_fails=2)
    return base, head


def summaries(runs: tuple[Path, Path]) -> tuple[dict, dict]:
    base, head = runs
    return tuple(json.loads((folder / "summary.json").read_text()) for folder in (base, head))  # type: ignore[return-value]


def test_each_simulation_gets_a_noise_aware_verdict_with_its_counts(runs: tuple[Path, Path]) -> None:
    before, after = summaries(runs)
    changes = compare(after, before)
    assert {name: change["verdict"] for name, change in changes.items()} == {
        "steady": "unchanged",
        "broken": "regressed",
        "fixed": "improved",
        "flaky": "within noise",
        "fresh": "new",
        "gone": "removed",
    }
    broken = changes["broken"]
    assert (broken["base"]["passes"], broken["base"]["failures"]) == (5, 0)
    assert (broken["head"]["passes"], broken["head"]["failures"]) == (0, 5)
    assert broken["p_value"] == pytest.approx(1 / 126)
    flaky = changes["flaky"]
    assert (flaky["base"]["passes"], flaky["head"]["passes"], flaky["p_value"]) == (3, 2, 1.0)
    assert broken["base"]["turns_per_conversation"] == 4 and broken["base"]["p95_ms"] is not None


@pytest.mark.parametrize("narrowed", [["--filter", "steady"], ["--shard", "2/19"]], ids=["filter", "shard"])
def test_a_run_of_part_of_the_manifest_does_not_call_the_rest_removed(
    runs: tuple[Path, Path], tmp_path: Path, narrowed: list[str], browser
) -> None:
    base, _ = runs
    manifest = base.parent / "simulations.yml"
    out = tmp_path / "part"
    main(["run", str(manifest), "--out", str(out), "--quiet", "--baseline", str(base), *narrowed])
    changes = compare(json.loads((out / "summary.json").read_text()), summaries(runs)[0])
    unplayed = {name: change["verdict"] for name, change in changes.items() if "head" not in change}
    assert unplayed and set(unplayed.values()) == {"not run"}  # still in the manifest: not removed
    report = (out / "report.md").read_text()
    assert "Removed" not in report and "**Not run here (only the base run has results):**" in report
    page = open_report(browser, out / "report.html")
    assert page.text_content("#not-run") == "Not run here (only the base run has results): " + ", ".join(unplayed)
    assert page.query_selector("#removed") is None and page.problems == []  # type: ignore[attr-defined]


def test_a_simulation_skipped_or_unfinished_is_not_run_and_one_left_out_of_the_manifest_is_removed(
    runs: tuple[Path, Path],
) -> None:
    before, after = summaries(runs)
    after = json.loads(json.dumps(after))
    del after["simulations"]["steady"], after["simulations"]["flaky"]
    after["run"].update(skipped_simulations=["steady"], missing=["flaky#1", "flaky#2"])
    verdicts = {name: change["verdict"] for name, change in compare(after, before).items()}
    assert (verdicts["steady"], verdicts["flaky"], verdicts["gone"]) == ("not run", "not run", "removed")


def test_the_comment_leads_with_regressions_and_folds_the_rest(runs: tuple[Path, Path]) -> None:
    before, after = summaries(runs)
    text = render_markdown(after, changes=compare(after, before), baseline_note="Compared with run 41 on main.")
    lead, folded = text.split("<details><summary>All 5 simulations", 1)
    assert lead.index("### What changed since base") < lead.index("📉 Regressed") < lead.index("📈 Improved")
    assert "Compared with run 41 on main." in lead
    assert "- **broken**: 5/5 → 0/5 passed (p = 0.008) · newly failing: contains 'ok' in any reply" in lead
    assert "- **fixed**: 0/5 → 5/5 passed (p = 0.008)" in lead
    assert "**New:** fresh" in lead and "**Removed:** gone" in lead
    assert "flaky" not in lead and "steady" not in lead  # within noise and unchanged: folded
    assert folded.startswith(", vs base: 1 regressed · 1 improved · 1 within noise · 1 unchanged · 1 new · 1 removed<")
    row = next(line for line in folded.splitlines() if "| flaky |" in line)
    assert "〰️ within noise (3/4 → 2/4, p = 1.000)" in row
    assert "unchanged (4/4 → 4/4)" in next(line for line in folded.splitlines() if "| steady |" in line)
    assert folded.count("</details>") == 1


def test_nothing_beyond_noise_says_so_and_a_long_table_never_leaves_details_open(runs: tuple[Path, Path]) -> None:
    before, after = summaries(runs)
    same = render_markdown(after, changes=compare(after, after))
    assert "Nothing changed beyond noise (5 unchanged)." in same
    full = render_markdown(after, changes=compare(after, before), chart=False)  # the chart would go first
    small = render_markdown(after, changes=compare(after, before), limit=len(full) + 100)
    assert len(small) < len(full) and "_The table of every simulation is in the artifact's report.md._" in small
    assert small.count("<details>") == small.count("</details>") and "📉 Regressed" in small


def test_a_note_without_a_baseline_is_one_line_above_the_table(runs: tuple[Path, Path]) -> None:
    _, after = summaries(runs)
    text = render_markdown(after, baseline_note="No baseline: no artifact simulation-results on main yet.")
    assert "> ℹ️ No baseline: no artifact simulation-results on main yet." in text
    assert "vs base" not in text


def test_cli_report_prints_the_comparison(runs: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    base, head = runs
    assert main(["report", str(head), "--baseline", str(base)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "📉 Regressed" in printed and "- broken: 5/5 → 0/5 passed (p = 0.008)" in printed  # plain text: no **


def test_report_html_shows_base_and_head_side_by_side(browser, runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, head = runs
    before, after = summaries(runs)
    out = tmp_path / "report"
    out.mkdir()
    head_results = read_results(head / "conversations.jsonl")
    write_reports(out, after, head_results, compare(after, before), baseline_label="main", baseline_dir=base)
    page = open_report(browser, out / "report.html")
    moves = page.eval_on_selector_all(
        "tr.sim", "rows => rows.map(r => [r.dataset.name, r.querySelector('.move').textContent])"
    )
    assert moves == [
        ["steady", "unchanged"],
        ["broken", "regressed"],
        ["fixed", "improved"],
        ["flaky", "within noise"],
        ["fresh", "new"],
    ]
    assert page.get_attribute("tr.sim[data-name='broken'] .move", "title") == "base 5/5 → 0/5, p = 0.008"
    assert page.text_content("#removed") == "Only in the base run: gone"

    page.click("tr.sim[data-name='broken']")
    page.locator("tr.sim[data-name='broken'] + tr.detail button.conv").first.click()
    assert page.text_content(".diff-note") == "First different app reply: turn 1."
    cells = page.eval_on_selector_all(
        ".sidebyside .cell",
        "cs => cs.map(c => [c.dataset.turn, c.className, (c.querySelector('.text') || {}).textContent || ''])",
    )
    assert [(turn, text) for turn, _, text in cells] == [
        ("0", "broken question"),
        ("0", "broken question"),
        ("1", "ok, done"),
        ("1", "no, never"),
        ("2", "broken, and then?"),
        ("2", "broken, and then?"),
        ("3", "ok, done"),
        ("3", "no, never"),
    ]
    marked = [(turn, classes.split()[1]) for turn, classes, _ in cells if "first-diff" in classes]
    assert marked == [("1", "base"), ("1", "head")]  # the first differing app reply, on both sides
    titles = page.eval_on_selector_all(".sidebyside .side-title", "ts => ts.map(t => t.textContent)")
    assert titles == ["base run · pass · user_done", "this run · fail · user_done"]

    page.click("tr.sim[data-name='steady']")
    steady = page.locator("tr.sim[data-name='steady'] + tr.detail")
    steady.locator("button.conv").first.click()
    assert steady.locator(".diff-note").text_content() == "Every app reply is the same as in the base run."
    assert steady.locator(".first-diff").count() == 0
    page.click("tr.sim[data-name='fresh']")
    fresh = page.locator("tr.sim[data-name='fresh'] + tr.detail")
    fresh.locator("button.conv").first.click()
    assert fresh.locator(".sidebyside").count() == 0 and fresh.locator(".transcript .turn").count() == 2
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_damaged_base_results_file_still_leaves_a_report(runs: tuple[Path, Path], tmp_path: Path) -> None:
    base, head = runs
    damaged = tmp_path / "base"
    damaged.mkdir()
    (damaged / "summary.json").write_text((base / "summary.json").read_text())
    lines = (base / "conversations.jsonl").read_text().splitlines()
    (damaged / "conversations.jsonl").write_text(lines[0] + "\n{not json}\n" + "\n".join(lines[1:]) + "\n")
    before, after = summaries(runs)
    out = tmp_path / "out"
    out.mkdir()
    results = read_results(head / "conversations.jsonl")
    write_reports(out, after, results, compare(after, before), baseline_dir=damaged)
    html = (out / "report.html").read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', html, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert len(data["base_conversations"]) == 1 and "not a JSON line" in data["base_problem"]


def test_a_base_summary_of_any_shape_compares_without_failing(runs: tuple[Path, Path]) -> None:
    _, after = summaries(runs)
    odd = {
        "simulations": {
            "steady": {"verdict": {"status": 3, "passes": -4, "failures": "x", "pass_rate": "all"}, "turns": "many"},
            "broken": {"verdict": None, "latency_ms": [1, 2]},
            "fixed": "not a simulation",
        }
    }
    changes = compare(after, odd)
    assert changes["steady"]["verdict"] == "within noise" and changes["steady"]["base"]["passes"] == 0
    assert changes["broken"]["base"]["p95_ms"] is None and changes["fixed"]["verdict"] == "new"
    assert "What changed since base" in render_markdown(after, changes=changes)


def test_a_replayed_run_shows_where_each_simulation_diverged(
    tmp_path: Path, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    llm.default = user_says("where is my order?", "and the refund?")

    def run_llm_users(name: str, broken: int, *replay: str) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "app.py").write_text(
            "def respond(question, conversation_history, meta_data):\n"
            f"    return 'no, never' if {broken} and meta_data['persona'] == 'Jane' else 'ok'\n"
        )
        manifest = folder / "simulations.yml"
        manifest.write_text(
            "version: 1\ntarget: {callback: 'app.py:respond'}\n"
            f"user: {{model: sim-user, endpoint: '{llm.openai_base_url}', api_key_env: SIM_KEY}}\n"
            "simulations:\n"
            "  - {name: broken, persona: jane, task: t, repeat: 3, max_turns: 6, expect: {contains: ok}}\n"
            "  - {name: steady, persona: walter, task: t, repeat: 2, max_turns: 2, expect: {contains: ok}}\n"
        )
        out = folder / "out"
        main(["run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "1", *replay])
        return out

    monkeypatch.setenv("SIM_KEY", "sk-test-key")
    base = run_llm_users("base", 0)
    head = run_llm_users("head", 1, "--replay", str(base))
    capsys.readouterr()
    assert main(["report", str(head), "--baseline", str(base)]) == EXIT_OK
    printed = capsys.readouterr().out
    broken = next(line for line in printed.splitlines() if "| broken |" in line)
    # 3/3 → 0/3 is within noise by its counts, but every conversation sent the base run's messages and
    # got another reply from an app the base run saw answer them alike: the change caused it
    assert "📉 regressed (3/3 → 0/3, p = 0.100) · replay diverged at turn 1 (3 of 3 conversations)" in broken
    assert "caused by the app's changed reply at turn 1: 3 of 3 conversation(s) sent the base run's messages" in printed
    assert "base “ok” → now “no, never”" in printed
    steady = next(line for line in printed.splitlines() if "| steady |" in line)
    assert "replay identical (2 conversations)" in steady
    before, after = (json.loads((folder / "summary.json").read_text()) for folder in (base, head))
    assert "replay" not in json.dumps(dict(compare(after, before)))  # from the summaries alone: nothing said
