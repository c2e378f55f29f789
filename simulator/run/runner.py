"""Play every planned conversation concurrently and write each one the moment it ends.

`plan.json` is written first (what the run means to play), then `conversations.jsonl` gets one
line per finished conversation at once, so a crash, Ctrl-C or SIGTERM loses nothing that
finished; `summary.json` is written at the end in all cases. Nothing that goes wrong inside the
run (a full disk, a bug in a check) can make it read as a pass: it is named in the summary, the
gate becomes an error, and the conversations it cost are listed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

from ..aio.limiter import Listener
from ..errors import ConfigError
from ..manifest import Manifest
from ..records import ConversationResult, GateConfig, PlanRecord, RunInfo, Summary
from ..results.folder import (
    LISTED_KEYS,
    RESULTS_FILE,
    ResultWriter,
    plan_status,
    read_results,
    utc_now,
    write_summary,
)
from .completion import Completion
from .connections import Connections
from .exit_codes import exit_code
from .plan import Job, Plan, distinct_simulations, keys_of_record
from .playing import SAME_MISTAKE_STOP, Run
from .replay import ReplayBook, ReplayTally
from .resume import RunStart, start_run

__all__ = ["SAME_MISTAKE_STOP", "RunOutcome", "narrowed_gate", "run_jobs"]

T = TypeVar("T")
log = logging.getLogger("simulator.run.runner")


@dataclass
class RunOutcome:
    """What a run produced and how it ended."""

    out_dir: Path
    summary: Summary
    interrupted: bool = False
    fatal_error: str | None = None
    #: planned conversations with no result (at most `LISTED_KEYS` named; `summary.run.missing_count` counts all)
    not_run: list[str] = field(default_factory=list)
    #: where an older run found in the results folder was moved (None: the folder held none)
    previous_run: Path | None = None
    #: conversations that finished but could not be written (full disk), and why
    lost: list[str] = field(default_factory=list)
    storage_error: str | None = None
    #: failures of the runner itself (never of the app): each makes the gate an error
    internal_errors: list[str] = field(default_factory=list)
    #: conversations written by this run (a resumed run: kept ones included)
    finished: int = 0
    #: conversations kept from the interrupted run a resumed run continued
    resumed: int = 0
    #: why summary.json could not be written (the summary is still here)
    summary_error: str | None = None
    #: the signal that interrupted the run, when one did (set by the blocking front ends)
    received: int | None = None
    #: simulations not played because their LLM key is missing, with why
    skipped: dict[str, str] = field(default_factory=dict)

    def exit_code(self, fail_on: str = "gate") -> int:
        """The process exit code for this outcome (see `simulator.run.pipeline.exit_code`)."""
        return exit_code(
            self.summary, fail_on=fail_on, received=self.received, failed_internally=self.failed_internally
        )

    @property
    def errors(self) -> int:
        return self.summary["totals"]["errors"]

    @property
    def failed_internally(self) -> bool:
        """The run could not do its job (storage, a bug): exit 3, whatever the gate says."""
        return bool(self.storage_error or self.internal_errors or self.summary_error)

    @property
    def results(self) -> list[ConversationResult]:
        """The conversations in the results file, read from disk (a run keeps none in memory)."""
        path = self.out_dir / RESULTS_FILE
        return read_results(path) if path.is_file() else []


async def run_jobs(
    manifest: Manifest,
    jobs: Iterable[Job],
    out_dir: str | Path,
    *,
    concurrency: int = 8,
    on_result: Callable[[Job, ConversationResult], None] | None = None,
    run_info: dict[str, Any] | None = None,
    resume: bool = False,
    on_start: Callable[[int, int], None] | None = None,
    replays: ReplayBook | None = None,
    on_rate_limit: Listener | None = None,
) -> RunOutcome:
    """Play `jobs` with at most `concurrency` conversations at a time.

    A fatal error (bad key, wrong URL: every conversation would fail the same way) or a storage
    error (full disk) stops new conversations from starting. Cancellation (SIGTERM, Ctrl-C) keeps
    what finished, records the interrupted conversations as `cancelled`, and still writes the
    summary. With `resume`, the run in `out_dir` is continued (see `prepare_resume`);
    `on_start(to_play, kept)` is told what remains before the first conversation starts. With
    `replays`, LLM-played conversations replay the baseline's user messages (see `simulator.run.replay`).
    `on_rate_limit` is told when an endpoint rate-limits the run: how long everyone waits, and how
    many requests go at a time from then on (`simulator.aio.limiter`).
    """
    if concurrency < 1:
        raise ConfigError("--concurrency must be 1 or more")
    out = Path(out_dir)
    plan: Plan | list[Job] = jobs if isinstance(jobs, Plan) else list(jobs)
    connections = Connections(manifest)
    if on_rate_limit is not None:
        connections.limiters.listen(on_rate_limit)
    connections.prepare(distinct_simulations(plan))
    start = start_run(manifest, plan, out, resume)
    run = Run(manifest, connections, ResultWriter(out / RESULTS_FILE, append=resume), start.builder)
    run.on_result, run.finished = on_result, set(start.kept)
    if replays is not None:
        run.replays, run.replay_tally = replays, ReplayTally(replays.source)
    pending = iter(start.to_play)
    if isinstance(plan, Plan):  # a plan plays each simulation's jobs together: done ones can go
        run.completion = Completion(start.record["order"] or [], run.close_simulation)
        pending = run.completion.drawing(pending)
    if on_start is not None:
        on_start(len(start.to_play), len(start.kept))
    await connections.warm(concurrency)
    started, started_at = time.monotonic(), utc_now()
    interrupted = await _play_all(run, pending, concurrency)
    run.writer.close()
    run.replay_tally.calls(*connections.llm_calls())
    info: dict[str, Any] = {
        "manifest": str(manifest.path),
        "started_at": started_at,
        "finished_at": utc_now(),
        "wall_time_ms": round((time.monotonic() - started) * 1000, 3),
        "concurrency": concurrency,
        "interrupted": interrupted,
        **_account(run, start, resume, replays is not None),
        **(run_info or {}),
    }
    gate, narrowed = narrowed_gate(manifest.gate, start.record)
    if narrowed:
        info["gate_narrowed"] = narrowed
    summary = start.builder.build(cast(RunInfo, info), gate)
    summary_error = _write_summary(out, summary)
    await _close_quietly(connections)
    return RunOutcome(
        out_dir=out,
        summary=summary,
        interrupted=interrupted,
        fatal_error=run.fatal,
        not_run=info["not_run"],
        previous_run=start.previous_run,
        lost=run.lost,
        storage_error=info["storage_error"],
        internal_errors=run.internal_errors,
        finished=len(run.finished),
        resumed=len(start.kept),
        summary_error=summary_error,
    )


def narrowed_gate(gate: GateConfig | None, record: PlanRecord) -> tuple[GateConfig | None, list[str]]:
    """The gate for what this run planned: required simulations that `--filter`, `--tag` or the
    shard left out are not required of it (a merge of every shard checks them again)."""
    required = list((gate or {}).get("required") or [])
    if not required:
        return gate, []
    planned = {key.rsplit("#", 1)[0] for key in keys_of_record(record)}
    kept = [name for name in required if name in planned]
    dropped = [name for name in required if name not in planned]
    if not dropped:
        return gate, []
    narrowed: GateConfig = {**(gate or {}), "required": kept}
    return narrowed, dropped


def _write_summary(out: Path, summary: Summary) -> str | None:
    """Write summary.json; why it could not be written (a full disk), or None."""
    try:
        write_summary(out, summary)
    except OSError as exc:
        problem = f"{out / 'summary.json'}: {exc.strerror or exc}"
        log.error("cannot write %s", problem)
        return problem
    return None


async def _play_all(run: Run, pending: Iterator[Job], concurrency: int) -> bool:
    """Run the workers to the end; True when a cancellation (a signal) interrupted them."""
    workers = [asyncio.create_task(run.work(pending), name=f"worker-{i}") for i in range(concurrency)]
    # return_exceptions: a worker ends in its cancellation, which is then the gather's result, not an
    # exception nobody retrieves
    gathered = asyncio.gather(*workers, return_exceptions=True)
    try:
        # shielded: a signal reaches this frame at once, not only after every worker has ended
        await asyncio.shield(gathered)
    except asyncio.CancelledError:
        # no worker takes another conversation, even one whose cancellation was lost (asyncio.wait_for
        # can swallow a cancellation that arrives as its inner call completes)
        run.stop = run.stop or "interrupted"
        for task in workers:
            task.cancel()
        await gathered
        return True
    return False


def _account(run: Run, start: RunStart, resumed: bool, replayed: bool) -> dict[str, Any]:
    """What the summary says about what ran: missing and failed work, a resume's and a replay's counts."""
    status = plan_status(start.record, run.finished)
    return {
        **_problems(run, status),
        **({"resumed": len(start.kept), "warnings": start.warnings} if resumed else {}),
        **({"replay": run.replay_tally.totals} if replayed else {}),
    }


def _problems(run: Run, status: RunInfo) -> RunInfo:
    """The summary's account of what is missing and why: the plan status, fatal, storage and internal errors."""
    return {
        "fatal_error": run.fatal,
        **status,
        "not_run": status.get("missing", []),
        "lost": run.lost[:LISTED_KEYS],
        "storage_error": _storage_message(run, status) if run.storage_error else None,
        "internal_errors": run.internal_errors[:LISTED_KEYS],
    }


def _storage_message(run: Run, status: RunInfo) -> str:
    """What the disk refused, what it cost, and how much room the run needs to keep everything."""
    writer = run.writer
    average = writer.bytes_written / writer.count if writer.count else run.lost_bytes / max(len(run.lost), 1)
    unplayed = max(int(status.get("missing_count", 0)) - len(run.lost), 0)
    needed = run.lost_bytes + int(average * unplayed)
    return (
        f"{run.storage_error}: {len(run.lost)} finished conversation(s) could not be written "
        f"({', '.join(run.lost[:10])}{', …' if len(run.lost) > 10 else ''}) and {unplayed} did not start; "
        f"free about {_size(needed)} more (plus room for summary.json and the reports), then run again "
        "with --resume to play only what is missing"
    )


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


async def _close_quietly(connections: Connections) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):  # closing must not hide the outcome
        await asyncio.shield(connections.aclose())
