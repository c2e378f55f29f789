"""The comment's one picture: pass rate per simulation as a Mermaid bar chart.

GitHub draws a `mermaid` code block; where Mermaid is not drawn it reads as a short code block of
names and numbers. The table stays the source of truth, so the chart is left out where it would
not help (one simulation, every one passing) or would crowd the comment (more than
`MAX_SIMULATIONS`), and with a base run: the "What changed" lines give each simulation's counts
base → head and whether the move is beyond chance, which bars cannot.

Colours mean what they say. Mermaid's xychart gives one colour per series (`plotColorPalette`, in
series order) and draws every bar of a category from the axis, each series over the ones before:
so each simulation gets a red bar across the whole axis, the share that failed, with a green bar
over it as long as its pass rate; a simulation with no verdict (every conversation errored) is
grey across. A 0% simulation is red, never a green sliver: a bar of 0 still reaches from the axis
to where 0 is drawn, past the half-width of the value axis' labels, so those labels are left out
(each simulation's label says its rate) and 0 is drawn on the axis.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..records import Summary
from ..text.known_secrets import scrub_text

MAX_SIMULATIONS = 20
LABEL_LIMIT = 24
#: GitHub's own colours for a passing and a failing check, and a neutral grey
PASSED, FAILED, NO_VERDICT = "#2da44e", "#cf222e", "#8c959f"
#: what a label inside Mermaid's double quotes may hold; anything else becomes "_"
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._/+()-]")


def _label(name: str) -> str:
    text = _UNSAFE.sub("_", " ".join(name.split()))
    return text if len(text) <= LABEL_LIMIT else text[: LABEL_LIMIT - 1] + "…"


def _percent(rate: Any) -> int | None:
    """A pass rate as a whole percentage; None for no verdict (every conversation errored)."""
    return round(rate * 100) if isinstance(rate, (int, float)) and not isinstance(rate, bool) else None


def _init(colours: list[str]) -> str:
    """The series' colours, in order, and no labels on the value axis (see the module)."""
    palette = ", ".join(colours)
    return (
        '%%{init: {"xyChart": {"yAxis": {"showLabel": false}}, '
        f'"themeVariables": {{"xyChart": {{"plotColorPalette": "{palette}"}}}}}}}}%%'
    )


def _category(name: str, rate: int | None) -> str:
    return f'"{_label(name)} ({"no verdict" if rate is None else f"{rate}%"})"'


def pass_rate_chart(summary: Summary, changes: Mapping[str, dict[str, Any]] | None = None) -> str | None:
    """A Mermaid `xychart-beta` of each simulation's pass rate, green over red (see the module);
    None where a picture would not help, and with a comparison (`changes`), which says more."""
    simulations = summary["simulations"]
    if changes is not None or not 2 <= len(simulations) <= MAX_SIMULATIONS:
        return None  # counted first: a summary of many reads its simulations from disk
    entries = [(scrub_text(name), sim["verdict"]["pass_rate"]) for name, sim in simulations.items()]
    names = [name for name, _ in entries]
    rates = [_percent(rate) for _, rate in entries]
    if all(rate == 100 for rate in rates):
        return None
    # series drawn in this order, each over the ones before: (title, colour, one value per simulation)
    series = [("failed", FAILED, [0 if rate is None else 100 for rate in rates])]
    if None in rates:
        series.append(("no verdict", NO_VERDICT, [100 if rate is None else 0 for rate in rates]))
    series.append(("passed", PASSED, [rate or 0 for rate in rates]))
    lines = [
        "```mermaid",
        _init([colour for _, colour, _ in series]),
        "xychart-beta horizontal",  # one name per line: vertical labels run into each other
        '  title "Pass rate per simulation (%)"',
        "  x-axis [" + ", ".join(_category(name, rate) for name, rate in zip(names, rates, strict=True)) + "]",
        '  y-axis "pass rate %" 0 --> 100',
        *(f'  bar "{title}" [' + ", ".join(map(str, values)) + "]" for title, _, values in series),
        "```",
    ]
    caption = "_Pass rate per simulation: green the share of conversations that passed, red the share that failed"
    caption += "; grey: no verdict, every conversation errored._" if None in rates else "._"
    return "\n".join(lines) + "\n\n" + caption
