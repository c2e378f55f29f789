"""report.html: one self-contained file (styles, script and data inline; no network).

The data is embedded as JSON and the page builds itself with `textContent` only, so app and LLM
text is always shown as text, with control characters and bidi overrides as visible escapes (as
in the Markdown reports: a U+202E cannot reverse the words after it). Turn requests and raw
replies are left out: they are in the JSONL, and leaving them out keeps a 1,000-conversation
report small and quick to open. Known credentials are scrubbed from the data before it is embedded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import ConversationResult, Summary
from ..results.reading import result_key
from ..text.known_secrets import scrub, scrub_text
from ..text.unicode_safety import visible_controls_in
from .figures import Figures

MARKER = "/*__DATA__*/"
#: where the chart-drawing script (charts.js, beside the template) goes
CHARTS_MARKER = "/*__CHARTS__*/"


def _turns(result: ConversationResult) -> list[dict[str, Any]]:
    return [
        {
            "turn_number": t["turn_number"],
            "actor": t["actor"],
            "response": t["response"],
            "latency_ms": t.get("latency_ms"),
            "error": (error := t.get("error")) and {"reason": error.get("reason"), "message": error.get("message")},
        }
        for t in result["conversation"]
    ]


def _conversation(result: ConversationResult) -> dict[str, Any]:
    meta = result["meta_data"]
    evaluation = result.get("evaluation") or {}
    return {
        "conversation_id": result["conversation_id"],
        "simulation": meta.get("simulation") or meta["persona"]["name"],
        "repeat": meta.get("repeat", 1),
        "persona": meta.get("persona", {}),
        "task": meta.get("task", ""),
        "stop_reason": meta.get("stop_reason"),
        "stop_detail": meta.get("stop_detail"),
        "status": evaluation.get("status", "error"),
        "checks": evaluation.get("checks", []),
        "errors": evaluation.get("errors", []),
        "turns": _turns(result),
    }


def _base_conversation(result: ConversationResult) -> dict[str, Any]:
    """What the side-by-side view needs of the base run's conversation with the same key."""
    meta = result["meta_data"]
    return {
        "key": result_key(result),
        "status": (result.get("evaluation") or {}).get("status", "error"),
        "stop_reason": meta.get("stop_reason"),
        "turns": _turns(result),
    }


def _embed(data: Any) -> str:
    """JSON that cannot end the <script> element or open a comment inside it, nor carry a character
    that steers the reading order or hides text."""
    text = json.dumps(visible_controls_in(data), ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


#: report.html shows at most this many transcripts (failed and errored ones first); the rest are in the JSONL
MAX_CONVERSATIONS = 5000


def _pieces(
    summary: Summary,
    results: Iterable[ConversationResult],
    baseline: dict[str, dict[str, Any]] | None,
    baseline_label: str | None,
    base_results: Iterable[ConversationResult] = (),
) -> Iterator[str]:
    """The page in pieces, one conversation at a time, so a large run never sits in memory whole.

    Base conversations follow, only those paired (same simulation and repeat) with one shown;
    the charts' figures come last, gathered from every conversation of both runs on the way.
    """
    files = resources.files("simulator.report")
    template = files.joinpath("template.html").read_text("utf-8")
    template = template.replace(CHARTS_MARKER, files.joinpath("charts.js").read_text("utf-8"), 1)
    before, after = template.split(MARKER, 1)
    total = summary.get("totals", {}).get("conversations", 0)
    keys: set[str] = set()
    shown = 0
    yield before
    head = scrub({"summary": summary, "baseline": baseline or {}, "baseline_label": baseline_label})
    yield _embed(head)[:-1]
    yield ',"conversations":['
    figures, base_figures = Figures(), Figures()
    for result in results:
        figures.add(result)
        if shown >= MAX_CONVERSATIONS:
            continue  # not shown, still in the charts
        yield ("," if shown else "") + _embed(scrub(_conversation(result)))
        keys.add(result_key(result))
        shown += 1
    yield f'],"omitted":{max(total - shown, 0)},"base_conversations":['
    paired, problem = 0, None
    try:
        for result in base_results:
            base_figures.add(result)
            if result_key(result) in keys:
                yield ("," if paired else "") + _embed(scrub(_base_conversation(result)))
                paired += 1
    except ConfigError as exc:  # a damaged base file: this run's report still stands
        problem = scrub_text(str(exc))
    except Exception as exc:  # a base conversation shaped as no check foresaw: the same
        problem = scrub_text(f"{type(exc).__name__}: {exc}")
    yield f'],"base_problem":{_embed(problem)},"figures":{_embed(scrub(figures.build()))}'
    yield f',"base_figures":{_embed(scrub(base_figures.build()) if len(base_figures) else None)}}}'
    yield after


def _worst_first(results: Callable[[], Iterable[ConversationResult]], total: int) -> Iterator[ConversationResult]:
    """Every result in order when they all fit; else failed and errored ones first, then passes."""
    if total <= MAX_CONVERSATIONS:
        yield from results()
        return
    yield from (r for r in results() if (r.get("evaluation") or {}).get("status") != "pass")
    yield from (r for r in results() if (r.get("evaluation") or {}).get("status") == "pass")


def render_html(
    summary: Summary,
    results: Iterable[ConversationResult],
    baseline: dict[str, dict[str, Any]] | None = None,
    baseline_label: str | None = None,
    base_results: Iterable[ConversationResult] = (),
) -> str:
    """The report page for `summary` and its conversations (and changes since a baseline, with the
    base run's conversations to show beside this run's)."""
    return "".join(_pieces(summary, results, baseline, baseline_label, base_results))


def write_html(
    path: str | Path,
    summary: Summary,
    results: Callable[[], Iterable[ConversationResult]],
    baseline: dict[str, dict[str, Any]] | None = None,
    baseline_label: str | None = None,
    base_results: Iterable[ConversationResult] = (),
) -> Path:
    """Write the report page streaming; `results()` gives a fresh pass over the conversations."""
    path = Path(path)
    total = summary.get("totals", {}).get("conversations", 0)
    with path.open("w", encoding="utf-8", errors="replace") as handle:
        for piece in _pieces(summary, _worst_first(results, total), baseline, baseline_label, base_results):
            handle.write(piece)
    os.chmod(path, 0o644)
    return path
