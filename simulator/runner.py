"""Play every planned conversation concurrently and write each one the moment it ends.

`conversations.jsonl` gets one line per finished conversation, flushed at once, so a crash,
Ctrl-C or SIGTERM loses nothing that finished; `summary.json` is written at the end in all cases.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
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
from .report import HTML_FILE, MARKDOWN_FILE
from .simulator import DEFAULT_TURN_TIMEOUT, Simulator
from .summary import summarize
from .sync import run_sync
from .targets import Target
from .users import ScriptedUser, UserSide

T = TypeVar("T")
log = logging.getLogger("simulator.runner")
RESULTS_FILE = "conversations.jsonl"
SUMMARY_FILE = "summary.json"
#: where an older run's files go when a new run starts in the same folder
PREVIOUS_DIR = "previous"
#: the files a run leaves in its folder (the CLI and the action write the reports beside the results)
RUN_FILES = (RESULTS_FILE, SUMMARY_FILE, MARKDOWN_FILE, HTML_FILE)
INTERRUPTED_EVALUATION = {
    "status": "error",
    "checks": [],
    "failed": [],
    "errors": ["the run was interrupted before this conversation was judged"],
}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class ResultWriter:
    """Appends one JSON line per conversation and flushes it before anything else happens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: list[dict[str, Any]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = _why_not_a_folder(path.parent, exc)
            raise ConfigError(f"{path.parent}: cannot create the results folder: {reason}") from None
        try:
            self._file = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write results: {exc.strerror or exc}") from None
        # results are read by later workflow steps that may not run as this user
        os.chmod(path, 0o644)

    def write(self, result: dict[str, Any]) -> None:
        self._file.write(json.dumps(result, ensure_ascii=False) + "\n")
        self._file.flush()
        self.results.append(result)

    def close(self) -> None:
        self._file.close()


def _why_not_a_folder(folder: Path, exc: OSError) -> str:
    """mkdir says "File exists" or "Not a directory" when a file stands where a folder must be; name that file."""
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return exc.strerror or str(exc)


def _run_label(out: Path) -> str:
    """When the run in `out` started (its summary's `run.started_at`), else its files' mtime; safe as a file name."""
    started = None
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):  # no summary, or not ours
        started = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))["run"]["started_at"]
    if not isinstance(started, str) or not started.strip():
        times = [(out / name).stat().st_mtime for name in RUN_FILES if (out / name).exists()]
        started = datetime.fromtimestamp(max(times, default=time.time()), timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    return re.sub(r"[^0-9A-Za-z._-]+", "-", started.strip())[:64].strip(".-") or "run"


def move_previous_run(out: Path) -> Path | None:
    """Move an older run's files out of the way, into `out/previous/<when it started>/`.

    A new run rewrites conversations.jsonl from its first line and summary.json at its end, so in
    a folder that already holds a run the old results would be lost, or read together with the new
    ones (a stale summary or report next to new conversations). Moving them aside keeps both
    apart; returns where they went, or None when the folder held no run.
    """
    if not ((out / RESULTS_FILE).exists() or (out / SUMMARY_FILE).exists()):
        return None
    label = _run_label(out)
    dest = out / PREVIOUS_DIR / label
    number = 1
    while dest.exists():
        number += 1
        dest = out / PREVIOUS_DIR / f"{label}-{number}"
    try:
        dest.mkdir(parents=True)
        for name in RUN_FILES:
            if (out / name).exists():
                os.replace(out / name, dest / name)
    except OSError as exc:
        raise ConfigError(f"{out}: holds an older run that cannot be moved to {dest}: {exc.strerror or exc}") from None
    log.warning("%s held an older run: moved its files to %s", out, dest)
    return dest


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


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Conversation results from a JSONL file; a damaged line is an error naming file and line.

    Every line must be a conversation_result (its JSON Schema) with, when present, an `evaluation`
    as the runner writes it; anything else (truncated lines, other JSON, bad UTF-8, absurd
    nesting) is a `ConfigError`, never another exception. Lines end only at "\\n": U+2028 and
    U+0085, which JSON keeps unescaped inside strings, are text.
    """
    import jsonschema

    from .schema_check import load_schema, schema_errors

    evaluation_schema = {
        "type": ["object", "null"],
        "properties": {
            "status": {"enum": ["pass", "fail", "error"]},
            "checks": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "status", "message"],
                    "properties": {"name": {"type": "string"}, "status": {"type": "string"}},
                },
            },
            "failed": {"type": "array", "items": {"type": "string"}},
            "errors": {"type": "array", "items": {"type": "string"}},
        },
    }
    valid_result = jsonschema.Draft202012Validator(load_schema("conversation_result")).is_valid
    valid_evaluation = jsonschema.Draft202012Validator(evaluation_schema).is_valid
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read results: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL character in the path
        raise ConfigError(f"{path!r}: cannot read results: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: results are not UTF-8 text ({exc.reason})") from None
    results = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not a JSON line ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise ConfigError(f"{path}:{number}: not a conversation_result (nested too deeply)") from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise ConfigError(f"{path}:{number}: not a usable JSON line ({str(exc).split(':')[0]})") from None
        if not isinstance(result, dict) or "conversation_id" not in result or "meta_data" not in result:
            raise ConfigError(f"{path}:{number}: not a conversation_result")
        where = f"{path}:{number}: not a conversation_result"
        try:
            if not valid_result(result):
                problems = schema_errors(result, "conversation_result", source=where)
            elif "evaluation" in result and not valid_evaluation(result["evaluation"]):
                problems = schema_errors(
                    result["evaluation"], "", source=where, schema=evaluation_schema, prefix=("evaluation",)
                )
            else:
                problems = []
        except RecursionError:
            problems = [f"{where}: nested too deeply"]
        if problems:
            raise ConfigError(problems[0])
        results.append(result)
    return results


def merge_results(out_dir: str | Path, shard_dirs: list[str | Path]) -> dict[str, Any]:
    """Join the outputs of several shards into one results folder and summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    move_previous_run(out)
    seen: set[str] = set()
    merged: list[dict[str, Any]] = []
    runs = []
    gate_configs: list[dict[str, Any] | None] = []
    for folder in shard_dirs:
        folder = Path(folder)
        for result in read_results(folder / RESULTS_FILE):
            if result["conversation_id"] in seen:
                raise ConfigError(f"{folder}: conversation {result['conversation_id']} appears in two shards")
            seen.add(result["conversation_id"])
            merged.append(result)
        summary_path = folder / SUMMARY_FILE
        if summary_path.is_file():
            shard_summary = json.loads(summary_path.read_text(encoding="utf-8"))
            runs.append(shard_summary.get("run", {}))
            gate_configs.append((shard_summary.get("gate") or {}).get("config"))
    with (out / RESULTS_FILE).open("w", encoding="utf-8") as handle:
        for result in merged:
            handle.write(json.dumps(result, ensure_ascii=False) + "\n")
    os.chmod(out / RESULTS_FILE, 0o644)
    run = {
        "merged_from": [str(Path(f)) for f in shard_dirs],
        "interrupted": any(r.get("interrupted") for r in runs),
        "fatal_error": next((r["fatal_error"] for r in runs if r.get("fatal_error")), None),
        "not_run": [key for r in runs for key in r.get("not_run", [])],
        "planned": sum(r.get("planned", 0) for r in runs),
    }
    gates = [g for g in gate_configs if g is not None]
    summary = summarize(merged, run, gate=gates[0] if gates else None)
    write_summary(out, summary)
    return summary


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
    tmp = folder / (RESULTS_FILE + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(result, ensure_ascii=False) + "\n")
    os.chmod(tmp, 0o644)
    tmp.replace(folder / RESULTS_FILE)
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
