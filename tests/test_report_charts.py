"""report.html's charts and affordances as a reviewer uses them, in headless Chromium.

One real run of a callback app with scripted users, whose every conversation is known: a required
simulation that passes 3 of 3 (with a max_latency_ms limit), one whose user gives up twice, one
that runs out of turns and one whose app crashes. A second run of a fixed app is its base.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page

from simulator.cli import main
from simulator.report import html as report_html
from simulator.report import write_reports
from simulator.report.figures import latency_bin
from simulator.results.reading import read_results
from tests.browser import open_report

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
APP = """\
def respond(question, conversation_history, meta_data):
    if "crash" in question:
        raise RuntimeError("the order service is down")
    if "refund" in question:
        return "Your refund is approved, label RL-42."
    return {other!r}
"""
MANIFEST = """\
version: 1
target: {callback: 'app.py:respond'}
gate: {min_pass_rate: 0.5, max_error_rate: 1}
simulations:
  - {name: refund-ok, persona: jane, task: refund, repeat: 3, required: true, turns: ['I need a refund', 'thanks'],
     expect: {contains: refund, max_latency_ms: 60000}}
  - {name: gives-up, persona: walter, task: order status, repeat: 2, turns: ['where is my order', 'forget it ###GIVE_UP###'],
     expect: {not_contains: Sorry}}
  - {name: long-talk, persona: alex, task: chat, max_turns: 4, turns: ['hi', 'and?', 'more?'], expect: {contains: shipped}}
  - {name: app-crash, persona: ming, task: crash, turns: ['crash please']}
"""
#: app replies with a latency per simulation: (conversations x replies); app-crash's only reply is an error
REPLIES = {"refund-ok": 6, "gives-up": 2, "long-talk": 2}


def run(folder: Path, other: str) -> Path:
    folder.mkdir(parents=True)
    (folder / "app.py").write_text(APP.format(other=other))
    (folder / "simulations.yml").write_text(MANIFEST)
    main(["run", str(folder / "simulations.yml"), "--out", str(folder / "out"), "--quiet", "--concurrency", "1"])
    return folder / "out"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("charts")
    head = run(root / "head", "Sorry, I cannot help with that.")
    base = run(root / "base", "It shipped yesterday.")
    compared = root / "compared"
    shutil.copytree(head, compared)
    main(["report", str(compared), "--baseline", str(base)])
    return {"head": head, "base": base, "compared": compared}


@pytest.fixture(scope="module")
def page(browser, runs: dict[str, Path]) -> Page:
    """The head run's report, opened once for the tests that only read it."""
    return open_report(browser, runs["head"] / "report.html")


def conversation_id(folder: Path, simulation: str, repeat: int) -> str:
    return next(
        r["conversation_id"]
        for r in read_results(folder / "conversations.jsonl")
        if r["meta_data"]["simulation"] == simulation and r["meta_data"]["repeat"] == repeat
    )


def bar_rows(page: Page, selector: str = "#chart-pass .bar-row") -> list:
    return page.eval_on_selector_all(
        selector,
        "gs => gs.map(g => [g.dataset.name, [...g.querySelectorAll('rect')].map(r => [r.getAttribute('class'), +r.dataset.count])])",
    )


def test_charts_draw_every_simulation_of_a_known_run(page: Page, tmp_path: Path, capsys) -> None:
    assert bar_rows(page) == [  # fewest passes first: errors before failures, then the table's order
        ["app-crash", [["seg error", 1]]],
        ["gives-up", [["seg fail", 2]]],
        ["long-talk", [["seg fail", 1]]],
        ["refund-ok", [["seg pass", 3]]],
    ]
    latency = page.eval_on_selector_all(
        "#chart-latency .lat-row",
        """gs => gs.map(g => [g.dataset.name, [...g.querySelectorAll('rect.lat-bin')].reduce((n, r) => n + +r.dataset.count, 0),
            g.querySelectorAll('.mark.p50').length, g.querySelectorAll('.mark.p95').length, g.querySelectorAll('.limit').length])""",
    )
    assert sorted(latency) == sorted(
        [name, replies, 1, 1, int(name == "refund-ok")] for name, replies in REPLIES.items()
    )
    endings = page.eval_on_selector_all(
        "#chart-endings rect.end", "rs => rs.map(r => [+r.dataset.turns, r.getAttribute('class'), +r.dataset.count])"
    )
    assert sorted(endings) == [
        [2, "end end-error", 1],  # the user's message, then the crash
        [3, "end end-user_gave_up", 2],
        [4, "end end-max_turns", 1],
        [4, "end end-user_done", 3],
    ]
    legend = page.text_content("#chart-endings .legend")
    assert "user done 3" in legend and "user gave up 2" in legend and "max turns 1" in legend and "error 1" in legend
    assert page.locator("#chart-pass .seg.base, #chart-endings [data-panel='base run']").count() == 0
    assert page.problems == []  # type: ignore[attr-defined]
    shot = tmp_path / "report-charts.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\nscreenshot of the report's charts: {shot}")


def test_a_chart_bar_opens_its_simulation(browser, runs: dict[str, Path]) -> None:
    page = open_report(browser, runs["head"] / "report.html")
    page.click("#chart-pass .bar-row[data-name='long-talk']")
    detail = page.locator("tr.sim[data-name='long-talk'] + tr.detail")
    assert detail.is_visible()
    bins = detail.locator(".sim-charts rect.lat-bin").evaluate_all("rs => rs.reduce((n, r) => n + +r.dataset.count, 0)")
    assert bins == REPLIES["long-talk"]  # the simulation's own latency distribution
    assert detail.locator(".sim-charts rect.end").evaluate_all("rs => rs.map(r => r.getAttribute('class'))") == [
        "end end-max_turns"
    ]


def test_rows_say_they_open_why_they_failed_and_that_they_are_required(page: Page) -> None:
    rows = page.eval_on_selector_all(
        "tr.sim",
        """rs => rs.map(r => [r.dataset.name, r.querySelector('.opener').textContent,
            (r.querySelector('.why') || {}).textContent || '', (r.querySelector('.required') || {}).textContent || ''])""",
    )
    assert rows == [
        ["refund-ok", "3 conversations ▸", "", "required"],
        ["gives-up", "2 conversations ▸", "✗ not_contains 'Sorry' in every reply: turn 1 has 'Sorry' · 2 of 2", ""],
        ["long-talk", "1 conversation ▸", "✗ contains 'shipped' in any reply: no app reply has 'shipped' · 1 of 1", ""],
        [
            "app-crash",
            "1 conversation ▸",
            "⚠ conversation ended with app_error: callback "
            + rows[3][2].split("callback ", 1)[1].split(":respond")[0]
            + ":respond raised RuntimeError: the order service is down · 1 of 1",
            "",
        ],
    ]
    page.click("tr.sim[data-name='gives-up']")
    assert page.text_content("tr.sim[data-name='gives-up'] .opener") == "2 conversations ▾"
    page.click("tr.sim[data-name='gives-up']")
    assert page.text_content("tr.sim[data-name='gives-up'] .opener") == "2 conversations ▸"


def test_j_and_k_move_between_rows_and_enter_opens(browser, runs: dict[str, Path]) -> None:
    page = open_report(browser, runs["head"] / "report.html")
    current = "() => (document.querySelector('tr.sim.current') || {dataset: {}}).dataset.name"
    page.keyboard.press("j")
    assert page.evaluate(current) == "refund-ok"
    page.keyboard.press("j")
    page.keyboard.press("j")
    page.keyboard.press("k")
    assert page.evaluate(current) == "gives-up"
    page.keyboard.press("Enter")
    assert page.get_attribute("tr.sim[data-name='gives-up']", "aria-expanded") == "true"
    assert page.locator("tr.sim[data-name='gives-up'] + tr.detail button.conv").count() == 2
    page.keyboard.press("Enter")
    assert page.locator("tr.sim[data-name='gives-up'] + tr.detail").is_hidden()
    page.check("#failed-only")  # hidden rows are skipped
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("k")
    assert page.evaluate(current) == "gives-up"
    page.keyboard.press("k")
    assert page.evaluate(current) == "gives-up"  # refund-ok passed: hidden
    page.fill("#search", "jk")  # typing in a field moves nothing
    assert page.evaluate(current) == "gives-up" and page.input_value("#search") == "jk"
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_deep_link_opens_one_conversations_transcript(browser, runs: dict[str, Path]) -> None:
    head = runs["head"]
    page = browser.new_page(viewport={"width": 1280, "height": 700})
    page.goto((head / "report.html").as_uri() + "#gives-up/2")
    page.wait_for_selector("body[data-ready='1']")
    transcript = page.locator(".transcript")
    assert transcript.get_attribute("data-conversation") == conversation_id(head, "gives-up", 2)
    assert (
        transcript.is_visible()
        and page.evaluate("document.querySelector('.transcript').getBoundingClientRect().top") < 700
    )
    assert page.text_content("tr.detail:not([hidden]) button.conv.selected").startswith("#2 ")
    page.click("tr.detail:not([hidden]) button.conv[data-repeat='1']")
    assert page.evaluate("location.hash") == "#gives-up/1"  # the address bar holds the link to share
    page.evaluate("location.hash = '#long-talk/1'")
    page.wait_for_selector(f".transcript[data-conversation='{conversation_id(head, 'long-talk', 1)}']")
    page.evaluate("location.hash = '#refund-ok/9'")
    page.wait_for_selector("tr.sim[data-name='refund-ok'] + tr.detail .shown .empty")
    assert "#9 is not on this page" in page.text_content("tr.sim[data-name='refund-ok'] + tr.detail .shown")
    page.close()


def test_a_persona_shows_its_facts_as_a_definition_list(page: Page) -> None:
    page.click("tr.sim[data-name='refund-ok']")
    page.click("tr.sim[data-name='refund-ok'] + tr.detail button.conv[data-repeat='1']")
    card = page.locator("tr.sim[data-name='refund-ok'] + tr.detail .persona")
    assert card.locator(":scope > dl > dt").all_text_contents() == ["Task", "Profile", "Tone", "Facts"]
    facts = card.locator("dd.facts-box > dl.facts")
    assert facts.locator(":scope > dt").all_text_contents() == ["customer info", "recent purchases"]
    jane = yaml.safe_load((REPO / "personas" / "jane.yaml").read_text())["meta_data"]
    customer = facts.locator(":scope > dd").first.locator(":scope > dl > dt")
    assert customer.all_text_contents() == [key.replace("_", " ") for key in jane["customer_info"]]
    purchases = facts.locator(":scope > dd").nth(1).locator(":scope > ul.facts > li")
    assert purchases.count() == len(jane["recent_purchases"])
    first = purchases.first.locator(":scope > dl > dt").all_text_contents()
    assert first == ["order number", "date", "items"]
    assert "{" not in card.text_content()  # no JSON left


def test_base_and_head_are_drawn_side_by_side(browser, runs: dict[str, Path]) -> None:
    page = open_report(browser, runs["compared"] / "report.html")
    base = page.eval_on_selector_all(
        "#chart-pass .bar-row",
        "gs => gs.map(g => [g.dataset.name, [...g.querySelectorAll('rect.base')].map(r => [r.getAttribute('class'), +r.dataset.count])])",
    )
    assert base == [
        ["app-crash", [["seg error base", 1]]],
        ["gives-up", [["seg pass base", 2]]],  # the base app said it shipped
        ["long-talk", [["seg pass base", 1]]],
        ["refund-ok", [["seg pass base", 3]]],
    ]
    base_bins = page.eval_on_selector_all(
        "#chart-latency .lat-row",
        "gs => gs.map(g => [g.dataset.name, [...g.querySelectorAll('rect.lat-bin.base')].reduce((n, r) => n + +r.dataset.count, 0)])",
    )
    assert sorted(base_bins) == sorted([name, replies] for name, replies in REPLIES.items())
    panels = page.eval_on_selector_all(
        "#chart-endings .panel", "ps => ps.map(p => [p.dataset.panel, p.querySelectorAll('rect.end').length])"
    )
    assert panels == [["base run", 4], ["this run", 4]]
    assert "user gave up 2 (base 2)" in page.text_content("#chart-endings .legend")
    assert page.problems == []  # type: ignore[attr-defined]


def test_conversations_left_off_the_page_still_count_in_the_charts(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    head = runs["head"]
    monkeypatch.setattr(report_html, "MAX_CONVERSATIONS", 3)
    summary = json.loads((head / "summary.json").read_text())
    write_reports(tmp_path, summary, lambda: read_results(head / "conversations.jsonl"))
    text = (tmp_path / "report.html").read_text()
    data = json.loads(re.search(r'id="report-data">(.*?)</script>', text, re.DOTALL).group(1))  # type: ignore[union-attr]
    assert len(data["conversations"]) == 3 and data["omitted"] == 4
    endings = data["figures"]["simulations"]
    assert sum(n for sim in endings.values() for _, _, n in sim["endings"]) == 7
    assert endings["refund-ok"]["limit"] == 60000 and endings["gives-up"]["limit"] is None
    assert data["base_figures"] is None


def test_latency_bins_are_log_scale_and_the_same_for_every_run() -> None:
    assert [latency_bin(ms) for ms in (1, 1.58, 1.59, 10, 99.9, 100, 1000)] == [0, 0, 1, 5, 9, 10, 15]
    assert latency_bin(0) == latency_bin(0.001) == -10  # sub-millisecond callbacks have a bin of their own


def test_the_chart_script_ships_in_the_package() -> None:
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    suffixes = {p.suffix for p in (REPO / "simulator" / "report").iterdir() if p.is_file()} - {".py"}
    assert suffixes == {".html", ".js"}
    assert all(any(pattern.endswith(s) for pattern in patterns["simulator.report"]) for s in suffixes)
