"""Renderers of a run: Markdown (PR comment, job summary, CLI, report.md) and report.html."""

from .baseline import compare, comparison_or_why, load_baseline
from .files import HTML_FILE, MARKDOWN_FILE, RENDERERS, REPORT_FILES, baseline_changes, write_reports
from .html import render_html
from .markdown import COMMENT_LIMIT, SUMMARY_LIMIT, Links, code_block, inline, render_markdown

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
