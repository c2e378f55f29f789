"""The package's shape: stages in one order, imports only downward, no cycles, each package explained.

The order below is the map in docs/architecture.md. A module may import its own stage and any
stage below it; an import upward, or a cycle between modules, fails here with the edge that breaks
it. Imports inside functions count too: they tie the modules together just the same.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "simulator"

#: every stage, lowest first; a module imports only from its own stage or one before it
STAGES = [
    "text",
    "errors",
    "parsing",
    "aio",
    "records",
    "persona",
    "llm",
    "targets",
    "state",
    "checks",
    "conversation",
    "manifest",
    "results",
    "run",
    "report",
    "generate",
    "cli",
    "github",
    "api",
    "examples",
]
#: the longest a module may grow before it is split by concern
MAX_MODULE_LINES = 400
#: the modules at the top of the package and the stage each belongs to
TOP_MODULES = {
    "simulator": "api",
    "simulator.__main__": "api",
    "simulator.errors": "errors",
    "simulator.persona": "persona",
    "simulator.cli": "cli",
    "simulator.cli_commands": "cli",
    "simulator.cli_output": "cli",
    "simulator.cli_parser": "cli",
}


def _modules() -> dict[str, Path]:
    found = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = file
    return found


def _imports(name: str, file: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that `name` imports, at any depth of its code."""
    package = name if file.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parts, *([base] if base else [])])
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _stage(module: str) -> str:
    return TOP_MODULES.get(module) or module.split(".")[1]


MODULES = _modules()
GRAPH = {name: _imports(name, file, MODULES) for name, file in MODULES.items()}


def test_every_module_belongs_to_a_known_stage() -> None:
    assert {_stage(m) for m in MODULES} <= set(STAGES), {m: _stage(m) for m in MODULES if _stage(m) not in STAGES}


def test_imports_only_go_down_the_stages() -> None:
    upward = [
        f"{module} ({_stage(module)}) imports {target} ({_stage(target)})"
        for module, targets in sorted(GRAPH.items())
        for target in sorted(targets)
        if STAGES.index(_stage(target)) > STAGES.index(_stage(module))
    ]
    assert not upward, "\n".join(upward)


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components: any with two or more modules is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in GRAPH[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(GRAPH):
        if node not in index:
            visit(node)
    assert not cycles, cycles


def test_the_checks_can_fail() -> None:
    """The graph reader sees relative, absolute and function-level imports (else the tests above pass on nothing)."""
    assert "simulator.run.plan" in GRAPH["simulator.run.runner"]
    assert "simulator.errors" in GRAPH["simulator.parsing.template"]
    assert any(len(targets) > 5 for targets in GRAPH.values())
    assert STAGES.index(_stage("simulator.github.action")) > STAGES.index(_stage("simulator.run.pipeline"))


@pytest.mark.parametrize("package", sorted(m for m, f in MODULES.items() if f.name == "__init__.py"))
def test_each_package_says_what_it_takes_gives_and_who_uses_it(package: str) -> None:
    doc = ast.get_docstring(ast.parse(MODULES[package].read_text("utf-8"))) or ""
    assert doc, f"{package} has no docstring"
    if package.count(".") == 1 and package.split(".")[1] in STAGES:
        for word in ("Takes:", "Gives:", "Used by:"):
            assert word in doc, f"{package}'s docstring does not say {word!r}"


def test_the_results_folder_names_every_report_the_report_stage_writes() -> None:
    """The results folder owns its file names (so `results` needs nothing of `report`): they must agree."""
    from simulator.report.files import RENDERERS
    from simulator.results.reading import REPORT_FILES

    assert tuple(RENDERERS) == REPORT_FILES


def test_the_exception_tree_in_errors_names_every_exception_the_package_defines() -> None:
    """`simulator/errors.py` draws the tree; a new exception class anywhere must be drawn there too."""
    doc = ast.get_docstring(ast.parse((PACKAGE / "errors.py").read_text("utf-8"))) or ""
    bases_of = {}
    for file in MODULES.values():
        for node in ast.walk(ast.parse(file.read_text("utf-8"))):
            if isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
                bases_of[node.name] = {ast.unparse(base).rpartition(".")[2] for base in node.bases}
    builtin = {"Exception", "ValueError", "KeyError", "ImportError", "CancelledError"}
    defined: set[str] = set()
    while True:  # a subclass of an exception defined here is one too
        found = {name for name, bases in bases_of.items() if bases & (builtin | defined)}
        if found == defined:
            break
        defined = found
    assert {"ManifestError", "TargetConfigError", "StorageError", "RetryLater", "FieldError"} <= defined
    missing = sorted(name for name in defined if name not in doc)
    assert not missing, f"add to the tree in simulator/errors.py: {missing}"


def test_no_module_outgrows_its_concern() -> None:
    long = {m: n for m, f in MODULES.items() if (n := len(f.read_text("utf-8").splitlines())) > MAX_MODULE_LINES}
    assert not long, f"split these by concern: {long}"
