"""The wheel must carry every subpackage and data file the library loads at run time."""

from __future__ import annotations

import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def test_every_subpackage_and_data_folder_is_listed_in_pyproject() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    folders = [p.relative_to(REPO / "simulator").parts for p in (REPO / "simulator").rglob("*") if p.is_dir()]
    on_disk = {"simulator"} | {
        ".".join(("simulator", *parts)) for parts in folders if not any(part.startswith("__") for part in parts)
    }
    on_disk.add("simulator.personas")
    assert on_disk == listed
    assert config["package-dir"]["simulator.personas"] == "personas"
    for folder in ("schemas", "templates"):
        suffixes = {p.suffix for p in (REPO / "simulator" / folder).iterdir() if p.is_file()}
        patterns = config["package-data"][f"simulator.{folder}"]
        assert all(any(pattern.endswith(s) for pattern in patterns) for s in suffixes - {".py"})


def test_the_library_and_cli_do_not_need_requests() -> None:
    """`requests` belongs to the action extra: the core installs and runs without it."""
    import subprocess

    code = (
        "import sys, simulator, simulator.cli, simulator.run.pipeline; assert 'requests' not in sys.modules, 'requests'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert not any(dep.startswith("requests") for dep in config["dependencies"])
    assert any(dep.startswith("requests") for dep in config["optional-dependencies"]["action"])
