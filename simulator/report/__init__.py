"""Renderers of a run: Markdown (PR comment, job summary, report file)."""

from .markdown import COMMENT_LIMIT, SUMMARY_LIMIT, Links, code_block, inline, render_markdown

__all__ = ["COMMENT_LIMIT", "SUMMARY_LIMIT", "Links", "code_block", "inline", "render_markdown"]
