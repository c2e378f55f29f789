"""Merging the results folders of several shards into one: results, plan and summary."""

from __future__ import annotations

import shutil
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import ConversationResult, PlanRecord, RunInfo, Summary
from .folder import (
    PLAN_FILE,
    RESULTS_FILE,
    move_previous_run,
    read_plan,
    read_summary,
    summarize_folder,
    write_plan,
    write_results,
    write_summary,
)
from .reading import ReadNotes, iter_results, keys_of_record, result_key


def merge_plans(plans: list[PlanRecord | None], folders: list[Path]) -> tuple[PlanRecord | None, list[str]]:
    """One plan for merged shards: their keys together; warns about shards that were not given."""
    known = [p for p in plans if p is not None]
    if not known:
        return None, []
    warnings = []
    keys: list[str] = []
    planned_in: dict[str, Path] = {}
    for plan, folder in zip(plans, folders, strict=True):
        if plan is None:
            continue
        for key in keys_of_record(plan):
            if key in planned_in:  # the missing ones would count twice
                raise ConfigError(
                    f"{folder}: conversation {key} was planned in {planned_in[key]} too: give each shard of one "
                    "split once"
                )
            planned_in[key] = folder
            keys.append(key)
    merged: PlanRecord = {"keys": keys, "gate": known[0].get("gate"), "order": known[0].get("order")}
    shards = {tuple(shard) for p in known if (shard := p.get("shard"))}
    counts = {count for _, count in shards}
    if len(counts) == 1:
        count = counts.pop()
        have = {index for index, _ in shards}
        absent = sorted(set(range(1, count + 1)) - have)
        if absent:
            total = max(int(p.get("planned_total") or 0) for p in known)
            unseen = max(total - len(keys), 0)
            merged["unseen_shards"] = absent
            merged["unseen_count"] = unseen
            warnings.append(
                f"shard(s) {', '.join(f'{i}/{count}' for i in absent)} of this run were not given to merge "
                f"({unseen} planned conversation(s)): they count as missing"
            )
    if len(known) < len(folders):
        warnings.append(f"{len(folders) - len(known)} shard folder(s) have no {PLAN_FILE}: their plan is unknown")
    return merged, warnings


def merge_results(out_dir: str | Path, shard_dirs: Sequence[str | Path]) -> Summary:
    """Join the outputs of several shards into one results folder, plan and summary (streamed).

    Torn last lines and shards that were not given are named in the summary's `run.warnings`.
    """
    out = Path(out_dir)
    folders = [Path(f) for f in shard_dirs]
    unreadable = [str(f) for f in folders if not (f / RESULTS_FILE).is_file()]
    if unreadable:  # before anything is created: a failed merge leaves no empty folder behind
        raise ConfigError(f"merge: no {RESULTS_FILE} in {', '.join(unreadable)}")
    own = [str(f) for f in folders if _same_folder(f, out)]
    if own:  # before anything moves: merging would first move that shard's own files aside
        raise ConfigError(
            f"merge: the output folder {out} is also a shard given to merge ({', '.join(own)}); "
            "write the merged results to a new folder"
        )
    created = not out.exists()
    try:
        return _merge_into(out, folders)
    except BaseException:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise


def _same_folder(folder: Path, other: Path) -> bool:
    try:
        return other.exists() and folder.resolve() == other.resolve()
    except OSError:  # a loop of links: not the same folder as anything we write
        return False


def _merge_into(out: Path, folders: list[Path]) -> Summary:
    out.mkdir(parents=True, exist_ok=True)
    move_previous_run(out)
    seen: set[str] = set()
    played_in: dict[str, Path] = {}
    notes = ReadNotes()

    def shard_results() -> Iterator[ConversationResult]:
        for folder in folders:
            for result in iter_results(folder / RESULTS_FILE, notes):
                if result["conversation_id"] in seen:
                    raise ConfigError(f"{folder}: conversation {result['conversation_id']} appears in two shards")
                seen.add(result["conversation_id"])
                # the same planned conversation played twice (a shard re-run into another folder,
                # shards of two splits) would count twice against the gate
                key = result_key(result)
                if key in played_in:
                    raise ConfigError(
                        f"{folder}: conversation {key} was played in {played_in[key]} too: give each shard "
                        "of one split once"
                    )
                played_in[key] = folder
                yield result

    write_results(out / RESULTS_FILE, shard_results())
    summaries: list[Mapping[str, Any]] = [read_summary(f) or {} for f in folders]
    runs = [s.get("run") or {} for s in summaries]
    gates = [(s.get("gate") or {}).get("config") for s in summaries]
    plan, warnings = merge_plans([read_plan(f) for f in folders], folders)
    if plan is not None:
        write_plan(out, plan)
    run: RunInfo = {
        "merged_from": [str(f) for f in folders],
        "interrupted": any(r.get("interrupted") for r in runs),
        "fatal_error": next((r["fatal_error"] for r in runs if r.get("fatal_error")), None),
        "internal_errors": [e for r in runs for e in r.get("internal_errors", [])],
        "warnings": [*notes.warnings, *warnings],
    }
    replays = [r["replay"] for r in runs if isinstance(r.get("replay"), Mapping)]
    if replays:  # what the shards' replays of the base run cost, together
        run["replay"] = _replay_totals(replays)
    # the plan's gate is the manifest's own: a shard's gate left out what other shards played
    gate = (plan.get("gate") if plan else None) or next((g for g in gates if g is not None), None)
    summary = summarize_folder(out, run=run, gate=gate).summary
    write_summary(out, summary)
    return summary


def _replay_totals(replays: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The shards' `run.replay` counts summed (a count a shard did not record, or not as a count, is 0)."""
    totals: dict[str, Any] = {"from": next((r["from"] for r in replays if isinstance(r.get("from"), str)), "")}
    for replay in replays:
        for key, value in replay.items():
            if key != "from" and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
                totals[key] = totals.get(key, 0) + value
    return totals
