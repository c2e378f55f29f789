"""Renderers of a run: Markdown (PR comment, job summary, CLI, report.md) and report.html.

Takes: a finished run (summary.json and conversations.jsonl, read through `results`) and, for
"What changed", the base run's folder (`baseline`, `change_evidence`).
Gives: `render_markdown`, `write_reports` (report.md and report.html into the results folder)
and `baseline_changes`.
Used by: the CLI (`simulator report`, the end of `run`) and the action (comment and job summary).
"""

from ..results.reading import HTML_FILE, MARKDOWN_FILE, REPORT_FILES
from .baseline import compare, comparison_or_why, load_baseline
from .failures_markdown import code_block
from .files import RENDERERS, baseline_changes, write_reports
from .html import render_html
from .markdown import COMMENT_LIMIT, SUMMARY_LIMIT, Links, inline, render_markdown

__all__ = [
    "COMMENT_LIMIT",
    "HTML_FILE",
    "MARKDOWN_FILE",
    "RENDERERS",
    "REPORT_FILES",
    "SUMMARY_LIMIT",
    "Links",
    "baseline_changes",
    "code_block",
    "compare",
    "comparison_or_why",
    "inline",
    "load_baseline",
    "render_html",
    "render_markdown",
    "write_reports",
]
