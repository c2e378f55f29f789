"""`simulator check`: judge finished conversations again with the manifest's current checks.

No app or user-model calls: only the checks (and the judge) run, and outcome checks read the answers
the run recorded; with `--requery` they ask the app again. Results stream through in small batches
and are rewritten atomically, so a large folder re-checks in flat memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from ..checks import EvaluationContext, evaluate
from ..manifest import Manifest, Simulation
from ..records import ConversationResult, RunInfo, Summary
from ..results.folder import (
    LISTED_KEYS,
    RESULTS_FILE,
    ReadNotes,
    iter_results,
    read_plan,
    read_summary,
    replaced_atomically,
    result_key,
    result_line,
    summarize_folder,
    utc_now,
    write_summary,
)
from ..targets import Target
from .connections import build_model, build_target
from .runner import narrowed_gate
from .state_hooks import Requery, keep_outcomes, recheck_context


async def recheck(folder: str | Path, manifest: Manifest, concurrency: int = 8, requery: bool = False) -> Summary:
    """Evaluate finished conversations again with the manifest's current checks; no app calls.

    Outcome checks read the answers the run recorded; with `requery` they ask the app again (its
    state may have moved on since), and the new answers replace the recorded ones.
    Rewrites the folder's results and summary in place (atomically), keeping the run's details.
    """
    folder = Path(folder)
    context = EvaluationContext()
    sims = {s.name: s for s in manifest.all_simulations()}
    if manifest.judge and any(c.needs_judge for s in sims.values() for c in s.checks):
        context.judge = build_model(manifest.judge, source="judge")
    notes = ReadNotes()
    problems: list[str] = []
    semaphore = asyncio.Semaphore(concurrency)
    asking = Requery(lambda sim: _target(manifest, sim)) if requery else None

    async def one(result: ConversationResult) -> ConversationResult:
        name = result["meta_data"].get("simulation")
        sim = sims.get(name) if name is not None else None
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
                checking, live = recheck_context(context, result, sim, asking)
                result["evaluation"] = await evaluate(result, sim.checks, checking)
                keep_outcomes(result, live, utc_now())
        except Exception as exc:  # a bug in a check: no verdict, and the run says so
            problems.append(f"{result_key(result)}: checking the conversation failed: {type(exc).__name__}: {exc}")
            result["evaluation"] = {"status": "error", "checks": [], "failed": [], "errors": [problems[-1]]}
        return result

    path = folder / RESULTS_FILE
    source = iter_results(path, notes)
    try:
        with replaced_atomically(path) as handle:
            while batch := list(islice(source, concurrency * 4)):
                for result in await asyncio.gather(*(one(r) for r in batch)):
                    handle.write(result_line(result))
    finally:
        if context.judge is not None:
            await context.judge.aclose()
        if asking is not None:
            await asking.aclose()
    old: Mapping[str, Any] = read_summary(folder) or {}
    run: RunInfo = {**(old.get("run") or {}), "rechecked_at": utc_now(), "manifest": str(manifest.path)}
    # this check's own problems replace the last check's: a check that failed once (a bug since
    # fixed, a judge that was down) does not keep the gate at "error" through every later check
    run.pop("check_errors", None)
    if problems:
        run["check_errors"] = problems[:LISTED_KEYS]
    if notes.warnings:  # the same damaged line is not reported again at every check
        run["warnings"] = list(dict.fromkeys([*run.get("warnings", []), *notes.warnings]))
    # held to what the run planned, as the run was: `--filter`, `--tag` or a shard left some
    # required simulations out, and the manifest's whole gate would call them "did not run"
    plan = read_plan(folder)
    gate, narrowed = narrowed_gate(manifest.gate, plan) if plan is not None else (manifest.gate, [])
    run.pop("gate_narrowed", None)
    if narrowed:
        run["gate_narrowed"] = narrowed
    rebuilt = summarize_folder(folder, run=run, gate=gate)
    write_summary(folder, rebuilt.summary)
    return rebuilt.summary


def _target(manifest: Manifest, sim: Simulation) -> Target:
    """The app target a re-query asks, as `simulator run` builds it."""
    source = "target" if sim.target == manifest.target else f"{sim.row}: target" if sim.row else f"{sim.where}.target"
    return build_target(sim.target, manifest.folder, source=source, root=manifest.root)
