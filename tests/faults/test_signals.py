"""SIGTERM and SIGINT at random points of `python -m simulator run`: what finished is kept, whole."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.faults.harness import signal_plan, signal_run

RUNS = 12


def test_signals_at_random_points_keep_every_finished_conversation(tmp_path: Path, record_property) -> None:
    plan = signal_plan(RUNS)
    with ThreadPoolExecutor(3) as pool:  # three CLI runs at a time keep the loop short
        runs = list(pool.map(lambda item: signal_run(tmp_path / f"run-{item[0]}", *item[1]), enumerate(plan)))
    kept = [run for run in runs if not run.problems]
    record_property("signal_runs", len(runs))
    record_property("signal_kept", len(kept))
    report = [f"{r.signal.name} after {r.after_s}s: exit {r.returncode}, {r.lines} lines: {r.problems}" for r in runs]
    assert len(kept) == RUNS, "\n".join(report)
    assert {r.signal.name for r in runs} == {"SIGTERM", "SIGINT"}
    assert any(r.finished == 0 for r in runs) and any(r.finished > 0 for r in runs), report  # early and late
