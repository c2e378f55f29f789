"""Each public package's `__all__` names exactly what it exports, in the order ruff's RUF022 keeps.

A name imported into a package's `__init__` and left out of `__all__` (or listed and no longer
imported) fails here; so does an `__all__` out of isort-style order: SCREAMING_SNAKE_CASE
constants, then CamelCase classes, then everything else, each group in natural order.
"""

from __future__ import annotations

import importlib
import re
import types

import pytest

PACKAGES = ["simulator", "simulator.checks", "simulator.report", "simulator.targets", "simulator.targets.http"]


def _isort_key(name: str) -> tuple[int, list[str | int]]:
    """RUF022's order: constants (more than one character, every cased one upper case), then classes
    (an upper-case first letter), then the rest; within each, digit runs compare as numbers."""
    kind = 0 if len(name) > 1 and name.isupper() else 1 if name[:1].isupper() else 2
    return kind, [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _public_names(module: types.ModuleType) -> list[str]:
    """What the package's namespace offers: its own names that are not private, dunder, submodules
    or the `from __future__ import annotations` feature."""
    return sorted(
        (
            name
            for name, value in vars(module).items()
            if not name.startswith("_") and name != "annotations" and not isinstance(value, types.ModuleType)
        ),
        key=_isort_key,
    )


def test_the_sort_is_ruffs() -> None:
    names = ["b", "A_2", "Class", "a10", "CONST", "a2", "A_10", "X", "_x"]
    assert sorted(names, key=_isort_key) == ["A_2", "A_10", "CONST", "Class", "X", "_x", "a2", "a10", "b"]


@pytest.mark.parametrize("package", PACKAGES)
def test_all_lists_every_public_name_sorted(package: str) -> None:
    module = importlib.import_module(package)
    assert module.__all__ == _public_names(module)
