"""The comment's one picture: pass rate per simulation as a Mermaid bar chart.

GitHub draws a `mermaid` code block; where Mermaid is not drawn it reads as a short code block of
names and numbers. The table stays the source of truth, so the chart is left out where it would
not help (one simulation, every one passing as before) or would crowd the comment (more than
`MAX_SIMULATIONS`).
"""

from __future__ import annotations

import re
from typing import Any

from ..records import Summary

MAX_SIMULATIONS = 20
LABEL_LIMIT = 24
#: bars in green, the base run's line in grey (Mermaid's default bars are pale)
PALETTE = '%%{init: {"themeVariables": {"xyChart": {"plotColorPalette": "#2da44e, #57606a"}}}}%%'
#: what a label inside Mermaid's double quotes may hold; anything else becomes "_"
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._/+()-]")


def _label(name: str) -> str:
    text = _UNSAFE.sub("_", " ".join(name.split()))
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"


def _percent(rate: Any) -> int:
    """A pass rate as a whole percentage; no verdict (every conversation errored) draws as 0."""
    return round(rate * 100) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else 0


def _base_rates(names: list[str], changes: dict[str, dict[str, Any]] | None) -> list[Any] | None:
    """The base run's pass rates, when every simulation was in the base run (a line cannot skip
    a point)."""
    if not changes:
        return None
    sides = [(changes.get(name) or {}).get("base") for name in names]
    return [side.get("pass_rate") for side in sides if side] if all(sides) else None


def pass_rate_chart(summary: Summary, changes: dict[str, dict[str, Any]] | None = None) -> str | None:
    """A Mermaid `xychart-beta` of each simulation's pass rate (bars), with the base run's as a
    line when every simulation has one; None where a picture would not help."""
    names = list(summary["simulations"])
    if not 2 <= len(names) <= MAX_SIMULATIONS:
        return None
    head = [summary["simulations"][name]["verdict"]["pass_rate"] for name in names]
    base = _base_rates(names, changes)
    if all(rate == 1 for rate in head) and (base is None or all(rate == 1 for rate in base)):
        return None
    lines = [
        "```mermaid",
        PALETTE,
        "xychart-beta horizontal",  # one name per line: vertical labels run into each other
        '  title "Pass rate per simulation (%)"',
        "  x-axis [" + ", ".join(f'"{_label(name)}"' for name in names) + "]",
        '  y-axis "pass rate %" 0 --> 100',
        "  bar [" + ", ".join(str(_percent(rate)) for rate in head) + "]",
    ]
    if base is not None:
        lines.append("  line [" + ", ".join(str(_percent(rate)) for rate in base) + "]")
    lines.append("```")
    caption = "_Pass rate per simulation: bars this run" + ("; line the base run" if base is not None else "")
    caption += "; a simulation with no verdict draws as 0._"
    return "\n".join(lines) + "\n\n" + caption
