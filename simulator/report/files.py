"""The report files of a results folder, written side by side from one registry of renderers.

A new report file is one renderer function and one `RENDERERS` line; the results folder's list
of run files (what moves aside when a new run starts) is derived from it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..records import ConversationResult, Summary
from ..results.reading import HTML_FILE, MARKDOWN_FILE
from .baseline import Divergence, baseline_results, comparison_or_why
from .change_evidence import add_evidence, comparison_record
from .html import write_html
from .markdown import SUMMARY_LIMIT, Links, render_markdown

#: a fresh pass over the run's conversations each call (streamed from conversations.jsonl)
Results = Callable[[], Iterable[ConversationResult]]


@dataclass(frozen=True)
class ReportContext:
    """What every renderer gets."""

    summary: Summary
    results: Results
    changes: MutableMapping[str, dict[str, Any]] | None = None
    links: Links | None = None
    baseline_label: str | None = None
    #: the base run's results folder, whose conversations are shown beside this run's
    baseline_dir: Path | None = None
    #: one line on what was compared with, or why nothing was
    baseline_note: str | None = None


def _markdown(path: Path, report: ReportContext) -> None:
    text = render_markdown(
        report.summary,
        report.results(),
        report.links,
        limit=SUMMARY_LIMIT,
        changes=report.changes,
        baseline_note=report.baseline_note,
    )
    path.write_text(text, "utf-8", errors="replace")
    os.chmod(path, 0o644)


def _html(path: Path, report: ReportContext) -> None:
    base = baseline_results(report.baseline_dir) if report.changes is not None else iter(())
    write_html(path, report.summary, report.results, report.changes, report.baseline_label, base)


#: report file name -> the function that writes it
RENDERERS: dict[str, Callable[[Path, ReportContext], None]] = {
    MARKDOWN_FILE: _markdown,
    HTML_FILE: _html,
}


def _until_unreadable(results: Iterable[ConversationResult], problems: list[str]) -> Iterator[ConversationResult]:
    """`results` up to the first that cannot be read, which is put into `problems` instead of raised."""
    try:
        yield from results
    except Exception as exc:  # a base run's file from outside: whatever breaks, the report stands
        problems.append(f"{type(exc).__name__}: {exc}")


def baseline_changes(
    summary: Summary, baseline_dir: str | Path | None
) -> tuple[MutableMapping[str, dict[str, Any]] | None, str | None]:
    """Per-simulation changes since the baseline run (None without one), and why there are none
    when a baseline was given but cannot be compared with."""
    return comparison_or_why(summary, baseline_dir)


def write_reports(
    out: str | Path,
    summary: Summary,
    results: Iterable[ConversationResult] | Results,
    changes: MutableMapping[str, dict[str, Any]] | None = None,
    links: Links | None = None,
    baseline_label: str | None = None,
    baseline_dir: str | Path | None = None,
    baseline_note: str | None = None,
) -> dict[str, Path]:
    """Write every report file into `out`; returns their paths by file name.

    `results` may be a function giving a fresh pass over the conversations (e.g. streaming them
    from conversations.jsonl), so a large run is rendered without holding it in memory; so are
    the base run's, from `baseline_dir`. A run replayed from the base run gets, in `changes`,
    where each simulation's conversations diverged (`baseline.Divergence`); every compared run
    gets what each move rests on (`change_evidence.add_evidence`), also kept as `summary["comparison"]`
    for the caller to write into summary.json.
    """
    out = Path(out)
    passes: Results = results if callable(results) else (lambda: results)
    base_dir = Path(baseline_dir) if baseline_dir is not None else None
    if changes is not None:
        # what each move rests on (caused, counts, noise), kept in the summary for the renderers and tools;
        # in the same pass, for a replayed run, where each simulation left the base run's conversations
        problems: list[str] = []
        divergence = Divergence()
        base = _until_unreadable(baseline_results(base_dir), problems)
        run = add_evidence(changes, divergence.watch(passes()), base)
        divergence.note(changes)
        summary["comparison"] = comparison_record(run, changes)
        if problems:  # a damaged base file: the counts still compare, the pairs stop where it broke
            summary["comparison"]["base_problem"] = problems[0]
    report = ReportContext(summary, passes, changes, links, baseline_label, base_dir, baseline_note)
    written = {}
    for name, render in RENDERERS.items():
        render(out / name, report)
        written[name] = out / name
    return written
