"""How long `simulator validate` takes, whole process, against its 2 s target.

    python bench/bench_validate.py                          # the example, 5,000 and 10,000 simulations
    python bench/bench_validate.py --simulations 10000 --runs 5

Runs `python -m simulator validate` in a child process (interpreter start, imports, YAML, schema,
personas and checks included) on `examples/simulations.yml` and on generated manifests of plain
simulations (predefined personas, scripted and LLM-played ones, per-simulation targets, checks,
`${VAR}` with defaults; no aliases), written in flow style and in block style (one field per
line: 10,000 simulations are 1.8 MB). Prints, per manifest, the median of the runs in seconds and
its ratio to the target (below 1.0 is within it), the exit code and the last line printed, as
JSON lines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.test_large_manifests import block_manifest, plain_manifest  # noqa: E402 - the manifests the tests validate

TARGET_SECONDS = 2.0


def time_validate(manifest: Path, runs: int) -> tuple[float, int, str]:
    """Median whole-process seconds of `python -m simulator validate MANIFEST`, its exit code and last line."""
    env = {k: v for k, v in os.environ.items() if k not in ("APP_URL", "AZURE_OPENAI_ENDPOINT")}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "simulator", "validate", str(manifest)],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
        )
        times.append(time.perf_counter() - started)
    output = (done.stdout.strip() or done.stderr.strip()).splitlines()
    return statistics.median(times), done.returncode, output[-1][:300] if output else ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--simulations", type=int, nargs="+", default=[5000, 10000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    cases = [("example", REPO / "examples" / "simulations.yml")]
    with tempfile.TemporaryDirectory() as tmp:
        for count in args.simulations:
            path = Path(tmp) / f"simulations-{count}.yml"
            path.write_text(plain_manifest(count), encoding="utf-8")
            cases.append((f"{count} simulations", path))
            block = Path(tmp) / f"simulations-{count}-block.yml"  # one field per line, as people write them
            block.write_text(block_manifest(count), encoding="utf-8")
            cases.append((f"{count} simulations, block style", block))
        for label, path in cases:
            seconds, code, output = time_validate(path, args.runs)
            figures = {
                "manifest": label,
                "chars": len(path.read_text(encoding="utf-8")),
                "seconds": round(seconds, 3),
                "target_seconds": TARGET_SECONDS,
                "ratio_to_target": round(seconds / TARGET_SECONDS, 3),
                "runs": args.runs,
                "exit_code": code,
                "output": output,
            }
            print(json.dumps(figures), flush=True)


if __name__ == "__main__":
    main()
