"""SIGTERM and SIGINT at random points of `python -m simulator run`: what finished is kept, whole."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.faults.harness import signal_plan, signal_run

RUNS = 12


def test_signals_at_random_points_keep_every_finished_conversation(tmp_path: Path, record_property) -> None:
    plan = signal_plan(RUNS)
    with ThreadPoolExecutor(3) as pool:  # three CLI runs at a time keep the loop short
        runs = list(pool.map(lambda item: signal_run(tmp_path / f"run-{item[0]}", *item[1]), enumerate(plan)))
        # and both ends for sure, whatever the machine's load does to the random points: a signal
        # before any conversation can finish (three replies take the app 1.5 s) and one after two have
        early = pool.submit(signal_run, tmp_path / "early", signal.SIGINT, 0.0, app_delay=0.5)
        late = pool.submit(signal_run, tmp_path / "late", signal.SIGTERM, 0.0, after_lines=2)
        runs += [early.result(), late.result()]
    kept = [run for run in runs if not run.problems]
    record_property("signal_runs", len(runs))
    record_property("signal_kept", len(kept))
    report = [f"{r.signal.name} after {r.after_s}s: exit {r.returncode}, {r.lines} lines: {r.problems}" for r in runs]
    assert len(kept) == RUNS + 2, "\n".join(report)
    assert {r.signal.name for r in runs} == {"SIGTERM", "SIGINT"}
    assert any(r.finished == 0 for r in runs) and any(r.finished > 0 for r in runs), report  # early and late


def test_a_signal_as_the_first_turns_complete_still_cancels_the_conversations_in_flight(tmp_path: Path) -> None:
    """Sent as the run starts, the signal meets each conversation just as its first (scripted) user
    turn completes: before Python 3.12 `asyncio.wait_for` dropped a cancellation that arrived then,
    and the conversations in flight played on to their end (1.5 s here) instead of stopping."""
    for attempt in range(3):
        run = signal_run(tmp_path / f"start-{attempt}", signal.SIGINT, 0.0, app_delay=0.5)
        assert not run.problems, run.problems
        assert run.finished == 0 and run.lines > 0, (run.finished, run.lines)
