"""How big and how quick to open report.html is for a large run.

    python bench/bench_report.py                 # 1,000 conversations of 8 turns
    python bench/bench_report.py --conversations 5000

Builds synthetic finished conversations (no app calls), renders the report, then opens it in
headless Chromium (Debian's `chromium`) and times until the page says it is ready and until the
first transcript is on screen. Prints the figures as JSON.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from simulator.report import render_html  # noqa: E402
from simulator.results.summary import summarize  # noqa: E402


def conversation(i: int, turns: int) -> dict:
    failed = i % 7 == 0
    return {
        "conversation_id": f"c{i}",
        "conversation": [
            {
                "turn_number": n,
                "actor": "user" if n % 2 == 0 else "assistant",
                "response": f"message {n} of conversation {i}: " + "lorem ipsum dolor sit amet " * 6,
                "request": {"messages": ["..."] * n},
                "full_json_response": {"status": 200, "body": {"answer": "x" * 200}},
                "latency_ms": 100.0 + n,
                "usage": {"prompt_tokens": 300, "completion_tokens": 40, "total_tokens": 340},
                "error": None,
            }
            for n in range(turns)
        ],
        "meta_data": {
            "simulation": f"sim-{i % 100:03d}",
            "repeat": i // 100 + 1,
            "tags": ["bench"],
            "persona": {"name": "Jane", "profile": "A test persona.", "tone": "happy"},
            "task": "benchmark",
            "stop_reason": "max_turns",
            "turn_count": turns,
            "usage": {"total": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 340 * turns}},
            "duration_ms": 1000.0,
        },
        "evaluation": {
            "status": "fail" if failed else "pass",
            "checks": [
                {
                    "check": "contains",
                    "name": "contains 'refund' in any reply",
                    "status": "fail" if failed else "pass",
                    "message": "no app reply has 'refund'" if failed else "ok",
                    "evidence": {"turn": 1},
                }
            ],
            "failed": ["contains 'refund' in any reply"] if failed else [],
            "errors": [],
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=8)
    args = parser.parse_args()
    results = [conversation(i, args.turns) for i in range(args.conversations)]
    jsonl_bytes = sum(len(json.dumps(r)) + 1 for r in results)
    started = time.perf_counter()
    summary = summarize(results, {"manifest": "bench"})
    html = render_html(summary, results)
    render_s = time.perf_counter() - started
    figures = {
        "conversations": args.conversations,
        "turns": args.conversations * args.turns,
        "jsonl_mb": round(jsonl_bytes / 1e6, 2),
        "report_mb": round(len(html.encode()) / 1e6, 2),
        "render_s": round(render_s, 3),
    }
    chromium = shutil.which("chromium")
    if chromium:
        from playwright.sync_api import sync_playwright

        with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
            path = Path(tmp) / "report.html"
            path.write_text(html, encoding="utf-8")
            browser = playwright.chromium.launch(
                executable_path=chromium,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
            )
            page = browser.new_page()
            t0 = time.perf_counter()
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-ready='1']")
            figures["open_to_ready_s"] = round(time.perf_counter() - t0, 3)
            t1 = time.perf_counter()
            page.click("tr.sim >> nth=0")
            page.click("tr.detail:not([hidden]) button.conv >> nth=0")
            page.wait_for_selector(".transcript .turn")
            figures["first_transcript_s"] = round(time.perf_counter() - t1, 3)
            browser.close()
    print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
