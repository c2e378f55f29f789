"""Peak memory of a whole `simulator run` process as the number of conversations grows.

Runs `python -m simulator run` as a user would (start-up, planning, the run, summary and reports)
on scripted conversations against a Python callback app, and reads the child's peak RSS:

    python bench/bench_memory.py                         # 1,000 and 100,000 conversations
    python bench/bench_memory.py --sizes 1000 10000

Flat memory means the peak barely moves from 1,000 to 100,000 conversations: results stream to
conversations.jsonl and through the summary and the reports, and are never held together.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
APP = "def respond(question, history, meta):\n    return {'answer': 'You said: ' + question}\n"


def measure(conversations: int, concurrency: int) -> tuple[float, float, int]:
    """(peak RSS in MB, wall seconds, results bytes) of one run of `conversations` conversations."""
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        (work / "app.py").write_text(APP)
        repeat, sims = 1000, max(1, conversations // 1000)
        if conversations < 1000:
            repeat, sims = conversations, 1
        simulations = "".join(
            f"  - {{name: s{i}, persona: jane, task: t, turns: [hello, thanks], repeat: {repeat}, "
            "expect: {contains: 'You said'}}\n"
            for i in range(sims)
        )
        (work / "m.yml").write_text(f"version: 1\ntarget: {{callback: 'app.py:respond'}}\nsimulations:\n{simulations}")
        started = time.monotonic()
        child = subprocess.Popen(
            [sys.executable, "-m", "simulator", "run", str(work / "m.yml"), "--out", str(work / "out"), "--quiet"]
            + ["--concurrency", str(concurrency)],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.monotonic() - started
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"simulator run failed: {child.stderr.read().decode()[-2000:] if child.stderr else ''}")
        size = (work / "out" / "conversations.jsonl").stat().st_size
        return usage.ru_maxrss / 1024, wall, size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100_000])
    parser.add_argument("--concurrency", type=int, default=64)
    args = parser.parse_args()
    rows = []
    for size in args.sizes:
        peak, wall, written = measure(size, args.concurrency)
        rows.append((size, peak, wall, written))
        print(f"{size:>9,} conversations: peak RSS {peak:6.1f} MB, {wall:6.1f} s, results {written / 1e6:7.1f} MB")
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"peak RSS ratio {last[0]:,} / {first[0]:,} conversations: {last[1] / first[1]:.2f}")


if __name__ == "__main__":
    main()
