"""The walk of `simulator run`'s load: which files it passes through, how often, and how it moves.

Runs `simulator run MANIFEST` in this process twice (the first run only imports what the second
needs) and traces the second from `cmd_run` until the plan is handed to `run_jobs`, i.e. reading,
checking and resolving the manifest and planning the run. Execution is followed at the grain of
files: a *stay* is a stretch spent in one file of the package (the innermost of its frames), a
*climb back* is a stay entered by returning to a caller's file, and a *return* is a stay in a file
the walk had already left once. A load that goes one way enters each file once: stays = files.

The second view, *the load's steps*, follows only the files of the load's steps: `manifest/load.py`
(which calls each step in turn), `read.py`, `variables.py`, `resolve.py` and `build.py` (before the
stages: `manifest.py`, `manifest_simulations.py`, `manifest_variables.py`, `target_validation.py`).
Whatever a step calls elsewhere (YAML, schema, personas, checks, target validation) counts as a
stay in that step. One way means each step is entered once and the loader is returned to once per step.

    python tools/load_walk.py [--repo PATH] [--manifest examples/simulations.yml] [--list]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from types import FrameType
from typing import Any

START, STOP = "cmd_run", "run_jobs"
#: the files of the load's steps, in this layout and the one before the stages
STEP_FILES = tuple(
    f"simulator/{name}.py"
    for name in (
        *("manifest/load", "manifest/read", "manifest/variables", "manifest/resolve", "manifest/build"),
        *("manifest", "manifest_simulations", "manifest_variables", "target_validation"),
    )
)


class Walk:
    """The stays of one traced stretch, file by file."""

    def __init__(self, package: Path, only: tuple[str, ...] = ()) -> None:
        self.package = str(package)
        #: follow only these files (paths from the package's parent); others count as their caller
        self.only = only
        self.stays: list[tuple[str, str]] = []  # (file, "call" | "return")
        self.tracing = False
        self.done = False

    def _ours(self, frame: FrameType | None) -> str | None:
        while frame is not None:
            file = frame.f_code.co_filename
            if file.startswith(self.package) and frame.f_code.co_name != "<module>":
                where = os.path.relpath(file, os.path.dirname(self.package))
                if not self.only or where in self.only:
                    return where
            frame = frame.f_back
        return None

    def profile(self, frame: FrameType, event: str, arg: Any) -> None:
        if self.done or event not in ("call", "return"):
            return
        name = frame.f_code.co_name
        if event == "call" and name == START and not self.tracing:
            self.tracing = True
        if not self.tracing:
            return
        if event == "call" and name == STOP:
            self.done = True
            return
        where = self._ours(frame if event == "call" else frame.f_back)
        if where and (not self.stays or self.stays[-1][0] != where):
            self.stays.append((where, event))

    def report(self) -> dict[str, Any]:
        files = Counter(file for file, _ in self.stays)
        return {
            "files": len(files),
            "stays": len(self.stays),
            "climbs_back": sum(1 for _, how in self.stays[1:] if how == "return"),
            "returns": len(self.stays) - len(files),
            "entered": files.most_common(),
        }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=str(Path(__file__).resolve().parent.parent), help="the checkout to walk")
    parser.add_argument("--manifest", default="examples/simulations.yml")
    parser.add_argument("--list", action="store_true", help="print every stay in order")
    args = parser.parse_args(argv)
    repo = Path(args.repo).resolve()
    sys.path.insert(0, str(repo))
    os.chdir(repo)
    from simulator import cli

    walk = Walk(repo / "simulator")
    steps = Walk(repo / "simulator", STEP_FILES)

    def both(frame: FrameType, event: str, arg: Any) -> None:
        walk.profile(frame, event, arg)
        steps.profile(frame, event, arg)

    for traced in (False, True):
        quiet = (contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()))
        with tempfile.TemporaryDirectory() as out, quiet[0], quiet[1]:
            if traced:
                sys.setprofile(both)
            try:
                cli.main(["run", args.manifest, "--out", out])
            finally:
                sys.setprofile(None)
    for title, traced_walk in (("the load", walk), ("the load's steps", steps)):
        found = traced_walk.report()
        print(
            f"{title}: {found['files']} files in {found['stays']} stays, "
            f"{found['climbs_back']} climbs back up, {found['returns']} returns to a file already left"
        )
        for file, times in found["entered"]:
            print(f"  {times:3} × {file}")
        if args.list:
            print("  " + " → ".join(file.rsplit("/", 1)[-1] for file, _ in traced_walk.stays))
    return 0


if __name__ == "__main__":
    sys.exit(main())
