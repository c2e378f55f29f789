"""What changed since a base-branch run: per simulation, pass/fail counts judged against noise,
latency and turns, and the base run's transcripts to show beside this run's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UnreadableRecord
from ..records import ConversationResult, Summary
from ..results.reading import RESULTS_FILE, iter_results
from ..results.simulation_store import RecordStore
from ..results.summary_reading import read_summary_file
from .significance import compare_counts

#: each simulation's comparison with the base run, by name (on disk for a run of many)
Changes = RecordStore[dict[str, Any]]

NEW = "new"
REMOVED = "removed"
#: a simulation only the base run has, which this run did not select or finish (filter, tag, shard,
#: a missing key, an interruption): it may still be in the manifest, so it is not "removed"
NOT_RUN = "not run"


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline's summary.json, given the results folder (e.g. a downloaded artifact) or the file.

    Read as a stream (`results.summary_reading`): a base run of 100,000 simulations costs the
    comparison no more memory than one of a thousand."""
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    try:
        return read_summary_file(file)
    except FileNotFoundError:
        raise ConfigError(f"{file}: baseline summary not found (give the base run's results folder)") from None
    except UnreadableRecord:
        raise
    except OSError as exc:
        raise UnreadableRecord(f"{file}: not a readable summary.json ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise UnreadableRecord(f"{file}: not a readable summary.json: {exc}") from None


def baseline_results(folder: str | Path | None) -> Iterator[ConversationResult]:
    """The base run's conversations, streamed; none when the folder has no results file."""
    if folder is None:
        return iter(())
    given = Path(folder)  # the base results folder, or its summary.json
    path = given / RESULTS_FILE if given.is_dir() else given.with_name(RESULTS_FILE)
    return iter_results(path) if given.exists() and path.is_file() else iter(())


def _change(value: float | None, before: float | None) -> float | None:
    return None if value is None or before is None else round(value - before, 4)


def _count(verdict: Mapping[str, Any], key: str) -> int:
    value = verdict.get(key)
    return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else 0


def _number(value: Any) -> float | None:
    """A figure read from a summary, which a base folder may hold in any shape."""
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _side(sim: Mapping[str, Any]) -> dict[str, Any]:
    """The figures of one run's simulation that a comparison shows."""
    verdict: Mapping[str, Any] = _mapping(sim.get("verdict"))
    latency: Mapping[str, Any] = _mapping(sim.get("latency_ms"))
    conversations, turns = _number(sim.get("conversations")), _number(sim.get("turns"))
    per_conversation = round(turns / conversations, 2) if turns is not None and conversations else None
    status = verdict.get("status")
    return {
        "status": status if isinstance(status, str) else None,
        "passes": _count(verdict, "passes"),
        "failures": _count(verdict, "failures"),
        "errors": _count(verdict, "errors"),
        "runs": _count(verdict, "runs"),
        "pass_rate": _number(verdict.get("pass_rate")),
        "p50_ms": _number(latency.get("app_p50")),
        "p95_ms": _number(latency.get("app_p95")),
        "turns_per_conversation": per_conversation,
    }


def _failed_checks(sim: Mapping[str, Any]) -> dict[str, Any]:
    checks = _mapping(sim.get("verdict")).get("failed_checks")
    return checks if isinstance(checks, dict) else {}


def _legacy_change(status: str | None, old_status: str | None) -> str:
    """The gate verdict's move: what a reader of the gate (not of the counts) sees flip."""
    if status == "fail" and old_status == "pass":
        return "new failure"
    if status == "pass" and old_status == "fail":
        return "fixed"
    if status == old_status:
        return "same"
    return f"{old_status} → {status}"


def compare_simulation(sim: Mapping[str, Any], before: Mapping[str, Any]) -> dict[str, Any]:
    """How one simulation differs from its base run: a noise-aware verdict and the figures behind it."""
    head, base = _side(sim), _side(before)
    difference = compare_counts(base["passes"], base["failures"], head["passes"], head["failures"])
    old_checks = {str(c) for c in _failed_checks(before)}
    now_checks = {str(c) for c in _failed_checks(sim)}
    return {
        "verdict": difference.verdict,
        "p_value": difference.p_value,
        "base": base,
        "head": head,
        "change": _legacy_change(head["status"], base["status"]),
        "status_before": base["status"],
        "pass_rate_before": base["pass_rate"],
        "pass_rate_delta": _change(head["pass_rate"], base["pass_rate"]),
        "new_failing_checks": sorted(now_checks - old_checks),
        "p50_delta_ms": _change(head["p50_ms"], base["p50_ms"]),
        "p95_delta_ms": _change(head["p95_ms"], base["p95_ms"]),
        "turns_delta": _change(head["turns_per_conversation"], base["turns_per_conversation"]),
    }


def _no_comparison() -> dict[str, Any]:
    """A simulation only one run has: nothing to test or subtract."""
    return {"p_value": None, "pass_rate_delta": None, "new_failing_checks": []}


def compare(summary: Summary, baseline: Mapping[str, Any]) -> Changes:
    """Per simulation of `summary` (then those only the base had): how it differs from the
    same-named simulation in `baseline`; `verdict` is regressed, improved, unchanged, within
    noise, new, removed or not run (only the base has it, and this run did not play all it could).

    Kept in a `RecordStore`: the changes of a run of many move to disk, as its summaries do."""
    changes: Changes = RecordStore()
    before_all = baseline.get("simulations", {})
    for name, sim in summary["simulations"].items():
        before = before_all.get(name)
        if isinstance(before, dict):
            changes[name] = compare_simulation(sim, before)
        else:
            changes[name] = {"verdict": NEW, "change": NEW, "head": _side(sim), **_no_comparison()}
    not_run = _not_run(summary)
    for name, before in before_all.items():
        if name not in summary["simulations"] and isinstance(before, dict):
            verdict = NOT_RUN if not_run(name) else REMOVED
            changes[name] = {"verdict": verdict, "change": verdict, "base": _side(before), **_no_comparison()}
    return changes


def comparison_or_why(
    summary: Summary, base: Mapping[str, Any] | str | Path | None
) -> tuple[Changes | None, str | None]:
    """The changes since the base run (its summary, or its folder), or None and one line saying why
    there are none: whatever is wrong with a base run costs the comparison, never this run's own
    report, comment or gate."""
    if base is None:
        return None, None
    try:
        before = load_baseline(base) if isinstance(base, (str, Path)) else base
        return compare(summary, before), None
    except ConfigError as exc:
        return None, f"No comparison with the base run: {exc}"
    except Exception as exc:  # a base run shaped in a way no check foresaw: this run's report still stands
        return None, f"No comparison with the base run: it could not be read ({type(exc).__name__}: {exc})"


def _not_run(summary: Summary) -> Callable[[str], bool]:
    """Whether a simulation this run has no result of may only have gone unplayed: every one when
    the run played part of the manifest (a filter, a tag, a shard, shards missing from a merge), else
    those it skipped or did not finish."""
    run: Mapping[str, Any] = _mapping(summary.get("run"))
    if run.get("filters") or run.get("tags") or run.get("shard") or run.get("unseen_shards"):
        return lambda name: True
    unplayed = {str(name) for name in run.get("skipped_simulations") or ()}
    for key in [*(run.get("missing") or ()), *(run.get("not_run") or ())]:
        unplayed.add(str(key).rpartition("#")[0])
    return unplayed.__contains__


class Divergence:
    """Where replayed conversations left the base run's, tallied as the conversations pass by, so the
    pass that gathers the evidence tallies it too (`watch`)."""

    def __init__(self) -> None:
        self._replayed: Counter[str] = Counter()
        self._diverged: Counter[str] = Counter()
        self._first: dict[str, int] = {}

    def see(self, result: ConversationResult) -> None:
        meta = result["meta_data"]
        replay = meta.get("replay")
        if not isinstance(replay, Mapping):
            return
        name = meta.get("simulation") or meta["persona"]["name"]
        self._replayed[name] += 1
        turn = replay.get("diverged_at_turn")
        if isinstance(turn, int) and not isinstance(turn, bool):
            self._diverged[name] += 1
            self._first[name] = min(self._first.get(name, turn), turn)

    def watch(self, results: Iterable[ConversationResult]) -> Iterator[ConversationResult]:
        """`results`, each seen on its way."""
        for result in results:
            self.see(result)
            yield result

    def note(self, changes: MutableMapping[str, dict[str, Any]]) -> None:
        """Add to `changes`, for each simulation replayed, how many conversations left the base's and
        the first turn any did."""
        for name, count in self._replayed.items():
            if name in changes:
                change = changes[name]  # a copy when the changes are on disk: put back below
                change["replay"] = {
                    "conversations": count,
                    "diverged": self._diverged[name],
                    "first_diverged_at_turn": self._first.get(name),
                }
                changes[name] = change
