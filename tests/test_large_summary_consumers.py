"""Everything that reads a summary works from a summary of thousands of simulations read from disk.

A run of many distinct simulations gives `summary["simulations"]` as a read-only mapping that reads
each entry from disk when asked: `json.dumps` cannot write it, and copying it whole would cost
gigabytes at 100,000. `Simulations` below behaves the same way (no dict underneath, entries made
afresh on each read, reads counted). Each consumer must say exactly what it says from a dict, and
hold no more than what it shows: the report page streams the entries, the tables and logs stop at
their caps with a note of how many more, and the charts keep figures for a bounded number.
"""

from __future__ import annotations

import io
import json
import re
import tracemalloc
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from simulator.cli_output import CHECKS_SHOWN, SIMULATIONS_SHOWN, Console, gate_lines
from simulator.github import publish
from simulator.github.inputs import GitHubContext
from simulator.report import compare, render_html, render_markdown
from simulator.report import html as report_html
from simulator.report.figures import Figures
from simulator.report.markdown import simulations_table
from simulator.report.mermaid import pass_rate_chart
from simulator.results.simulation_store import is_stored
from simulator.results.streamed_json import json_pieces
from simulator.results.summary import SummaryBuilder, summarize
from simulator.text import known_secrets
from simulator.text.known_secrets import scrub
from tests.browser import open_report

COUNT = 3000
SECRET = "sk-live-0123456789abcdef"


def status_of(index: int) -> str:
    """A mix: most pass, every fifth fails, every seventh (that does not fail) errors."""
    return "fail" if index % 5 == 3 else "error" if index % 7 == 0 else "pass"


def conversation(index: int, repeat: int = 1, task: str = "") -> dict[str, Any]:
    """A result as the runner writes it, with a latency that grows with the simulation's index."""
    status, name = status_of(index), f"sim-{index:04d}"
    check = {"name": f"contains 'label {index % 4}'", "kind": "contains", "status": status, "message": "no label"}
    return {
        "conversation_id": f"{name}-{repeat}",
        "conversation": [
            {"turn_number": 0, "actor": "user", "response": "where is my refund?"},
            {"turn_number": 1, "actor": "assistant", "response": "Soon.", "latency_ms": 5.0 + index},
        ],
        "meta_data": {
            "simulation": name,
            "repeat": repeat,
            "persona": {"name": f"persona {index % 9}"},
            "task": task or f"refund {index}",
            "tags": ["refunds"],
            "stop_reason": "error" if status == "error" else "user_done",
            "stop_detail": "the app answered 500" if status == "error" else None,
            "turn_count": 2,
            "required": index % 500 == 3,
            "usage": {"total": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
        },
        "evaluation": {
            "status": status,
            "checks": [] if status == "error" else [check],
            "failed": [check["name"]] if status == "fail" else [],
            "errors": ["the app answered 500"] if status == "error" else [],
        },
    }


def results(count: int = COUNT, task: str = "") -> list[dict[str, Any]]:
    return [conversation(i, task=task) for i in range(count)]


class Simulations(Mapping[str, Any]):
    """A read-only mapping like the one a run of many simulations gives: not a dict, each entry read
    afresh (here from JSON text, there from disk), iterations and reads counted."""

    def __init__(self, entries: Mapping[str, Any] | Callable[[str], Any], names: list[str] | None = None) -> None:
        self._read = (lambda name: json.loads(json.dumps(entries[name]))) if isinstance(entries, Mapping) else entries
        self._names = list(entries) if isinstance(entries, Mapping) else list(names or [])
        self._known = set(self._names)
        self.iterations = self.reads = 0

    def __getitem__(self, name: str) -> Any:
        if name not in self._known:
            raise KeyError(name)
        self.reads += 1
        return self._read(name)

    def __iter__(self) -> Iterator[str]:
        self.iterations += 1
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)

    def __contains__(self, name: object) -> bool:
        return name in self._known


@pytest.fixture(scope="module")
def played() -> list[dict[str, Any]]:
    return results()


@pytest.fixture(scope="module")
def plain(played: list[dict[str, Any]]) -> dict[str, Any]:
    """The summary with its simulations in a dict, as a small run has them."""
    summary = dict(summarize(played, {"manifest": "generated"}))
    summary["simulations"] = dict(summary["simulations"].items())
    return summary


def streamed(summary: dict[str, Any]) -> dict[str, Any]:
    """The same summary with its simulations behind a read-only mapping."""
    return {**summary, "simulations": Simulations(summary["simulations"])}


def embedded(page: str) -> dict[str, Any]:
    return json.loads(re.search(r'id="report-data">(.*?)</script>', page, re.DOTALL).group(1))  # type: ignore[union-attr]


def test_the_mapping_is_no_dict_and_json_cannot_write_it(plain: dict[str, Any]) -> None:
    simulations = streamed(plain)["simulations"]
    assert not isinstance(simulations, dict) and len(simulations) == COUNT
    with pytest.raises(TypeError):
        json.dumps(simulations)


def test_report_html_is_the_same_page_byte_for_byte(plain: dict[str, Any], played: list[dict[str, Any]]) -> None:
    page = render_html(plain, played)
    mapping = streamed(plain)
    assert render_html(mapping, played) == page
    assert mapping["simulations"].iterations == 1 and mapping["simulations"].reads == COUNT  # one pass
    data = embedded(page)
    assert data["summary"] == json.loads(json.dumps(plain)) and len(data["summary"]["simulations"]) == COUNT


def test_a_summary_whose_simulations_are_on_disk_reads_as_the_dict(
    plain: dict[str, Any], played: list[dict[str, Any]]
) -> None:
    builder = SummaryBuilder(in_memory=10)
    for result in played:
        builder.add(result)  # type: ignore[arg-type]
    summary = builder.build({"manifest": "generated"})
    assert is_stored(summary["simulations"])
    assert render_html(summary, played) == render_html(plain, played)  # type: ignore[arg-type]
    assert render_markdown(summary, played) == render_markdown(plain, played)  # type: ignore[arg-type]
    assert gate_lines(summary, played) == gate_lines(plain, played)  # type: ignore[arg-type]


def test_the_streamed_head_is_what_the_whole_summary_embedded_gives(plain: dict[str, Any]) -> None:
    """The summary part of the page, as embedding the summary whole wrote it, scrubbing included."""
    known_secrets.register(SECRET)
    summary = {**plain, "simulations": {**plain["simulations"], f"leak {SECRET}": plain["simulations"]["sim-0003"]}}
    summary["run"] = {**plain["run"], "warnings": [f"\u202ereversed {SECRET} <script>"]}
    whole = report_html._embed(scrub({"summary": summary, "baseline": {}, "baseline_label": "main"}))[:-1]
    for simulations in (summary["simulations"], Simulations(summary["simulations"])):
        pieces = report_html._head({**summary, "simulations": simulations}, None, "main", report_html._slowest())
        assert "".join(pieces) == whole
    assert SECRET not in whole and "leak ***" in whole and "\\u003cscript" in whole


def test_figures_keep_a_bounded_number_of_simulations_and_count_the_rest() -> None:
    figures = Figures(limit=100, first={"sim-5999"})
    for index in range(6000):
        figures.add(conversation(index))
    built = figures.build()
    assert len(built["simulations"]) == 101 and "sim-5999" in built["simulations"]
    assert list(built["simulations"])[:3] == ["sim-0000", "sim-0001", "sim-0002"]  # the first met
    assert built["rest"]["conversations"] == 5899 and len(figures) == 6000
    counted = [n for sim in built["simulations"].values() for _, _, n in sim["endings"]]
    assert sum(counted) + sum(n for _, _, n in built["rest"]["endings"]) == 6000
    assert "rest" not in Figures().build() and Figures(limit=10).complete


def test_the_page_keeps_figures_for_a_bounded_number_of_simulations(
    plain: dict[str, Any], played: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("simulator.report.figures.MAX_SIMULATIONS", 200)
    data = embedded(render_html(streamed(plain), played, base_results=results(COUNT)))
    figures, base = data["figures"], data["base_figures"]
    slowest = [f"sim-{index:04d}" for index in range(COUNT - report_html.CHART_ROWS, COUNT)]
    assert len(figures["simulations"]) == 200 + report_html.CHART_ROWS
    assert set(slowest) <= set(figures["simulations"])  # the latency chart's rows, however late they came
    assert figures["rest"]["conversations"] == COUNT - 200 - report_html.CHART_ROWS
    assert set(base["simulations"]) == set(figures["simulations"])  # drawn beside this run's, nothing more
    assert base["rest"]["conversations"] == figures["rest"]["conversations"]


def test_a_small_run_keeps_every_simulations_figures(played: list[dict[str, Any]]) -> None:
    summary = summarize(played[:50])
    data = embedded(render_html(summary, played[:50]))
    assert len(data["figures"]["simulations"]) == 50 and "rest" not in data["figures"]


def test_the_page_says_which_simulations_have_no_charts(
    browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("simulator.report.figures.MAX_SIMULATIONS", 20)
    few = results(300)
    summary = summarize(few)
    report_html.write_html(tmp_path / "report.html", streamed(dict(summary)), lambda: iter(few))
    page = open_report(browser, tmp_path / "report.html")
    assert "kept for 32 of 300 simulations" in page.text_content("#figures-kept")
    legend = page.text_content("#chart-endings .legend")
    errored = sum(1 for r in few if r["evaluation"]["status"] == "error")
    assert f"user done {300 - errored}" in legend and f"error {errored}" in legend  # every conversation counted
    assert "12 of 300 simulations" in page.text_content("#chart-latency")
    page.click("tr.sim[data-name='sim-0150']")
    assert "No charts of this simulation" in page.text_content("tr.detail:not([hidden])")
    assert page.problems == []  # type: ignore[attr-defined]


def test_the_markdown_table_reads_only_the_rows_it_shows(plain: dict[str, Any], played: list[dict[str, Any]]) -> None:
    mapping = streamed(plain)
    table = simulations_table(mapping, max_rows=200)
    assert table == simulations_table(plain, max_rows=200)
    assert len([line for line in table.splitlines() if line.startswith("| ")]) == 201  # the header and 200 rows
    assert table.endswith(f"_{COUNT - 200} more simulations are in the artifact's summary.json._")
    assert mapping["simulations"].reads == 200
    assert render_markdown(streamed(plain), played) == render_markdown(plain, played)


def test_the_markdown_table_scrubs_what_it_reads(plain: dict[str, Any]) -> None:
    known_secrets.register(SECRET)
    entry = {**plain["simulations"]["sim-0000"], "persona": SECRET}
    summary = {**plain, "simulations": Simulations({f"sim {SECRET}": entry, **plain["simulations"]})}
    table = render_markdown(summary)
    assert SECRET not in table and "sim \\*\\*\\*" in table


def test_a_comparison_with_the_base_run_reads_the_mapping_as_a_dict(plain: dict[str, Any]) -> None:
    base = json.loads(json.dumps(plain))  # a base run's summary.json, read back
    base["simulations"]["sim-0001"]["verdict"]["passes"] = 0
    changes = compare(plain, base)
    assert compare(streamed(plain), base) == changes
    assert render_markdown(streamed(plain), changes=changes) == render_markdown(plain, changes=changes)


def test_the_mermaid_chart_is_left_out_without_reading_a_simulation(plain: dict[str, Any]) -> None:
    mapping = streamed(plain)
    assert pass_rate_chart(mapping) is None
    assert mapping["simulations"].iterations == mapping["simulations"].reads == 0


def test_the_gate_lines_name_a_few_failed_simulations_and_count_the_rest(
    plain: dict[str, Any], played: list[dict[str, Any]]
) -> None:
    mapping = streamed(plain)
    lines = gate_lines(mapping, played)
    assert lines == gate_lines(plain, played)
    assert mapping["simulations"].iterations == 1
    failed = sum(1 for i in range(COUNT) if status_of(i) == "fail")
    body = lines.splitlines()[1 + len(plain["gate"]["reasons"]) :]
    assert len(body) <= SIMULATIONS_SHOWN * CHECKS_SHOWN + 1
    assert body[-1] == f"  - … {failed - SIMULATIONS_SHOWN} more failed simulation(s): see the report"
    assert body[0].startswith("  - sim-0003: 0/1 passed")  # required ones first


def test_the_json_document_is_the_same_and_written_entry_by_entry(plain: dict[str, Any], tmp_path: Path) -> None:
    outputs = []
    for summary in (plain, streamed(plain)):
        out = io.StringIO()
        Console(format="json", out=out, err=io.StringIO()).conclude(summary, tmp_path, 1)  # type: ignore[arg-type]
        outputs.append(out.getvalue())
    assert outputs[0] == outputs[1] and json.loads(outputs[1])["summary"]["simulations"] == plain["simulations"]
    document = {"a": [1, {"b": 2}], "s": {"t": Simulations({"x": {"y": [1, 2]}, "é": {}}), "e": Simulations({})}}
    reference = {"a": [1, {"b": 2}], "s": {"t": {"x": {"y": [1, 2]}, "é": {}}, "e": {}}}
    assert "".join(json_pieces(document)) == json.dumps(reference, ensure_ascii=False, indent=2)
    assert "".join(json_pieces(Simulations({"k": 1}))) == json.dumps({"k": 1}, indent=2)


def github_lines(
    capsys: pytest.CaptureFixture[str], summary: dict[str, Any], played: Iterable[dict[str, Any]]
) -> list[str]:
    """What the action prints of a run's simulations: its log groups and annotations."""
    ctx = GitHubContext.from_env({"GITHUB_WORKSPACE": "/github/workspace", "GITHUB_REPOSITORY": "o/r"})
    capsys.readouterr()
    publish.log_simulations(summary, lambda: played)  # type: ignore[arg-type]
    publish.annotate(summary, None, ctx)  # type: ignore[arg-type]
    return re.sub("[0-9a-f]{32}", "<token>", capsys.readouterr().out).splitlines()  # untrusted text's fences


def test_the_log_and_annotations_stop_at_their_caps_and_say_how_many_more(
    plain: dict[str, Any], played: list[dict[str, Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = streamed(plain)
    lines = github_lines(capsys, mapping, played)
    assert lines == github_lines(capsys, plain, played)
    assert mapping["simulations"].iterations == 2  # one pass for the log, one for the annotations
    groups = [line for line in lines if line.startswith("::group::")]
    not_passed = [i for i in range(COUNT) if status_of(i) != "pass"]
    assert len(groups) == publish.LOGGED_SIMULATIONS
    assert groups[0] == "::group::sim-0000: error (0/1 passed)" and ": pass (" not in "".join(groups)  # failures first
    more = COUNT - publish.LOGGED_SIMULATIONS
    note = f"({more} more simulation(s), {len(not_passed) - 100} of them failed or errored, are not logged here"
    assert sum(line.startswith(note) for line in lines) == 1
    errors = [line for line in lines if line.startswith("::error")]
    warnings = [line for line in lines if line.startswith("::warning")]
    assert len(errors) == publish.ANNOTATED_FAILURES and len(warnings) == publish.ANNOTATED_NO_VERDICT
    assert sum("sim-2503 failed" in line for line in errors) == 1  # a required one, however late
    failed = sum(1 for i in not_passed if status_of(i) == "fail")
    notice = lines[-1]
    assert notice.startswith("::notice title=More simulations did not pass::")
    assert f"{failed - publish.ANNOTATED_FAILURES} more failed simulation(s)" in notice
    assert f"{len(not_passed) - failed - publish.ANNOTATED_NO_VERDICT} more without a verdict" in notice


def test_a_small_run_is_logged_and_annotated_as_before(capsys: pytest.CaptureFixture[str]) -> None:
    few = results(12)
    lines = github_lines(capsys, summarize(few), few)  # type: ignore[arg-type]
    assert [line for line in lines if line.startswith("::group::")] == [
        f"::group::sim-{i:04d}: {status_of(i)} ({int(status_of(i) == 'pass')}/1 passed)" for i in range(12)
    ]
    annotated = [line.split("::")[2].split(" ")[1] for line in lines if line.startswith(("::error", "::warning"))]
    assert annotated == [f"sim-{i:04d}" for i in range(12) if status_of(i) != "pass"]
    assert not any(line.startswith("::notice") or "more simulation(s)" in line for line in lines)


def test_consumers_hold_what_they_show_not_every_simulation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries of 8 KB each, made when read: 24 MB if any consumer kept them all."""
    monkeypatch.setattr("simulator.report.figures.MAX_SIMULATIONS", 100)
    bulky = "x" * 8000
    template = summarize([conversation(3, task=bulky)])["simulations"]["sim-0003"]
    names = [f"sim-{i:04d}" for i in range(COUNT)]
    summary = dict(summarize([conversation(3)]))
    summary["simulations"] = Simulations(lambda name: {**template, "task": bulky + name}, names)

    def played() -> Iterator[dict[str, Any]]:
        return (conversation(i, task=bulky) for i in range(COUNT))

    tracemalloc.start()
    try:
        report_html.write_html(tmp_path / "report.html", summary, played)  # type: ignore[arg-type]
        simulations_table(summary)  # type: ignore[arg-type]
        gate_lines(summary, played())  # type: ignore[arg-type]
        github_lines(capsys, summary, played())
        for _ in json_pieces({"summary": summary}):
            pass
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"{peak:,} bytes at the peak"
    assert (tmp_path / "report.html").stat().st_size > COUNT * 8000
