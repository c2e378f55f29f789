"""One way from a manifest to a finished run, for every front end (the CLI and the GitHub Action).

manifest → plan (filters, tags, repeat, shard) → simulations whose LLM key is missing skipped
(when asked) → runner (results folder, summary) → one exit code. The front ends only map their
options in and print or publish what comes out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from ..aio.event_loops import run_with_signals
from ..aio.limiter import Listener
from ..manifest import Manifest
from ..records import ConversationResult, RunInfo
from ..results.folder import PLAN_FILE, RESULTS_FILE, make_folder, write_summary
from ..results.summary import SummaryBuilder
from .connections import Connections
from .exit_codes import EXIT_CONFIG, EXIT_GATE_FAILED, EXIT_OK, EXIT_RUN_ERRORS, FAIL_ON, exit_code
from .plan import Job, Plan, distinct_simulations, plan_jobs
from .replay import ReplayBook
from .runner import RunOutcome, run_jobs

__all__ = [
    "EXIT_CONFIG",
    "EXIT_GATE_FAILED",
    "EXIT_OK",
    "EXIT_RUN_ERRORS",
    "FAIL_ON",
    "RunSettings",
    "exit_code",
    "plan_for",
    "run_manifest",
    "run_manifest_async",
]


@dataclass
class RunSettings:
    """How to play a manifest: where the results go and which conversations, how many at a time."""

    out: Path
    concurrency: int = 8
    filters: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    repeat: int | None = None
    shard: tuple[int, int] | None = None
    #: continue the interrupted run in `out` (when there is none: start one, with a warning)
    resume: bool = False
    #: play what can run when a simulation's LLM key is missing (fork pull requests get no secrets)
    skip_without_key: bool = False
    #: why keys are missing, for the note (default: the first simulation's own reason)
    skip_reason: str | None = None
    on_result: Callable[[Job, ConversationResult], None] | None = None
    on_start: Callable[[int, int], None] | None = None
    on_warning: Callable[[str], object] | None = None
    run_info: dict[str, Any] = field(default_factory=dict)
    #: replay a baseline run's user messages while the app answers as it did (`simulator.run.replay`)
    replays: ReplayBook | None = None
    #: told when an endpoint rate-limits the run (how long everyone waits, how many requests at a time)
    on_rate_limit: Listener | None = None


def plan_for(manifest: Manifest, settings: RunSettings) -> Plan:
    """The conversations the settings select (raises `ConfigError` when none match)."""
    return plan_jobs(
        manifest, filters=settings.filters, tags=settings.tags, repeat=settings.repeat, shard=settings.shard
    )


async def run_manifest_async(manifest: Manifest, settings: RunSettings) -> RunOutcome:
    """Plan, skip what cannot run, play the rest into `settings.out`, summarise."""
    plan = plan_for(manifest, settings)
    run_info = {"shard": "/".join(map(str, settings.shard)) if settings.shard else None, **settings.run_info}
    if settings.filters or settings.tags:  # part of the manifest: what else it has was not played, not removed
        run_info.update(filters=list(settings.filters), tags=list(settings.tags))
    skipped: dict[str, str] = {}
    if settings.skip_without_key:
        skipped = Connections(manifest).missing_credentials(distinct_simulations(plan))
    if skipped:
        why = settings.skip_reason or next(iter(skipped.values()))
        run_info["skipped"] = (
            f"Skipped {len(skipped)} simulation(s) that need an LLM key that is not available ({why}): "
            + ", ".join(sorted(skipped))
        )
        run_info["skipped_simulations"] = sorted(skipped)
        plan = plan.without(skipped)
    if not plan:
        outcome = _nothing_to_run(manifest, settings.out, run_info)
        outcome.skipped = skipped
        return outcome
    resume = settings.resume and (settings.out / PLAN_FILE).is_file()
    if settings.resume and not resume and settings.on_warning is not None:
        settings.on_warning(f"{settings.out} holds no interrupted run to resume; starting a new one")
    outcome = await run_jobs(
        manifest,
        plan,
        settings.out,
        concurrency=settings.concurrency,
        on_result=settings.on_result,
        run_info=run_info,
        resume=resume,
        on_start=settings.on_start,
        replays=settings.replays,
        # the CLI's progress (`on_result`) takes the rate-limit lines too, unless told otherwise
        on_rate_limit=settings.on_rate_limit or getattr(settings.on_result, "rate_limit", None),
    )
    outcome.skipped = skipped
    return outcome


def _nothing_to_run(manifest: Manifest, out: Path, run_info: dict[str, Any]) -> RunOutcome:
    """Every selected simulation was skipped: an empty results folder whose gate says `skipped`."""
    make_folder(out)
    (out / RESULTS_FILE).write_text("", encoding="utf-8")
    summary = SummaryBuilder().build(cast(RunInfo, {"manifest": str(manifest.path), **run_info}), manifest.gate)
    summary["gate"]["status"] = "skipped"
    write_summary(out, summary)
    return RunOutcome(out_dir=out, summary=summary)


def run_manifest(manifest: Manifest, settings: RunSettings) -> RunOutcome:
    """Blocking form of `run_manifest_async`; SIGINT/SIGTERM stop it keeping what finished
    (`outcome.received` names the signal)."""
    outcome, received = run_with_signals(lambda: run_manifest_async(manifest, settings))
    outcome.received = received
    return outcome
