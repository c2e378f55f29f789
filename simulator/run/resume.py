"""Continuing a run: what plan.json records, and what a resumed run still has to play."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from ..checks.evaluate import INTERRUPTED_EVALUATION
from ..errors import ConfigError
from ..manifest import Manifest
from ..records import ConversationResult, PlanRecord
from ..results.folder import (
    RESULTS_FILE,
    cut_torn_tail,
    iter_results,
    manifest_digest,
    move_previous_run,
    read_plan,
    result_key,
    utc_now,
    write_plan,
    write_results,
)
from ..results.summary import SummaryBuilder
from .plan import Job, Plan, distinct_simulations

log = logging.getLogger("simulator.run.runner")


def plan_record(manifest: Manifest, jobs: Plan | list[Job]) -> PlanRecord:
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
    record = {
        "version": 1,
        "created_at": utc_now(),
        "manifest": str(manifest.path),
        "manifest_sha256": digest,
        **shape,
        "order": order,
        "gate": manifest.gate,
    }
    return cast(PlanRecord, record)


def prepare_resume(
    out: Path, manifest: Manifest, plan: Plan, on_kept: Callable[[ConversationResult], None] | None = None
) -> tuple[Plan, list[str]]:
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

    def kept() -> Iterator[ConversationResult]:
        nonlocal dropped
        for result in iter_results(path) if path.is_file() else ():
            key = result_key(result)
            interrupted = result.get("evaluation") == INTERRUPTED_EVALUATION
            if key in seen or result["meta_data"]["stop_reason"] == "cancelled" or interrupted:
                dropped += 1
                continue
            seen.add(key)
            if on_kept is not None:  # the runner counts what is kept as it is rewritten: one pass
                on_kept(result)
            yield result

    write_results(path, kept())
    if dropped:
        warnings.append(f"{dropped} interrupted conversation(s) of the earlier run will be played again")
    return plan.restricted_to(set(plan.keys()) - seen), warnings


@dataclass
class RunStart:
    """How a run starts in its folder: the plan written (or a resumed run's plan read), what is kept."""

    record: PlanRecord
    builder: SummaryBuilder
    to_play: Plan | list[Job]
    kept: set[str] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    previous_run: Path | None = None


def start_run(manifest: Manifest, plan: Plan | list[Job], out: Path, resume: bool) -> RunStart:
    """Write the plan of a new run (moving an earlier run aside), or read a resumed run's and keep
    its finished conversations."""
    record = plan_record(manifest, plan)
    start = RunStart(record, SummaryBuilder(record["order"]), plan)
    if resume:
        if not isinstance(plan, Plan):
            raise ConfigError("resume needs the plan of a manifest (plan_jobs), not a list of jobs")

        def keep(result: ConversationResult) -> None:
            start.builder.add(result)
            start.kept.add(result_key(result))

        start.to_play, start.warnings = prepare_resume(out, manifest, plan, on_kept=keep)
        start.record = read_plan(out) or record
    else:
        start.previous_run = move_previous_run(out)
        write_plan(out, record)
    for warning in start.warnings:
        log.warning("%s", warning)
    return start
