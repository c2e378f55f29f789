"""Suites from a dataset: `simulator validate` and `simulator run` over 1k, 10k and 100k rows, whole process.

    python bench/bench_datasets.py                      # validate and run 1k/10k/100k rows; 1k/10k compared
    python bench/bench_datasets.py --rows 1000 100000 --run-rows 1000 100000
    python bench/bench_datasets.py --rows --run-rows --baseline-rows 1000 100000   # compared runs only

Each measurement is one child process (`python -m simulator ...`, start-up included) on a
generated CSV whose rows fill a scripted template simulation against the bundled store callback
(no network, no key). Prints, per case, wall seconds, seconds per row and the child's peak RSS,
and for the largest case its RSS as a ratio to the smallest's (1.0 is flat), as JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PERSONAS = ("jane", "marcus", "priya", "walter", "sofia", "alex", "ming", "dana")
MANIFEST = """\
version: 1
target: {callback: simulator.examples.store_app:respond}
simulations_from:
  file: tasks.csv
  simulation:
    name: "order-{{order_id}}"
    task: "Return order {{order_id}}"
    tags: ["{{category}}"]
    turns: ["I'd like to return order {{order_id}}", "Thanks! ###STOP###"]
    expect: {contains: "{{expected}}"}
"""


def write_suite(folder: Path, rows: int) -> Path:
    """A manifest and its CSV of `rows` rows in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "tasks.csv").open("w", encoding="utf-8") as out:
        out.write("order_id,persona,category,expected\n")
        for i in range(rows):
            out.write(f"{i},{PERSONAS[i % len(PERSONAS)]},{'returns' if i % 3 else 'vip'},order\n")
    (folder / "simulations.yml").write_text(MANIFEST, encoding="utf-8")
    return folder / "simulations.yml"


def measure(args: list[str]) -> tuple[float, int, int, str]:
    """Wall seconds, peak RSS (KiB), exit code and last line of `python -m simulator ARGS`."""
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    with tempfile.TemporaryFile("w+") as output:
        started = time.perf_counter()
        child = subprocess.Popen(
            [sys.executable, "-m", "simulator", *args], cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
        )
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak, not the largest so far
        seconds = time.perf_counter() - started
        child.returncode = os.waitstatus_to_exitcode(status)
        output.seek(0)
        lines = output.read().strip().splitlines()
    return seconds, usage.ru_maxrss, child.returncode, lines[-1][:200] if lines else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="*", default=[1000, 10_000, 100_000], help="validate these")
    parser.add_argument("--run-rows", type=int, nargs="*", default=[1000, 10_000, 100_000], help="run these")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        nargs="*",
        default=[1000, 10_000],
        help="run these twice, measuring the second run compared with the first (--baseline)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cases = (("validate", args.rows), ("run", args.run_rows), ("run --baseline", args.baseline_rows))
        for command, sizes in cases:
            peaks = {}
            for rows in sizes:
                manifest = write_suite(Path(tmp) / f"{command.replace(' --', '-')}-{rows}", rows)
                extra = ["--out", str(manifest.parent / "out"), "--concurrency", "32"] if command != "validate" else []
                if command == "run --baseline":  # the base run first, unmeasured
                    measure(["run", str(manifest), "--out", str(manifest.parent / "base"), "--concurrency", "32"])
                    extra += ["--baseline", str(manifest.parent / "base")]
                seconds, peak, code, last = measure([command.split()[0], str(manifest), *extra])
                peaks[rows] = peak
                figures = {
                    "command": command,
                    "rows": rows,
                    "seconds": round(seconds, 2),
                    "ms_per_row": round(1000 * seconds / rows, 3),
                    "peak_rss_mib": round(peak / 1024, 1),
                    "exit_code": code,
                    "output": last,
                }
                print(json.dumps(figures), flush=True)
            if len(peaks) > 1:
                low, high = min(peaks), max(peaks)
                ratio = round(peaks[high] / peaks[low], 2)
                print(json.dumps({"command": command, f"peak_rss_{high}_over_{low}": ratio}), flush=True)


if __name__ == "__main__":
    main()
