"""The simulations manifest: load, interpolate `${VAR}`, validate, and resolve personas.

Every problem is collected and reported at once, each as `file:line: field: what is wrong`;
nothing runs until the manifest is valid.
"""

from __future__ import annotations

import copy
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .checks import build_checks
from .errors import ConfigError
from .persona import Persona
from .schema_check import schema_errors
from .yaml_source import YamlDocument, format_path, load_yaml_file

DEFAULT_MANIFEST = ".github/simulations.yml"
DEFAULT_MAX_TURNS = 6
DEFAULT_REPEAT = 1
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ManifestError(ConfigError):
    """A manifest with one or more problems; `problems` lists them, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Simulation:
    """One persona pursuing one task, with everything resolved."""

    name: str
    persona: Persona
    task: str
    max_turns: int
    repeat: int
    tags: list[str]
    target: dict[str, Any]
    user: dict[str, Any] | None
    turns: list[str] | None = None
    turn_timeout: float | None = None
    line: int | None = None
    index: int = 0
    expect: dict[str, Any] = field(default_factory=dict)
    checks: list[Any] = field(default_factory=list, repr=False)
    min_passes: int | None = None
    required: bool = False

    @property
    def needs_llm(self) -> bool:
        """Scripted simulations need no model and no key."""
        return self.turns is None


@dataclass
class Manifest:
    """A validated manifest."""

    path: Path
    simulations: list[Simulation]
    target: dict[str, Any] | None
    user: dict[str, Any] | None
    data: dict[str, Any] = field(repr=False, default_factory=dict)
    judge: dict[str, Any] | None = None
    gate: dict[str, Any] | None = None
    #: environment variables the manifest read, with the field paths that used them
    variables: dict[str, list[str]] = field(default_factory=dict)

    def simulation(self, name: str) -> Simulation | None:
        return next((s for s in self.simulations if s.name == name), None)

    @property
    def folder(self) -> Path:
        return self.path.parent


def interpolate(
    value: Any,
    environ: Mapping[str, str],
    path: tuple = (),
    problems: list | None = None,
    used: dict[str, list[str]] | None = None,
) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; `$$` is a literal `$`.

    Only string values are touched (after YAML parsing), so a variable can never inject YAML.
    Unset variables without a default are recorded in `problems` as `(path, name)`.
    """
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if used is not None:
                used.setdefault(name, []).append(format_path(path))
            if name in environ and environ[name] != "":
                return environ[name]
            if default is not None:
                return default
            if problems is not None:
                problems.append((path, name))
            return ""

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: interpolate(v, environ, path + (k,), problems, used) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, path + (i,), problems, used) for i, v in enumerate(value)]
    return value


def deep_merge(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """`override` on top of `base`; nested mappings merge, everything else replaces."""
    merged = copy.deepcopy(base or {})
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_manifest(
    path: str | Path,
    *,
    environ: Mapping[str, str] | None = None,
    app_url: str | None = None,
) -> Manifest:
    """Read, interpolate and validate a manifest; raise `ManifestError` listing every problem."""
    path = Path(path)
    doc = load_yaml_file(path, "manifest")
    source = str(path)
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ManifestError(source, [f"{source}: expected a mapping with 'version' and 'simulations', got {kind}"])
    problems = schema_errors(doc.data, "manifest", doc=doc)
    if problems:
        raise ManifestError(source, problems)

    unset: list[tuple[tuple, str]] = []
    used: dict[str, list[str]] = {}
    data = interpolate(doc.data, os.environ if environ is None else environ, (), unset, used)
    for where, name in unset:
        problems.append(
            f"{doc.where(where)}: {format_path(where)}: environment variable {name} is not set "
            f"(set it, or write ${{{name}:-default}})"
        )
    if app_url:
        if isinstance(data.get("target"), dict) and "callback" in data["target"]:
            problems.append(f"{doc.where(('target',))}: target: --app-url given but the target is a callback")
        else:
            data["target"] = {**(data.get("target") or {}), "url": app_url}
    simulations = _simulations(data, doc, path.parent, problems)
    _check_run_level(data, simulations, doc, problems)
    if problems:
        raise ManifestError(source, problems)
    return Manifest(
        path=path,
        simulations=simulations,
        target=data.get("target"),
        user=data.get("user"),
        data=data,
        judge=data.get("judge"),
        gate=data.get("gate"),
        variables=used,
    )


def _check_run_level(
    data: dict[str, Any], simulations: list[Simulation], doc: YamlDocument, problems: list[str]
) -> None:
    names = {s.name for s in simulations}
    for i, name in enumerate((data.get("gate") or {}).get("required", [])):
        if name not in names and not any(p.endswith(f"duplicate simulation name '{name}'") for p in problems):
            at = ("gate", "required", i)
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


def _simulations(data: dict[str, Any], doc: YamlDocument, folder: Path, problems: list[str]) -> list[Simulation]:
    defaults = data.get("defaults") or {}
    seen: dict[str, int] = {}
    simulations = []
    for index, entry in enumerate(data["simulations"]):
        at = ("simulations", index)
        name = entry["name"]
        line = doc.line_of(at + ("name",))
        if name in seen:
            problems.append(
                f"{doc.where(at + ('name',))}: {format_path(at + ('name',))}: duplicate simulation name "
                f"'{name}' (first used at line {seen[name]})"
            )
            continue
        seen[name] = line or 0
        persona = _persona(entry["persona"], doc, at + ("persona",), folder, problems)
        expect = {**(defaults.get("expect") or {}), **(entry.get("expect") or {})}
        checks = _checks(expect, doc, at, entry, problems)
        repeat = entry.get("repeat", defaults.get("repeat", DEFAULT_REPEAT))
        if entry.get("min_passes", 0) > repeat:
            where = at + ("min_passes",)
            problems.append(
                f"{doc.where(where)}: {format_path(where)}: {entry['min_passes']} is more than repeat ({repeat})"
            )
        target = deep_merge(data.get("target"), entry.get("target"))
        user = deep_merge(data.get("user"), entry.get("user")) if (data.get("user") or entry.get("user")) else None
        _check_sides(entry, target, user, doc, at, problems)
        if persona is None:
            continue
        simulations.append(
            Simulation(
                name=name,
                persona=persona,
                task=entry["task"],
                max_turns=entry.get("max_turns", defaults.get("max_turns", DEFAULT_MAX_TURNS)),
                repeat=repeat,
                tags=sorted(set(defaults.get("tags", [])) | set(entry.get("tags", []))),
                target=target,
                user=user,
                turns=entry.get("turns"),
                turn_timeout=entry.get("turn_timeout", defaults.get("turn_timeout")),
                line=line,
                index=index,
                expect=expect,
                checks=checks,
                min_passes=entry.get("min_passes"),
                required=bool(entry.get("required", False)),
            )
        )
    return simulations


def _checks(expect: dict[str, Any], doc: YamlDocument, at: tuple, entry: dict[str, Any], problems: list[str]) -> list:
    """Each kind is built on its own, so one bad check does not hide the others' problems."""
    checks = []
    for key, config in expect.items():
        own = key in (entry.get("expect") or {})
        where = at + ("expect", key) if own else ("defaults", "expect", key)
        try:
            checks.extend(build_checks({key: config}, source=format_path(where[:-1])))
        except ConfigError as exc:
            message = f"{doc.where(where)}: {exc}"
            if message not in problems:
                problems.append(message)
    return checks


def _check_sides(
    entry: dict[str, Any],
    target: dict[str, Any],
    user: dict[str, Any] | None,
    doc: YamlDocument,
    at: tuple,
    problems: list[str],
) -> None:
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


def _persona(value: Any, doc: YamlDocument, at: tuple, folder: Path, problems: list[str]) -> Persona | None:
    where = doc.where(at)
    try:
        if isinstance(value, dict):
            return Persona.from_dict(value, source=f"{where}: {format_path(at)}")
        candidate = folder / value
        if candidate.suffix.lower() in (".yaml", ".yml") or "/" in value or "\\" in value:
            return Persona.load(candidate)
        return Persona.load(value) if not candidate.is_file() else Persona.load(candidate)
    except ConfigError as exc:
        message = str(exc).replace("\n", "; ")
        problems.append(f"{where}: {format_path(at)}: {message}")
        return None
