"""`simulator` command line: run, check, report, validate, merge, personas.

Exit codes: 0 the gate passed; 1 the gate failed (the app misbehaved); 2 configuration or usage
error (nothing ran); 3 too many errors to judge (app down, LLM failing) or a fatal error stopped
the run; 130 interrupted by Ctrl-C, 143 by SIGTERM (finished conversations and the summary kept).

Everything the command prints (progress, the summary, errors, log lines, a traceback) has the
run's known credentials scrubbed (`simulator.known_secrets`).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

from . import known_secrets
from .errors import ConfigError
from .manifest import DEFAULT_MANIFEST, load_manifest
from .persona import Persona, predefined_personas
from .plan import Job, parse_shard, plan_jobs
from .report import baseline_changes, render_markdown, write_reports
from .results_folder import RESULTS_FILE, SUMMARY_FILE, merge_results, read_results
from .runner import recheck, run_jobs, run_sync, run_with_signals

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_CONFIG = 2
EXIT_RUN_ERRORS = 3
EXIT_SIGINT = 130
EXIT_SIGTERM = 143


class Progress:
    """A bar on a terminal, one plain line per conversation elsewhere (CI logs)."""

    def __init__(self, total: int, stream: TextIO, quiet: bool = False) -> None:
        self.total = total
        self.stream = stream
        self.quiet = quiet
        self.done = 0
        self.errors = 0
        self.tty = stream.isatty()
        self.started = time.monotonic()

    def __call__(self, job: Job, result: dict[str, Any]) -> None:
        self.done += 1
        meta = result["meta_data"]
        self.errors += bool(meta.get("is_error"))
        if self.quiet:
            return
        if self.tty:
            width = 30
            filled = int(width * self.done / max(self.total, 1))
            elapsed = time.monotonic() - self.started
            self.stream.write(
                f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
                f"{self.errors} error(s) {elapsed:5.1f}s"
            )
            if self.done == self.total:
                self.stream.write("\n")
        else:
            seconds = meta.get("duration_ms", 0) / 1000
            self.stream.write(
                f"[{self.done}/{self.total}] {job.key}: {meta['stop_reason']} after "
                f"{meta['turn_count']} turns in {seconds:.1f}s\n"
            )
        self.stream.flush()


def _finish(
    summary: dict[str, Any], out_dir: Path, stream: TextIO, baseline: str | None = None
) -> dict[str, dict[str, Any]] | None:
    """Write report.md and report.html next to the results and print the shared Markdown summary."""
    changes = baseline_changes(summary, baseline)
    results = read_results(out_dir / RESULTS_FILE) if (out_dir / RESULTS_FILE).is_file() else []
    markdown, html = write_reports(out_dir, summary, results, changes, baseline_label=baseline)
    stream.write("\n" + render_markdown(summary, (), changes=changes) + "\n\n")
    stream.write(f"Results: {out_dir / RESULTS_FILE} · report: {html}\n")
    return changes


def cmd_run(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest, app_url=args.app_url)
    shard = parse_shard(args.shard) if args.shard else None
    jobs = plan_jobs(manifest, filters=args.filter, tags=args.tag, repeat=args.repeat, shard=shard)
    err = sys.stderr
    where = f" (shard {shard[0]}/{shard[1]})" if shard else ""
    err.write(f"Running {len(jobs)} conversation(s) from {manifest.path}{where}, {args.concurrency} at a time\n")
    progress = Progress(len(jobs), err, quiet=args.quiet)
    run_info = {"shard": f"{shard[0]}/{shard[1]}" if shard else None}
    outcome, received = run_with_signals(
        lambda: run_jobs(manifest, jobs, args.out, concurrency=args.concurrency, on_result=progress, run_info=run_info)
    )
    if progress.tty and not args.quiet and progress.done < progress.total:
        err.write("\n")
    _finish(outcome.summary, Path(args.out), err, args.baseline)
    if outcome.interrupted:
        sig = received or signal.SIGINT
        err.write(
            f"Interrupted by {signal.Signals(sig).name}: kept {len(outcome.results)} conversation(s); "
            f"{len(outcome.not_run)} did not run.\n"
        )
        return EXIT_SIGTERM if sig == signal.SIGTERM else EXIT_SIGINT
    if outcome.fatal_error:
        err.write(f"Stopped early: {outcome.fatal_error}\n{len(outcome.not_run)} conversation(s) did not run.\n")
        return EXIT_RUN_ERRORS
    return _gate_exit(outcome.summary, err)


def _gate_exit(summary: dict[str, Any], stream: TextIO) -> int:
    gate = summary["gate"]
    rate = "n/a" if gate["pass_rate"] is None else f"{gate['pass_rate']:.1%}"
    stream.write(
        f"Gate: {gate['status'].upper()}: {gate['passes']} passed, {gate['failures']} failed, "
        f"{gate['errors']} errors (pass rate {rate})\n"
    )
    return {"pass": EXIT_OK, "fail": EXIT_GATE_FAILED}.get(gate["status"], EXIT_RUN_ERRORS)


def cmd_check(args: argparse.Namespace) -> int:
    folder = Path(args.results)
    manifest_path = args.manifest
    if manifest_path is None:
        summary_file = folder / SUMMARY_FILE
        if not summary_file.is_file():
            raise ConfigError(f"{folder}: no {SUMMARY_FILE} naming the manifest; pass --manifest")
        manifest_path = json.loads(summary_file.read_text(encoding="utf-8")).get("run", {}).get("manifest")
        if not manifest_path:
            raise ConfigError(f"{summary_file}: the run does not name its manifest; pass --manifest")
    manifest = load_manifest(manifest_path)
    summary = run_sync(lambda: recheck(folder, manifest))
    sys.stderr.write(f"Re-checked {summary['totals']['conversations']} conversation(s) in {folder}/\n")
    _finish(summary, folder, sys.stderr, args.baseline)
    return _gate_exit(summary, sys.stderr)


def cmd_report(args: argparse.Namespace) -> int:
    folder = Path(args.results)
    summary_file = folder / SUMMARY_FILE
    if not summary_file.is_file():
        raise ConfigError(f"{folder}: no {SUMMARY_FILE}; give a results folder written by `simulator run`")
    try:
        summary = json.loads(summary_file.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ConfigError(f"{summary_file}: not JSON ({exc})") from None
    _finish(summary, folder, sys.stderr, args.baseline)
    return EXIT_OK


def cmd_validate(args: argparse.Namespace) -> int:
    manifest = load_manifest(args.manifest)
    jobs = sum(s.repeat for s in manifest.simulations)
    llm = sum(1 for s in manifest.simulations if s.needs_llm)
    print(
        f"{manifest.path}: valid; {len(manifest.simulations)} simulation(s), {jobs} conversation(s) per run, "
        f"{llm} played by an LLM"
    )
    return EXIT_OK


def cmd_merge(args: argparse.Namespace) -> int:
    summary = merge_results(args.out, args.shards)
    totals = summary["totals"]
    print(f"merged {len(args.shards)} shard(s): {totals['conversations']} conversations into {args.out}/")
    _finish(summary, Path(args.out), sys.stderr, args.baseline)
    if summary["run"]["interrupted"] or summary["run"]["fatal_error"]:
        return EXIT_RUN_ERRORS
    return _gate_exit(summary, sys.stderr)


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulator",
        description="Simulated users talk to your chat app; every turn is recorded.",
        epilog=__doc__.split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="play every simulation of a manifest")
    run.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST, help=f"default {DEFAULT_MANIFEST}")
    run.add_argument("--app-url", help="override target.url (e.g. the preview deployment of this PR)")
    run.add_argument("--out", default="results", help="results folder (default: results)")
    run.add_argument("--concurrency", type=int, default=8, help="conversations at a time (default 8)")
    run.add_argument("--shard", help="run shard i of n, e.g. 2/4, for a job matrix")
    run.add_argument("--filter", action="append", help="only simulations whose name contains this (or glob)")
    run.add_argument("--tag", action="append", help="only simulations with this tag")
    run.add_argument("--repeat", type=int, help="play each simulation this many times")
    run.add_argument("--quiet", action="store_true", help="no progress output")
    run.add_argument("--baseline", help="a base-branch results folder to compare with (summary.json)")
    run.set_defaults(handler=cmd_run)

    validate = commands.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST)
    validate.set_defaults(handler=cmd_validate)

    check = commands.add_parser("check", help="re-evaluate finished results with the manifest's checks")
    check.add_argument("results", help="a results folder (conversations.jsonl)")
    check.add_argument("--manifest", help="default: the manifest named in the folder's summary.json")
    check.add_argument("--baseline", help="a base-branch results folder to compare with")

    report = commands.add_parser("report", help="write report.html and report.md for a results folder")
    report.add_argument("results", help="a results folder (summary.json, conversations.jsonl)")
    report.add_argument("--baseline", help="a base-branch results folder to compare with")
    report.set_defaults(handler=cmd_report)
    check.set_defaults(handler=cmd_check)

    merge = commands.add_parser("merge", help="join the results folders of several shards")
    merge.add_argument("out", help="folder to write the merged results to")
    merge.add_argument("shards", nargs="+", help="the shards' results folders")
    merge.add_argument("--baseline", help="a base-branch results folder to compare with")
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
        except Exception:  # a bug: its traceback may quote a credential too, so it is printed scrubbed here
            traceback.print_exc()
            return 1  # what Python exits with after an uncaught exception


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_CONFIG
    except KeyboardInterrupt:  # Ctrl-C outside a run (loading, reporting): nothing finished is lost
        sys.stderr.write("interrupted\n")
        return EXIT_SIGINT
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
