"""Play every planned conversation concurrently and write each one the moment it ends.

`conversations.jsonl` gets one line per finished conversation, flushed at once, so a crash,
Ctrl-C or SIGTERM loses nothing that finished; `summary.json` is written at the end in all cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .checks import EvaluationContext, evaluate
from .connections import build_target, build_user_model
from .errors import ConfigError, MissingCredentialError
from .manifest import Manifest
from .plan import Job
from .results_folder import (
    RESULTS_FILE,
    SUMMARY_FILE,
    ResultWriter,
    move_previous_run,
    read_results,
    write_results,
    write_summary,
)
from .simulator import DEFAULT_TURN_TIMEOUT, Simulator
from .summary import summarize
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
    results: list[dict[str, Any]]
    interrupted: bool = False
    fatal_error: str | None = None
    not_run: list[str] = field(default_factory=list)
    #: where an older run found in the results folder was moved (None: the folder held none)
    previous_run: Path | None = None

    @property
    def errors(self) -> int:
        return self.summary["totals"]["errors"]


class Connections:
    """Builds each distinct app target and user model once, so conversations share connections."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._targets: dict[str, Target] = {}
        self._users: dict[str, Any] = {}
        self.evaluation = EvaluationContext()

    def prepare(self, jobs: list[Job]) -> None:
        """Build everything up front: configuration problems surface before any conversation starts."""
        problems = []
        if self.manifest.judge and any(c.needs_judge for job in jobs for c in job.simulation.checks):
            try:
                self.evaluation.judge = build_user_model(self.manifest.judge, source="judge")
            except ConfigError as exc:
                problems.append(f"{self.manifest.path}: {exc}")
        for job in jobs:
            try:
                self.target(job)
                if job.simulation.needs_llm:
                    self.user(job)
            except ConfigError as exc:
                message = f"{self.manifest.path}:{job.simulation.line or ''}: {job.simulation.name}: {exc}"
                if message not in problems:
                    problems.append(message)
        if problems:
            raise ConfigError("\n".join(problems))

    def missing_credentials(self, jobs: list[Job]) -> dict[str, str]:
        """Simulations that need an LLM (user or judge) whose credential is absent, with why."""
        missing: dict[str, str] = {}
        judge_problem = None
        if self.manifest.judge:
            try:
                build_user_model(self.manifest.judge, source="judge")
            except MissingCredentialError as exc:
                judge_problem = str(exc)
        for job in jobs:
            sim = job.simulation
            if sim.name in missing:
                continue
            if judge_problem and any(c.needs_judge for c in sim.checks):
                missing[sim.name] = judge_problem
            elif sim.needs_llm:
                try:
                    self.user(job)
                except MissingCredentialError as exc:
                    missing[sim.name] = str(exc)
        return missing

    def target(self, job: Job) -> Target:
        sim = job.simulation
        key = json.dumps(sim.target, sort_keys=True)
        if key not in self._targets:
            self._targets[key] = build_target(
                sim.target, self.manifest.folder, source=f"simulations[{sim.index}].target", root=self.manifest.root
            )
        return self._targets[key]

    def user(self, job: Job) -> UserSide | Any:
        sim = job.simulation
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


async def run_jobs(
    manifest: Manifest,
    jobs: list[Job],
    out_dir: str | Path,
    *,
    concurrency: int = 8,
    on_result: Callable[[Job, dict[str, Any]], None] | None = None,
    run_info: dict[str, Any] | None = None,
) -> RunOutcome:
    """Play `jobs` with at most `concurrency` conversations at a time.

    A fatal error (bad key, wrong URL: every conversation would fail the same way) stops new
    conversations from starting. Cancellation (SIGTERM, Ctrl-C) keeps what finished, records
    the interrupted conversations as `cancelled`, and still writes the summary.
    """
    if concurrency < 1:
        raise ConfigError("--concurrency must be 1 or more")
    out = Path(out_dir)
    connections = Connections(manifest)
    connections.prepare(jobs)
    previous_run = move_previous_run(out)
    writer = ResultWriter(out / RESULTS_FILE)
    semaphore = asyncio.Semaphore(concurrency)
    state: dict[str, Any] = {"fatal": None, "not_run": []}
    started, started_at = time.monotonic(), _now()

    async def play(job: Job) -> None:
        async with semaphore:
            if state["fatal"]:
                state["not_run"].append(job.key)
                return
            sim = job.simulation
            simulator = Simulator(
                system_connection=connections.target(job),
                user_connection=connections.user(job),
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
                    writer.write(partial)
                raise
            try:
                result["evaluation"] = await evaluate(result, sim.checks, connections.evaluation)
            except asyncio.CancelledError:
                result["evaluation"] = INTERRUPTED_EVALUATION
                writer.write(result)
                raise
            writer.write(result)
            error = result["meta_data"].get("error") or {}
            if error.get("fatal") and not state["fatal"]:
                state["fatal"] = f"{sim.name}: {error.get('message')}"
            if on_result is not None:
                on_result(job, result)

    tasks = [asyncio.create_task(play(job), name=job.key) for job in jobs]
    interrupted = False
    try:
        await asyncio.gather(*tasks)
    except asyncio.CancelledError:
        interrupted = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        writer.close()
        done = {(r["meta_data"].get("simulation"), r["meta_data"].get("repeat")) for r in writer.results}
        not_run = [j.key for j in jobs if (j.simulation.name, j.repeat_index + 1) not in done]
        run = {
            "manifest": str(manifest.path),
            "started_at": started_at,
            "finished_at": _now(),
            "wall_time_ms": round((time.monotonic() - started) * 1000, 3),
            "planned": len(jobs),
            "concurrency": concurrency,
            "interrupted": interrupted,
            "fatal_error": state["fatal"],
            "not_run": not_run,
            **(run_info or {}),
        }
        order = list(dict.fromkeys(j.simulation.name for j in jobs))
        summary = summarize(writer.results, run, order=order, gate=manifest.gate)
        write_summary(out, summary)
        await _close_quietly(connections)
    return RunOutcome(
        out_dir=out,
        summary=summary,
        results=writer.results,
        interrupted=interrupted,
        fatal_error=state["fatal"],
        not_run=not_run,
        previous_run=previous_run,
    )


async def _close_quietly(connections: Connections) -> None:
    with contextlib.suppress(Exception, asyncio.CancelledError):  # closing must not hide the outcome
        await asyncio.shield(connections.aclose())


async def recheck(folder: str | Path, manifest: Manifest, concurrency: int = 8) -> dict[str, Any]:
    """Evaluate finished conversations again with the manifest's current checks; no app calls.

    Rewrites the folder's results and summary in place (atomically), keeping the run's details.
    """
    folder = Path(folder)
    results = read_results(folder / RESULTS_FILE)
    context = EvaluationContext()
    sims = {s.name: s for s in manifest.simulations}
    if manifest.judge and any(c.needs_judge for s in sims.values() for c in s.checks):
        context.judge = build_user_model(manifest.judge, source="judge")
    semaphore = asyncio.Semaphore(concurrency)

    async def one(result: dict[str, Any]) -> None:
        name = result["meta_data"].get("simulation")
        sim = sims.get(name)
        if sim is None:
            result["evaluation"] = {
                "status": "error",
                "checks": [],
                "failed": [],
                "errors": [f"{manifest.path} has no simulation named {name!r}"],
            }
            return
        result["meta_data"]["min_passes"] = sim.min_passes
        result["meta_data"]["required"] = sim.required
        async with semaphore:
            result["evaluation"] = await evaluate(result, sim.checks, context)

    try:
        await asyncio.gather(*(one(r) for r in results))
    finally:
        if context.judge is not None:
            await context.judge.aclose()
    write_results(folder / RESULTS_FILE, results)
    previous = folder / SUMMARY_FILE
    run = json.loads(previous.read_text(encoding="utf-8")).get("run", {}) if previous.is_file() else {}
    run = {**run, "rechecked_at": _now(), "manifest": str(manifest.path)}
    order = [s.name for s in manifest.simulations]
    summary = summarize(results, run, order=order, gate=manifest.gate)
    write_summary(folder, summary)
    return summary


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
