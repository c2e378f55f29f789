"""report.html: one self-contained file (styles, script and data inline; no network).

The data is embedded as JSON and the page builds itself with `textContent` only, so app and LLM
text is always shown as text, with control characters and bidi overrides as visible escapes (as
in the Markdown reports: a U+202E cannot reverse the words after it). Turn requests and raw
replies are left out: they are in the JSONL, and leaving them out keeps a 1,000-conversation
report small and quick to open. Known credentials are scrubbed from the data before it is embedded.
"""

from __future__ import annotations

import heapq
import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import ConversationResult, Summary
from ..results.reading import result_key
from ..text.known_secrets import scrub, scrub_text
from ..text.unicode_safety import visible_controls_in
from .baseline import NOT_RUN, REMOVED
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
#: the overview's latency chart draws this many simulations, the slowest (`SHOWN` in charts.js)
CHART_ROWS = 12


#: report.html lists at most this many simulations (the charts' rows, then those that did not pass);
#: every simulation is in summary.json
MAX_SIMULATION_ROWS = 20_000


def _number(value: Any) -> float:
    """A figure as the page's script sorts it: anything that is not a number counts as 0."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else 0


def _field(sim: Any, key: str) -> Mapping[str, Any]:
    value = sim.get(key) if isinstance(sim, Mapping) else None
    return value if isinstance(value, Mapping) else {}


def _passed(sim: Any) -> bool:
    return _field(sim, "verdict").get("status") == "pass"


def _latency_rank(sim: Any) -> tuple[float, ...]:
    """The latency chart's order: the highest app p95 first."""
    return (_number(_field(sim, "latency_ms").get("app_p95")),)


def _fewest_passes_rank(sim: Any) -> tuple[float, ...]:
    """The pass-rate chart's order: the lowest share of passed runs first, then the most errors."""
    verdict = _field(sim, "verdict")
    passes, runs = _number(verdict.get("passes")), _number(verdict.get("runs"))
    return (-(passes / runs) if runs else 0, _number(verdict.get("errors")))


class _Top:
    """The `count` simulations an overview chart draws, ranked as it ranks them (`rank`: higher comes
    first; ties in summary order), noted as the summary's simulations stream past: a chart's rows
    must be on the page."""

    def __init__(self, rank: Callable[[Any], tuple[float, ...]], count: int = CHART_ROWS) -> None:
        self._rank = rank
        self._count = count
        self._heap: list[tuple[Any, ...]] = []

    def note(self, index: int, name: str, sim: Any) -> None:
        entry = (*self._rank(sim), -index, name)
        if len(self._heap) < self._count:
            heapq.heappush(self._heap, entry)
        else:
            heapq.heappushpop(self._heap, entry)

    def watch(self, entries: Iterable[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
        for index, (name, sim) in enumerate(entries):
            self.note(index, name, sim)
            yield name, sim

    def names(self) -> frozenset[str]:
        return frozenset(entry[-1] for entry in self._heap)


def _slowest() -> _Top:
    """The latency chart's rows."""
    return _Top(_latency_rank)


class _Listing:
    """Which of the summary's simulations the page lists: every one when they fit under the cap;
    else the overview charts' rows, then those that did not pass, then passes, each kept in
    summary order. Two passes over the mapping (it may be on disk), nothing held but the counts."""

    def __init__(self) -> None:
        self.cap = MAX_SIMULATION_ROWS
        self.omitted = self.omitted_not_passed = 0
        #: the names listed, when not every one is (at most the cap)
        self.listed: set[str] | None = None

    def entries(self, simulations: Mapping[str, Any], slowest: _Top) -> Iterator[tuple[str, Any]]:
        if len(simulations) <= self.cap:
            return slowest.watch(simulations.items())
        return self._capped(simulations, slowest)

    def _survey(self, simulations: Mapping[str, Any], slowest: _Top) -> tuple[frozenset[str], int]:
        """The charts' rows, and how many of the others did not pass."""
        fewest, not_passed = _Top(_fewest_passes_rank), 0
        for index, (name, sim) in enumerate(slowest.watch(simulations.items())):
            fewest.note(index, name, sim)
            not_passed += not _passed(sim)
        charted = slowest.names() | fewest.names()
        return charted, not_passed - sum(not _passed(simulations[name]) for name in charted)

    def _capped(self, simulations: Mapping[str, Any], slowest: _Top) -> Iterator[tuple[str, Any]]:
        charted, not_passed = self._survey(simulations, slowest)
        room = max(self.cap - len(charted), 0)
        failing = min(not_passed, room)
        passing = room - failing
        self.omitted = len(simulations) - len(charted) - room
        self.omitted_not_passed = not_passed - failing
        self.listed = set()
        for name, sim in simulations.items():
            if name not in charted and _passed(sim):
                if not passing:
                    continue
                passing -= 1
            elif name not in charted:
                if not failing:
                    continue
                failing -= 1
            self.listed.add(name)
            yield name, sim

    def changes(self, baseline: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """The comparison the page needs, one entry at a time (a run of many reads it from disk): of
        the simulations it lists, and those only the base run has."""
        if self.listed is None:
            yield from baseline.items()
            return
        only_base = (REMOVED, NOT_RUN)
        for name, change in baseline.items():
            if name in self.listed or (isinstance(change, Mapping) and change.get("verdict") in only_base):
                yield name, change

    def json_fields(self) -> str:
        """What the page says of the simulations it leaves out (nothing when it lists every one)."""
        if not self.omitted:
            return ""
        return f',"simulations_omitted":{self.omitted},"simulations_omitted_not_passed":{self.omitted_not_passed}'


def _json_object(entries: Iterable[tuple[str, Any]]) -> Iterator[str]:
    """The object `_embed(scrub(...))` makes of these entries, one entry at a time."""
    opened = False
    for key, value in entries:
        yield ("," if opened else "{") + _embed(scrub(key)) + ":" + _embed(scrub(value))
        opened = True
    yield "}" if opened else "{}"


def _head(
    summary: Summary,
    baseline: Mapping[str, dict[str, Any]] | None,
    baseline_label: str | None,
    slowest: _Top,
    listing: _Listing | None = None,
) -> Iterator[str]:
    """`{"summary":…,"baseline":…,"baseline_label":…` as `_embed(scrub(...))` writes it, the summary's
    simulations one at a time: a run of many reads them from disk, and they would not fit in memory whole.
    Past `MAX_SIMULATION_ROWS`, only those `listing` picks."""
    listing = listing or _Listing()
    yield "{" + _embed(scrub("summary")) + ":{"
    for index, (key, value) in enumerate(summary.items()):
        yield ("," if index else "") + _embed(scrub(key)) + ":"
        if key == "simulations" and isinstance(value, Mapping):
            yield from _json_object(listing.entries(value, slowest))
        elif key == "comparison" and isinstance(value, Mapping):
            # each simulation's part is in "baseline" below, for those the page lists
            yield _embed(scrub({name: part for name, part in value.items() if name != "simulations"}))
        else:
            yield _embed(scrub(value))
    yield "}," + _embed(scrub("baseline")) + ":"
    yield from _json_object(listing.changes(baseline or {}))
    yield "," + _embed(scrub({"baseline_label": baseline_label}))[1:-1]


def _pieces(
    summary: Summary,
    results: Iterable[ConversationResult],
    baseline: Mapping[str, dict[str, Any]] | None,
    baseline_label: str | None,
    base_results: Iterable[ConversationResult] = (),
) -> Iterator[str]:
    """The page in pieces, one simulation or conversation at a time, so a large run never sits in memory whole.

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
    slowest, listing = _slowest(), _Listing()
    yield from _head(summary, baseline, baseline_label, slowest, listing)
    yield ',"conversations":['
    figures = Figures(first=slowest.names())  # the latency chart's rows have their figures however many there are
    for result in results:
        figures.add(result)
        if shown >= MAX_CONVERSATIONS:
            continue  # not shown, still in the charts
        yield ("," if shown else "") + _embed(scrub(_conversation(result)))
        keys.add(result_key(result))
        shown += 1
    yield f'],"omitted":{max(total - shown, 0)}{listing.json_fields()},"base_conversations":['
    # the base run's figures are drawn beside this run's: kept for the same simulations
    base_figures = Figures(None if figures.complete else 0, first=figures.kept)
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
    baseline: Mapping[str, dict[str, Any]] | None = None,
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
    baseline: Mapping[str, dict[str, Any]] | None = None,
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
