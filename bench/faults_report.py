"""Fault suite figures: how many injected faults the runner survives, and how signals end a run.

Plays the case table of tests/faults/harness.py (the same cases and survival criteria as
`pytest tests/faults`) against local fake servers, then the SIGTERM/SIGINT loop, and prints what
was measured:

    python bench/faults_report.py                  # every case, 12 signal runs
    python bench/faults_report.py --filter user-llm --signals 4

A case survives when its run finished, every other conversation kept the turns of a fault-free
run, and the hit conversation recorded why it ended and was counted as an error (or, for a fault
that happens once, was retried to a pass; a multi-MB reply is cut with a note). A signal run
keeps every finished conversation when it exits 143/130 with only whole, valid lines and a
summary that says `interrupted` and counts them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.faults.harness import (  # noqa: E402
    all_cases,
    kill9_plan,
    kill9_run,
    problems,
    run_case,
    signal_plan,
    signal_run,
)

#: the tests never use a developer's real keys; neither does this report
AMBIENT_KEYS = ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT")


def run_fault_cases(pattern: str | None, verbose: bool) -> tuple[int, int]:
    """Play every case (matching `pattern`); returns (tried, survived)."""
    cases = [c for c in all_cases() if not pattern or pattern in c.id]
    survived = 0
    by_group: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        for number, case in enumerate(cases):
            run = run_case(case, Path(tmp) / f"case-{number}")
            found = problems(run)
            survived += not found
            group = ("transient " if case.transient else "") + (case.fmt if case.side == "app" else "user-llm")
            by_group[group] += not found
            if verbose or found:
                print(f"{'survived' if not found else 'BROKE':>8}  {case.id:<52} {run.wall_s:5.2f} s")
            for problem in found:
                print(f"          - {problem[:300]}")
    print("survived by group: " + ", ".join(f"{group} {count}" for group, count in sorted(by_group.items())))
    return len(cases), survived


def run_signal_loop(count: int, seed: int) -> tuple[int, int]:
    """Interrupt `count` CLI runs at seeded random times; returns (runs, runs that kept everything)."""
    plan = signal_plan(count, seed)
    with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(3) as pool:
        runs = list(pool.map(lambda item: signal_run(Path(tmp) / f"run-{item[0]}", *item[1]), enumerate(plan)))
    for run in runs:
        verdict = "kept" if not run.problems else "LOST"
        print(
            f"{verdict:>8}  {run.signal.name:<7} after {run.after_s:.3f} s: exit {run.returncode}, "
            f"{run.lines} lines ({run.finished} finished)"
        )
        for problem in run.problems:
            print(f"          - {problem[:300]}")
    return len(runs), sum(1 for run in runs if not run.problems)


def run_kill_loop(count: int, seed: int) -> tuple[int, int, int]:
    """Kill `count` CLI runs with SIGKILL at seeded random times; returns (runs, torn last lines, recovered)."""
    with tempfile.TemporaryDirectory() as tmp:
        runs = [kill9_run(Path(tmp) / f"kill-{i}", after) for i, after in enumerate(kill9_plan(count, seed))]
    for run in runs:
        verdict = "recovered" if not run.problems else "BROKE"
        torn = ", torn last line" if run.torn else ""
        print(f"{verdict:>9}  SIGKILL after {run.after_s:.3f} s: {run.lines} complete lines{torn}")
        for problem in run.problems:
            print(f"          - {problem[:300]}")
    return len(runs), sum(run.torn for run in runs), sum(1 for run in runs if not run.problems)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--filter", help="only cases whose id contains this, e.g. user-llm or app-http")
    parser.add_argument("--signals", type=int, default=12, help="CLI runs to interrupt (default 12)")
    parser.add_argument("--seed", type=int, default=20240611, help="seed of the signal times")
    parser.add_argument("--kills", type=int, default=8, help="CLI runs to kill with SIGKILL (default 8)")
    parser.add_argument("--verbose", action="store_true", help="one line per case, not only the broken ones")
    args = parser.parse_args(argv)
    for name in AMBIENT_KEYS:
        os.environ.pop(name, None)
    started = time.monotonic()
    tried, survived = run_fault_cases(args.filter, args.verbose)
    runs, kept = run_signal_loop(args.signals, args.seed) if args.signals > 0 else (0, 0)
    kills, torn, recovered = run_kill_loop(args.kills, args.seed) if args.kills > 0 else (0, 0, 0)
    print(f"({time.monotonic() - started:.1f} s)")
    print(
        f"fault suite: {tried} cases tried, {survived} survived; "
        f"signals: {runs} runs, {kept} kept every finished conversation; "
        f"kill -9: {kills} runs ({torn} left a torn last line), {recovered} recovered by the readers and --resume"
    )
    return 0 if survived == tried and kept == runs and recovered == kills else 1


if __name__ == "__main__":
    sys.exit(main())
