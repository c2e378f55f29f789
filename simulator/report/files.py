"""The report files of a results folder: report.md and report.html, written side by side."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .baseline import compare, load_baseline
from .html import write_html
from .markdown import SUMMARY_LIMIT, Links, render_markdown

MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"


def baseline_changes(summary: dict[str, Any], baseline_dir: str | Path | None) -> dict[str, dict[str, Any]] | None:
    """Per-simulation changes since the baseline run, or None without one."""
    return None if baseline_dir is None else compare(summary, load_baseline(baseline_dir))


def write_reports(
    out: str | Path,
    summary: dict[str, Any],
    results: Iterable[dict[str, Any]] | Callable[[], Iterable[dict[str, Any]]],
    changes: dict[str, dict[str, Any]] | None = None,
    links: Links | None = None,
    baseline_label: str | None = None,
) -> tuple[Path, Path]:
    """Write report.md and report.html into `out`; returns their paths.

    `results` may be a function giving a fresh pass over the conversations (e.g. streaming them
    from conversations.jsonl), so a large run is rendered without holding it in memory.
    """
    out = Path(out)
    passes = results if callable(results) else (lambda: results)
    markdown = out / MARKDOWN_FILE
    text = render_markdown(summary, passes(), links, limit=SUMMARY_LIMIT, changes=changes)
    markdown.write_text(text, "utf-8", errors="replace")
    os.chmod(markdown, 0o644)
    html = write_html(out / HTML_FILE, summary, passes, changes, baseline_label)
    return markdown, html
