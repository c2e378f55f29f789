"""A project folder the CLI can run without any server: an app callback file and a manifest."""

from __future__ import annotations

from pathlib import Path


def callback_project(folder: Path, returns: str, simulations: str) -> Path:
    """`app.py` whose `respond(q, h, m)` body is `returns` (one line: `return ...` or `raise ...`),
    and `m.yml` with `simulations` (YAML list items) talking to it; the manifest's path."""
    (folder / "app.py").write_text(f"def respond(q, h, m):\n    {returns}\n")
    manifest = folder / "m.yml"
    manifest.write_text("version: 1\ntarget: {callback: 'app.py:respond'}\nsimulations:\n" + simulations)
    return manifest
