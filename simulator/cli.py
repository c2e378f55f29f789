"""`simulator` command line: run, check, report, validate, merge, personas.

Exit codes: 0 the gate passed; 1 the gate failed (the app misbehaved); 2 configuration or usage
error (nothing ran); 3 too many errors to judge (app down, LLM failing), planned conversations
missing, a fatal error stopped the run, or the run itself failed (full disk, an internal error);
130 interrupted by Ctrl-C, 143 by SIGTERM (finished conversations and the summary kept).

Everything the command prints (progress, the summary, errors, log lines, a traceback) has the
run's known credentials scrubbed (`simulator.text.known_secrets`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, cast

from .aio.event_loops import run_sync
from .cli_output import FORMATS, Console, Progress
from .errors import ConfigError, UnreadableRecord
from .manifest import DEFAULT_MANIFEST, load_manifest
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
from .run.exit_codes import (  # noqa: F401 - the exit codes are part of the CLI's interface
    EXIT_CONFIG,
    EXIT_GATE_FAILED,
    EXIT_OK,
    EXIT_RUN_ERRORS,
    EXIT_SIGINT,
    EXIT_SIGTERM,
    exit_code,
)
from .run.pipeline import RunSettings, plan_for, run_manifest
from .run.plan import MAX_REPEAT, Plan, parse_shard
from .run.recheck import recheck
from .run.replay import MATCHES, ReplayBook, ReplyMatcher
from .run.runner import RunOutcome
from .text import known_secrets


def _positive(name: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= 1, refused before anything runs or prints."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be 1 or more, got {value}")
        return value

    return parse


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
    jobs = sum(s.repeat for s in manifest.simulations)
    llm = sum(1 for s in manifest.simulations if s.needs_llm)
    if console.json:
        document = {
            "manifest": str(manifest.path),
            "valid": True,
            "simulations": [s.name for s in manifest.simulations],
            "conversations": jobs,
            "played_by_llm": llm,
            "warnings": manifest.warnings,
        }
        console.out.write(json.dumps(document, ensure_ascii=False, indent=2) + "\n")
        return EXIT_OK
    unset = f"; {len(manifest.warnings)} warning(s)" if manifest.warnings else ""
    console.result(
        f"{manifest.path}: valid; {len(manifest.simulations)} simulation(s), {jobs} conversation(s) per run, "
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


def _add_format(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default): the summary on stdout; json: one JSON document on stdout, for machines",
    )


def _add_run(run: argparse.ArgumentParser) -> None:
    run.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST, help=f"default {DEFAULT_MANIFEST}")
    run.add_argument("--app-url", help="override target.url (e.g. the preview deployment of this PR)")
    run.add_argument("--out", default="results", help="results folder (default: results)")
    run.add_argument(
        "--concurrency", type=_positive("--concurrency"), default=8, help="conversations at a time (default 8)"
    )
    run.add_argument("--shard", help="run shard i of n, e.g. 2/4, for a job matrix")
    run.add_argument("--filter", action="append", help="only simulations whose name contains this (or glob)")
    run.add_argument("--tag", action="append", help="only simulations with this tag")
    run.add_argument("--repeat", type=int, help=f"play each simulation this many times (1 to {MAX_REPEAT})")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out: keep its finished conversations, play only the missing ones",
    )
    run.add_argument(
        "--replay",
        metavar="DIR",
        help="replay the user messages of an earlier run's results folder while the app answers as it did; "
        "the live user model takes over at the first different reply",
    )
    run.add_argument(
        "--replay-match",
        choices=MATCHES,
        default="exact",
        help="when app replies count as the same: exact (default) or up to whitespace and case",
    )
    run.add_argument(
        "--replay-ignore",
        action="append",
        metavar="REGEX",
        help="parts of app replies to ignore when comparing (ids, dates); repeatable",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress and no summary table: only how it ended (and, with --baseline, what changed)",
    )
    run.add_argument("--baseline", help="a base-branch results folder to compare with (summary.json)")
    _add_format(run)
    run.set_defaults(handler=cmd_run)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulator",
        description="Simulated users talk to your chat app; every turn is recorded.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    _add_run(commands.add_parser("run", help="play every simulation of a manifest"))

    validate = commands.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST)
    validate.add_argument("--strict", action="store_true", help="unset environment variables are errors, not warnings")
    _add_format(validate)
    validate.set_defaults(handler=cmd_validate)

    check = commands.add_parser("check", help="re-evaluate finished results with the manifest's checks")
    check.add_argument("results", help="a results folder (conversations.jsonl)")
    check.add_argument("--manifest", help="default: the manifest named in the folder's summary.json")
    check.add_argument("--baseline", help="a base-branch results folder to compare with")
    check.add_argument(
        "--requery",
        action="store_true",
        help="outcome checks ask the app again instead of reading the recorded answers",
    )

    report = commands.add_parser("report", help="write report.html and report.md for a results folder")
    report.add_argument("results", help="a results folder (summary.json, conversations.jsonl)")
    report.add_argument("--baseline", help="a base-branch results folder to compare with")
    _add_format(report)
    report.set_defaults(handler=cmd_report)
    _add_format(check)
    check.set_defaults(handler=cmd_check)

    merge = commands.add_parser("merge", help="join the results folders of several shards")
    merge.add_argument("out", help="folder to write the merged results to")
    merge.add_argument("shards", nargs="+", help="the shards' results folders")
    merge.add_argument("--baseline", help="a base-branch results folder to compare with")
    _add_format(merge)
    merge.set_defaults(handler=cmd_merge)

    personas = commands.add_parser("personas", help="list predefined personas, or show one")
    personas.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    personas.add_argument("name", nargs="?")
    personas.set_defaults(handler=cmd_personas)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    known_secrets.scrub_package_logs()
    with known_secrets.scrubbed_output():
        try:
            return _dispatch(args)
        except Exception as exc:  # a bug: its traceback may quote a credential too, so it is printed scrubbed here
            traceback.print_exc()
            # never 1, which says the gate failed: a job gated on the exit code must not read a crash as a verdict
            sys.stderr.write(f"internal error: {type(exc).__name__}; nothing above is a verdict on the app\n")
            return EXIT_RUN_ERRORS


def run_and_exit() -> NoReturn:
    """The `simulator` command: `main()`, then exit without tearing the interpreter down.

    Tearing down frees every module one by one: with the openai SDK loaded that takes 0.17-0.19 s,
    more than the rest of a run's tail. What the interpreter does before that still happens: threads
    that are not daemons are waited for, exit handlers (`atexit`, a callback's included) run and the
    output is flushed; only the freeing is skipped. Under a profiler, tracer or coverage,
    which write their data after the program returns, the command exits the usual way.
    """
    code = main()
    if _watched():
        sys.exit(code)
    for thread in threading.enumerate():  # as the interpreter does first: a callback's own threads end
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)


def _watched() -> bool:
    """Whether something runs the command to look at it afterwards (cProfile, coverage, a debugger)."""
    return sys.getprofile() is not None or sys.gettrace() is not None or "coverage" in sys.modules


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except UnreadableRecord as exc:  # a results folder's or a base run's file: the data, not the setup
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_RUN_ERRORS
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_CONFIG
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # the disk or the folder failed outside a run (reports, merges)
        sys.stderr.write(f"error: {exc.filename or ''}: {exc.strerror or exc}\n")
        return EXIT_RUN_ERRORS
    except KeyboardInterrupt:  # Ctrl-C outside a run (loading, reporting): nothing finished is lost
        sys.stderr.write("interrupted\n")
        return EXIT_SIGINT


if __name__ == "__main__":
    run_and_exit()
