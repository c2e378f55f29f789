"""The `simulator` command's commands, one `cmd_*` function each: the parsed arguments in, an exit
code out. What a command is given that cannot be used (a manifest, a results folder, a base run)
is a `ConfigError`, raised before anything runs or is paid for."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from typing import Any, cast

from .aio.event_loops import run_sync
from .cli_output import Console, Progress
from .errors import ConfigError, GenerationError, UnreadableRecord
from .manifest import load_manifest
from .persona import Persona, predefined_personas
from .records import Summary
from .report import load_baseline
from .results.folder import (
    PLAN_FILE,
    RESULTS_FILE,
    SUMMARY_FILE,
    read_plan,
    read_summary,
    summarize_folder,
    write_summary,
)
from .results.shards import merge_results
from .run.exit_codes import EXIT_OK, EXIT_RUN_ERRORS, exit_code
from .run.pipeline import RunSettings, plan_for, run_manifest
from .run.plan import Plan, parse_shard
from .run.recheck import recheck
from .run.replay import ReplayBook, ReplyMatcher
from .run.runner import RunOutcome


def cmd_run(args: argparse.Namespace) -> int:
    console = Console(args.format, args.quiet)
    manifest = load_manifest(args.manifest, app_url=args.app_url)
    console.warn(manifest.warnings)
    settings = RunSettings(
        out=Path(args.out),
        concurrency=args.concurrency,
        filters=args.filter or [],
        tags=args.tag or [],
        repeat=args.repeat,
        shard=parse_shard(args.shard) if args.shard else None,
        resume=args.resume,
        on_warning=lambda text: console.warn([text]),
    )
    if args.baseline:
        _check_baseline(args.baseline)
    plan = plan_for(manifest, settings)
    if args.replay:
        settings.replays = _replays(args, plan, console)
    planned = len(plan)
    where = f" (shard {args.shard})" if settings.shard else ""
    console.note(f"Running {planned} conversation(s) from {manifest.path}{where}, {args.concurrency} at a time")
    progress = Progress(planned, console.err, quiet=args.quiet)
    settings.on_result, settings.on_start = progress, progress.start
    outcome = run_manifest(manifest, settings)
    if progress.tty and not args.quiet and progress.done < progress.total:
        console.err.write("\n")
    code = outcome.exit_code()
    settled = not (outcome.interrupted or outcome.fatal_error)
    console.conclude(
        outcome.summary, settings.out, code, baseline=args.baseline, problems=_run_problems(outcome), gate=settled
    )
    return code


#: what `--baseline` and `--replay` want, said when what they were given cannot be used
BASELINE_WANTED = "give the results folder of a finished base run (its summary.json), or leave --baseline out"
REPLAY_WANTED = "give the results folder of an earlier run (its conversations.jsonl), or leave --replay out"


def _check_baseline(path: str) -> None:
    """A base run read before the run, by the loader the comparison uses: one that gives no
    comparison is a usage error before any conversation (and its LLM calls) is paid for. What goes
    wrong with it after the run still costs only the comparison (`comparison_or_why`)."""
    try:
        load_baseline(path)
    except UnreadableRecord as exc:
        raise ConfigError(f"--baseline {path}: {exc}; {BASELINE_WANTED}") from None
    except ConfigError as exc:
        raise ConfigError(f"--baseline {path}: {exc}") from None
    except Exception as exc:  # shaped in a way no check foresaw: the comparison would give up on it too
        raise ConfigError(
            f"--baseline {path}: it could not be read ({type(exc).__name__}: {exc}); {BASELINE_WANTED}"
        ) from None


def _replays(args: argparse.Namespace, plan: Plan, console: Console) -> ReplayBook | None:
    """The earlier run's conversations to replay, read before the run; None when the run has no
    LLM-played conversation, since a scripted user replays itself."""
    matcher = ReplyMatcher(args.replay_match, tuple(args.replay_ignore or ()))
    try:
        book = ReplayBook.load(args.replay, matcher)
    except UnreadableRecord as exc:
        raise ConfigError(f"--replay {args.replay}: {exc}; {REPLAY_WANTED}") from None
    except OSError as exc:
        raise ConfigError(f"--replay {args.replay}: {exc.strerror or exc}; {REPLAY_WANTED}") from None
    by_llm = [(job.simulation.name, job.repeat_index + 1) for job in plan if job.simulation.needs_llm]
    if not by_llm:
        console.note(
            f"Nothing to replay from {args.replay}: every conversation of this run is scripted, "
            "and a scripted user replays itself"
        )
        return None
    found = sum(1 for key in by_llm if key in book.scripts)
    live = f"; the other {len(by_llm) - found} have none there and play live" if found < len(by_llm) else ""
    console.note(
        f"Replaying the user messages of {found} of {len(by_llm)} LLM-played conversation(s) from {args.replay}{live}"
    )
    return book


def _run_problems(outcome: RunOutcome) -> tuple[str, ...]:
    """What went wrong with the run itself, said on stderr after the result."""
    problems = []
    if outcome.summary_error:
        problems.append(f"summary.json could not be written: {outcome.summary_error}")
    if outcome.storage_error:
        problems.append(f"Results could not be stored: {outcome.storage_error}")
    problems += [f"Internal error: {problem}" for problem in outcome.internal_errors[:10]]
    if outcome.interrupted:
        outcome.received = outcome.received or signal.SIGINT
        problems.append(
            f"Interrupted by {signal.Signals(outcome.received).name}: kept {outcome.finished} conversation(s); "
            f"{outcome.summary['run'].get('missing_count', 0)} did not finish "
            f"(`simulator run --resume` plays only those)."
        )
    elif outcome.fatal_error:
        missing = outcome.summary["run"].get("missing_count", len(outcome.not_run))
        problems.append(f"Stopped early: {outcome.fatal_error}\n{missing} conversation(s) did not run.")
    return tuple(problems)


def cmd_check(args: argparse.Namespace) -> int:
    folder = Path(args.results)
    if not (folder / RESULTS_FILE).is_file():
        raise ConfigError(f"{folder}: no {RESULTS_FILE}; give a results folder written by `simulator run`")
    manifest_path = args.manifest
    if manifest_path is None:
        recorded_summary, recorded_plan = read_summary(folder), read_plan(folder)
        recorded_run = recorded_summary.get("run") if recorded_summary else None
        recorded = (recorded_run or {}).get("manifest") or (recorded_plan.get("manifest") if recorded_plan else None)
        if not recorded:
            raise ConfigError(f"{folder}: neither {SUMMARY_FILE} nor {PLAN_FILE} names the manifest; pass --manifest")
        manifest_path = recorded
    console = Console(args.format)
    need = ("judge", "checks", "target") if args.requery else ("judge", "checks")
    manifest = load_manifest(manifest_path, need=need)
    summary = run_sync(lambda: recheck(folder, manifest, requery=args.requery))
    console.warn(summary["run"].get("warnings", []))
    console.note(f"Re-checked {summary['totals']['conversations']} conversation(s) in {folder}/")
    code = exit_code(summary)
    console.conclude(summary, folder, code, baseline=args.baseline)
    return code


def cmd_report(args: argparse.Namespace) -> int:
    folder = Path(args.results)
    if not (folder / RESULTS_FILE).is_file() and not (folder / SUMMARY_FILE).is_file():
        raise ConfigError(f"{folder}: no {RESULTS_FILE}; give a results folder written by `simulator run`")
    console = Console(args.format)
    old = read_summary(folder)
    if (folder / RESULTS_FILE).is_file():
        rebuilt = summarize_folder(folder)
        console.warn(rebuilt.notes.warnings)
        summary = rebuilt.summary
        if old is None or _counts(old) != _counts(summary):
            why = "was missing" if old is None else "did not match the results"
            console.warn([f"{folder / SUMMARY_FILE} {why}: rebuilt it from the complete lines"])
            write_summary(folder, summary)
        elif old is not None:
            summary = old
    else:
        summary = old or cast(Summary, {})
    console.conclude(summary, folder, EXIT_OK, baseline=args.baseline, gate=False)
    return EXIT_OK


def _counts(summary: Summary) -> tuple[Any, ...]:
    run = summary.get("run") or {}
    return (summary.get("totals", {}).get("conversations"), run.get("missing_count"), summary["gate"].get("status"))


def cmd_validate(args: argparse.Namespace) -> int:
    """CI often validates without the run's secrets: unset variables are warnings unless --strict."""
    console = Console(args.format)
    manifest = load_manifest(args.manifest, need=None if args.strict else ())
    console.warn(manifest.warnings)
    rows = manifest.rows.counts if manifest.rows is not None else None  # counted when the rows were checked
    jobs = sum(s.repeat for s in manifest.simulations) + (rows.conversations if rows else 0)
    llm = sum(1 for s in manifest.simulations if s.needs_llm) + (rows.played_by_llm if rows else 0)
    if console.json:
        document = {
            "manifest": str(manifest.path),
            "valid": True,
            "simulations": [s.name for s in manifest.simulations] + [n for n, _ in (rows.entries if rows else [])],
            "conversations": jobs,
            "played_by_llm": llm,
            "warnings": manifest.warnings,
        }
        console.out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK
    unset = f"; {len(manifest.warnings)} warning(s)" if manifest.warnings else ""
    console.result(
        f"{manifest.path}: valid; {manifest.count} simulation(s), {jobs} conversation(s) per run, "
        f"{llm} played by an LLM{unset}"
    )
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    console = Console(args.format)
    summary = merge_results(args.out, args.shards)
    console.warn(summary["run"].get("warnings", []))
    totals = summary["totals"]
    console.note(f"merged {len(args.shards)} shard(s): {totals['conversations']} conversations into {args.out}/")
    code = exit_code(summary)
    console.conclude(summary, Path(args.out), code, baseline=args.baseline)
    return code


def cmd_personas(args: argparse.Namespace) -> int:
    if args.action == "show":
        if not args.name:
            raise ConfigError("simulator personas show NAME: which persona? " + ", ".join(predefined_personas()))
        persona = Persona.load(args.name)
        print(f"# {persona.name}\n\nprofile: {persona.profile}\ntone: {persona.tone}\n")
        print(persona.template)
        return EXIT_OK
    for name in predefined_personas():
        persona = Persona.load(name)
        print(f"{name:<10} {persona.tone or ''}"[:110])
    return EXIT_OK


def _agreed(console: Console) -> bool:
    """Asked on the terminal (stderr: stdout keeps the result), before anything is spent."""
    console.err.write("Go ahead? [y/N] ")
    console.err.flush()
    return sys.stdin.readline().strip().lower() in ("y", "yes")


def cmd_generate(args: argparse.Namespace) -> int:
    """The cost is said before anything is spent; an interactive run asks first, a CI run goes on."""
    from .generate import Options, Settings, prepare  # only this command needs the generators
    from .generate.personas import parse_axes

    console = Console("text")
    settings = Settings(
        kind=args.kind,
        count=args.count,
        seed=args.seed,
        axes=parse_axes(args.axis),
        attacks=args.attacks.split(",") if args.attacks else None,
        seed_url=args.seed_url,
        state_url=args.state_url,
        concurrency=args.concurrency,
    )
    options = Options(
        sources=args.sources,
        out=Path(args.out),
        manifest=Path(args.manifest),
        settings=settings,
        append=args.append,
        force=args.force,
        model=args.model,
        endpoint=args.endpoint,
        api_key_env=args.api_key_env,
        max_tokens=args.max_tokens,
        names_file=args.names_file,
        log_sample=args.log_sample,
    )
    prepared = prepare(options)
    for line in prepared.sources.describe():
        console.note(line)
    console.warn(prepared.notes)
    console.note(prepared.estimate().line(prepared.model_label))
    if args.dry_run:
        for line in prepared.call_lines():
            console.result(line)
        console.note("Dry run: nothing was sent.")
        return EXIT_OK
    model = prepared.build_model()
    if not args.yes and sys.stdin.isatty() and not _agreed(console):
        console.note("Nothing was sent.")
        return EXIT_OK
    calls = len(prepared.generation.first_calls)
    progress = Progress(calls, console.err)
    done = [0]

    def answered(call: Any) -> None:
        done[0] += 1
        console.note(f"[{done[0]}] {call.label}: answered")

    try:
        generated = run_sync(lambda: prepared.run(model, answered, progress.rate_limit))
        console.warn(generated.notes)
        console.warn(prepared.write(generated))
    except GenerationError as exc:
        console.note(f"error: {exc}\nNothing was written.")
        return EXIT_RUN_ERRORS
    counts = generated.counts()
    origins = {"docs": "the documents", "prompt": "the prompt", "logs": "the logs", "attack": "the playbook"}
    made = ", ".join(f"{counts[k]} from {label}" for k, label in origins.items() if counts[k])
    merged = f"; {generated.merged} near-duplicate(s) merged" if generated.merged else ""
    covered = f"; {len(generated.covered)} left out as already covered by the manifest" if generated.covered else ""
    verb = "Appended" if args.append else "Wrote"
    console.result(
        f"{verb} {len(generated.candidates)} simulation(s) to {options.out} ({made or 'none'}{merged}{covered}) "
        f"with {generated.calls} model call(s); it validates. Review the checks marked proposed before committing."
    )
    return EXIT_OK
