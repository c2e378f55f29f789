"""The parts of a manifest's simulations: personas, checks, defaults, targets, and where files may lie.

Persona files and `file.py:function` callbacks must lie inside the root (see `resolve_root`).
With a `refusal` (a manifest loaded with `trusted=False`) they are refused altogether, since they
would run or read what the manifest's own source chose.

A manifest may hold thousands of simulations naming the same few personas and sharing the
defaults' checks, so each distinct persona is read and validated once per load, and each check
the defaults give is built once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import build_checks
from ..errors import ConfigError, field_errors
from ..parsing.schema_check import schema_errors
from ..parsing.yaml_source import YamlDocument, copy_plain, format_path
from ..persona import Persona, predefined_personas
from ..state.requests import PLACEHOLDERS, SETUP_PLACEHOLDERS, StateRequest, request_list

if TYPE_CHECKING:
    import ast

DEFAULT_MAX_TURNS = 6
DEFAULT_REPEAT = 1


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


def deep_merge(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """`override` on top of a copy of `base`, key by key at every depth: a mapping merges into the
    mapping it overrides, `None` (`key: null`) removes the key, anything else (a list, a string, a
    number) replaces the value."""
    merged = copy_plain(base or {})
    for key, value in (override or {}).items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            below = merged.get(key)
            merged[key] = deep_merge(below if isinstance(below, dict) else None, value)
        else:
            merged[key] = copy_plain(value)
    return merged


def settings(entry: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A simulation's limits and tags: its own, else the defaults', else the built-in ones."""
    return {
        "max_turns": entry.get("max_turns", defaults.get("max_turns", DEFAULT_MAX_TURNS)),
        "tags": sorted(set(defaults.get("tags", [])) | set(entry.get("tags", []))),
        "turn_timeout": entry.get("turn_timeout", defaults.get("turn_timeout")),
    }


def check_callback(
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
    where = at + ("callback",)
    if module.endswith(".py") and not is_inside(folder / module, root):
        problems.append(
            f"{doc.where(where)}: {format_path(where)}: {module!r} is outside {root}; callback files must lie inside it"
        )
    elif module.endswith(".py") and not (folder / module).is_file():
        problems.append(f"{doc.where(where)}: {format_path(where)}: callback file {folder / module} not found")
    elif module.endswith(".py") and (why := missing_callback(folder / module, spec.rpartition(":")[2])):
        problems.append(f"{doc.where(where)}: {format_path(where)}: {why}")


def missing_callback(file: Path, attribute: str) -> str | None:
    """Why `file` cannot hold the callback `attribute`, read without running it; None when it may.

    `validate` must not run the manifest's code, yet a misspelt function only showed at `run`. The
    file is parsed, not imported: a name bound nowhere at its top level (no def, class, assignment
    or import) is missing, unless the file could make names up (`import *`, `__getattr__`, `globals()`,
    `exec`, `setattr`, an assignment to an attribute of that name), wherever in the file it does.
    """
    import ast  # only for a manifest with a callback file
    import difflib

    try:
        tree = ast.parse(file.read_bytes(), filename=str(file))
    except SyntaxError as exc:
        return f"{file.name}:{exc.lineno}: not valid Python: {exc.msg}"
    except (OSError, ValueError):
        return None  # unreadable or NUL bytes: the import at run time says what is wrong
    bound: set[str] = set()
    for node in _top_level(tree.body):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            if any(alias.name == "*" for alias in node.names):
                return None
            bound.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            bound.add(node.id)
    name = attribute.split(".")[0]
    # anywhere in the file, a function run at import may bind it: `global respond`, `globals()[...]`,
    # `exec`, `setattr`, or an attribute of the module itself (`sys.modules[__name__].respond = ...`)
    for node in ast.walk(tree):
        if isinstance(node, ast.Global):
            bound.update(node.names)
        elif _may_bind(node, name):
            return None
    if name in bound or "__getattr__" in bound:
        return None
    functions = sorted(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))
    close = difflib.get_close_matches(name, sorted(bound), n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"its functions: {', '.join(functions) or 'none'}"
    return f"{file.name} defines no {name!r} ({hint})"


def _may_bind(node: ast.AST, name: str) -> bool:
    """Whether `node` may bind `name` in the module in a way a parse cannot follow."""
    import ast

    if isinstance(node, ast.Name):
        return node.id in ("globals", "vars", "exec", "setattr")
    return isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) and node.attr == name


def _top_level(body: list[ast.stmt]) -> Iterator[ast.AST]:
    """Every node of the module's own code, not inside a function or class body (those bind their own names)."""
    import ast

    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            stack.extend(node.decorator_list if not isinstance(node, ast.Lambda) else [])
            continue
        stack.extend(ast.iter_child_nodes(node))


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


def add_problems(exc: ConfigError, where: tuple, doc: YamlDocument, problems: list[str]) -> None:
    """Each problem of `exc` at the line of its field (a `FieldError`'s, inside the value at `where`)."""
    for field, message in field_errors(exc):
        line = f"{doc.where(where + tuple(field))}: {message}"
        if line not in problems:
            problems.append(line)


#: `expect` keys whose simulation values add to the defaults' instead of replacing them
ADDED_TO_DEFAULTS = frozenset({"contains", "not_contains", "regex", "not_regex"})


class CheckBuilder:
    """Each simulation's checks; each kind is built on its own, so one bad check hides no other."""

    def __init__(self, doc: YamlDocument, problems: list[str]) -> None:
        self.doc = doc
        self.problems = problems
        self._from_defaults: dict[str, list[Any]] = {}

    def build(self, defaults: dict[str, Any], own: dict[str, Any], at: tuple) -> list[Any]:
        """The checks of the defaults' `expect` and the simulation's own at `at`.

        A simulation's value of a key replaces the defaults' one, except for the text checks in
        `ADDED_TO_DEFAULTS`: their values add to the defaults' (a safety `not_contains` set as a
        default never vanishes), unless the simulation's long form says `replace: true`.
        """
        checks: list[Any] = []
        for key in dict.fromkeys([*defaults, *own]):
            config = own.get(key)
            keeps_default = key in defaults and (
                key not in own
                or (key in ADDED_TO_DEFAULTS and not (isinstance(config, dict) and config.get("replace")))
            )
            if keeps_default:
                checks.extend(self._default(key, defaults[key]))
            if key in own:
                checks.extend(self._built(key, config, at + ("expect", key)))
        return checks

    def _default(self, key: str, config: Any) -> list[Any]:
        if key not in self._from_defaults:
            self._from_defaults[key] = self._built(key, config, ("defaults", "expect", key))
        return self._from_defaults[key]

    def _built(self, key: str, config: Any, where: tuple) -> list[Any]:
        try:
            return build_checks({key: config}, source=format_path(where[:-1]))
        except ConfigError as exc:
            add_problems(exc, where, self.doc, self.problems)
            return []


class StateRequestBuilder:
    """Each simulation's `setup` and `teardown` requests: its own, else the defaults' (read once)."""

    KINDS = (("setup", SETUP_PLACEHOLDERS), ("teardown", PLACEHOLDERS))

    def __init__(self, defaults: dict[str, Any], doc: YamlDocument, problems: list[str]) -> None:
        self.doc = doc
        self.problems = problems
        self._defaults = {key: self._read(defaults.get(key), ("defaults", key), known) for key, known in self.KINDS}

    def build(self, entry: dict[str, Any], at: tuple) -> dict[str, list[StateRequest]]:
        """`setup` and `teardown` of the simulation at `at`."""
        return {
            key: self._read(entry[key], at + (key,), known) if key in entry else self._defaults[key]
            for key, known in self.KINDS
        }

    def _read(self, config: Any, where: tuple, known: tuple[str, ...]) -> list[StateRequest]:
        if config is None:
            return []
        try:
            return [request for request, _ in request_list(config, format_path(where), known)]
        except ConfigError as exc:
            add_problems(exc, where, self.doc, self.problems)
            return []


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system
        return False


class PersonaResolver:
    """An inline mapping, a predefined name or a file; with a `refusal`, never a file.

    A name or path is read and validated once; each simulation gets its own copy.
    """

    def __init__(self, folder: Path, root: Path, refusal: str | None = None) -> None:
        self.folder = folder
        self.root = root
        self.refusal = refusal
        self._named: dict[str, Persona | str] = {}

    def resolve(self, value: Any, doc: YamlDocument, at: tuple, problems: list[str]) -> Persona | None:
        """The persona `value` (at `at` in `doc`) describes, or None with the problem added."""
        where = doc.where(at)
        if isinstance(value, dict):
            try:
                return Persona.from_dict(value, source=f"{where}: {format_path(at)}")
            except ConfigError as exc:
                found: Persona | str = str(exc).replace("\n", "; ")
        else:
            if value not in self._named:
                self._named[value] = self._by_name(value)
            found = self._named[value]
        if isinstance(found, str):
            problems.append(f"{where}: {format_path(at)}: {found}")
            return None
        return found.copy()

    def _by_name(self, value: str) -> Persona | str:
        """The persona a name or path gives, or what is wrong with it."""
        candidate = self.folder / value
        looks_like_path = candidate.suffix.lower() in (".yaml", ".yml") or "/" in value or "\\" in value
        try:
            if self.refusal is not None:
                predefined = value.lower() in {name.lower() for name in predefined_personas()}
                if looks_like_path or (not predefined and _is_file(candidate)):
                    return (
                        f"{value!r} would read a persona file "
                        f"(a predefined persona or an inline mapping is fine); {self.refusal}"
                    )
                return Persona.predefined(value)
            if looks_like_path or _is_file(candidate):
                if not is_inside(candidate, self.root):
                    return f"{value!r} is outside {self.root}; persona files must lie inside it"
                return Persona.load(candidate)
            return Persona.predefined(value)
        except ConfigError as exc:
            return str(exc).replace("\n", "; ")
