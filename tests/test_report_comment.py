"""The PR comment as GitHub shows it: summaries rendered as HTML, links into report.html, one chart.

The comment is rendered with cmark-gfm (GitHub's own GitHub Flavored Markdown implementation, `cmarkgfm`),
raw HTML kept as GitHub keeps it, and read back with an HTML parser.
"""

from __future__ import annotations

import json
import random
import re
from html.parser import HTMLParser
from pathlib import Path

import cmarkgfm
import pytest
from cmarkgfm.cmark import Options

from simulator.cli import main
from simulator.github.comment import MARKER
from simulator.report import COMMENT_LIMIT, Links, compare, render_markdown
from simulator.results.reading import read_results
from tests.test_report_charts import run

REPORT_URL = "https://reports.example.test/pr-7/report.html"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("comment")
    return {"head": run(root / "head", "Sorry, I cannot help with that."), "base": run(root / "base", "It shipped.")}


def summary_of(folder: Path) -> dict:
    return json.loads((folder / "summary.json").read_text())


def comment(runs: dict[str, Path], **options) -> str:
    head = runs["head"]
    return render_markdown(summary_of(head), read_results(head / "conversations.jsonl"), **options)


class _Reader(HTMLParser):
    """What a test needs of rendered HTML: summary texts, how <details> nest, links, images, code
    blocks, and the text a reader sees outside code."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.summaries: list[str] = []
        self.links: list[str] = []
        self.images: list[str] = []
        self.code_classes: list[str] = []
        self.prose = ""  # the text outside <pre> and <code>
        self.depth = 0
        self.lowest = 0
        self._in_summary = False
        self._in_code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "details":
            self.depth += 1
        elif tag == "summary":
            self._in_summary = True
            self.summaries.append("")
        elif tag == "a":
            self.links.append(dict(attrs).get("href") or "")
        elif tag == "img":
            self.images.append(dict(attrs).get("src") or "")
        if tag == "code":
            self.code_classes.append(dict(attrs).get("class") or "")
        if tag in ("pre", "code"):
            self._in_code += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "details":
            self.depth -= 1
            self.lowest = min(self.lowest, self.depth)
        elif tag == "summary":
            self._in_summary = False
        elif tag in ("pre", "code"):
            self._in_code -= 1

    def handle_data(self, data: str) -> None:
        if self._in_summary:
            self.summaries[-1] += data
        if not self._in_code:
            self.prose += data


#: the extensions GitHub Flavored Markdown turns on for a comment
EXTENSIONS = ["table", "autolink", "strikethrough", "tagfilter"]


def rendered(markdown: str) -> _Reader:
    """The comment as GitHub renders it: GitHub's own cmark-gfm (through `cmarkgfm`), with the
    extensions GitHub turns on and raw HTML kept (GitHub then sanitizes it)."""
    html = cmarkgfm.markdown_to_html_with_extensions(markdown, Options.CMARK_OPT_UNSAFE, EXTENSIONS)
    reader = _Reader()
    reader.feed(html)
    reader.close()
    return reader


def test_summaries_are_html_with_no_stray_backslash_and_every_details_closes(runs: dict[str, Path]) -> None:
    before, after = summary_of(runs["base"]), summary_of(runs["head"])
    for text in (
        comment(runs),
        comment(runs, changes=compare(after, before)),
        comment(runs, changes=compare(after, before), limit=3_000),  # cut to fit: still well formed
    ):
        page = rendered(text)
        assert page.depth == 0 and page.lowest == 0  # every <details> closed, none closed twice
        assert page.summaries and not any("\\" in summary for summary in page.summaries)
    summaries = rendered(comment(runs)).summaries
    assert "❌ gives-up #1: not_contains 'Sorry' in every reply" in summaries
    assert "❌ long-talk #1: contains 'shipped' in any reply" in summaries


def test_summary_text_is_escaped_for_html() -> None:
    from simulator.report.failures_markdown import conversation_details

    result = {
        "conversation_id": "c1",
        "conversation": [],
        "meta_data": {
            "simulation": "odd_name",
            "repeat": 2,
            "persona": {"name": "P"},
            "task": "t",
            "stop_reason": "user_done",
        },
        "evaluation": {"status": "fail", "failed": ["not_contains '<b>x</b>' & @octocat *here*"], "checks": []},
    }
    details = conversation_details(result)  # type: ignore[arg-type]
    summary = details.split("\n", 1)[0]
    assert summary == (
        "<details><summary>❌ odd_name #2: not_contains '&lt;b&gt;x&lt;/b&gt;' &amp; @\u2060octocat *here*</summary>"
    )
    assert rendered(details + "\n").summaries == ["❌ odd_name #2: not_contains '<b>x</b>' & @\u2060octocat *here*"]


def test_each_failed_conversation_links_to_its_transcript(runs: dict[str, Path]) -> None:
    page = rendered(comment(runs, links=Links(report_url=REPORT_URL)))
    assert [link for link in page.links if link.startswith(REPORT_URL)] == [
        f"{REPORT_URL}#gives-up/1",
        f"{REPORT_URL}#gives-up/2",
        f"{REPORT_URL}#long-talk/1",
        f"{REPORT_URL}#app-crash/1",
    ]
    assert "❌ gives-up #1: not_contains 'Sorry' in every reply" in page.summaries  # the link wraps the name
    without = rendered(comment(runs, links=Links(run_url="https://github.com/o/r/actions/runs/1")))
    assert without.links == ["https://github.com/o/r/actions/runs/1"]  # no report address: no deep link


def test_the_comment_has_a_pass_rate_chart_that_reads_as_text_where_mermaid_is_not_drawn(runs: dict[str, Path]) -> None:
    text = comment(runs)
    chart = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert chart.splitlines()[1:] == [
        "xychart-beta horizontal",
        '  title "Pass rate per simulation (%)"',
        '  x-axis ["refund-ok (100%)", "gives-up (0%)", "long-talk (0%)", "app-crash (no verdict)"]',
        '  y-axis "pass rate %" 0 --> 100',
        '  bar "failed" [100, 100, 100, 0]',
        '  bar "no verdict" [0, 0, 0, 100]',
        '  bar "passed" [100, 0, 0, 0]',
    ]
    assert text.index("| ✅ | refund-ok (required) |") < text.index("```mermaid")  # the table comes first
    assert rendered(text).code_classes.count("language-mermaid") == 1  # elsewhere: a code block


#: what GitHub's checks use for passed and failed, and a neutral grey
GREEN, RED, GREY = "#2da44e", "#cf222e", "#8c959f"
#: where 0 is drawn when the value axis shows its labels: half a label past the axis (in percent)
LABEL_PADDING = 2.0


def painted(chart: str) -> dict[str, list[tuple[str, float, float]]]:
    """What Mermaid's xychart draws for each category, as it documents and draws it (as mermaid
    10.9 and 11 do in Chromium): the i-th series (bar or line) in the palette's i-th colour, every
    bar from the start of the value axis, each series over the ones before. When the value axis shows
    its labels, 0 is drawn half a label past that start, so a bar of 0 is still a sliver.
    Returns each category's visible (colour, from %, to %) runs."""
    palette = [c.strip() for c in re.search(r'"plotColorPalette": "([^"]*)"', chart).group(1).split(",")]
    y_labels = '"yAxis": {"showLabel": false}' not in chart
    categories = re.findall(r'"([^"]*)"', re.search(r"x-axis \[(.*)\]", chart).group(1))
    series = re.findall(r'^\s*(bar|line)(?: "[^"]*")? \[([^\]]*)\]', chart, re.MULTILINE)
    start = -LABEL_PADDING if y_labels else 0.0
    drawn: dict[str, list[tuple[str, float, float]]] = {}
    for index, category in enumerate(categories):
        layers = [
            (palette[i % len(palette)], start, float(values.split(",")[index]))
            for i, (kind, values) in enumerate(series)
            if kind == "bar"
        ]
        points = sorted({edge for _, low, high in layers for edge in (low, high)})
        visible: list[tuple[str, float, float]] = []
        for low, high in zip(points[:-1], points[1:], strict=True):
            top = [colour for colour, a, b in layers if a <= low and high <= b]
            if top and visible and visible[-1][0] == top[-1] and visible[-1][2] == low:
                visible[-1] = (top[-1], visible[-1][1], high)
            elif top:
                visible.append((top[-1], low, high))
        drawn[category] = visible
    return drawn


def test_the_chart_draws_what_passed_in_green_and_what_failed_in_red(runs: dict[str, Path]) -> None:
    """Not every bar green whatever it says (a 0% simulation a green sliver): green as far as the
    pass rate, red for the rest, grey across for a simulation with no verdict."""
    text = comment(runs)
    chart = text.split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert painted(chart) == {
        "refund-ok (100%)": [(GREEN, 0.0, 100.0)],
        "gives-up (0%)": [(RED, 0.0, 100.0)],
        "long-talk (0%)": [(RED, 0.0, 100.0)],
        "app-crash (no verdict)": [(GREY, 0.0, 100.0)],
    }
    summary = summary_of(runs["head"])
    summary["simulations"]["gives-up"]["verdict"]["pass_rate"] = 0.6667
    chart = render_markdown(summary).split("```mermaid\n", 1)[1].split("\n```", 1)[0]
    assert painted(chart)["gives-up (67%)"] == [(GREEN, 0.0, 67.0), (RED, 67.0, 100.0)]
    assert "green the share of conversations that passed, red the share that failed" in text  # no legend on GitHub


def test_with_a_base_run_the_chart_leaves_the_change_to_what_changed(runs: dict[str, Path]) -> None:
    """Base → head per simulation, with whether the move is beyond chance, is what the "What changed"
    lines say; a line of the base run's rates across the simulations' bars said less, in grey."""
    before, after = summary_of(runs["base"]), summary_of(runs["head"])
    compared = comment(runs, changes=compare(after, before))
    assert "### What changed since base" in compared and "mermaid" not in compared


def test_the_chart_stays_out_where_it_would_not_help_or_fit(runs: dict[str, Path], capsys) -> None:
    summary = summary_of(runs["head"])
    passing = json.loads(json.dumps(summary))
    for sim in passing["simulations"].values():
        sim["verdict"]["pass_rate"] = 1.0
    assert "mermaid" not in render_markdown(passing)  # nothing to see
    crowded = json.loads(json.dumps(summary))
    crowded["simulations"] = {f"sim-{i}": summary["simulations"]["gives-up"] for i in range(21)}
    assert "mermaid" not in render_markdown(crowded)
    full = render_markdown(summary)
    assert "mermaid" in full and "mermaid" not in render_markdown(summary, limit=len(full) - 50)
    assert len(render_markdown(summary, limit=COMMENT_LIMIT)) <= COMMENT_LIMIT
    capsys.readouterr()
    main(["report", str(runs["head"])])
    printed = capsys.readouterr().out
    assert "| gives-up |" in printed and "mermaid" not in printed  # a terminal would only show the code
    assert "```mermaid" in (runs["head"] / "report.md").read_text()


def test_failures_the_change_brought_come_first_so_the_size_limit_never_hides_them(tmp_path: Path) -> None:
    manifest = (
        "version: 1\ntarget: {callback: 'app.py:respond'}\ngate: {min_pass_rate: 0}\nsimulations:\n"
        "  - {name: a-always-failing, persona: jane, task: t, turns: ['where is my order'], repeat: 3,"
        " expect: {contains: shipped}}\n"
        "  - {name: zz-refund, persona: alex, task: t, turns: ['I need a refund'], repeat: 6,"
        " expect: {contains: approved}}\n"
    )
    folders = {}
    for side, refund in (("base", "approved"), ("head", "declined")):
        folder = tmp_path / side
        folder.mkdir()
        (folder / "app.py").write_text(f"def respond(q, h, m):\n    return 'Your refund is {refund}.' * 20\n")
        (folder / "m.yml").write_text(manifest)
        main(["run", str(folder / "m.yml"), "--out", str(folder / "out"), "--quiet"])
        folders[side] = folder / "out"
    changes = compare(summary_of(folders["head"]), summary_of(folders["base"]))
    assert changes["zz-refund"]["verdict"] == "regressed" and changes["a-always-failing"]["verdict"] == "unchanged"

    def shown(limit: int) -> list[str]:
        text = render_markdown(
            summary_of(folders["head"]),
            read_results(folders["head"] / "conversations.jsonl"),
            changes=changes,
            limit=limit,
        )
        failed = text.split("### Failed and errored conversations", 1)[1]
        return [next(n for n in changes if f"{n} #" in summary) for summary in rendered(failed).summaries]

    assert shown(COMMENT_LIMIT) == ["zz-refund"] * 6 + ["a-always-failing"] * 3
    # room for about half of them: the regression's are the ones kept
    everything = len(
        render_markdown(
            summary_of(folders["head"]), read_results(folders["head"] / "conversations.jsonl"), changes=changes
        )
    )
    cut = shown(everything - 1500)
    assert 6 <= len(cut) < 9 and cut == shown(COMMENT_LIMIT)[: len(cut)]


#: text an app, a simulated user or a judge may write that GitHub would make a link or load as an image
LINKING = [
    "https://evil.example/login?next=%2F",
    "http://x.y",
    "HTTPS://EVIL.EXAMPLE/SHOUT",
    "ftp://files.evil.example/payload.zip",
    "www.evil.example/path",
    "WWW.Evil.Example",
    "evil@example.com",
    "evil.user+tag@.example.com",
    "mailto:evil@example.com",
    "xmpp:evil@example.com/resource",
    "<https://angle.evil.example/x>",
    "<evil@angle.example>",
    "[click here](https://evil.example/phish)",
    '[click](https://evil.example/t "title")',
    "![](https://evil.example/pixel.png)",
    "[ref link][r]\n\n[r]: https://evil.example/ref",
    '<a href="https://evil.example/raw">raw</a>',
    '<img src="https://evil.example/raw.png">',
    "(see https://evil.example/paren) *www.evil.example* _https://evil.example/em_ ~~www.evil.example~~",
    "`https://evil.example/tick` | www.evil.example | cell",
    "https&#58;//evil.example/entity and https\\://evil.example/backslash",
    "http://user@evil.example:8080/x",
]
#: the comment's own addresses: the only links it may hold
OWN = ("https://github.com/o/r/actions/runs/1", "https://github.com/o/r/actions/runs/1/artifacts/9", REPORT_URL)


def with_hostile_text(runs: dict[str, Path], text: str) -> list[str]:
    """The comment, in each of its forms, with `text` wherever the app, a simulated user, a judge
    or a manifest puts text: simulation, persona, task and check names, check messages and
    evidence, errors, replies, the gate's reasons, the run's warnings and the baseline note."""
    head, base = summary_of(runs["head"]), summary_of(runs["base"])
    for summary in (head, base):
        summary["simulations"] = {f"{name} {text}": sim for name, sim in summary["simulations"].items()}
    head["gate"]["reasons"] = [f"gate: {text}"]
    head["run"].update(warnings=[f"warning: {text}"], fatal_error=f"fatal: {text}", skipped=f"skipped: {text}")
    results = []
    for result in read_results(runs["head"] / "conversations.jsonl"):
        meta = result["meta_data"]
        meta["simulation"] = f"{meta['simulation']} {text}"
        meta["persona"]["name"], meta["task"] = f"persona {text}", f"task {text}"
        for turn in result["conversation"]:
            turn["response"] = f"{turn['response']} {text}"
        evaluation = result["evaluation"]
        evaluation["failed"] = [f"failed {text}" for _ in evaluation.get("failed", [])]
        evaluation["errors"] = [f"error {text}" for _ in evaluation.get("errors", [])]
        for check in evaluation["checks"]:
            check.update(name=f"{check['name']} {text}", message=f"judge: {text}", evidence={"turn": 1, "text": text})
        results.append(result)
    links = Links(run_url=OWN[0], artifact_url=OWN[1], artifact_name="results", report_url=REPORT_URL, report_note=text)
    changes = compare(head, base)
    return [
        render_markdown(head, results, links, baseline_note=f"note: {text}"),
        render_markdown(head, results, links, changes=changes, baseline_note=f"note: {text}"),
    ]


@pytest.mark.parametrize("text", LINKING)
def test_no_text_from_outside_becomes_a_link_or_an_image(runs: dict[str, Path], text: str) -> None:
    """GitHub autolinks bare URLs, `www.` addresses and emails in Markdown text (the cmark-gfm
    `autolink` extension) and loads images; what an app or an LLM wrote reads as text, unclickable.
    Raw HTML is kept (`--unsafe`) as GitHub keeps `<a>` and `<img>`, so an escape that let HTML
    through would show here too."""
    for markdown in with_hostile_text(runs, text):
        page = rendered(markdown)
        assert page.images == []
        assert page.links and [link for link in page.links if not link.startswith(OWN)] == []
        # the same words to a reader: only an invisible joiner told the renderer it is no address
        assert " ".join(text.split()) in page.prose.replace("\u2060", "")


#: what grows once written: controls become visible escapes (`\x1b`, `\u202e`: 4 to 6 characters)
CONTROLS = ["\x1b[31m", "\x00", "\u202e", "\x07", "\r", "\x9b"]
#: what is escaped, lengthens a fence, or would open or close structure if it were not
MARKUP = ["`", "```", "~~~", "</details>", "<details>", "|", "_*[]", "<&>", "\n", "\n```\n", "x" * 300, "word "]


def swollen(rng: random.Random, size: int, share: float) -> str:
    """`size` pieces, about `share` of them control characters, the rest markup and long lines."""
    return "".join(rng.choice(CONTROLS) if rng.random() < share else rng.choice(MARKUP) for _ in range(size))


def comment_near_the_limit(runs: dict[str, Path], seed: int) -> tuple[str, int, str]:
    """The marker a comment is posted under, the room it leaves, and the comment: many failed
    conversations (with some seeds, many simulations) whose text is full of what grows when
    written. Every sixth seed has less room, so that the table itself must be cut."""
    rng = random.Random(seed)
    share = rng.choice([0.3, 0.6, 0.95])

    def text(size: int) -> str:
        return swollen(rng, size, share)

    head, base = summary_of(runs["head"]), summary_of(runs["base"])
    template = next(
        r for r in read_results(runs["head"] / "conversations.jsonl") if r["meta_data"]["simulation"] == "gives-up"
    )
    simulations = {
        f"sim-{i} {text(rng.randint(0, 40))}": head["simulations"]["gives-up"] for i in range(rng.choice([3, 60, 400]))
    }
    head["simulations"] = simulations
    head["gate"]["reasons"] = [text(60) for _ in range(rng.randint(0, 5))]
    head["run"]["warnings"] = [text(80) for _ in range(rng.randint(0, 5))]
    names = list(simulations)
    results = []
    for i in range(rng.randint(20, 300)):
        result = json.loads(json.dumps(template))
        result["meta_data"].update(simulation=rng.choice(names), repeat=i, task=text(50))
        result["meta_data"]["persona"]["name"] = text(20)
        for turn in result["conversation"]:
            turn["response"] = text(rng.randint(5, 400))
        result["evaluation"]["failed"] = [text(60)]
        result["evaluation"]["checks"] = [
            {"name": text(30), "status": "fail", "message": text(100), "evidence": {"turn": 1, "text": text(80)}}
            for _ in range(rng.randint(1, 14))
        ]
        results.append(result)
    changes = compare(head, base) if seed % 2 else None
    marker = MARKER.format(key=f"{seed:012d}")
    links = Links(
        run_url=OWN[0], artifact_url=OWN[1], artifact_name="results", report_note=FOOTER_NOTE, report_url=REPORT_URL
    )
    limit = rng.choice([2_500, 6_000, 20_000]) if seed % 6 == 5 else COMMENT_LIMIT - len(marker) - 1
    return marker, limit, render_markdown(head, results, links, limit=limit, changes=changes)


FOOTER_NOTE = "report.html in the artifact shows every conversation as a chat transcript"


@pytest.mark.parametrize("seed", range(36))
def test_a_comment_near_the_limit_fits_with_its_structure_closed_and_its_footer_kept(
    runs: dict[str, Path], seed: int
) -> None:
    """The size budget counts what is written: text that grows when escaped (controls made visible,
    Markdown escaped) is measured grown, so whole conversations and table rows are left out to fit
    and nothing is cut off the end at the last moment."""
    marker, limit, body = comment_near_the_limit(runs, seed)
    assert len(body) <= limit and len(f"{marker}\n{body}") <= COMMENT_LIMIT
    assert "(cut to fit" not in body  # no last-resort cut off the end was needed
    page = rendered(body)
    assert page.depth == 0 and page.lowest == 0  # every <details> closed, none closed twice
    assert FOOTER_NOTE in page.prose  # outside any code block: no fence was left open to swallow it
    assert OWN[0] in page.links and OWN[1] in page.links


def test_a_cut_comment_closes_what_it_leaves_open() -> None:
    """The last resort, for a comment that comes out too long all the same: it is cut between lines,
    and a fence or a `<details>` the cut leaves open is closed before the note that says so."""
    from simulator.report.failures_markdown import code_block
    from simulator.report.markdown import cut_to_fit

    reply = "```\n</details>\n~~~\n| a | b |\n" + "x" * 200
    markdown = "\n\n".join(
        [
            "## Title\n\n| A | B |\n|---|---|\n" + "\n".join(f"| {i} | row |" for i in range(30)),
            "<details><summary>outer</summary>",
            "- a finding\n- another",
            "<details><summary>inner</summary>\n\n" + code_block(reply * 3) + "\n\n</details>",
            code_block(reply, "json"),
            "</details>",
            "tail",
        ]
    )
    note = "NOTE: cut"
    for room in range(len(note), len(markdown) + 1, 7):
        cut = cut_to_fit(markdown, room, note)
        assert len(cut) <= room
        page = rendered(cut)
        assert page.depth == 0 and page.lowest == 0, room
        assert (note in page.prose) if cut != markdown else "tail" in page.prose, room
