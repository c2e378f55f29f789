"""Where a manifest's files may lie, and whether a `file.py:function` callback is there to call.

Persona files and callback files must lie inside the root (see `resolve_root`). With a `refusal`
(a manifest loaded with `trusted=False`) callbacks are refused altogether, since they would run
what the manifest's own source chose. A callback file is parsed, never imported, to tell that its
function exists: `validate` runs none of the manifest's code.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from ..parsing.yaml_source import YamlDocument, format_path

if TYPE_CHECKING:
    import ast


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def is_inside(path: str | Path, root: str | Path) -> bool:
    """True when `path`, symlinks resolved, is `root` or lies under it (`root` already resolved)."""
    try:
        return _inside(Path(path).resolve(), Path(root))
    except (OSError, ValueError, RuntimeError):  # a NUL byte, a name too long, a symlink loop
        return False


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):  # a name too long for the file system
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


@dataclass(frozen=True)
class FileAccess:
    """Where a manifest's files (personas, callbacks, datasets) are read from: its `folder`, and only
    inside `root`; with a `refusal` (an untrusted manifest), not at all, and why."""

    folder: Path
    root: Path
    refusal: str | None = None


def check_callback(target: Any, at: tuple, doc: YamlDocument, access: FileAccess, problems: list[str]) -> None:
    """A `file.py:function` callback must lie inside the root; module callbacks are imported as usual.

    With a `refusal` (an untrusted manifest) every callback is refused: a module callback runs
    code just as a file does (the manifest's folder goes first on `sys.path`, and any installed
    module's function would be called with the conversation's text).
    """
    spec = target.get("callback") if isinstance(target, dict) else None
    if not isinstance(spec, str):
        return
    folder, root = access.folder, access.root
    if access.refusal is not None:
        where = at + ("callback",)
        problems.append(f"{doc.where(where)}: {format_path(where)}: {spec!r} would run Python code; {access.refusal}")
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


def callback_problems(targets: list[tuple[Any, tuple, YamlDocument]], access: FileAccess) -> list[str]:
    """What is wrong with each target's callback (the target's settings, where they are written, and
    the document they are written in)."""
    problems: list[str] = []
    for target, at, doc in targets:
        check_callback(target, at, doc, access, problems)
    return problems


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
