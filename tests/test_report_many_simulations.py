"""report.html of a run of more simulations than it lists: which it lists, and what it says of the rest.

Past `MAX_SIMULATION_ROWS` the page lists the overview charts' rows, then the simulations that did
not pass, then passes, in summary order; the table, the charts and the footer count every one.
The cap is lowered here so that a few hundred simulations go past it.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.report import html as report_html
from simulator.report import render_html
from simulator.results.summary import SummaryBuilder, summarize
from tests.browser import open_report
from tests.test_large_summary_consumers import Simulations, conversation, embedded, results

CAP = 50
COUNT = 300


def few_fail(index: int) -> dict[str, Any]:
    """Mostly passes: every 20th fails and every 50th errors, 21 of 300 in all."""
    status = "error" if index % 50 == 0 else "fail" if index % 20 == 3 else "pass"
    result = conversation(index)
    check = {"name": "contains 'refund'", "kind": "contains", "status": status, "message": "no refund"}
    check = None if status == "error" else check
    result["evaluation"] = {
        "status": status,
        "checks": [check] if check else [],
        "failed": [check["name"]] if check and status == "fail" else [],
        "errors": ["the app answered 500"] if status == "error" else [],
    }
    result["meta_data"]["stop_reason"] = "error" if status == "error" else "user_done"
    return result


def failing_faster(index: int) -> dict[str, Any]:
    """A failed conversation whose app answers faster the later its simulation comes."""
    result = conversation(5 * index + 3)  # every fifth index fails
    result["conversation"][1]["latency_ms"] = 10_000.0 - index
    return result


def summary_of(played: list[dict[str, Any]]) -> dict[str, Any]:
    summary = dict(summarize(played, {"manifest": "generated"}))
    summary["simulations"] = dict(summary["simulations"].items())
    return summary


def listed(summary: dict[str, Any], played: list[dict[str, Any]]) -> dict[str, Any]:
    """The page's data, its simulations read from a mapping as a run of many gives them."""
    return embedded(render_html({**summary, "simulations": Simulations(summary["simulations"])}, played))


def chart_rows(summary: dict[str, Any]) -> tuple[list[str], list[str]]:
    """The overview's pass-rate and latency rows, ranked over every simulation as the page ranks them."""
    entries = list(summary["simulations"].items())
    order = {name: i for i, (name, _) in enumerate(entries)}

    def rate(item: tuple[str, Any]) -> tuple[float, int, int]:
        v = item[1]["verdict"]
        return (v["passes"] / v["runs"], -v["errors"], order[item[0]])

    fewest = [name for name, _ in sorted(entries, key=rate)[: report_html.CHART_ROWS]]
    slowest = sorted(entries, key=lambda item: (-(item[1]["latency_ms"]["app_p95"] or 0), order[item[0]]))
    return fewest, [name for name, _ in slowest[: report_html.CHART_ROWS]]


@pytest.fixture(autouse=True)
def small_cap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(report_html, "MAX_SIMULATION_ROWS", CAP)


def test_past_the_cap_every_failure_and_the_charts_rows_are_listed_then_the_first_passes() -> None:
    played = [few_fail(i) for i in range(COUNT)]
    summary = summary_of(played)
    data = listed(summary, played)
    names, sims = list(summary["simulations"]), data["summary"]["simulations"]
    assert len(sims) == CAP and list(sims) == [name for name in names if name in sims]  # summary order
    assert all(sims[name] == summary["simulations"][name] for name in sims)
    not_passed = [name for name in names if summary["simulations"][name]["verdict"]["status"] != "pass"]
    assert len(not_passed) == 21 and set(not_passed) <= set(sims)
    fewest, slowest = chart_rows(summary)
    assert set(fewest) | set(slowest) <= set(sims)
    assert slowest == [f"sim-{i:04d}" for i in range(COUNT - 1, COUNT - 13, -1)]  # listed though they pass, late
    others = [name for name in names if name not in not_passed and name not in slowest]
    assert [name for name in sims if name in others] == others[: CAP - 21 - 12]
    assert data["simulations_omitted"] == COUNT - CAP and data["simulations_omitted_not_passed"] == 0


def test_more_failures_than_the_cap_lists_the_first_of_them() -> None:
    played = [failing_faster(i) for i in range(COUNT)]
    summary = summary_of(played)
    data = listed(summary, played)
    assert list(data["summary"]["simulations"]) == list(summary["simulations"])[:CAP]
    assert data["simulations_omitted"] == data["simulations_omitted_not_passed"] == COUNT - CAP


def test_more_failures_than_the_cap_still_lists_the_charts_rows() -> None:
    played = results(COUNT)  # 95 of 300 fail or error; the slowest come last
    summary = summary_of(played)
    data = listed(summary, played)
    names, sims = list(summary["simulations"]), data["summary"]["simulations"]
    fewest, slowest = chart_rows(summary)
    charted = set(fewest) | set(slowest)
    assert len(sims) == CAP and charted <= set(sims) and list(sims) == [name for name in names if name in sims]
    not_passed = [name for name in names if summary["simulations"][name]["verdict"]["status"] != "pass"]
    first_failures = [name for name in not_passed if name not in charted][: CAP - len(charted)]
    assert [name for name in sims if name not in charted] == first_failures
    shown_not_passed = sum(name in sims for name in not_passed)
    assert data["simulations_omitted"] == COUNT - CAP
    assert data["simulations_omitted_not_passed"] == len(not_passed) - shown_not_passed


def test_a_run_at_the_cap_is_listed_whole_in_one_pass() -> None:
    played = [few_fail(i) for i in range(CAP)]
    summary = summary_of(played)
    mapping = Simulations(summary["simulations"])
    page = render_html({**summary, "simulations": mapping}, played)
    assert mapping.iterations == 1 and mapping.reads == CAP
    data = embedded(page)
    assert list(data["summary"]["simulations"]) == list(summary["simulations"])
    assert "simulations_omitted" not in data and "simulations_omitted_not_passed" not in data


def test_the_listing_reads_the_mapping_twice_and_holds_none_of_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Entries of 8 KB each, made when read: 24 MB if the listing kept them all."""
    monkeypatch.setattr("simulator.report.figures.MAX_SIMULATIONS", 100)
    bulky = "x" * 8000
    count = 3000
    template = summarize([few_fail(3)])["simulations"]["sim-0003"]
    mapping = Simulations(lambda name: {**template, "task": bulky + name}, [f"sim-{i:04d}" for i in range(count)])
    summary = {**summarize([few_fail(3)]), "simulations": mapping}

    def played() -> Iterator[dict[str, Any]]:
        return (few_fail(i) for i in range(count))

    tracemalloc.start()
    try:
        report_html.write_html(tmp_path / "report.html", summary, played)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4_000_000, f"{peak:,} bytes at the peak"
    assert mapping.iterations == 2 and mapping.reads <= 2 * count + 2 * report_html.CHART_ROWS
    assert CAP * 8000 < (tmp_path / "report.html").stat().st_size < 2 * CAP * 8000 + 3_000_000


def write_page(tmp_path: Path, played: list[dict[str, Any]]) -> Path:
    """report.html of these results, the summary's simulations kept on disk as a run of many keeps them."""
    builder = SummaryBuilder(in_memory=10)
    for result in played:
        builder.add(result)  # type: ignore[arg-type]
    summary = builder.build({"manifest": "generated"})
    return report_html.write_html(tmp_path / "report.html", summary, lambda: iter(played))


def test_the_page_counts_every_simulation_and_says_which_it_leaves_out(
    browser, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("simulator.report.figures.MAX_SIMULATIONS", 20)
    played = [few_fail(i) for i in range(COUNT)]
    page = open_report(browser, write_page(tmp_path, played))
    assert page.text_content("#simulations-omitted") == (
        "250 simulation(s) that passed are not listed here, to keep this page small: every simulation is in summary.json."
    )
    assert page.eval_on_selector_all("tr.sim", "rows => rows.length") == CAP
    assert page.text_content("#shown") == f"{CAP} of {COUNT} simulations"
    assert page.text_content("#chart-pass .chart-note") == (
        f"12 of {COUNT} simulations, fewest passes first; the table lists {CAP} of them."
    )
    assert page.text_content("#chart-latency .chart-note") == f"12 of {COUNT} simulations, highest p95 first."
    fewest, slowest = chart_rows(summary_of(played))
    assert page.eval_on_selector_all("#chart-pass .bar-row", "gs => gs.map(g => g.dataset.name)") == fewest
    assert page.eval_on_selector_all("#chart-latency .lat-row", "gs => gs.map(g => g.dataset.name)") == slowest
    assert f"kept for 32 of {COUNT} simulations" in page.text_content("#figures-kept")
    page.check("#failed-only")
    assert page.text_content("#shown") == f"21 of {COUNT} simulations"
    assert page.problems == []  # type: ignore[attr-defined]


def test_the_note_counts_the_failures_it_leaves_out(browser, tmp_path: Path) -> None:
    page = open_report(browser, write_page(tmp_path, [failing_faster(i) for i in range(COUNT)]))
    assert page.text_content("#simulations-omitted") == (
        "250 simulation(s), 250 of them failed or errored, are not listed here, to keep this page small: "
        "every simulation is in summary.json."
    )
    assert page.text_content("#shown") == f"{CAP} of {COUNT} simulations"
    assert page.problems == []  # type: ignore[attr-defined]


def test_past_the_cap_the_comparison_is_embedded_for_the_listed_simulations_and_those_only_the_base_has() -> None:
    played = [few_fail(i) for i in range(COUNT)]
    summary = summary_of(played)
    changes: dict[str, Any] = {name: {"verdict": "unchanged", "pass_rate_delta": 0} for name in summary["simulations"]}
    changes["gone"] = {"verdict": "removed", "change": "removed"}
    changes["elsewhere"] = {"verdict": "not run", "change": "not run"}
    data = embedded(render_html({**summary, "simulations": Simulations(summary["simulations"])}, played, changes))
    assert len(data["summary"]["simulations"]) == CAP
    assert set(data["baseline"]) == set(data["summary"]["simulations"]) | {"gone", "elsewhere"}
    # under the cap the page embeds the comparison whole, as before
    small = {name: summary["simulations"][name] for name in list(summary["simulations"])[:CAP]}
    whole = embedded(render_html({**summary, "simulations": small}, played, changes))
    assert whole["baseline"] == changes
