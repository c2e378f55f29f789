"""The simulations manifest: load, interpolate `${VAR}`, validate, and resolve personas.

Every problem is collected and reported at once, each as `file:line: field: what is wrong`;
nothing runs until the manifest is valid.

A manifest may come from an untrusted pull request, so what it can reach is bounded:

- `${VAR}` never reads the runner's credentials, and `SIMULATOR_ALLOWED_VARS` narrows what it
  reads (see `manifest_variables`); the same rule applies to `api_key_env`.
- Persona files and `file.py:function` callbacks must lie inside the root (see `resolve_root`).
- Loaded with `trusted=False`, a manifest is data only: callback targets (module or file) and
  persona files are refused, since they would run or read what the manifest's own source chose.

A command needs only part of a manifest (`need`): `check` never calls the app, so an unset
`APP_URL` must not stop it, and `validate` runs nothing at all. Unset variables in the sections a
command does not use are warnings (`Manifest.warnings`), not problems.

The credentials a manifest reads become known secrets, scrubbed from all the run produces
(`register_secrets`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks.outcome import OutcomeCheck
from ..errors import ConfigError
from ..parsing.schema_check import schema_errors
from ..parsing.template import placeholders
from ..parsing.yaml_source import YamlDocument, format_path, load_yaml_file, paused_gc
from ..persona import Persona
from ..records import GateConfig
from ..state.requests import StateRequest
from ..targets.redaction import authorization_header, url_credentials
from ..text import known_secrets
from ..text.unicode_safety import lone_surrogate_fields, replace_lone_surrogates, surrogate_note
from .simulations import (
    DEFAULT_MAX_TURNS,
    DEFAULT_REPEAT,
    CheckBuilder,
    PersonaResolver,
    StateRequestBuilder,
    deep_merge,
    default_root,
    is_inside,
    resolve_root,
    settings,
)
from .simulations import check_callback as _check_callback
from .simulations import check_sides as _check_sides
from .targets import checked_target
from .variables import (
    ALLOWED_VARS_ENV,
    DEFAULT_KEY_VARS,
    HARMLESS_GITHUB_VARS,
    SECTIONS,
    interpolate,
    register_secrets,
    resolve_variables,
    section_of,
    variable_refusal,
)

__all__ = [
    "ALLOWED_VARS_ENV",
    "DEFAULT_KEY_VARS",
    "DEFAULT_MANIFEST",
    "DEFAULT_MAX_TURNS",
    "DEFAULT_REPEAT",
    "HARMLESS_GITHUB_VARS",
    "SECTIONS",
    "UNTRUSTED_NOTE",
    "Manifest",
    "ManifestError",
    "Simulation",
    "deep_merge",
    "default_root",
    "interpolate",
    "is_inside",
    "load_manifest",
    "register_secrets",
    "resolve_root",
    "section_of",
    "variable_refusal",
]

DEFAULT_MANIFEST = ".github/simulations.yml"
#: why code and files are refused in an untrusted manifest, when the caller gives no reason of its own
UNTRUSTED_NOTE = "refused: the manifest was loaded with trusted=False"


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
    #: requests made before each conversation (seeding the app's test data) and after it (cleaning up)
    setup: list[StateRequest] = field(default_factory=list, repr=False)
    teardown: list[StateRequest] = field(default_factory=list, repr=False)
    #: what happened to its text on the way in (lone surrogates replaced); each conversation notes it
    notes: list[str] = field(default_factory=list, repr=False)

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
    gate: GateConfig | None = None
    #: environment variables the manifest read, with the field paths that used them
    variables: dict[str, list[str]] = field(default_factory=dict)
    #: persona files and callback files lie inside this folder (see `resolve_root`)
    root: Path | None = None
    #: unset variables in sections the loading command did not need, one `file:line: field: ...` each
    warnings: list[str] = field(default_factory=list)

    def simulation(self, name: str) -> Simulation | None:
        return next((s for s in self.simulations if s.name == name), None)

    @property
    def folder(self) -> Path:
        return self.path.parent


def load_manifest(
    path: str | Path,
    root: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    app_url: str | None = None,
    trusted: bool = True,
    untrusted_note: str = UNTRUSTED_NOTE,
    need: Collection[str] | None = None,
) -> Manifest:
    """Read, interpolate and validate a manifest; raise `ManifestError` listing every problem.

    Persona files and `file.py:function` callbacks must lie inside `root` (default: the current
    directory if the manifest lies inside it, else the manifest's folder; see `resolve_root`).
    `${VAR}` reads `environ` (default `os.environ`) under the rule of `variable_refusal`.

    `need` names the sections (`SECTIONS`: target, user, judge, checks, simulations) whose
    variables must be set; default all of them, as `run` uses. An unset variable elsewhere keeps
    its `${VAR}` text and is listed in `Manifest.warnings`.

    `trusted=False` is for a manifest whose folder holds content nobody vouched for: it is read
    as data only, and every callback target (module or file, top level and per simulation) and
    every persona file is a problem ending with `untrusted_note` (say why, and how to allow it);
    predefined and inline personas still work.
    """
    need = SECTIONS if need is None else frozenset(need)
    if not need <= SECTIONS:
        raise ValueError(f"need: unknown section(s) {sorted(need - SECTIONS)}; known: {sorted(SECTIONS)}")
    path = Path(path)
    allowed_root = resolve_root(path, root)
    refusal = None if trusted else untrusted_note
    environ = os.environ if environ is None else environ
    with paused_gc():  # thousands of simulations build many objects and no cycles
        doc = _read(path, lambda doc: _persona_problems(doc, path.parent, allowed_root, refusal))
        variables = resolve_variables(doc, environ, need)
        data, problems = variables.data, variables.problems
        _override_url(data, app_url, doc, problems)
        replaced = lone_surrogate_fields(data)  # as written, from a variable or --app-url: U+FFFD from here on
        if replaced:
            data = replace_lone_surrogates(data)[0]
        register_secrets(variables.used, environ)
        known_secrets.register_url(replace_lone_surrogates(app_url)[0])
        _check_callback(data.get("target"), ("target",), doc, path.parent, allowed_root, problems, refusal)
        simulations = _simulations(data, doc, path.parent, allowed_root, problems, refusal)
        _check_run_level(data, simulations, doc, problems)
        _resolve_required(data, simulations)
    if problems:
        raise ManifestError(str(path), list(dict.fromkeys(problems)))
    for sim in simulations:
        sim.notes = [surrogate_note(n, _field(at)) for at, n in replaced if at[:2] == ("simulations", sim.index)]
    replacements = [f"{doc.where(at)}: {_field(at)}: {surrogate_note(n, 'its text')}" for at, n in replaced]
    return Manifest(
        path=path,
        simulations=simulations,
        target=data.get("target"),
        user=data.get("user"),
        data=data,
        judge=data.get("judge"),
        gate=data.get("gate"),
        variables=variables.used,
        root=allowed_root,
        warnings=list(dict.fromkeys([*variables.warnings, *replacements, *marker_comments(path)])),
    )


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


def _field(path: tuple) -> str:
    """A field's path as messages spell it, its keys valid text."""
    return format_path(tuple(replace_lone_surrogates(part)[0] for part in path))


def _read(path: Path, files_of: Callable[[YamlDocument], list[str]]) -> YamlDocument:
    """The manifest's YAML, checked against the schema before any `${VAR}` is filled in.

    With schema problems nothing further is checked, except the files the manifest names
    (`files_of`): a missing persona file is a problem of its own that a typo elsewhere must not hide.
    """
    source = str(path)
    doc = load_yaml_file(path, "manifest")
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ManifestError(source, [f"{source}: expected a mapping with 'version' and 'simulations', got {kind}"])
    problems = schema_errors(doc.data, "manifest", doc=doc)
    if problems:
        every = dict.fromkeys([*problems, *files_of(doc)])  # in file order, as schema problems are
        raise ManifestError(source, sorted(every, key=lambda problem: _line_of(problem, source)))
    return doc


def _persona_problems(doc: YamlDocument, folder: Path, root: Path, refusal: str | None) -> list[str]:
    """What is wrong with the persona names and files of a manifest that failed its schema check."""
    problems: list[str] = []
    personas = PersonaResolver(folder, root, refusal)
    entries = doc.data.get("simulations")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        value = entry.get("persona") if isinstance(entry, dict) else None
        if isinstance(value, str) and value.strip():  # an inline mapping's problems are the schema's
            personas.resolve(value, doc, ("simulations", index, "persona"), problems)
    return problems


def _line_of(problem: str, source: str) -> int:
    line = problem[len(source) + 1 :].split(":", 1)[0] if problem.startswith(source + ":") else ""
    return int(line) if line.isdigit() else 0


def _override_url(data: dict[str, Any], app_url: str | None, doc: YamlDocument, problems: list[str]) -> None:
    """`--app-url` replaces the target's URL (e.g. the pull request's preview deployment)."""
    if not app_url:
        return
    if isinstance(data.get("target"), dict) and "callback" in data["target"]:
        problems.append(f"{doc.where(('target',))}: target: --app-url given but the target is a callback")
    else:
        data["target"] = {**(data.get("target") or {}), "url": app_url}


def _check_run_level(
    data: dict[str, Any], simulations: list[Simulation], doc: YamlDocument, problems: list[str]
) -> None:
    # every simulation written, even one with its own problem (a missing persona): no second, bogus error
    names = {s.name for s in simulations} | {e.get("name") for e in data.get("simulations", []) if isinstance(e, dict)}
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


_MARKER_COMMENT = re.compile(r"#{2,}\s*(STOP|GIVE[\s_-]*UP)\b", re.IGNORECASE)


def marker_comments(path: Path) -> list[str]:
    """Stop markers YAML read as comments: in `- Thanks ###STOP###` (unquoted) ` #` starts a comment,
    so the message is "Thanks" and does not end the conversation. Each becomes a warning at its line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    found = []
    for number, line in enumerate(text.splitlines(), 1):
        start = _comment_start(line)
        if (
            start is not None
            and line[:start].strip()
            and _MARKER_COMMENT.match(line[start:].lstrip("# \t")[:0] + line[start:])
        ):
            found.append(
                f"{path}:{number}: {line[start:].strip()!r} is a YAML comment here, so it does not end the "
                'conversation; quote the whole message, e.g. "Thanks ###STOP###"'
            )
    return found


def _comment_start(line: str) -> int | None:
    """Where a YAML comment starts on `line` (a `#` after whitespace, outside quotes), or None."""
    quote = None
    for i, char in enumerate(line):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#" and (i == 0 or line[i - 1] in " \t"):
            return i
    return None


def _resolve_required(data: dict[str, Any], simulations: list[Simulation]) -> None:
    """One set of required simulations: `gate.required` and each simulation's `required: true`.

    Both spellings mean the same, so both end up in the gate's config and on each simulation, and
    summary.json, the Markdown and the HTML report show the same set.
    """
    names = {s.name for s in simulations}
    listed = [n for n in (data.get("gate") or {}).get("required", []) if n in names]
    required = list(dict.fromkeys([*listed, *(s.name for s in simulations if s.required)]))
    for sim in simulations:
        sim.required = sim.name in required
    if required or data.get("gate"):
        data["gate"] = {**(data.get("gate") or {}), "required": required}


def _simulations(
    data: dict[str, Any],
    doc: YamlDocument,
    folder: Path,
    root: Path,
    problems: list[str],
    refusal: str | None = None,
) -> list[Simulation]:
    defaults = data.get("defaults") or {}
    personas = PersonaResolver(folder, root, refusal)
    checks_of = CheckBuilder(doc, problems)
    around_of = StateRequestBuilder(defaults, doc, problems)
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
        persona = personas.resolve(entry["persona"], doc, at + ("persona",), problems)
        expect = {**(defaults.get("expect") or {}), **(entry.get("expect") or {})}  # as written; checks add up
        checks = checks_of.build(defaults.get("expect") or {}, entry.get("expect") or {}, at)
        repeat = entry.get("repeat", defaults.get("repeat", DEFAULT_REPEAT))
        if entry.get("min_passes", 0) > repeat:
            where = at + ("min_passes",)
            problems.append(
                f"{doc.where(where)}: {format_path(where)}: {entry['min_passes']} is more than repeat ({repeat})"
            )
        _check_callback(entry.get("target"), at + ("target",), doc, folder, root, problems, refusal)
        target = deep_merge(data.get("target"), entry.get("target"))
        user = deep_merge(data.get("user"), entry.get("user")) if (data.get("user") or entry.get("user")) else None
        _check_sides(entry, target, user, doc, at, problems)
        target = checked_target(doc, data.get("target"), entry.get("target"), target, at, problems)  # as run builds it
        around = around_of.build(entry, at)
        state = [*around["setup"], *around["teardown"], *(c.request for c in checks if isinstance(c, OutcomeCheck))]
        _base_credentials(target, entry.get("target"), state, doc, at, problems)
        if persona is None:
            continue
        simulations.append(
            Simulation(
                name=name,
                persona=persona,
                task=entry["task"],
                repeat=repeat,
                target=target,
                user=user,
                turns=entry.get("turns"),
                line=line,
                index=index,
                expect=expect,
                checks=checks,
                min_passes=entry.get("min_passes"),
                required=bool(entry.get("required", False)),
                setup=around["setup"],
                teardown=around["teardown"],
                **settings(entry, defaults),
            )
        )
    return simulations
