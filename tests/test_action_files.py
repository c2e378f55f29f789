"""The container action's files agree with each other: action.yml, its reference page
(docs/reference/action.md), Dockerfile, lock file."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from packaging.requirements import Requirement

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
LOCK = "requirements/action.lock"


def action_inputs() -> list[str]:
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    return list(action.get("inputs") or {})


#: the page that documents the action's inputs: generated from action.yml (tools/docs_reference.py)
ACTION_PAGE = "docs/reference/action.md"


def page_section(page: str, title_word: str) -> list[str] | None:
    """Lines of the section of `page` whose heading contains `title_word`, up to the next heading of
    the same or a higher level; None when there is no such heading."""
    lines = (REPO / page).read_text(encoding="utf-8").splitlines()
    start = level = None
    in_fence = False
    for i, line in enumerate(lines):
        if line.startswith("```"):
            in_fence = not in_fence
        heading = None if in_fence else re.match(r"^(#{1,6})\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        if start is None:
            if re.search(rf"\b{title_word}\b", heading.group(2), re.IGNORECASE):
                start, level = i + 1, len(heading.group(1))
        elif len(heading.group(1)) <= level:
            return lines[start:i]
    return None if start is None else lines[start:]


def test_every_action_input_is_documented_in_the_inputs_table() -> None:
    inputs = action_inputs()
    assert inputs, "action.yml declares no inputs"
    section = page_section(ACTION_PAGE, "Inputs")
    assert section is not None, (
        f"{ACTION_PAGE} has no section with 'Inputs' in its heading; run `python tools/docs_reference.py`: "
        "its table has one row | `<input>` | per input of action.yml: " + ", ".join(inputs)
    )
    documented = [m.group(1) for line in section if (m := re.match(r"^\|\s*`([^`]+)`\s*\|", line))]
    assert documented == inputs, (
        f"{ACTION_PAGE}'s Inputs table (rows | `name` |) is not action.yml's inputs in order: "
        f"missing {[n for n in inputs if n not in documented]}, unknown {[n for n in documented if n not in inputs]}"
    )


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (REPO / "Dockerfile").read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):  # comments, also inside continuations
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), " ".join(args.split())))
    assert not pending, "the Dockerfile ends with a line continuation"
    return instructions


def index_of(instructions: list[tuple[str, str]], keyword: str, predicate) -> int:
    for i, (kw, args) in enumerate(instructions):
        if kw == keyword and predicate(args):
            return i
    return -1


def test_dockerfile_installs_the_hashed_lock_before_copying_the_source() -> None:
    instructions = dockerfile_instructions()
    copy_lock = index_of(instructions, "COPY", lambda a: LOCK in a.split()[:-1])
    install_lock = index_of(
        instructions,
        "RUN",
        lambda a: "pip install" in a and "--require-hashes" in a and re.search(rf"(-r|--requirement)[ =]\S*{LOCK}", a),
    )
    copy_source = index_of(instructions, "COPY", lambda a: any(s.rstrip("/") == "simulator" for s in a.split()[:-1]))
    assert copy_lock >= 0, f"the Dockerfile never copies {LOCK}"
    assert install_lock >= 0, f"the Dockerfile never runs pip install --require-hashes -r {LOCK}"
    assert copy_source >= 0, "the Dockerfile never copies simulator/"
    assert copy_lock < install_lock < copy_source, (
        "the lock must be copied and installed (its own cached layer) before COPY simulator"
    )
    # The source runs in place: no install after it, so nothing unpinned (a build backend) gets in.
    later_installs = [a for kw, a in instructions[copy_source:] if kw == "RUN" and "pip install" in a]
    assert not later_installs, later_installs
    copied = {s.rstrip("/") for kw, a in instructions if kw == "COPY" for s in a.split()[:-1]}
    assert {"simulator", "personas", "entrypoint.py"} <= copied


def test_dockerfile_base_entrypoint_and_user() -> None:
    instructions = dockerfile_instructions()
    froms = [args for kw, args in instructions if kw == "FROM"]
    assert froms and re.fullmatch(r"python:3\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", froms[-1]), froms
    assert ("ENTRYPOINT", '["python", "/app/entrypoint.py"]') in instructions
    # Docker actions run as root; a USER would lose write access to GITHUB_WORKSPACE.
    assert not [args for kw, args in instructions if kw == "USER"]


def test_lock_pins_every_runtime_dependency_with_hashes() -> None:
    text = (REPO / LOCK).read_text(encoding="utf-8")
    requirements = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2] if text.startswith("#") else text)
    pinned: dict[str, str] = {}
    for block in requirements:
        block = block.strip()
        if not block or block.startswith("#"):
            continue
        m = re.match(r"([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", block)
        assert m, f"not pinned with ==: {block.splitlines()[0]}"
        assert "--hash=sha256:" in block, f"{m.group(1)} has no --hash"
        pinned[re.sub(r"[-_.]+", "-", m.group(1)).lower()] = m.group(2)

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    wanted = [Requirement(req) for req in project["dependencies"] + project["optional-dependencies"]["action"]]
    # the image's Python: a dependency for older ones only (a backport) has no place in its lock
    image_python = re.search(r"^FROM python:(\d+\.\d+)", (REPO / "Dockerfile").read_text(), re.M).group(1)
    names = {
        re.sub(r"[-_.]+", "-", req.name).lower()
        for req in wanted
        if req.marker is None or req.marker.evaluate({"python_version": image_python})
    }
    assert names - set(pinned) == set(), f"dependencies of .[action] missing from {LOCK}"
    assert "uv pip compile" in text.splitlines()[1], f"{LOCK} no longer says how it was generated"
    assert text.splitlines()[1].split("#", 1)[1].strip() in (REPO / "requirements/README.md").read_text(
        encoding="utf-8"
    ), "requirements/README.md must give the lock's regeneration command"


def test_the_image_compiles_the_package_so_no_run_compiles_it_again(tmp_path: Path) -> None:
    """The Dockerfile's `compileall` step, run as the build runs it on the copied files: with the
    image's PYTHONDONTWRITEBYTECODE, the entrypoint's imports then load every module of the package
    from its compiled file (none is compiled at run time, and none is written)."""
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    (step,) = re.findall(r"^RUN (python -m compileall .*)$", dockerfile, re.MULTILINE)
    app = tmp_path / "app"
    shutil.copytree(REPO / "simulator", app / "simulator", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "entrypoint.py", app / "entrypoint.py")
    command = shlex.split(step)
    command[0] = sys.executable
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    subprocess.run(command, cwd=app, env=env, check=True)
    imports = "import simulator.cli, simulator.github.action"
    done = subprocess.run([sys.executable, "-v", "-c", imports], cwd=app, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    ours = [line for line in done.stderr.splitlines() if "code object from" in line and str(app) in line]
    assert len(ours) > 50 and all(".pyc" in line for line in ours), ours[:5]
    assert not [line for line in done.stderr.splitlines() if "wrote" in line and str(app) in line]
