"""The simulations manifest: load, interpolate `${VAR}`, validate, and resolve personas.

Every problem is collected and reported at once, each as `file:line: field: what is wrong`;
nothing runs until the manifest is valid.

A manifest may come from an untrusted pull request, so what it can reach is bounded:

- `${VAR}` never reads the runner's credentials (`ACTIONS_*`, `INPUT_*`, `RUNNER_*`,
  `GITHUB_TOKEN`, `GH_TOKEN`, `GITHUB_*` but a few harmless ones), and when
  `SIMULATOR_ALLOWED_VARS` is set it reads only the names and globs listed there (see
  `variable_refusal`); the same rule applies to `api_key_env`.
- Persona files and `file.py:function` callbacks must lie inside the root (see `resolve_root`).
- Loaded with `trusted=False`, a manifest is data only: callback targets (module or file) and
  persona files are refused, since they would run or read what the manifest's own source chose.

The credentials a manifest reads become known secrets, scrubbed from all the run produces
(`register_secrets`).
"""

from __future__ import annotations

import copy
import fnmatch
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import known_secrets
from .checks import build_checks
from .errors import ConfigError
from .persona import Persona, predefined_personas
from .schema_check import schema_errors
from .target_validation import checked_target
from .targets.redaction import BENIGN_HEADERS
from .yaml_source import YamlDocument, format_path, load_yaml_file

DEFAULT_MANIFEST = ".github/simulations.yml"
DEFAULT_MAX_TURNS = 6
DEFAULT_REPEAT = 1
_VARIABLE = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
#: the fields of a target whose values are sent to the app and may be credentials (see `register_secrets`)
_SENT_TO_APP = re.compile(r"(?:^|\.)target\.(?:url$|headers\.(?P<header>.+)$|request\.(?:query|body)(?:$|[.\[]))")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://[^/\s]")

#: when set (comma or space separated names or globs such as `APP_*`), only these are readable
ALLOWED_VARS_ENV = "SIMULATOR_ALLOWED_VARS"
#: GITHUB_* variables that hold no credential; every other GITHUB_* variable is never readable
HARMLESS_GITHUB_VARS = frozenset(
    {
        "GITHUB_SHA",
        "GITHUB_REF",
        "GITHUB_REF_NAME",
        "GITHUB_HEAD_REF",
        "GITHUB_BASE_REF",
        "GITHUB_REPOSITORY",
        "GITHUB_RUN_ID",
        "GITHUB_RUN_NUMBER",
        "GITHUB_SERVER_URL",
        "GITHUB_EVENT_NAME",
        "GITHUB_ACTOR",
    }
)
_NEVER_READABLE_PREFIXES = ("ACTIONS_", "INPUT_", "RUNNER_", "GITHUB_")
_NEVER_READABLE_NAMES = frozenset({"GITHUB_TOKEN", "GH_TOKEN"})
#: the keys the models read by default anyway; `api_key_env` may always name them
DEFAULT_KEY_VARS = frozenset({"OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"})
#: why code and files are refused in an untrusted manifest, when the caller gives no reason of its own
UNTRUSTED_NOTE = "refused: the manifest was loaded with trusted=False"


def variable_refusal(name: str, environ: Mapping[str, str]) -> str | None:
    """Why a manifest may not read the environment variable `name`, or None when it may.

    Never readable: `ACTIONS_*`, `INPUT_*`, `RUNNER_*`, `GITHUB_TOKEN`, `GH_TOKEN` and every
    `GITHUB_*` but `HARMLESS_GITHUB_VARS` (compared without case, as Windows does). When
    `SIMULATOR_ALLOWED_VARS` is set in `environ` (and not empty), only the names and globs it
    lists are readable, plus the harmless GITHUB_* ones. The value is never looked at.
    """
    upper = name.upper()
    if upper in HARMLESS_GITHUB_VARS:
        return None
    if upper in _NEVER_READABLE_NAMES or upper.startswith(_NEVER_READABLE_PREFIXES):
        return "is never readable from a manifest (it may hold the runner's or the action's credentials)"
    allowed = (environ.get(ALLOWED_VARS_ENV) or "").strip()
    if allowed:
        patterns = [p for p in re.split(r"[,\s]+", allowed) if p]
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            return f"is not allowed by {ALLOWED_VARS_ENV} ({', '.join(patterns)})"
    return None


def _sent_to_app(field_path: str) -> bool:
    match = _SENT_TO_APP.search(field_path)
    return bool(match) and (match["header"] or "").lower() not in BENIGN_HEADERS


def register_secrets(variables: Mapping[str, list[str]], environ: Mapping[str, str]) -> None:
    """Make the credentials the manifest read known secrets, so nothing the run produces shows them.

    A variable's value is one when its name looks secret (`known_secrets.SECRET_NAME`), wherever
    it is used, or when it goes into a target's URL, a header (but Content-Type, Accept and the
    like), the query or the body. A value that is itself a URL, such as APP_URL, gives only the
    credentials of its userinfo: the app's address is what the reports are about. Defaults written
    in the manifest are no secrets, and values shorter than `known_secrets.MIN_SECRET_LENGTH` are
    ignored.
    """
    for name, paths in variables.items():
        value = environ.get(name)
        if not value:
            continue
        known_secrets.register_url(value)
        secret_name = bool(known_secrets.SECRET_NAME.search(name))
        sent_to_app = not _URL.match(value.strip()) and any(_sent_to_app(path) for path in paths)
        if secret_name or sent_to_app:
            known_secrets.register(value)


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def is_inside(path: str | Path, root: str | Path) -> bool:
    """True when `path`, symlinks resolved, is `root` or lies under it (`root` already resolved)."""
    try:
        return _inside(Path(path).resolve(), Path(root))
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
        return False


def default_root(folder: str | Path) -> Path:
    """The current directory if `folder` lies inside it, else `folder`; symlinks resolved."""
    try:
        folder = Path(os.path.abspath(folder))
        cwd = Path.cwd()
        resolved_cwd = cwd.resolve()
        if _inside(folder, cwd) or _inside(folder.resolve(), resolved_cwd):
            return resolved_cwd
        return folder.resolve()
    except (OSError, ValueError, RuntimeError):  # no current directory: fall back to the folder
        return Path(os.path.abspath(folder))


def resolve_root(manifest_path: str | Path, root: str | Path | None = None) -> Path:
    """The folder a manifest's persona files and callback files must stay inside.

    `root` if given; else the current working directory if the manifest lies inside it; else the
    manifest's folder. Symlinks are resolved (in the root and in every path checked against it).
    """
    if root is not None:
        try:
            return Path(root).resolve()
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"root {str(root)!r}: not a usable folder ({exc})") from None
    return default_root(Path(os.path.abspath(manifest_path)).parent)


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
    #: persona files and callback files lie inside this folder (see `resolve_root`)
    root: Path | None = None

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
    refused: list | None = None,
) -> Any:
    """Replace `${VAR}` / `${VAR:-default}` in every string; `$$` is a literal `$`.

    Only string values are touched (after YAML parsing), so a variable can never inject YAML.
    Unset variables without a default are recorded in `problems` as `(path, name)`. A variable
    the manifest may not read (`variable_refusal`) is never looked up: it is recorded in `refused`
    as `(path, name, why)` and becomes "" (without `refused`, a `ConfigError` is raised).
    """
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            why = variable_refusal(name, environ)
            if why is not None:
                if refused is None:
                    raise ConfigError(f"{format_path(path)}: environment variable {name} {why}")
                refused.append((path, name, why))
                return ""
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
        return {k: interpolate(v, environ, path + (k,), problems, used, refused) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, path + (i,), problems, used, refused) for i, v in enumerate(value)]
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
    root: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    app_url: str | None = None,
    trusted: bool = True,
    untrusted_note: str = UNTRUSTED_NOTE,
) -> Manifest:
    """Read, interpolate and validate a manifest; raise `ManifestError` listing every problem.

    Persona files and `file.py:function` callbacks must lie inside `root` (default: the current
    directory if the manifest lies inside it, else the manifest's folder; see `resolve_root`).
    `${VAR}` reads `environ` (default `os.environ`) under the rule of `variable_refusal`.

    `trusted=False` is for a manifest whose folder holds content nobody vouched for: it is read
    as data only, and every callback target (module or file, top level and per simulation) and
    every persona file is a problem ending with `untrusted_note` (say why, and how to allow it);
    predefined and inline personas still work.
    """
    path = Path(path)
    source = str(path)
    allowed_root = resolve_root(path, root)
    refusal = None if trusted else untrusted_note
    environ = os.environ if environ is None else environ
    doc = load_yaml_file(path, "manifest")
    if not isinstance(doc.data, dict):
        kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
        raise ManifestError(source, [f"{source}: expected a mapping with 'version' and 'simulations', got {kind}"])
    problems = schema_errors(doc.data, "manifest", doc=doc)
    if problems:
        raise ManifestError(source, problems)

    unset: list[tuple[tuple, str]] = []
    refused: list[tuple[tuple, str, str]] = []
    used: dict[str, list[str]] = {}
    data = interpolate(doc.data, environ, (), unset, used, refused)
    register_secrets(used, environ)
    known_secrets.register_url(app_url)
    for where, name, why in refused:
        problems.append(f"{doc.where(where)}: {format_path(where)}: environment variable {name} {why}")
    for where, name in unset:
        problems.append(
            f"{doc.where(where)}: {format_path(where)}: environment variable {name} is not set "
            f"(set it, or write ${{{name}:-default}})"
        )
    _check_key_variables(data, doc, environ, problems)
    if app_url:
        if isinstance(data.get("target"), dict) and "callback" in data["target"]:
            problems.append(f"{doc.where(('target',))}: target: --app-url given but the target is a callback")
        else:
            data["target"] = {**(data.get("target") or {}), "url": app_url}
    _check_callback(data.get("target"), ("target",), doc, path.parent, allowed_root, problems, refusal)
    simulations = _simulations(data, doc, path.parent, allowed_root, problems, refusal)
    _check_run_level(data, simulations, doc, problems)
    if problems:
        raise ManifestError(source, list(dict.fromkeys(problems)))
    return Manifest(
        path=path,
        simulations=simulations,
        target=data.get("target"),
        user=data.get("user"),
        data=data,
        judge=data.get("judge"),
        gate=data.get("gate"),
        variables=used,
        root=allowed_root,
    )


def _check_key_variables(data: dict[str, Any], doc: YamlDocument, environ: Mapping[str, str], problems: list) -> None:
    """`api_key_env` reads a variable too: the same rule as `${VAR}` (the default key names always pass)."""
    places: list[tuple[tuple, Any]] = [(("user",), data.get("user")), (("judge",), data.get("judge"))]
    for index, entry in enumerate(data.get("simulations") or []):
        places.append((("simulations", index, "user"), entry.get("user") if isinstance(entry, dict) else None))
    for at, config in places:
        name = config.get("api_key_env") if isinstance(config, dict) else None
        if isinstance(name, str) and name not in DEFAULT_KEY_VARS:
            why = variable_refusal(name, environ)
            if why is not None:
                where = at + ("api_key_env",)
                problems.append(f"{doc.where(where)}: {format_path(where)}: environment variable {name} {why}")


def _check_callback(
    target: Any,
    at: tuple,
    doc: YamlDocument,
    folder: Path,
    root: Path,
    problems: list[str],
    refusal: str | None = None,
) -> None:
    """A `file.py:function` callback must lie inside the root; module callbacks are imported as usual.

    With a `refusal` (an untrusted manifest) every callback is refused: a module callback runs
    code just as a file does (the manifest's folder goes first on `sys.path`, and any installed
    module's function would be called with the conversation's text).
    """
    spec = target.get("callback") if isinstance(target, dict) else None
    if not isinstance(spec, str):
        return
    if refusal is not None:
        where = at + ("callback",)
        problems.append(f"{doc.where(where)}: {format_path(where)}: {spec!r} would run Python code; {refusal}")
        return
    module, _, _ = spec.rpartition(":")
    if module.endswith(".py") and not is_inside(folder / module, root):
        where = at + ("callback",)
        problems.append(
            f"{doc.where(where)}: {format_path(where)}: {module!r} is outside {root}; callback files must lie inside it"
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


def _simulations(
    data: dict[str, Any],
    doc: YamlDocument,
    folder: Path,
    root: Path,
    problems: list[str],
    refusal: str | None = None,
) -> list[Simulation]:
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
        persona = _persona(entry["persona"], doc, at + ("persona",), folder, root, problems, refusal)
        expect = {**(defaults.get("expect") or {}), **(entry.get("expect") or {})}
        checks = _checks(expect, doc, at, entry, problems)
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


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system
        return False


def _persona(
    value: Any,
    doc: YamlDocument,
    at: tuple,
    folder: Path,
    root: Path,
    problems: list[str],
    refusal: str | None = None,
) -> Persona | None:
    """An inline mapping, a predefined name or a file; with a `refusal`, never a file."""
    where = doc.where(at)
    try:
        if isinstance(value, dict):
            return Persona.from_dict(value, source=f"{where}: {format_path(at)}")
        candidate = folder / value
        looks_like_path = candidate.suffix.lower() in (".yaml", ".yml") or "/" in value or "\\" in value
        if refusal is not None:
            predefined = value.lower() in {name.lower() for name in predefined_personas()}
            if looks_like_path or (not predefined and _is_file(candidate)):
                problems.append(
                    f"{where}: {format_path(at)}: {value!r} would read a persona file "
                    f"(a predefined persona or an inline mapping is fine); {refusal}"
                )
                return None
            return Persona.predefined(value)
        if looks_like_path or _is_file(candidate):
            if not is_inside(candidate, root):
                problems.append(
                    f"{where}: {format_path(at)}: {value!r} is outside {root}; persona files must lie inside it"
                )
                return None
            return Persona.load(candidate)
        return Persona.predefined(value)
    except ConfigError as exc:
        message = str(exc).replace("\n", "; ")
        problems.append(f"{where}: {format_path(at)}: {message}")
        return None
