"""The documentation's pictures, made by the test suite's own headless Chromium from a small keyless run:

- `docs/images/pr-comment.png`: the pull request comment the action posts, rendered from its Markdown by
  GitHub's cmark-gfm (`cmarkgfm`) and styled like a GitHub comment;
- `docs/images/report.png`: the top of that run's `report.html`.

    python tools/docs_images.py [--out docs/images]

The run: scripted users talk to the bundled store assistant (the base) and to a changed copy of it
that no longer gives a return label (the head), so the comment shows a regression caused by the
app's changed reply. `tests/test_docs.py` makes the pictures into a temporary folder, and fails
when the committed ones are missing. The comment's emoji need a colour emoji font for Chromium
(Debian: `apt-get install fonts-noto-color-emoji`); without one they show as empty boxes.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import io
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Browser

REPO = Path(__file__).resolve().parent.parent
IMAGES = REPO / "docs" / "images"
WIDTH = 1000
#: the app of the base run, and of the head run: the same store, but its label is gone
BASE_APP = "from simulator.examples.store_app import respond\n"
HEAD_APP = """\
import re

from simulator.examples.store_app import respond as store


def respond(question, conversation_history, meta_data):
    reply = store(question, conversation_history, meta_data)
    label = "Print your return label from our website"
    reply["answer"] = re.sub(r"Your return label is RL-\\d+", label, reply["answer"])
    return reply
"""
MANIFEST = """\
version: 1
target: {callback: 'app.py:respond'}
gate: {min_pass_rate: 0.9}
defaults: {max_turns: 10, expect: {not_contains: Traceback}}
simulations:
  - name: jane-returns-tent
    persona: jane
    task: Return the TrailMaster X4 tent and get a refund
    repeat: 3
    required: true
    turns: ["Hi! I'd like to return a tent I bought in May.", "It's order number 5.", "Yes please, go ahead.",
            "Thanks! ###STOP###"]
    expect: {contains: refunded, regex: 'RL-\\d+', stop_reason: user_done}
  - name: walter-asks-about-compass
    persona: walter
    task: Find out whether the compass is waterproof
    repeat: 2
    turns: ["Hello, is the compass waterproof?", "Thank you kindly. ###STOP###"]
    expect: {contains: waterproof}
  - name: sofia-sleeping-bag
    persona: sofia
    task: Ask how warm the sleeping bag is
    repeat: 2
    turns: ["How warm is the sleeping bag?", "Thank you ###STOP###"]
    expect: {contains: "-5 °C"}
  - name: marcus-wrong-order
    persona: marcus
    task: Get a refund for an order the store cannot find
    repeat: 2
    turns: ["refund. order 999. now.", "useless ###GIVE_UP###"]
    expect: {contains: could not find order 999}
"""
#: enough of GitHub's comment look for a picture: its fonts, tables, code, folded details
STYLE = """
body { margin: 0; padding: 16px; background: #fff; color: #1f2328;
  font: 14px/1.5 -apple-system, BlinkMacSystemFont, "Segoe UI", "Noto Sans", Helvetica, Arial, sans-serif; }
.comment { border: 1px solid #d0d7de; border-radius: 6px; max-width: 940px; }
.head { background: #f6f8fa; border-bottom: 1px solid #d0d7de; padding: 8px 16px; border-radius: 6px 6px 0 0;
  color: #59636e; }
.head b { color: #1f2328; }
.body { padding: 16px; }
h1, h2, h3 { margin: 16px 0 8px; line-height: 1.25; } h2 { font-size: 1.5em; border-bottom: 1px solid #d1d9e0;
  padding-bottom: .3em; } h3 { font-size: 1.25em; }
table { border-collapse: collapse; margin: 8px 0 16px; display: block; overflow: auto; }
th, td { border: 1px solid #d1d9e0; padding: 6px 13px; } tr:nth-child(2n) { background: #f6f8fa; }
code { background: rgba(129, 139, 152, .12); border-radius: 6px; padding: .2em .4em; font-size: 85%;
  font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f8fa; border-radius: 6px; padding: 16px; overflow: auto; }
pre code { background: none; padding: 0; }
a { color: #0969da; text-decoration: none; } details { margin: 4px 0; } summary { cursor: pointer; }
p, ul, ol { margin: 0 0 12px; } blockquote { margin: 0 0 12px; padding: 0 1em; color: #59636e;
  border-left: .25em solid #d1d9e0; }
"""
EXTENSIONS = ["table", "autolink", "strikethrough", "tagfilter"]


def _run(folder: Path, app: str, baseline: Path | None = None) -> Path:
    """One quiet `simulator run` of the manifest against `app` in `folder`; its results folder."""
    from simulator.cli import main

    folder.mkdir(parents=True)
    (folder / "app.py").write_text(app, encoding="utf-8")
    (folder / "simulations.yml").write_text(MANIFEST, encoding="utf-8")
    out = folder / "out"
    args = ["run", str(folder / "simulations.yml"), "--out", str(out), "--quiet", "--concurrency", "1"]
    args += ["--baseline", str(baseline)] if baseline else []
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        main(args)
    return out


def runs(root: Path) -> Path:
    """The base run and the head run compared with it, under `root`; the head's results folder."""
    base = _run(root / "base", BASE_APP)
    return _run(root / "head", HEAD_APP, baseline=base)


def comment_markdown(head: Path) -> str:
    """The comment the action would post for the head run, made as the action makes it: the
    comparison with the base run's folder, its evidence (`write_reports`), then the Markdown."""
    import json

    from simulator.report import COMMENT_LIMIT, Links, comparison_or_why, render_markdown, write_reports
    from simulator.results.reading import read_results

    base = head.parent.parent / "base" / "out"
    summary = json.loads((head / "summary.json").read_text(encoding="utf-8"))
    results = read_results(head / "conversations.jsonl")
    changes, _ = comparison_or_why(summary, base)
    run = "https://github.com/octo-org/shop-assistant/actions/runs/42"
    scratch = head.parent / "reports"
    scratch.mkdir()
    write_reports(scratch, summary, results, changes, Links(run_url=run), baseline_label="main", baseline_dir=base)
    links = Links(
        run_url=run,
        artifact_url=f"{run}/artifacts/7",
        artifact_name="simulation-results",
        report_note="report.html in the artifact shows every conversation as a chat transcript",
    )
    return render_markdown(summary, results, links, limit=COMMENT_LIMIT, changes=changes)


def comment_page(markdown: str) -> str:
    """The comment as GitHub shows it: cmark-gfm's HTML inside a comment's box."""
    import cmarkgfm
    from cmarkgfm.cmark import Options

    body = cmarkgfm.markdown_to_html_with_extensions(markdown, Options.CMARK_OPT_UNSAFE, EXTENSIONS)
    who = "<b>github-actions</b> <span>bot</span> commented"
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>comment</title><style>{STYLE}</style></head>"
        f"<body><div class='comment'><div class='head'>{who} · {html.escape('pull request #7')}</div>"
        f"<div class='body'>{body}</div></div></body></html>"
    )


def render(browser: Browser, out: Path, work: Path) -> list[Path]:
    """Both pictures into `out`, from a run made under `work`; their paths."""
    head = runs(work)
    out.mkdir(parents=True, exist_ok=True)
    page_file = work / "comment.html"
    page_file.write_text(comment_page(comment_markdown(head)), encoding="utf-8")
    comment_png, report_png = out / "pr-comment.png", out / "report.png"

    page = browser.new_page(viewport={"width": WIDTH, "height": 800})
    page.goto(page_file.as_uri())
    page.locator(".comment").screenshot(path=str(comment_png))
    page.close()

    page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
    page.goto((head / "report.html").as_uri())
    page.wait_for_selector("body[data-ready='1']")
    page.screenshot(path=str(report_png))
    page.close()
    return [comment_png, report_png]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=IMAGES, help="folder to write the pictures to (default docs/images)"
    )
    args = parser.parse_args(argv)
    if str(REPO) not in sys.path:  # the test suite's browser set-up, and this checkout's package
        sys.path.insert(0, str(REPO))
    from tests.browser import chromium_found, launch

    if not chromium_found():
        print("docs_images: needs Chromium (apt-get install chromium)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as work:
        for browser in launch():
            for path in render(browser, args.out, Path(work)):
                print(f"wrote {path} ({path.stat().st_size // 1024} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
