"""The HTML report as a person sees it (headless Chromium), the shared Markdown, and baselines."""

from __future__ import annotations

import json
import os
from pathlib import Path

from playwright.sync_api import Page

from simulator.cli import EXIT_OK, main
from simulator.report import compare, render_markdown
from simulator.results.summary import summarize
from tests.browser import open_report

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = REPO / "test-artifacts"
HOSTILE = '<img src=x onerror="window.__pwned=1"><script>window.__pwned=2</script> @octocat'

APP = f"""\
def respond(question, conversation_history, meta_data):
    if "hostile" in question:
        return {HOSTILE!r}
    if "refund" in question:
        return "Your refund is approved, label RL-42."
    return "Sorry, I cannot help with that."
"""


def make_run(tmp_path: Path, app: str = APP) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "app.py").write_text(app)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {callback: 'app.py:respond'}\n"
        "gate: {min_pass_rate: 0.5}\n"
        "simulations:\n"
        "  - {name: refund-ok, persona: jane, task: refund, turns: ['I need a refund', 'thanks'], tags: [returns],"
        " expect: {contains: refund}}\n"
        "  - {name: hostile-reply, persona: alex, task: probe, turns: ['say something hostile'], tags: [security],"
        " expect: {not_contains: 'password'}}\n"
        "  - {name: cannot-help, persona: walter, task: order status, turns: ['where is my order', 'please'],"
        " expect: {contains: shipped}}\n"
    )
    out = tmp_path / "out"
    main(["run", str(manifest), "--out", str(out), "--quiet"])
    return out


def visible_rows(page: Page) -> list[str]:
    return page.eval_on_selector_all("tr.sim:not([hidden])", "rows => rows.map(r => r.dataset.name)")


def test_header_table_and_failed_only_filter(browser, tmp_path: Path) -> None:
    out = make_run(tmp_path)
    page = open_report(browser, out / "report.html")
    summary = json.loads((out / "summary.json").read_text())
    assert page.text_content("#verdict").strip() == summary["gate"]["status"]
    assert visible_rows(page) == ["refund-ok", "hostile-reply", "cannot-help"]
    page.check("#failed-only")
    assert visible_rows(page) == ["cannot-help"]
    assert page.text_content("#shown") == "1 of 3 simulations"
    page.uncheck("#failed-only")
    page.select_option("#tag", "security")
    assert visible_rows(page) == ["hostile-reply"]
    page.select_option("#tag", "")
    page.select_option("#persona", "Jane")
    assert visible_rows(page) == ["refund-ok"]
    assert page.problems == []  # type: ignore[attr-defined]


def test_a_transcript_shows_its_turns_in_order_with_checks_on_their_turn(browser, tmp_path: Path) -> None:
    out = make_run(tmp_path)
    page = open_report(browser, out / "report.html")
    page.click("tr.sim[data-name='cannot-help']")
    page.click("tr.detail:not([hidden]) button.conv")
    turns = page.eval_on_selector_all(
        ".transcript .turn", "ts => ts.map(t => [t.dataset.turn, t.className, t.querySelector('.text').textContent])"
    )
    assert [t[0] for t in turns] == ["0", "1", "2", "3"]
    assert [t[2] for t in turns] == [
        "where is my order",
        "Sorry, I cannot help with that.",
        "please",
        "Sorry, I cannot help with that.",
    ]
    assert [t[1].split()[1] for t in turns] == ["user", "assistant", "user", "assistant"]
    assert "Walter" in page.text_content(".transcript .persona")
    assert "fail: contains 'shipped' in any reply" in page.text_content(".transcript .checks")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "report-transcript.png"), full_page=True)
    assert (ARTIFACTS / "report-transcript.png").stat().st_size > 10_000


def test_hostile_text_is_shown_as_text(browser, tmp_path: Path) -> None:
    out = make_run(tmp_path)
    page = open_report(browser, out / "report.html")
    page.click("tr.sim[data-name='hostile-reply']")
    page.click("tr.detail:not([hidden]) button.conv")
    reply = page.text_content(".transcript .turn.assistant .text")
    assert reply == HOSTILE
    assert page.evaluate("window.__pwned") is None
    assert page.eval_on_selector_all(".transcript img, .transcript script", "n => n.length") == 0
    assert page.problems == []  # type: ignore[attr-defined]


def test_control_characters_and_bidi_overrides_show_as_escapes(browser, tmp_path: Path) -> None:
    steering = "fine\x1b[8m hidden\x07 \u202eliaf\u202c \u2067x\u2069\rdone"
    out = make_run(tmp_path, APP.replace(f"return {HOSTILE!r}", f"return {steering!r}"))
    page = open_report(browser, out / "report.html")
    page.click("tr.sim[data-name='hostile-reply']")
    page.click("tr.detail:not([hidden]) button.conv")
    reply = page.text_content(".transcript .turn.assistant .text")
    assert reply == "fine\\x1b[8m hidden\\x07 \\u202eliaf\\u202c \\u2067x\\u2069\\rdone"
    assert page.problems == []  # type: ignore[attr-defined]


def test_cli_report_with_a_baseline_shows_changes(browser, tmp_path: Path, capsys) -> None:
    base = make_run(tmp_path / "base")
    better = APP.replace('"Sorry, I cannot help with that."', '"It shipped yesterday."')
    head = make_run(tmp_path / "head", app=better.replace("approved", "denied").replace("refund is", "request is"))
    assert main(["report", str(head), "--baseline", str(base)]) == EXIT_OK
    printed = capsys.readouterr().out
    assert "| vs base |" in printed
    # one conversation each, whose first reply changed with nothing seen of how the app answers the
    # same messages: a flipped verdict the counts cannot tell from chance, and the repeat that could
    assert (
        "Verdict flipped, within noise: refund-ok pass → fail (1/1 → 0/1; at these rates `repeat: 4` would tell "
        "them apart); cannot-help fail → pass (0/1 → 1/1; at these rates `repeat: 4` would tell them apart)"
    ) in printed.replace("**", "")
    page = open_report(browser, head / "report.html")
    deltas = page.eval_on_selector_all(
        "tr.sim", "rows => rows.map(r => [r.dataset.name, (r.querySelector('.delta') || {}).textContent || ''])"
    )
    assert deltas == [["refund-ok", "▼ -100%"], ["hostile-reply", ""], ["cannot-help", "▲ +100%"]]
    assert str(base) in page.text_content("footer")


def test_compare_reports_new_removed_and_latency(tmp_path: Path) -> None:
    def summary(sims: dict) -> dict:
        return {
            "simulations": {
                name: {
                    "verdict": {"status": status, "pass_rate": rate, "failed_checks": checks},
                    "latency_ms": {"app_p50": p50, "app_p95": p50 * 2},
                }
                for name, (status, rate, checks, p50) in sims.items()
            }
        }

    before = summary({"a": ("pass", 1.0, {}, 100), "gone": ("pass", 1.0, {}, 10)})
    after = summary({"a": ("fail", 0.5, {"contains 'x'": 1}, 150), "fresh": ("pass", 1.0, {}, 10)})
    changes = compare(after, before)
    assert changes["a"]["change"] == "new failure" and changes["a"]["pass_rate_delta"] == -0.5
    assert changes["a"]["new_failing_checks"] == ["contains 'x'"] and changes["a"]["p95_delta_ms"] == 100
    assert changes["fresh"]["change"] == "new" and changes["gone"]["change"] == "removed"


def test_a_thousand_conversations_render_into_one_small_file(browser, tmp_path: Path) -> None:
    out = make_run(tmp_path)
    lines = (out / "conversations.jsonl").read_text().splitlines()
    many = []
    for i in range(1000):
        result = json.loads(lines[i % len(lines)])
        result["conversation_id"] = f"c{i}"
        result["meta_data"]["simulation"] = f"sim-{i % 250:03d}"
        result["meta_data"]["repeat"] = i // 250 + 1
        many.append(result)
    big = tmp_path / "big"
    big.mkdir()
    (big / "conversations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in many))
    (big / "summary.json").write_text(json.dumps(summarize(many, {"manifest": "generated"})))
    assert main(["report", str(big)]) == EXIT_OK
    html = big / "report.html"
    assert html.stat().st_size < 3_000_000  # requests and raw replies stay in the JSONL
    page = open_report(browser, html)
    assert page.text_content("#shown") == "250 of 250 simulations"
    page.click("tr.sim[data-name='sim-249']")
    assert page.eval_on_selector_all("tr.detail:not([hidden]) button.conv", "b => b.length") == 4
    assert page.problems == []  # type: ignore[attr-defined]


def test_markdown_is_one_renderer_for_comment_summary_and_cli(tmp_path: Path, capsys) -> None:
    make_run(tmp_path)  # --quiet prints no table; the same manifest again, as a user reading the log runs it
    capsys.readouterr()
    out = tmp_path / "loud"
    main(["run", str(tmp_path / "simulations.yml"), "--out", str(out)])
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    table = render_markdown(summary).split("\n\n")[2]
    assert table in printed  # the CLI prints the very table the comment and job summary use
    assert table in (out / "report.md").read_text()
    assert os.stat(out / "report.html").st_mode & 0o777 == 0o644


def test_latencies_under_a_millisecond_are_shown_not_rounded_to_zero() -> None:
    """A callback answers in hundredths of a millisecond: "0 ms" would read as not measured."""
    from simulator.report.markdown import _ms

    assert [_ms(v) for v in (None, 0, 0.0123, 0.46, 1.4, 1234.5)] == [
        "–",
        "0 ms",
        "0.01 ms",
        "0.5 ms",
        "1 ms",
        "1,234 ms",
    ]
