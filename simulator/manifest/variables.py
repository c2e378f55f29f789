"""`${VAR}` in a manifest: which variables it may read, how they are filled in, which must be set.

A manifest may come from an untrusted pull request, so `${VAR}` never reads the runner's
credentials (`ACTIONS_*`, `INPUT_*`, `RUNNER_*`, `GITHUB_TOKEN`, `GH_TOKEN`, `GITHUB_*` but a few
harmless ones), and when `SIMULATOR_ALLOWED_VARS` is set it reads only the names and globs listed
there (`variable_refusal`); the same rule applies to `api_key_env`.

Each command needs only part of a manifest: `check` re-judges finished conversations and never
calls the app, so the app's URL need not be set for it. A variable is unset-and-needed (a
problem) only in the sections the command names (`SECTIONS`, `section_of`); elsewhere it is a
warning, and the field keeps its `${VAR}` text.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigError
from ..parsing.yaml_source import YamlDocument, format_path
from ..targets.redaction import BENIGN_HEADERS
from ..text import known_secrets
from ..text.unicode_safety import lone_surrogate_fields, replace_lone_surrogates

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

#: what the fields of a manifest serve (see `section_of`); a command names those it uses
SECTIONS = frozenset({"target", "user", "judge", "checks", "simulations"})
#: `run` plays and judges conversations: every variable must be set
NEED_ALL = SECTIONS
#: `check` judges finished conversations again: only the judge and the checks are used
NEED_CHECK = frozenset({"judge", "checks"})
#: `validate` runs nothing: unset variables are warnings
NEED_NOTHING: frozenset[str] = frozenset()


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


def section_of(path: tuple) -> str:
    """What the field at `path` serves, one of `SECTIONS`.

    `target` and `user` (top level or a simulation's override) are the app and the user model;
    `judge` the judge model; `checks` the `expect` of defaults and simulations and the `gate`;
    `simulations` everything else (personas, tasks, scripted turns, names, tags, limits).
    """
    head = path[0] if path else None
    if head in ("target", "user", "judge"):
        return str(head)
    if head == "gate":
        return "checks"
    if head == "defaults":
        return "checks" if path[1:2] == ("expect",) else "simulations"
    if head == "simulations" and len(path) > 2 and path[2] in ("target", "user", "expect"):
        return "checks" if path[2] == "expect" else str(path[2])
    if head == "simulations_from":  # a dataset's template simulation: as a simulation's fields
        own = path[2:] if len(path) > 1 and isinstance(path[1], int) else path[1:]
        if own[:1] == ("simulation",) and len(own) > 1 and own[1] in ("target", "user", "expect"):
            return "checks" if own[1] == "expect" else str(own[1])
    return "simulations"


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
    Unset variables without a default are recorded in `problems` as `(path, name)` and keep their
    `${VAR}` text. A variable the manifest may not read (`variable_refusal`) is never looked up:
    it is recorded in `refused` as `(path, name, why)` and becomes "" (without `refused`, a
    `ConfigError` is raised).
    """
    if isinstance(value, str):
        if "$" not in value:
            return value

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
            if environ.get(name):
                return environ[name]
            if default is not None:
                return default
            if problems is not None:
                problems.append((path, name))
            return match.group(0)

        return _VARIABLE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: interpolate(v, environ, path + (k,), problems, used, refused) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, environ, path + (i,), problems, used, refused) for i, v in enumerate(value)]
    return value


@dataclass
class Variables:
    """A manifest's data with `${VAR}` filled in, and what that found."""

    data: Any
    #: the variables read, with the field paths that used them
    used: dict[str, list[str]] = field(default_factory=dict)
    #: variables that may not be read, and unset ones a needed section uses
    problems: list[str] = field(default_factory=list)
    #: unset variables in sections the command does not use
    warnings: list[str] = field(default_factory=list)
    #: fields whose text held lone surrogates (path, count), now U+FFFD
    replaced: list[tuple[tuple, int]] = field(default_factory=list)


def fill_variables(
    doc: YamlDocument, environ: Mapping[str, str], need: Collection[str], app_url: str | None = None
) -> Variables:
    """Step 2 of loading: `${VAR}` filled in, `--app-url` put in place, lone surrogates replaced, and
    every credential read registered as a known secret (before anything can print it)."""
    found = resolve_variables(doc, environ, need, replaced=(("target", "url"),) if app_url else ())
    override_url(found.data, app_url, doc, found.problems)
    found.replaced = lone_surrogate_fields(found.data)  # as written, from a variable or --app-url
    if found.replaced:
        found.data = replace_lone_surrogates(found.data)[0]
    register_secrets(found.used, environ)
    known_secrets.register_url(replace_lone_surrogates(app_url)[0])
    return found


def override_url(data: dict[str, Any], app_url: str | None, doc: YamlDocument, problems: list[str]) -> None:
    """`--app-url` (e.g. the pull request's preview deployment) puts the app somewhere else.

    A bare origin (`https://pr-42.example.com`) replaces only the scheme, host and port of the
    top-level `target.url`, which keeps its path and query: `url: ${APP_URL}/chat` becomes
    `https://pr-42.example.com/chat`. A URL with a path replaces `target.url` whole. Either way the
    variables of `target.url` need not be set. Simulations with a `url` of their own keep it.
    """
    if not app_url:
        return
    target = data.get("target")
    if isinstance(target, dict) and "callback" in target:
        problems.append(f"{doc.where(('target',))}: target: --app-url given but the target is a callback")
        return
    written = doc.data.get("target", {}).get("url") if isinstance(doc.data.get("target"), dict) else None
    data["target"] = {**(target or {}), "url": with_origin(app_url, written)}


def with_origin(app_url: str, written: Any) -> str:
    """`app_url`, or its origin with the path and query of the URL `written` in the manifest."""
    given = urlsplit(app_url)
    if given.path not in ("", "/") or given.query or not isinstance(written, str):
        return app_url
    rest = written
    variable = _VARIABLE.match(written)
    if variable is not None and variable.group(1):  # ${APP_URL}/chat: what follows the variable
        rest = written[variable.end() :]
    elif _URL.match(written):
        parts = urlsplit(written)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
    else:
        return app_url
    if rest and not rest.startswith(("/", "?")):
        return app_url  # ${HOST}.example.com: the variable is not a whole origin
    return app_url.rstrip("/") + rest


def resolve_variables(
    doc: YamlDocument, environ: Mapping[str, str], need: Collection[str], replaced: Collection[tuple] = ()
) -> Variables:
    """Fill in `${VAR}`: an unset variable is a problem in the sections `need` names, a warning elsewhere;
    none at all in the fields `replaced` names (`--app-url` takes `target.url`'s place)."""
    unset: list[tuple[tuple, str]] = []
    refused: list[tuple[tuple, str, str]] = []
    used: dict[str, list[str]] = {}
    found = Variables(interpolate(doc.data, environ, (), unset, used, refused), used)
    for where, name, why in refused:
        found.problems.append(f"{doc.where(where)}: {format_path(where)}: environment variable {name} {why}")
    for where, name in unset:
        if tuple(where) in replaced:
            continue
        line = (
            f"{doc.where(where)}: {format_path(where)}: environment variable {name} is not set "
            f"(set it, or write ${{{name}:-default}})"
        )
        (found.problems if section_of(where) in need else found.warnings).append(line)
    found.problems.extend(key_variable_problems(found.data, doc, environ))
    return found


def key_variable_problems(data: dict[str, Any], doc: YamlDocument, environ: Mapping[str, str]) -> list[str]:
    """`api_key_env` reads a variable too: the same rule as `${VAR}` (the default key names always pass)."""
    places: list[tuple[tuple, Any]] = [(("user",), data.get("user")), (("judge",), data.get("judge"))]
    for index, entry in enumerate(data.get("simulations") or []):
        places.append((("simulations", index, "user"), entry.get("user") if isinstance(entry, dict) else None))
    problems = []
    for at, config in places:
        name = config.get("api_key_env") if isinstance(config, dict) else None
        if isinstance(name, str) and name not in DEFAULT_KEY_VARS:
            why = variable_refusal(name, environ)
            if why is not None:
                where = at + ("api_key_env",)
                problems.append(f"{doc.where(where)}: {format_path(where)}: environment variable {name} {why}")
    return problems


def _sent_to_app(field_path: str) -> bool:
    match = _SENT_TO_APP.search(field_path)
    return match is not None and (match["header"] or "").lower() not in BENIGN_HEADERS


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
        value = replace_lone_surrogates(value)[0]  # as the manifest's fields hold it
        known_secrets.register_url(value)
        secret_name = bool(known_secrets.SECRET_NAME.search(name))
        sent_to_app = not _URL.match(value.strip()) and any(_sent_to_app(path) for path in paths)
        if secret_name or sent_to_app:
            known_secrets.register(value)
