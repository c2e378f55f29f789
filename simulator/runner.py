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
import json
import logging
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

from .checks import EvaluationContext, evaluate
from .connections import build_target, build_user_model
from .errors import ConfigError, MissingCredentialError
from .manifest import Manifest, Simulation
from .plan import Job, Plan
from .results_folder import (
    LISTED_KEYS,
    RESULTS_FILE,
    ReadNotes,
    ResultWriter,
    StorageError,
    cut_torn_tail,
    iter_results,
    manifest_digest,
    move_previous_run,
    plan_status,
    read_plan,
    read_results,
    read_summary,
    result_key,
    result_line,
    summarize_folder,
    write_plan,
    write_results,
    write_summary,
)
from .simulator import DEFAULT_TURN_TIMEOUT, Simulator
from .summary import SummaryBuilder
from .sync import run_sync
from .targets import Target
from .users import ScriptedUser, UserSide

T = TypeVar("T")
log = logging.getLogger("simulator.runner")
INTERRUPTED_EVALUATION = {
    "status": "error",
    "checks": [],
    "failed": [],
    "errors": ["the run was interrupted before this conversation was judged"],
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class RunOutcome:
    """What a run produced and how it ended."""

    out_dir: Path
    summary: dict[str, Any]
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

    @property
    def errors(self) -> int:
        return self.summary["totals"]["errors"]

    @property
    def failed_internally(self) -> bool:
        """The run could not do its job (storage, a bug): exit 3, whatever the gate says."""
        return bool(self.storage_error or self.internal_errors or self.summary_error)

    @property
    def results(self) -> list[dict[str, Any]]:
        """The conversations in the results file, read from disk (a run keeps none in memory)."""
        path = self.out_dir / RESULTS_FILE
        return read_results(path) if path.is_file() else []


def distinct_simulations(jobs: Iterable[Job]) -> list[Simulation]:
    """The simulations a plan plays, each once (a `Plan` knows them without iterating its jobs)."""
    if isinstance(jobs, Plan):
        return [simulation for simulation, _ in jobs.entries]
    return list({job.simulation.name: job.simulation for job in jobs}.values())


class Connections:
    """Builds each distinct app target and user model once, so conversations share connections."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._targets: dict[str, Target] = {}
        self._users: dict[str, Any] = {}
        self._by_simulation: dict[str, tuple[Target, Any]] = {}
        self.evaluation = EvaluationContext()

    def prepare(self, simulations: list[Simulation]) -> None:
        """Build everything up front: configuration problems surface before any conversation starts."""
        problems = []
        if self.manifest.judge and any(c.needs_judge for sim in simulations for c in sim.checks):
            try:
                self.evaluation.judge = build_user_model(self.manifest.judge, source="judge")
            except ConfigError as exc:
                problems.append(f"{self.manifest.path}: {exc}")
        for sim in simulations:
            try:
                self.sides(sim)
            except ConfigError as exc:
                message = f"{self.manifest.path}:{sim.line or ''}: {sim.name}: {exc}"
                if message not in problems:
                    problems.append(message)
        if problems:
            raise ConfigError("\n".join(problems))

    def missing_credentials(self, simulations: list[Simulation]) -> dict[str, str]:
        """Simulations that need an LLM (user or judge) whose credential is absent, with why."""
        missing: dict[str, str] = {}
        judge_problem = None
        if self.manifest.judge:
            try:
                build_user_model(self.manifest.judge, source="judge")
            except MissingCredentialError as exc:
                judge_problem = str(exc)
        for sim in simulations:
            if sim.name in missing:
                continue
            if judge_problem and any(c.needs_judge for c in sim.checks):
                missing[sim.name] = judge_problem
            elif sim.needs_llm:
                try:
                    self._user(sim)
                except MissingCredentialError as exc:
                    missing[sim.name] = str(exc)
        return missing

    def sides(self, sim: Simulation) -> tuple[Target, Any]:
        """The app target and the user side of a simulation, built once and shared."""
        if sim.name not in self._by_simulation:
            self._by_simulation[sim.name] = (self._target(sim), self._user(sim))
        return self._by_simulation[sim.name]

    def _target(self, sim: Simulation) -> Target:
        key = json.dumps(sim.target, sort_keys=True)
        if key not in self._targets:
            self._targets[key] = build_target(
                sim.target, self.manifest.folder, source=f"simulations[{sim.index}].target", root=self.manifest.root
            )
        return self._targets[key]

    def _user(self, sim: Simulation) -> UserSide | Any:
        if not sim.needs_llm:
            return ScriptedUser(sim.turns or [])
        key = json.dumps(sim.user, sort_keys=True)
        if key not in self._users:
            self._users[key] = build_user_model(sim.user or {}, source=f"simulations[{sim.index}].user")
        return self._users[key]

    async def aclose(self) -> None:
        for target in self._targets.values():
            await target.aclose()
        for model in self._users.values():
            await model.aclose()
        if self.evaluation.judge is not None:
            await self.evaluation.judge.aclose()


def plan_record(manifest: Manifest, jobs: Plan | list[Job]) -> dict[str, Any]:
    """plan.json: what this run means to play, the manifest it came from and its gate."""
    if isinstance(jobs, Plan):
        shape = jobs.record()
        order = jobs.simulation_names
    else:
        shape = {"keys": [job.key for job in jobs], "planned": len(jobs)}
        order = [sim.name for sim in distinct_simulations(jobs)]
    try:
        digest = manifest_digest(manifest.path)
    except OSError:
        digest = None
    return {
        "version": 1,
        "created_at": _now(),
        "manifest": str(manifest.path),
        "manifest_sha256": digest,
        **shape,
        "order": order,
        "gate": manifest.gate,
    }


def prepare_resume(out: Path, manifest: Manifest, plan: Plan) -> tuple[Plan, list[str]]:
    """What a resumed run still has to play, after checking it continues the same run.

    Keeps the finished conversations of the run in `out` (a torn last line is cut, interrupted
    ones are dropped to be played again) and returns the plan restricted to the missing keys,
    with the warnings to show. The manifest must be byte-for-byte the one the run started with,
    and the options (filters, tags, repeat, shard) the same.
    """
    record = read_plan(out)
    if record is None:
        raise ConfigError(
            f"{out}: no plan.json, so there is no interrupted run to resume there (run without --resume to start one)"
        )
    digest = manifest_digest(manifest.path)
    if record.get("manifest_sha256") != digest:
        raise ConfigError(
            f"{manifest.path} is not the manifest the run in {out} started with (its SHA-256 differs from "
            f"plan.json's): a resumed run must play the same manifest. Restore it, or run without --resume "
            "to start over (the old run is moved to previous/)."
        )
    options = {**plan.options, "shard": list(plan.shard) if plan.shard else None}
    before = {**(record.get("options") or {}), "shard": record.get("shard")}
    changed = sorted(k for k in set(options) | set(before) if options.get(k) != before.get(k))
    if changed:
        raise ConfigError(
            f"--resume: {', '.join(changed)} differ from the run in {out} "
            f"(it was started with {', '.join(f'{k}={before.get(k)!r}' for k in changed)}); give the same options"
        )
    warnings = []
    path = out / RESULTS_FILE
    if path.is_file():
        cut = cut_torn_tail(path)
        if cut:
            warnings.append(f"{path}: cut an incomplete last line ({cut:,} bytes) left by the killed run")
    seen: set[str] = set()
    dropped = 0

    def kept() -> Iterator[dict[str, Any]]:
        nonlocal dropped
        for result in iter_results(path) if path.is_file() else ():
            key = result_key(result)
            interrupted = result.get("evaluation") == INTERRUPTED_EVALUATION
            if key in seen or result["meta_data"]["stop_reason"] == "cancelled" or interrupted:
                dropped += 1
                continue
            seen.add(key)
            yield result

    write_results(path, kept())
    if dropped:
        warnings.append(f"{dropped} interrupted conversation(s) of the earlier run will be played again")
    return plan.restricted_to(set(plan.keys()) - seen), warnings


@dataclass
class _RunState:
    stop: str | None = None
    fatal: str | None = None
    storage_error: str | None = None
    lost: list[str] = field(default_factory=list)
    lost_bytes: int = 0
    internal_errors: list[str] = field(default_factory=list)
    finished: set[str] = field(default_factory=set)
    callback_failed: bool = False


async def run_jobs(
    manifest: Manifest,
    jobs: Iterable[Job],
    out_dir: str | Path,
    *,
    concurrency: int = 8,
    on_result: Callable[[Job, dict[str, Any]], None] | None = None,
    run_info: dict[str, Any] | None = None,
    resume: bool = False,
    on_start: Callable[[int, int], None] | None = None,
) -> RunOutcome:
    """Play `jobs` with at most `concurrency` conversations at a time.

    A fatal error (bad key, wrong URL: every conversation would fail the same way) or a storage
    error (full disk) stops new conversations from starting. Cancellation (SIGTERM, Ctrl-C) keeps
    what finished, records the interrupted conversations as `cancelled`, and still writes the
    summary. With `resume`, the run in `out_dir` is continued (see `prepare_resume`);
    `on_start(to_play, kept)` is told what remains before the first conversation starts.
    """
    if concurrency < 1:
        raise ConfigError("--concurrency must be 1 or more")
    out = Path(out_dir)
    plan: Plan | list[Job] = jobs if isinstance(jobs, Plan) else list(jobs)
    connections = Connections(manifest)
    connections.prepare(distinct_simulations(plan))
    record = plan_record(manifest, plan)
    previous_run = None
    warnings: list[str] = []
    builder = SummaryBuilder(record["order"])
    state = _RunState()
    to_play: Iterable[Job] = plan
    if resume:
        if not isinstance(plan, Plan):
            raise ConfigError("resume needs the plan of a manifest (plan_jobs), not a list of jobs")
        to_play, warnings = prepare_resume(out, manifest, plan)
        for result in iter_results(out / RESULTS_FILE):
            builder.add(result)
            state.finished.add(result_key(result))
        record = read_plan(out) or record
    else:
        previous_run = move_previous_run(out)
        write_plan(out, record)
    for warning in warnings:
        log.warning("%s", warning)
    resumed = len(state.finished)
    writer = ResultWriter(out / RESULTS_FILE, append=resume)
    if on_start is not None:
        on_start(len(to_play) if resume else len(plan), resumed)
    started, started_at = time.monotonic(), _now()

    def internal(problem: str, exc: BaseException) -> None:
        state.internal_errors.append(problem)
        log.error("%s", problem, exc_info=(type(exc), exc, exc.__traceback__))

    def store(job: Job, result: dict[str, Any]) -> bool:
        try:
            writer.write(result)
        except StorageError as exc:
            state.lost.append(job.key)
            state.lost_bytes += exc.needed
            if state.storage_error is None:
                state.storage_error = f"{exc.path}: {exc.reason}"
                state.stop = state.stop or f"cannot write results: {exc.reason}"
                log.error("%s: %s; no new conversation starts", exc.path, exc.reason)
            return False
        except Exception as exc:  # a writer bug must cost this conversation, not the run's honesty
            state.lost.append(job.key)
            internal(f"{job.key}: writing the result failed: {type(exc).__name__}: {exc}", exc)
            state.stop = state.stop or "the results writer failed"
            return False
        builder.add(result)
        state.finished.add(job.key)
        return True

    async def play(job: Job) -> None:
        sim = job.simulation
        target, user = connections.sides(sim)
        simulator = Simulator(
            system_connection=target,
            user_connection=user,
            turn_timeout=sim.turn_timeout or DEFAULT_TURN_TIMEOUT,
        )
        meta = {
            "simulation": sim.name,
            "repeat": job.repeat_index + 1,
            "tags": sim.tags,
            "min_passes": sim.min_passes,
            "required": sim.required,
        }
        try:
            result = await simulator.simulate_async(
                sim.persona, sim.task, sim.max_turns, conversation_id=str(uuid.uuid4()), meta_data=meta
            )
        except asyncio.CancelledError as exc:
            partial = getattr(exc, "partial_result", None)
            if partial is not None:
                partial["evaluation"] = INTERRUPTED_EVALUATION
                store(job, partial)
            raise
        try:
            result["evaluation"] = await evaluate(result, sim.checks, connections.evaluation)
        except asyncio.CancelledError:
            result["evaluation"] = INTERRUPTED_EVALUATION
            store(job, result)
            raise
        except Exception as exc:  # a bug in a check: this conversation has no verdict, the run is an error
            internal(f"{job.key}: checking the conversation failed: {type(exc).__name__}: {exc}", exc)
            result["evaluation"] = {
                "status": "error",
                "checks": [],
                "failed": [],
                "errors": [f"internal error while checking: {type(exc).__name__}: {exc}"],
            }
        if not store(job, result):
            return
        error = result["meta_data"].get("error") or {}
        if error.get("fatal") and not state.fatal:
            state.fatal = f"{sim.name}: {error.get('message')}"
            state.stop = state.stop or state.fatal
        if on_result is not None:
            try:
                on_result(job, result)
            except Exception as exc:  # progress output failing must not stop the run
                if not state.callback_failed:
                    state.callback_failed = True
                    log.warning("progress output failed: %s: %s", type(exc).__name__, exc)

    pending: Iterator[Job] = iter(to_play)

    async def worker() -> None:
        while state.stop is None:
            job = next(pending, None)
            if job is None:
                return
            try:
                await play(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # anything else is the runner's own failure
                internal(f"{job.key}: {type(exc).__name__}: {exc}", exc)

    workers = [asyncio.create_task(worker(), name=f"worker-{i}") for i in range(concurrency)]
    interrupted = False
    try:
        await asyncio.gather(*workers)
    except asyncio.CancelledError:
        interrupted = True
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
    finally:
        writer.close()
        status = plan_status(record, state.finished)
        run = {
            "manifest": str(manifest.path),
            "started_at": started_at,
            "finished_at": _now(),
            "wall_time_ms": round((time.monotonic() - started) * 1000, 3),
            "concurrency": concurrency,
            "interrupted": interrupted,
            "fatal_error": state.fatal,
            **status,
            "not_run": status.get("missing", []),
            "lost": state.lost[:LISTED_KEYS],
            "storage_error": _storage_message(state, status, writer) if state.storage_error else None,
            "internal_errors": state.internal_errors[:LISTED_KEYS],
            **({"resumed": resumed, "warnings": warnings} if resume else {}),
            **(run_info or {}),
        }
        summary = builder.build(run, manifest.gate)
        summary_error = None
        try:
            write_summary(out, summary)
        except OSError as exc:
            summary_error = f"{out / 'summary.json'}: {exc.strerror or exc}"
            log.error("cannot write %s", summary_error)
        await _close_quietly(connections)
    return RunOutcome(
        out_dir=out,
        summary=summary,
        interrupted=interrupted,
        fatal_error=state.fatal,
        not_run=run["not_run"],
        previous_run=previous_run,
        lost=state.lost,
        storage_error=run["storage_error"],
        internal_errors=state.internal_errors,
        finished=len(state.finished),
        resumed=resumed,
        summary_error=summary_error,
    )


def _storage_message(state: _RunState, status: dict[str, Any], writer: ResultWriter) -> str:
    """What the disk refused, what it cost, and how much room the run needs to keep everything."""
    average = writer.bytes_written / writer.count if writer.count else state.lost_bytes / max(len(state.lost), 1)
    unplayed = max(int(status.get("missing_count", 0)) - len(state.lost), 0)
    needed = state.lost_bytes + int(average * unplayed)
    return (
        f"{state.storage_error}: {len(state.lost)} finished conversation(s) could not be written "
        f"({', '.join(state.lost[:10])}{', …' if len(state.lost) > 10 else ''}) and {unplayed} did not start; "
        f"free about {_size(needed)} more (plus room for summary.json and the reports), then run again "
        "with --resume to play only what is missing"
    )


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


async def _close_quietly(connections: Connections) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):  # closing must not hide the outcome
        await asyncio.shield(connections.aclose())


async def recheck(folder: str | Path, manifest: Manifest, concurrency: int = 8) -> dict[str, Any]:
    """Evaluate finished conversations again with the manifest's current checks; no app calls.

    Rewrites the folder's results and summary in place (atomically), keeping the run's details;
    results stream through in small batches, so memory stays flat.
    """
    folder = Path(folder)
    context = EvaluationContext()
    sims = {s.name: s for s in manifest.simulations}
    if manifest.judge and any(c.needs_judge for s in sims.values() for c in s.checks):
        context.judge = build_user_model(manifest.judge, source="judge")
    notes = ReadNotes()
    problems: list[str] = []
    semaphore = asyncio.Semaphore(concurrency)

    async def one(result: dict[str, Any]) -> dict[str, Any]:
        name = result["meta_data"].get("simulation")
        sim = sims.get(name)
        if sim is None:
            result["evaluation"] = {
                "status": "error",
                "checks": [],
                "failed": [],
                "errors": [f"{manifest.path} has no simulation named {name!r}"],
            }
            return result
        result["meta_data"]["min_passes"] = sim.min_passes
        result["meta_data"]["required"] = sim.required
        try:
            async with semaphore:
                result["evaluation"] = await evaluate(result, sim.checks, context)
        except Exception as exc:  # a bug in a check: no verdict, and the run says so
            problems.append(f"{result_key(result)}: checking the conversation failed: {type(exc).__name__}: {exc}")
            result["evaluation"] = {"status": "error", "checks": [], "failed": [], "errors": [problems[-1]]}
        return result

    path = folder / RESULTS_FILE
    tmp = path.with_name(path.name + ".tmp")
    source = iter_results(path, notes)
    try:
        with tmp.open("wb") as handle:
            while batch := list(islice(source, concurrency * 4)):
                for result in await asyncio.gather(*(one(r) for r in batch)):
                    handle.write(result_line(result))
        os.chmod(tmp, 0o644)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        if context.judge is not None:
            await context.judge.aclose()
    old = read_summary(folder) or {}
    run = {**(old.get("run") or {}), "rechecked_at": _now(), "manifest": str(manifest.path)}
    if problems:
        run["internal_errors"] = [*run.get("internal_errors", []), *problems[:LISTED_KEYS]]
    if notes.warnings:
        run["warnings"] = [*run.get("warnings", []), *notes.warnings]
    rebuilt = summarize_folder(folder, run=run, gate=manifest.gate)
    write_summary(folder, rebuilt.summary)
    return rebuilt.summary


def run_with_signals(make: Callable[[], Awaitable[T]]) -> tuple[T, signal.Signals | None]:
    """Run `make()` on a new event loop; SIGINT/SIGTERM cancel it (the run keeps what finished).

    Returns the result and the signal that interrupted it, if any.
    """
    received: dict[str, signal.Signals] = {}

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):

            def on_signal(sig: signal.Signals = sig) -> None:
                received.setdefault("signal", sig)
                if task is not None:
                    task.cancel()

            loop.add_signal_handler(sig, on_signal)
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        result = asyncio.run(main())
        return result, received.get("signal")
    return run_sync(make), None
