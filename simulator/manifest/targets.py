"""A manifest's URL targets checked as `simulator run` will build them, each problem at its line.

The checks are the target's own (`simulator.targets.http.check_config`), so a manifest that
validates never fails to build its targets. A simulation that keeps the top-level target reports
its problems as `target.<field>` (once for all such simulations: the manifest drops repeated
lines); one that overrides fields reports what its merged target gets wrong as
`simulations[i].target.<field>`, at the line of the field wherever it was written, and the
top-level target's own problems still as `target.<field>`. A field the manifest already reported
(by the schema, or for an environment variable that could not be read) is not reported again: the
first problem explains it.

A simulation that switches `format` does not inherit the top-level fields only other formats read
(a `request` template, `stream`, ...): they describe the other format's requests.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from ..parsing.yaml_source import YamlDocument, format_path
from ..targets.http import DEFAULT_FORMAT, FORMATS, check_config
from ..targets.http.config import other_formats_keys
from ..targets.http.problems import Field, Problem


def _url_target(config: Any) -> bool:
    return isinstance(config, Mapping) and bool(config) and "callback" not in config


def _contains(node: Any, field: Field) -> bool:
    for part in field:
        listed = isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node)
        if not (listed or (isinstance(node, Mapping) and part in node)):
            return False
        node = node[part]
    return True


def _written_at(field: Field, top: Any, own: Any, at: tuple) -> tuple:
    """Where in the manifest the field was written: the simulation's override, else the top level."""
    in_own = _contains(own, field) or (not _contains(top, field) and _contains(own, field[:1]))
    return (*at, "target", *field) if in_own else ("target", *field)


def own_format_fields(top: Any, own: Any, merged: dict[str, Any]) -> dict[str, Any]:
    """`merged` without the top-level fields only other formats read, when `own` switches the format."""
    if not (_url_target(merged) and isinstance(own, Mapping) and "format" in own and isinstance(top, Mapping)):
        return merged
    chosen = own["format"]
    if not isinstance(chosen, str) or chosen not in FORMATS or chosen == top.get("format", DEFAULT_FORMAT):
        return merged
    others = other_formats_keys(chosen)
    return {key: value for key, value in merged.items() if key in own or key not in others}


def _placed(top: Any, own: Any, merged: Any, at: tuple) -> list[tuple[tuple, Problem]]:
    """Each problem of the merged target, with the manifest path it is reported at."""
    if not own:
        return [(("target", *p.field), p) for p in check_config(merged, "target")[1]]
    here = format_path((*at, "target"))
    found = check_config(merged, here)[1]
    inherited: dict[str, Problem] = {}
    if found and _url_target(top):  # which of them the top-level target has on its own
        as_here, as_top = check_config(top, here)[1], check_config(top, "target")[1]
        inherited = {mine.message: theirs for mine, theirs in zip(as_here, as_top, strict=True)}
    placed = []
    for problem in found:
        if problem.message in inherited:
            top_problem = inherited[problem.message]
            placed.append((("target", *top_problem.field), top_problem))
        else:
            placed.append((_written_at(problem.field, top, own, at), problem))
    return placed


def _unresolved(target: Mapping[str, Any], problem: Problem) -> bool:
    """A field still holding an unset `${VAR}` (validate without secrets) is checked once it is set;
    only its `{{placeholders}}` are checked now, since they do not depend on the variable."""
    node: Any = target
    for part in problem.field:
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and -len(node) <= part < len(node):
            node = node[part]
        else:
            return False
    return isinstance(node, str) and "${" in node and "placeholder" not in problem.message


def checked_target(
    doc: YamlDocument, top: Any, own: Any, merged: dict[str, Any], at: tuple, problems: list[str]
) -> dict[str, Any]:
    """The target the simulation at `at` runs with (`merged` from `top` and its own `own` fields);
    each problem building it would raise goes to `problems` as `file:line: field: message`.
    A callback target is no concern here."""
    target = own_format_fields(top, own, merged)
    if not _url_target(target):
        return target
    found = []
    for path, problem in _placed(top, own, target, at):
        if _unresolved(target, problem):
            continue
        place = doc.where(path)
        named = problem.message.split(": ", 1)[0]
        if not any(line.startswith(f"{place}: {named}:") for line in problems):
            found.append(f"{place}: {problem.message}")
    problems.extend(found)
    return target


class _Placed(Protocol):
    """What `checked_targets` reads of a resolved simulation (`resolve.Resolved`)."""

    at: tuple
    doc: YamlDocument
    entry: dict[str, Any]
    target: dict[str, Any]


def checked_targets(
    top: Any, resolved: Sequence[_Placed], problems: list[str], *, top_checked: bool = False
) -> list[dict[str, Any]]:
    """The target each resolved simulation runs with, in order (see `checked_target`).

    Simulations that keep the top-level target as it is share its problems (reported once, as
    `target.<field>`), so it is checked once for all of them, not once per simulation; not at all
    when `top_checked` says it was already.
    """
    targets = []
    for part in resolved:
        own = part.entry.get("target")
        if own or not top_checked:
            targets.append(checked_target(part.doc, top, own, part.target, part.at, problems))
            top_checked = top_checked or not own
        else:  # a copy of the top-level target, already checked
            targets.append(part.target)
    return targets


def check_top_target(doc: YamlDocument, top: Any, problems: list[str]) -> None:
    """The top-level target's own problems, at its lines (for simulations that come from elsewhere)."""
    if isinstance(top, Mapping):
        checked_target(doc, top, None, dict(top), ("target",), problems)
