"""Step 4 of loading: typed simulations, each checked as the run will use it.

Takes the resolved parts; checks how they fit together (a target and a user for each simulation,
each URL target as `simulator run` will build it, `min_passes` within `repeat`, callbacks that
exist, credentials given once, names the gate requires, a judge for the checks that need one) and
gives the `Simulation`s. Problems go to the one list.
"""

from __future__ import annotations

from typing import Any

from ..checks.outcome import OutcomeCheck
from ..conversation.users import script_turns
from ..parsing.schema_check import schema_errors
from ..parsing.template import placeholders
from ..parsing.yaml_source import YamlDocument, format_path
from ..state.requests import StateRequest
from ..targets.redaction import authorization_header, url_credentials
from .files import FileAccess, callback_problems
from .resolve import Resolved
from .row_counts import RowCounts
from .targets import checked_targets
from .types import Simulation


def build_simulations(
    resolved: list[Resolved],
    data: dict[str, Any],
    doc: YamlDocument,
    access: FileAccess,
    problems: list[str],
    rows: RowCounts | None = None,
) -> list[Simulation]:
    """The manifest's own simulations: each one (`build_each`), then what concerns them together
    with the datasets' rows (names the gate requires, a judge for the checks that need one).
    The gate's required names end up in `data["gate"]["required"]`."""
    simulations = build_each(resolved, data, access, problems)
    _check_run_level(data, simulations, doc, problems, rows or RowCounts())
    _resolve_required(data, simulations, rows or RowCounts())
    return simulations


def build_each(
    resolved: list[Resolved],
    data: dict[str, Any],
    access: FileAccess,
    problems: list[str],
    *,
    top_checked: bool = False,
) -> list[Simulation]:
    """A `Simulation` for each resolved entry with a persona; every problem found on the way added,
    at the entry's own place (`Resolved.doc`, `Resolved.at`). `top_checked`: the top-level target's
    own problems were reported already."""
    callbacks = [(part.entry.get("target"), part.at + ("target",), part.doc) for part in resolved]
    problems.extend(callback_problems(callbacks, access))
    targets = checked_targets(data.get("target"), resolved, problems, top_checked=top_checked)
    simulations = []
    for part, target in zip(resolved, targets, strict=True):
        at, doc, entry = part.at, part.doc, part.entry
        if entry.get("min_passes", 0) > part.repeat:
            where = at + ("min_passes",)
            problems.append(
                f"{doc.where(where)}: {format_path(where)}: {entry['min_passes']} is more than repeat ({part.repeat})"
            )
        check_sides(entry, part.target, part.user, doc, at, problems)
        state = [*part.setup, *part.teardown, *(c.request for c in part.checks if isinstance(c, OutcomeCheck))]
        _base_credentials(target, entry.get("target"), state, doc, at, problems)
        if part.persona is None:
            continue
        simulations.append(
            Simulation(
                name=part.name,
                persona=part.persona,
                task=entry["task"],
                repeat=part.repeat,
                target=target,
                user=part.user,
                turns=entry.get("turns"),
                line=part.line,
                index=part.index,
                expect=part.expect,
                checks=part.checks,
                min_passes=entry.get("min_passes"),
                required=bool(entry.get("required", False)),
                setup=part.setup,
                teardown=part.teardown,
                row=None if part.index >= 0 else doc.where(at),
                **part.settings,
            )
        )
    return simulations


def script_cut(simulation: Simulation) -> str | None:
    """Why a scripted simulation's script does not fit its `max_turns`, or None when it does."""
    if simulation.turns is None:
        return None
    needed = script_turns(simulation.turns)
    if needed <= simulation.max_turns:
        return None
    return (
        f"the script takes {needed} turns but max_turns is {simulation.max_turns}: it is cut at turn "
        f"{simulation.max_turns} (set max_turns: {needed} to play it all)"
    )


def cut_script_warnings(simulations: list[Simulation], doc: YamlDocument) -> list[str]:
    """A warning at the `turns` of each written simulation whose script `max_turns` cuts."""
    found = []
    for simulation in simulations:
        why = script_cut(simulation)
        if why is not None:
            at = ("simulations", simulation.index, "turns")
            found.append(f"{doc.where(at)}: {format_path(at)}: {why}")
    return found


def check_sides(
    entry: dict[str, Any],
    target: dict[str, Any],
    user: dict[str, Any] | None,
    doc: YamlDocument,
    at: tuple,
    problems: list[str],
) -> None:
    """A simulation needs an app to talk to, and a user model unless its turns are scripted."""
    if not target:
        problems.append(f"{doc.where(at)}: {format_path(at)}: no target (set 'target' at the top or in the simulation)")
    elif entry.get("target"):  # the top-level target was checked already; an override may break it
        problems.extend(schema_errors(target, "manifest", doc, definition="target", prefix=at + ("target",)))
    if entry.get("turns") is None and not user:
        problems.append(
            f"{doc.where(at)}: {format_path(at)}: no 'turns' and no 'user' model; add a top-level 'user' "
            "(the LLM that plays the persona) or scripted 'turns'"
        )
    elif user and entry.get("user") and "model" not in user:
        problems.append(f"{doc.where(at + ('user',))}: {format_path(at + ('user',))}.model: required field is missing")


def _base_credentials(
    target: Any, own: Any, requests: list[StateRequest], doc: YamlDocument, at: tuple, problems: list[str]
) -> None:
    """`{{base}}` carries the credentials of the target's URL: a state request to it that sends its own
    Authorization header cannot be sent, so it is a problem at the line of that URL."""
    url = target.get("url") if isinstance(target, dict) and "callback" not in target else None
    if not isinstance(url, str) or not url_credentials(url):
        return
    written = (*at, "target", "url") if isinstance(own, dict) and "url" in own else ("target", "url")
    for request in requests:
        name = authorization_header(request.headers)
        if name is not None and "base" in placeholders(request.url):
            problems.append(
                f"{doc.where(written)}: {format_path(written)}: carries credentials (user:password@) that {{{{base}}}} "
                f"passes on to {request.source}, whose headers.{name} sets them too, but a request can send only one: "
                "use one of them (remove the user:password@ from the URL, or the header)"
            )


def _check_run_level(
    data: dict[str, Any], simulations: list[Simulation], doc: YamlDocument, problems: list[str], rows: RowCounts
) -> None:
    # every simulation written, even one with its own problem (a missing persona): no second, bogus error
    names = {s.name for s in simulations} | {e.get("name") for e in data.get("simulations", []) if isinstance(e, dict)}
    names |= rows.named
    for i, name in enumerate((data.get("gate") or {}).get("required", [])):
        if name not in names and not any(p.endswith(f"duplicate simulation name '{name}'") for p in problems):
            at: tuple[str | int, ...] = ("gate", "required", i)
            problems.append(f"{doc.where(at)}: {format_path(at)}: no simulation is named '{name}'")
    if not data.get("judge"):
        for sim in simulations:
            if any(c.needs_judge for c in sim.checks):
                at = ("simulations", sim.index, "expect")
                problems.append(
                    f"{doc.where(at)}: {format_path(at)}: goal_completed and rubric need a judge model; "
                    "add a top-level 'judge' (model, endpoint, ...)"
                )
                break
        else:
            if rows.needs_judge is not None:
                problems.append(
                    f"{rows.needs_judge}: expect: goal_completed and rubric need a judge model; "
                    "add a top-level 'judge' (model, endpoint, ...)"
                )


def _resolve_required(data: dict[str, Any], simulations: list[Simulation], rows: RowCounts) -> None:
    """One set of required simulations: `gate.required` and each simulation's `required: true`.

    Both spellings mean the same, so both end up in the gate's config and on each simulation, and
    summary.json, the Markdown and the HTML report show the same set.
    """
    names = {s.name for s in simulations} | rows.named
    listed = [n for n in (data.get("gate") or {}).get("required", []) if n in names]
    own = [s.name for s in simulations if s.required]
    required = list(dict.fromkeys([*listed, *own, *rows.required]))
    for sim in simulations:
        sim.required = sim.name in required
    if required or data.get("gate"):
        data["gate"] = {**(data.get("gate") or {}), "required": required}
