"""Fault suite figures: how many injected faults the runner survives, and how signals end a run.

Plays the case table of tests/faults/harness.py (the same cases and survival criteria as
`pytest tests/faults`) against local fake servers, then the SIGTERM/SIGINT loop, and prints what
was measured:

    python bench/faults_report.py                  # every case, 12 signal runs
    python bench/faults_report.py --filter user-llm --signals 4
    python bench/faults_report.py --signals 0 --kills 0 --filter none   # the hostile-input suites alone

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


#: the hostile-input suites (what an attacker or a careless user hands the tool), by the class of
#: input each case belongs to: a test is counted in the first class whose words its id contains
HOSTILE_FILES = (
    "tests/test_hostile_input.py",
    "tests/test_baseline_fuzz.py",
    "tests/test_untrusted.py",
    "tests/test_safe_unzip.py",
    "tests/test_url_segments.py",
    "tests/test_lone_surrogates.py",
    "tests/test_header_numbers.py",
    "tests/test_action_github_faults.py",
    "tests/test_report_comment.py",
    "tests/test_checks.py",
    "tests/test_http_targets.py",
    "tests/test_gate_edges.py",
    "tests/test_cli_exit.py",
    "tests/test_simulator.py",
)
HOSTILE_CLASSES = (
    ("a base run from outside", ("base_run", "fuzzed", "damaged_base", "base_summary", "baseline")),
    ("a hijacked comment", ("hijack", "attacker", "someone_else", "others_comment", "identity")),
    (
        "a forged value (repeated key, a number that is no number)",
        ("repeats", "not_numbers", "no_number", "cannot_be_trusted", "header", "retry_after", "not_a_number"),
    ),
    ("nesting and size (deep JSON, long lines, zip bombs)", ("nested", "deep", "damaged", "line", "beyond", "size")),
    (
        "text that steers (surrogates, controls, links, URLs)",
        ("surrogate", "link", "segment", "near_the_limit", "cut_comment", "session_id", "password", "credential"),
    ),
    ("files, folders and archives", ("archive", "member", "symlink", "merge", "folder", "written_twice", "path")),
    ("manifests and personas", ("manifest", "persona", "yaml", "tags", "billion", "aliases", "variables")),
)


def run_hostile_suites() -> tuple[int, int]:
    """Run the hostile-input suites under pytest; print tried and held per class; returns the totals."""
    import subprocess
    import xml.etree.ElementTree as ElementTree

    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "hostile.xml"
        files = [name for name in HOSTILE_FILES if (REPO / name).is_file()]
        subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *files],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        cases = ElementTree.parse(report).getroot().iter("testcase")
        tried: Counter[str] = Counter()
        held: Counter[str] = Counter()
        broke: list[str] = []
        for case in cases:
            if case.find("skipped") is not None:
                continue
            name = case.get("name", "").lower()
            group = next((label for label, words in HOSTILE_CLASSES if any(w in name for w in words)), None)
            if group is None:
                continue  # an ordinary case of a file that also holds hostile ones
            tried[group] += 1
            if case.find("failure") is None and case.find("error") is None:
                held[group] += 1
            else:
                broke.append(f"{case.get('classname')}::{case.get('name')}")
    for label, _ in HOSTILE_CLASSES:
        print(f"{held[label]:>5} of {tried[label]:<5} held  {label}")
    for name in broke:
        print(f"   BROKE  {name}")
    return sum(tried.values()), sum(held.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--filter", help="only cases whose id contains this, e.g. user-llm or app-http")
    parser.add_argument("--signals", type=int, default=12, help="CLI runs to interrupt (default 12)")
    parser.add_argument("--seed", type=int, default=20240611, help="seed of the signal times")
    parser.add_argument("--kills", type=int, default=8, help="CLI runs to kill with SIGKILL (default 8)")
    parser.add_argument("--verbose", action="store_true", help="one line per case, not only the broken ones")
    parser.add_argument("--no-hostile", action="store_true", help="leave out the hostile-input suites")
    args = parser.parse_args(argv)
    for name in AMBIENT_KEYS:
        os.environ.pop(name, None)
    started = time.monotonic()
    tried, survived = run_fault_cases(args.filter, args.verbose)
    runs, kept = run_signal_loop(args.signals, args.seed) if args.signals > 0 else (0, 0)
    kills, torn, recovered = run_kill_loop(args.kills, args.seed) if args.kills > 0 else (0, 0, 0)
    hostile, hostile_held = run_hostile_suites() if not args.no_hostile else (0, 0)
    print(f"({time.monotonic() - started:.1f} s)")
    print(
        f"fault suite: {tried} cases tried, {survived} survived; "
        f"signals: {runs} runs, {kept} kept every finished conversation; "
        f"kill -9: {kills} runs ({torn} left a torn last line), {recovered} recovered by the readers and --resume; "
        f"hostile input: {hostile} cases tried, {hostile_held} held"
    )
    return 0 if survived == tried and kept == runs and recovered == kills and hostile_held == hostile else 1


if __name__ == "__main__":
    sys.exit(main())
