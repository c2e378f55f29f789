"""Where the command line's words go: the result on stdout, everything else on stderr.

`simulator run m.yml > out.txt` keeps the result (the summary table, where the files are, the
plan and gate lines), while progress, warnings and diagnostics stay on the terminal. With
`--format json` stdout holds one JSON document for machines and nothing else.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from .aio.limiter import LimitEvent
from .checks.gate import percent
from .errors import ConfigError
from .records import ConversationResult, MetaData, Summary
from .report import HTML_FILE, MARKDOWN_FILE, baseline_changes, render_markdown, write_reports
from .report.changes_markdown import changes_section
from .report.escape import plain_text
from .report.markdown import plan_line, replay_line
from .results.folder import PLAN_FILE, RESULTS_FILE, SUMMARY_FILE, iter_unique_results, write_summary
from .results.streamed_json import json_pieces
from .run.plan import Job
from .text.clip import clip
from .text.known_secrets import scrub
from .text.unicode_safety import visible_controls

FORMATS = ("text", "json")
#: an endpoint that keeps rate-limiting gets at most one line per this many seconds
RATE_LINE_EVERY = 2.0


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
        self._rate_lines: dict[str, float] = {}

    def start(self, to_play: int, kept: int) -> None:
        """The runner knows what a resumed run still plays only once it has read the folder."""
        self.total = to_play
        if kept:
            self.stream.write(f"Resuming: kept {kept} finished conversation(s); {to_play} to play\n")

    def __call__(self, job: Job, result: ConversationResult) -> None:
        self.done += 1
        meta = result["meta_data"]
        self.errors += bool(meta.get("is_error"))
        if self.quiet:
            return
        why = self._why(meta)
        if self.tty:
            if why:  # above the bar, which the next redraw puts back
                bar = getattr(self.stream, "unscrubbed", self.stream)
                bar.write("\r\033[K")
                self.stream.write(f"{self._line(job, meta)}: {why}\n")
            self._bar()
            if self.done == self.total:
                getattr(self.stream, "unscrubbed", self.stream).write("\n")
        else:
            self.stream.write(f"[{self.done}/{self.total}] {self._line(job, meta)}{f': {why}' if why else ''}\n")
        self.stream.flush()

    def rate_limit(self, event: LimitEvent) -> None:
        """`rate-limited by user model: waiting 2.1 s; 4 requests at a time (was 8)`: where the run is
        watched, so a slow run says why; at most one line per endpoint every `RATE_LINE_EVERY` s."""
        if self.quiet or (event.why != "HTTP 429" and event.wait < 1 and event.concurrency >= event.previous):
            return  # a budget that refills within a second, or growth: not worth a line
        now = time.monotonic()
        if now - self._rate_lines.get(event.endpoint, -RATE_LINE_EVERY) < RATE_LINE_EVERY:
            return
        self._rate_lines[event.endpoint] = now
        at_a_time = f"{event.concurrency} request{'' if event.concurrency == 1 else 's'} at a time"
        if event.concurrency != event.previous:
            at_a_time += f" (was {event.previous})"
        if event.why == "timeout":
            line = f"{event.endpoint} timed out: {at_a_time}"
        elif event.why == "HTTP 429":
            line = f"rate-limited by {event.endpoint}: waiting {event.wait:.1f} s; {at_a_time}"
        else:
            line = f"{event.endpoint} has used up its rate limit: waiting {event.wait:.1f} s; {at_a_time}"
        if self.tty:  # above the bar, drawn again under it
            getattr(self.stream, "unscrubbed", self.stream).write("\r\033[K")
            self.stream.write(line + "\n")
            self._bar()
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def _bar(self) -> None:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        elapsed = time.monotonic() - self.started
        # counts only, and its carriage return must reach the terminal: past the neutralising stream
        bar = getattr(self.stream, "unscrubbed", self.stream)
        bar.write(
            f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} "
            f"{self.errors} error(s) {elapsed:5.1f}s"
        )

    @staticmethod
    def _line(job: Job, meta: MetaData) -> str:
        seconds = meta.get("duration_ms", 0) / 1000
        turns = meta["turn_count"]
        return f"{job.key}: {meta['stop_reason']} after {turns} turn{'' if turns == 1 else 's'} in {seconds:.1f}s"

    @staticmethod
    def _why(meta: MetaData) -> str:
        """An errored conversation's cause (the URL, the status, what to change) where the run is
        watched: a bare `llm_error` sent people digging through report.md for it."""
        detail = meta.get("stop_detail") if meta.get("is_error") else None
        return clip(" ".join(str(detail).split()), 400) if detail else ""


@dataclass
class Console:
    """A command's two streams and how the result is shown (`text` or `json`, `quiet`)."""

    format: str = "text"
    quiet: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)

    @property
    def json(self) -> bool:
        return self.format == "json"

    def note(self, text: str) -> None:
        """Progress and diagnostics: stderr, whatever the format."""
        self.err.write(text + "\n")

    def warn(self, warnings: list[str]) -> None:
        for warning in warnings:
            self.err.write(f"warning: {warning}\n")

    def result(self, text: str) -> None:
        """A line of the result: stdout in text format; the JSON document replaces it."""
        if not self.json:
            self.out.write(text + "\n")

    def conclude(
        self,
        summary: Summary,
        folder: Path,
        exit_code: int,
        *,
        baseline: str | None = None,
        problems: tuple[str, ...] = (),
        gate: bool = True,
    ) -> None:
        """Write report.md and report.html next to the results, then say how it ended.

        `problems` (a stopped or interrupted run, lost results) go to stderr; with `gate=False`
        the gate line is left out because the problems say why the run has no verdict to trust.
        The reports stream the results file; a disk that refuses them is a warning, not a lost run.
        """
        changes, why_not = baseline_changes(summary, baseline)
        if why_not:
            self.note(f"warning: {why_not}")
        path = folder / RESULTS_FILE
        files: dict[str, str] = {"results": str(path), "summary": str(folder / SUMMARY_FILE)}
        try:
            written = write_reports(
                folder,
                summary,
                lambda: iter_unique_results(path) if path.is_file() else iter(()),
                changes,
                baseline_label=baseline if changes is not None else None,
                baseline_dir=baseline if changes is not None else None,
                baseline_note=why_not,
            )
            files.update(report_html=str(written[HTML_FILE]), report_md=str(written[MARKDOWN_FILE]))
            if "comparison" in summary:  # what changed since the base run, for other tools
                write_summary(folder, summary)
            where = f"report: {written[HTML_FILE]}"
        except OSError as exc:
            where = f"the reports could not be written ({exc.strerror or exc})"
            self.note(f"warning: {where}")
        if (folder / PLAN_FILE).is_file():
            files["plan"] = str(folder / PLAN_FILE)
        for problem in problems:
            self.note(problem)
        if self.json:
            self._document(summary, files, exit_code, changes, problems)
            return
        # the table as the comment has it, in plain text: a terminal shows no Markdown
        if not self.quiet:
            self.out.write("\n" + plain_text(render_markdown(summary, (), changes=changes, chart=False)) + "\n\n")
        elif changes is not None:  # --quiet drops the table, not the verdict on the change
            whole = (summary.get("comparison") or {}).get("run")
            self.out.write("\n" + plain_text(changes_section(scrub(changes), None, scrub(whole))) + "\n\n")
        self.result(f"Results: {path} · {where}")
        self.result(_plan_line(summary))
        replay = (summary.get("run") or {}).get("replay")
        if replay:
            self.result(
                f"Replay of {replay['from']}: {replay['identical']} of {replay['conversations']} conversation(s) "
                f"identical, {replay['diverged']} diverged; user model calls saved {replay['llm_calls_saved']}, "
                f"made {replay['llm_calls_made']}"
            )
            cost = replay_line(replay)
            if cost:
                self.result(f"Replay: {cost}")
        if gate:
            self.result(gate_lines(summary, _results(path)))
        self.out.flush()

    def _document(
        self,
        summary: Summary,
        files: dict[str, str],
        exit_code: int,
        changes: Mapping[str, dict[str, Any]] | None,
        problems: tuple[str, ...],
    ) -> None:
        document: dict[str, Any] = {
            "verdict": summary["gate"]["status"],
            "exit_code": exit_code,
            "plan": _plan_line(summary),
            "problems": list(problems),
            "files": files,
            "summary": summary,
        }
        if changes is not None:
            document["changes"] = changes
        for piece in json_pieces(document):  # a summary of many simulations reads them from disk, one at a time
            self.out.write(piece)
        self.out.write("\n")
        self.out.flush()


def _plan_line(summary: Summary) -> str:
    run = summary.get("run") or {}
    line = plan_line(run, summary.get("totals"))
    if run.get("missing_count"):
        shown = ", ".join(run.get("missing", [])[:10])
        line += f" ({shown}{', …' if run['missing_count'] > 10 else ''})"
    return line


#: under the gate's verdict, each failed simulation's most frequent failing checks, at most this
#: many, for at most this many simulations (required ones first), one line each: the check's name
#: and what it saw clipped to these many characters
CHECKS_SHOWN, SIMULATIONS_SHOWN = 3, 10
NAME_LIMIT, EVIDENCE_LIMIT = 80, 120


def _results(path: Path) -> Iterable[ConversationResult]:
    """The folder's conversations, streamed; none when they cannot be read (the gate still speaks)."""
    if not path.is_file():
        return
    try:
        yield from iter_unique_results(path)
    except (ConfigError, OSError):
        return


class _Failed(NamedTuple):
    """The failed simulations the gate lines name, with their verdicts, and how many failed in all."""

    checks: dict[str, list[tuple[str, int]]]
    verdicts: dict[str, Mapping[str, Any]]
    total: int


def _failing_checks(summary: Summary) -> _Failed:
    """Failed simulations, required ones first, each with its most frequent failing checks: one pass
    that holds only the few it can show (a run may have 100,000 simulations, all failed)."""
    required: list[tuple[str, Mapping[str, Any]]] = []
    others: list[tuple[str, Mapping[str, Any]]] = []
    count = 0
    for name, sim in (summary.get("simulations") or {}).items():
        verdict = sim["verdict"]
        if verdict["status"] != "fail":
            continue
        count += 1
        kept = required if verdict.get("required") else others
        if len(kept) < SIMULATIONS_SHOWN:
            kept.append((name, verdict))
    shown = (required + others)[:SIMULATIONS_SHOWN]
    checks = {
        name: sorted((verdict.get("failed_checks") or {}).items(), key=lambda item: -item[1])[:CHECKS_SHOWN]
        for name, verdict in shown
    }
    return _Failed(checks, dict(shown), count)


def _first_failures(
    wanted: dict[str, list[tuple[str, int]]], results: Iterable[ConversationResult]
) -> dict[tuple[str, str], dict[str, Any]]:
    """For each (simulation, check) wanted, the check as it failed in the lowest-numbered conversation."""
    found: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
    names = {simulation: {check for check, _ in checks} for simulation, checks in wanted.items()}
    for result in results:
        meta = result["meta_data"]
        simulation, repeat = meta.get("simulation") or "", meta.get("repeat", 1)
        for check in (result.get("evaluation") or {}).get("checks", []):
            key = (simulation, check.get("name", ""))
            if check.get("status") != "fail" or key[1] not in names.get(simulation, ()):
                continue
            if key not in found or repeat < found[key][0]:
                found[key] = (repeat, dict(check))
    return {key: check for key, (_, check) in found.items()}


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())


def _middle(text: str, limit: int) -> str:
    """`text` in at most `limit` characters, cut in the middle: a check's message ends with what
    was wrong ("…: status is "open", expected "refunded"") after where it looked (a long URL)."""
    if len(text) <= limit:
        return text
    head = (limit - 1) * 2 // 5
    return text[:head] + "…" + text[len(text) - (limit - 1 - head) :]


def _evidence_line(simulation: str, verdict: Any, check: str, count: int, failure: dict[str, Any] | None) -> str:
    """`refund: 0/3 passed — contains 'label' in any reply failed at turn 3: "Sorry, we can't …"`:
    the reply the check saw, quoted, or else what the check said."""
    judged = verdict["passes"] + verdict["failures"]
    line = f"{simulation}: {verdict['passes']}/{verdict['runs']} passed — {clip(_one_line(check), NAME_LIMIT)} failed"
    if judged > 1:
        line += f" in {count} of {judged}"
    if failure is not None:
        evidence = failure.get("evidence") or {}
        turn = evidence.get("turn")
        if isinstance(turn, int) and not isinstance(turn, bool):
            line += f" at turn {turn}"
        text, message = evidence.get("text"), _one_line(failure.get("message") or "")
        detail = f'"{clip(_one_line(text), EVIDENCE_LIMIT)}"' if text else _middle(message, EVIDENCE_LIMIT)
        line += f": {detail}" if detail else ""
    return "  - " + visible_controls(line)


def gate_lines(summary: Summary, results: Iterable[ConversationResult] = ()) -> str:
    """The gate's verdict and its reasons, the last words of every command that judges a run; under
    them, given the run's `results`, each failed simulation's failing checks and what they saw."""
    gate = summary["gate"]
    threshold = (gate.get("config") or {}).get("min_pass_rate")
    rate = "n/a" if gate["pass_rate"] is None else percent(gate["pass_rate"], threshold)
    lines = [
        f"Gate: {gate['status'].upper()}: {gate['passes']} passed, {gate['failures']} failed, "
        f"{gate['errors']} errors (pass rate {rate})"
    ]
    lines += [f"  - {reason}" for reason in gate.get("reasons") or []]
    failed = _failing_checks(summary)
    failures = _first_failures(failed.checks, results) if failed.checks else {}
    for simulation, checks in failed.checks.items():
        verdict = failed.verdicts[simulation]
        lines += [
            _evidence_line(simulation, verdict, check, count, failures.get((simulation, check)))
            for check, count in checks
        ]
    if failed.total > len(failed.checks):
        lines.append(f"  - … {failed.total - len(failed.checks)} more failed simulation(s): see the report")
    return "\n".join(lines)
