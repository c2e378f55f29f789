"""Pull request code on events that run with the repository's secrets: read the manifest as data only.

A `pull_request` run from a fork gets no secrets, so whatever the pull request's manifest names
(a callback, a persona file) may run. `pull_request_target`, `workflow_run` and `issue_comment`
run in the base repository with its secrets and a write token: a workflow that checks out the
pull request there would hand them to the pull request's code. So on those events, unless the
checked-out commit is known to be the base repository's own, the manifest is loaded with
`trusted=False` (callback targets and persona files refused) before anything runs, unless the
`allow-untrusted-code` input says otherwise.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..manifest import load_manifest
from . import commands

if TYPE_CHECKING:
    from .inputs import GitHubContext, Inputs

INPUT = "allow-untrusted-code"
DOCS_SECTION = 'docs/guides/gating.md: "Untrusted pull requests"'
#: events whose runs have the base repository's secrets even when a fork's pull request caused them
EVENTS_WITH_SECRETS = ("pull_request_target", "workflow_run", "issue_comment")
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_GIT_TIMEOUT = 10


@dataclass(frozen=True)
class WorkspaceTrust:
    """Whether the manifest's checkout may run code with this job's secrets; `why` says why not."""

    trusted: bool
    why: str = ""


def _sha(value: Any) -> str | None:
    text = value.strip().lower() if isinstance(value, str) else ""
    return text if _SHA.fullmatch(text) else None


def _find_dot_git(folder: Path, top: Path) -> Path | None:
    """The nearest `.git` entry from `folder` up to `top`.

    Only `.git` entries count: a pull request cannot commit one, whereas git's own discovery
    would also accept a bare repository (HEAD, refs/, objects/) that the pull request added.
    """
    for directory in (folder, *folder.parents):
        dot_git = directory / ".git"
        if dot_git.exists():
            return dot_git
        if directory == top:
            break
    return None


def _git_dir(dot_git: Path) -> Path | None:
    """The repository folder of a `.git` folder, or of a `.git` file (`gitdir: ...`, worktrees, submodules)."""
    if dot_git.is_dir():
        return dot_git
    text = dot_git.read_text(encoding="utf-8", errors="replace").strip()
    if not text.startswith("gitdir:"):
        return None
    return (dot_git.parent / text[len("gitdir:") :].strip()).resolve()


def _git_head(git_dir: Path) -> str | None:
    """`git rev-parse HEAD` on that repository folder (no discovery, no fetching); None without git."""
    git = shutil.which("git")
    if git is None:
        return None
    # nothing of the job's environment (keys, tokens, GIT_* overrides): git needs only to be found
    env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), "GIT_NO_LAZY_FETCH": "1"}
    command = [git, f"--git-dir={git_dir}", "rev-parse", "--verify", "-q", "HEAD"]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, env=env, timeout=_GIT_TIMEOUT, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return _sha(proc.stdout) if proc.returncode == 0 else None


def _resolve_ref(git_dir: Path, ref: str, depth: int = 0) -> str | None:
    """A branch's commit from loose refs or `packed-refs` (in the worktree's folder or the common one)."""
    parts = ref.split("/")
    if depth > 5 or parts[0] != "refs" or any(part in ("", ".", "..") for part in parts):
        return None
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    for folder in dict.fromkeys((git_dir, common)):
        loose = folder / ref
        if loose.is_file():
            text = loose.read_text(encoding="utf-8", errors="replace").strip()
            if text.startswith("ref:"):
                return _resolve_ref(git_dir, text[len("ref:") :].strip(), depth + 1)
            return _sha(text)
    packed = common / "packed-refs"
    if packed.is_file():
        for line in packed.read_text(encoding="utf-8", errors="replace").splitlines():
            sha, _, name = line.partition(" ")
            if name.strip() == ref:
                return _sha(sha)
    return None


def _file_head(git_dir: Path) -> str | None:
    """HEAD read from the repository's files, for images without git; None when it is not plain."""
    head_file = git_dir / "HEAD"
    if not head_file.is_file():
        return None
    head = head_file.read_text(encoding="utf-8", errors="replace").strip()
    if head.startswith("ref:"):
        return _resolve_ref(git_dir, head[len("ref:") :].strip())
    return _sha(head)


def checked_out_commit(folder: Path, top: Path, *, use_git: bool = True) -> str | None:
    """The commit checked out in the repository holding `folder` (its `.git` searched up to `top`).

    `git` when it is installed, else the files under `.git` (the action's image has no git);
    None whenever neither gives a plain answer, so callers can fail safe.
    """
    try:
        folder, top = folder.resolve(), top.resolve()
        if not (folder == top or top in folder.parents):
            folder = top
        dot_git = _find_dot_git(folder, top)
        git_dir = _git_dir(dot_git) if dot_git is not None else None
        if git_dir is None:
            return None
        return (_git_head(git_dir) if use_git else None) or _file_head(git_dir)
    except (OSError, ValueError, RuntimeError):
        return None


def workspace_trust(
    event_name: str,
    payload: Mapping[str, Any],
    workspace: Path,
    manifest_path: Path,
    *,
    sha: str = "",
    repository: str = "",
) -> WorkspaceTrust:
    """Whether the commit checked out where the manifest lies may run code with this event's secrets.

    Events without secrets for fork pull requests (`pull_request`, `push`, ...) are trusted as
    before. On `pull_request_target`, `workflow_run` from a fork and `issue_comment` on a pull
    request, the workspace is trusted only when its commit is the base repository's: the event's
    `GITHUB_SHA` or the pull request's base. The pull request's head, its merge commit, any other
    commit and a commit that cannot be read are untrusted.
    """
    if event_name not in EVENTS_WITH_SECRETS:
        return WorkspaceTrust(True)
    head: set[str | None] = set()
    base = {_sha(sha)}
    if event_name == "pull_request_target":
        pull = payload.get("pull_request") or {}
        head.add(_sha((pull.get("head") or {}).get("sha")))
        base.add(_sha((pull.get("base") or {}).get("sha")))
    elif event_name == "workflow_run":
        run = payload.get("workflow_run") or {}
        head_repository = (run.get("head_repository") or {}).get("full_name")
        own_repository = (payload.get("repository") or {}).get("full_name") or repository
        if head_repository and head_repository == own_repository:
            return WorkspaceTrust(True)
        head.add(_sha(run.get("head_sha")))
    elif not (payload.get("issue") or {}).get("pull_request"):
        return WorkspaceTrust(True)  # a comment on an issue: no pull request involved
    head.discard(None)
    base.discard(None)
    folder = manifest_path.parent
    commit = checked_out_commit(folder, workspace)
    run = f"a {event_name} run"
    if commit is None:
        return WorkspaceTrust(False, f"the checked-out commit could not be read on {run}")
    if commit in head:
        return WorkspaceTrust(False, f"the pull request's head ({commit[:12]}) is checked out on {run}")
    if commit in base:
        return WorkspaceTrust(True)
    return WorkspaceTrust(False, f"the checked-out commit {commit[:12]} is not the base repository's on {run}")


def guard_manifest(
    trust: WorkspaceTrust, manifest_path: Path, root: Path, *, allow: bool, environ: Mapping[str, str]
) -> None:
    """Before anything runs: in an untrusted workspace, refuse every callback and persona file at once.

    Raises `ManifestError` (each refused field on its line, with the input that allows it).
    A missing manifest is left for the run to report.
    """
    if trust.trusted:
        return
    if allow:
        commands.warning(
            f"{trust.why}; {INPUT} is true, so the manifest's callbacks and persona files run with this "
            "job's secrets and token.",
            title="Untrusted code allowed",
        )
        return
    print(f"Callback targets and persona files are refused: {trust.why} ({INPUT}: false).", flush=True)
    if not manifest_path.is_file():
        return
    note = (
        f"refused because {trust.why}, which has the repository's secrets; allow it with the input "
        f"{INPUT}: true ({DOCS_SECTION})"
    )
    load_manifest(manifest_path, root=root, environ=environ, trusted=False, untrusted_note=note)


def refuse_untrusted_code(ctx: GitHubContext, inputs: Inputs, environ: Mapping[str, str]) -> None:
    """The action's check, before it runs anything: see `workspace_trust` and `guard_manifest`."""
    path = ctx.workspace / inputs.manifest
    trust = workspace_trust(ctx.event_name, ctx.event, ctx.workspace, path, sha=ctx.sha, repository=ctx.repository)
    guard_manifest(trust, path, ctx.workspace, allow=inputs.allow_untrusted_code, environ=environ)
