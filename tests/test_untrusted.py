"""Untrusted pull requests: on events with secrets, a pull request's manifest may not run its own code.

The action's tests run `entrypoint.py` as the runner runs the container, in a workspace that is a
real git repository: the event payload names its commits as the pull request's head or base.
Callback modules write a marker file when imported, so "refused" also means "never ran".
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from simulator.github.untrusted import checked_out_commit, workspace_trust
from tests.servers.chat_app import FakeChatApp
from tests.test_action import ActionRun, make_workspace, run_entrypoint

REPOSITORY = "octo-org/octo-repo"
FORK = "someone/fork"

CALLBACKS_MANIFEST = """\
version: 1
target: {callback: "app.py:respond"}
simulations:
  - name: from-file
    persona: people/ann.yaml
    task: Say hello
    turns: ["Hello there"]
  - name: from-module
    persona: jane
    task: Say hello
    turns: ["Hello there"]
    target: {callback: "evil_module:respond"}
"""
CALLBACK_ONLY_MANIFEST = """\
version: 1
target: {callback: "app.py:respond"}
simulations:
  - name: greet
    persona: jane
    task: Say hello
    turns: ["Hello there"]
    expect: {contains: "you said"}
"""
PERSONA_FILE_MANIFEST = """\
version: 1
target: {url: "${APP_URL}"}
simulations:
  - name: inline
    persona: {name: Bo, profile: A student}
    task: Say hello
    turns: ["Hello there"]
  - name: from-file
    persona: people/ann.yaml
    task: Say hello
    turns: ["Hello there"]
"""
CALLBACK_CODE = """\
from pathlib import Path

Path({marker!r}).write_text("imported")


def respond(question, conversation_history, meta_data):
    return "you said " + question
"""
ANN = "name: Ann\nprofile: A teacher who wants a refund\n"


def git(folder: Path, *args: str) -> str:
    identity = ["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false"]
    proc = subprocess.run(["git", *identity, *args], cwd=folder, check=True, capture_output=True, text=True)
    return proc.stdout.strip()


def commit(folder: Path, message: str) -> str:
    git(folder, "add", "-A")
    git(folder, "commit", "-q", "-m", message)
    return git(folder, "rev-parse", "HEAD")


def pull_request_repo(tmp_path: Path, manifest: str) -> tuple[Path, str, str]:
    """A workspace whose base commit and pull request commit both hold `manifest` and its code.

    Returns (workspace, base sha, head sha), with the pull request's head checked out on branch `pr`.
    """
    workspace = make_workspace(tmp_path, manifest)
    github = workspace / ".github"
    for module in ("app", "evil_module"):
        (github / f"{module}.py").write_text(CALLBACK_CODE.format(marker=str(tmp_path / f"imported-{module}")))
    (github / "people").mkdir()
    (github / "people" / "ann.yaml").write_text(ANN)
    git(workspace, "init", "-q", "-b", "main")
    base = commit(workspace, "base")
    git(workspace, "checkout", "-q", "-b", "pr")
    (workspace / "CHANGES.md").write_text("a change from the fork\n")
    head = commit(workspace, "the pull request")
    return workspace, base, head


def imported(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.glob("imported-*"))


def run_on(
    tmp_path: Path,
    workspace: Path,
    event_name: str,
    payload: dict,
    sha: str,
    inputs: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
) -> ActionRun:
    event = tmp_path / f"{event_name}.json"
    event.write_text(json.dumps(payload))
    github_env = {"GITHUB_EVENT_NAME": event_name, "GITHUB_EVENT_PATH": str(event), "GITHUB_SHA": sha}
    return run_entrypoint(tmp_path, workspace, None, inputs or {}, {**github_env, **(env or {})})


def target_payload(base: str, head: str, head_repo: str = FORK) -> dict:
    return {
        "action": "synchronize",
        "pull_request": {
            "number": 7,
            "head": {"sha": head, "repo": {"full_name": head_repo}},
            "base": {"sha": base, "repo": {"full_name": REPOSITORY}},
        },
        "repository": {"full_name": REPOSITORY},
    }


def workflow_run_payload(head: str, head_repo: str = FORK) -> dict:
    return {
        "action": "completed",
        "workflow_run": {"event": "pull_request", "head_sha": head, "head_repository": {"full_name": head_repo}},
        "repository": {"full_name": REPOSITORY},
    }


def errors(run: ActionRun) -> list[str]:
    return [line for line in run.stdout.splitlines() if line.startswith("::error title=Invalid manifest")]


# --- the action, run as the runner runs it ---------------------------------------------------


def test_pull_request_target_at_the_head_refuses_every_callback_and_persona_file_at_once(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACKS_MANIFEST)
    run = run_on(tmp_path, workspace, "pull_request_target", target_payload(base, head), base)
    assert run.code == 2, run.stdout + run.stderr
    found = errors(run)
    file = f"file={workspace}/.github/simulations.yml"
    assert len(found) == 3, found
    assert found[0].startswith(f"::error title=Invalid manifest,{file},line=2::target.callback: 'app.py:respond'")
    assert found[1].startswith(f"::error title=Invalid manifest,{file},line=5::simulations[0].persona:")
    assert found[2].startswith(f"::error title=Invalid manifest,{file},line=12::simulations[1].target.callback:")
    for line in found:
        assert f"the pull request's head ({head[:12]}) is checked out on a pull_request_target run" in line
        assert (
            'allow it with the input allow-untrusted-code: true (docs/guides/gating.md: "Untrusted pull requests")'
            in line
        )
    assert "'people/ann.yaml' would read a persona file" in found[1]
    assert imported(tmp_path) == []
    assert not (workspace / "simulation-results").exists()
    assert "Traceback" not in run.stdout + run.stderr


def test_allow_untrusted_code_runs_the_pull_requests_code_with_a_warning(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    run = run_on(
        tmp_path,
        workspace,
        "pull_request_target",
        target_payload(base, head),
        base,
        {"allow-untrusted-code": "true", "comment": "never"},
    )
    assert run.code == 0, run.stdout + run.stderr
    assert "::warning title=Untrusted code allowed::the pull request's head" in run.stdout
    assert run.outputs["verdict"] == "pass" and imported(tmp_path) == ["imported-app"]


def test_pull_request_target_at_the_base_runs_the_bases_own_code(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    git(workspace, "checkout", "-q", base)
    run = run_on(tmp_path, workspace, "pull_request_target", target_payload(base, head), base, {"comment": "never"})
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["verdict"] == "pass" and imported(tmp_path) == ["imported-app"]
    assert "refused" not in run.stdout


def test_persona_file_is_refused_while_inline_personas_are_fine(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, PERSONA_FILE_MANIFEST)
    with FakeChatApp() as app:
        env = {"APP_URL": app.url + "/promptflow"}
        run = run_on(tmp_path, workspace, "pull_request_target", target_payload(base, head), base, env=env)
        assert run.code == 2, run.stdout + run.stderr
        (found,) = errors(run)
        assert ",line=9::simulations[1].persona: 'people/ann.yaml' would read a persona file" in found
        assert "allow-untrusted-code: true" in found
        assert not app.requests


def test_workflow_run_from_a_fork_is_refused_and_from_the_repository_runs(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    fork = run_on(tmp_path, workspace, "workflow_run", workflow_run_payload(head), base)
    assert fork.code == 2, fork.stdout + fork.stderr
    (found,) = errors(fork)
    assert "target.callback:" in found and "on a workflow_run run" in found and "allow-untrusted-code" in found
    assert imported(tmp_path) == []
    own = run_on(
        tmp_path, workspace, "workflow_run", workflow_run_payload(head, REPOSITORY), base, {"comment": "never"}
    )
    assert own.code == 0, own.stdout + own.stderr
    assert imported(tmp_path) == ["imported-app"]


def test_plain_pull_request_from_a_fork_runs_as_before(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    run = run_on(tmp_path, workspace, "pull_request", target_payload(base, head), head, {"comment": "never"})
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["verdict"] == "pass" and imported(tmp_path) == ["imported-app"]
    assert "Untrusted" not in run.stdout and "refused" not in run.stdout


def test_without_git_the_commit_is_read_from_the_git_folder(tmp_path: Path) -> None:
    """The action's image has no git: the same decisions come from .git/HEAD and the refs."""
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    no_git = {"PATH": str(tmp_path / "empty-bin")}
    at_head = run_on(tmp_path, workspace, "pull_request_target", target_payload(base, head), base, env=no_git)
    assert at_head.code == 2 and f"the pull request's head ({head[:12]})" in at_head.stdout, at_head.stdout
    git(workspace, "checkout", "-q", "main")
    at_base = run_on(
        tmp_path, workspace, "pull_request_target", target_payload(base, head), base, {"comment": "never"}, no_git
    )
    assert at_base.code == 0, at_base.stdout + at_base.stderr
    assert imported(tmp_path) == ["imported-app"]


def test_unknown_commit_or_no_repository_is_untrusted(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    (workspace / "merge.txt").write_text("as if refs/pull/7/merge were checked out\n")
    merge = commit(workspace, "merge")
    run = run_on(tmp_path, workspace, "pull_request_target", target_payload(base, head), base)
    assert run.code == 2 and f"the checked-out commit {merge[:12]} is not the base repository's" in run.stdout
    subprocess.run(["rm", "-rf", str(workspace / ".git")], check=True)
    run = run_on(tmp_path, workspace, "pull_request_target", target_payload(base, head), base)
    assert run.code == 2 and "the checked-out commit could not be read" in run.stdout
    assert imported(tmp_path) == []


def test_pull_request_checked_out_in_a_subfolder_is_judged_by_its_own_commit(tmp_path: Path) -> None:
    """The base at the workspace root does not vouch for a pull request checked out beside it."""
    workspace, base, _ = pull_request_repo(tmp_path / "base", CALLBACK_ONLY_MANIFEST)
    git(workspace, "checkout", "-q", "main")
    pr = make_workspace(tmp_path / "pr", CALLBACK_ONLY_MANIFEST)
    (pr / ".github" / "app.py").write_text(CALLBACK_CODE.format(marker=str(tmp_path / "imported-pr")))
    git(pr, "init", "-q", "-b", "main")
    head = commit(pr, "the pull request")
    pr.rename(workspace / "pr")
    run = run_on(
        tmp_path,
        workspace,
        "pull_request_target",
        target_payload(base, head),
        base,
        {"manifest": "pr/.github/simulations.yml"},
    )
    assert run.code == 2 and f"the pull request's head ({head[:12]})" in run.stdout, run.stdout
    assert imported(tmp_path) == []


def test_bad_allow_untrusted_code_value_is_a_configuration_error(tmp_path: Path) -> None:
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(tmp_path, workspace, None, {"allow-untrusted-code": "yes"})
    assert run.code == 2 and "input allow-untrusted-code: must be true or false, got 'yes'" in run.stdout


# --- deciding whether the workspace is trusted -----------------------------------------------


def test_checked_out_commit_reads_detached_branch_packed_and_worktree_heads(tmp_path: Path) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    folder = workspace / ".github"
    for use_git in (True, False):
        assert checked_out_commit(folder, workspace, use_git=use_git) == head  # branch pr, loose ref
    git(workspace, "checkout", "-q", base)
    assert checked_out_commit(folder, workspace, use_git=False) == base  # detached
    git(workspace, "checkout", "-q", "pr")
    git(workspace, "pack-refs", "--all")
    assert not (workspace / ".git" / "refs" / "heads" / "pr").exists()
    assert checked_out_commit(folder, workspace, use_git=False) == head  # packed-refs
    git(workspace, "worktree", "add", "-q", str(tmp_path / "other"), "main")
    for use_git in (True, False):  # .git is a file pointing into the main repository
        assert checked_out_commit(tmp_path / "other" / ".github", tmp_path / "other", use_git=use_git) == base
    assert checked_out_commit(tmp_path, tmp_path, use_git=False) is None


def test_a_bare_repository_planted_by_the_pull_request_is_ignored(tmp_path: Path) -> None:
    """git's own discovery would take .github/ (HEAD, refs/, objects/) for a repository at the base."""
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    planted = workspace / ".github"
    (planted / "HEAD").write_text(base + "\n")
    (planted / "refs").mkdir()
    (planted / "objects").mkdir()
    for use_git in (True, False):
        assert checked_out_commit(planted, workspace, use_git=use_git) == head
    trust = workspace_trust("pull_request_target", target_payload(base, head), workspace, planted / "simulations.yml")
    assert not trust.trusted


@pytest.mark.parametrize(
    ("event", "payload", "trusted"),
    [
        ("push", {}, True),
        ("pull_request", {"pull_request": {"head": {"sha": "HEAD"}}}, True),
        ("pull_request_target", {"pull_request": {"head": {"sha": "HEAD"}, "base": {"sha": "BASE"}}}, False),
        ("pull_request_target", {"pull_request": {"head": {"sha": "OTHER"}, "base": {"sha": "HEAD"}}}, True),
        ("pull_request_target", {}, False),
        ("workflow_run", workflow_run_payload("HEAD"), False),
        ("workflow_run", workflow_run_payload("HEAD", REPOSITORY), True),
        ("workflow_run", {"workflow_run": {"head_sha": "HEAD"}, "repository": {"full_name": REPOSITORY}}, False),
        ("issue_comment", {"issue": {"pull_request": {"url": "x"}}}, False),
        ("issue_comment", {"issue": {}}, True),
    ],
)
def test_workspace_trust_by_event(tmp_path: Path, event: str, payload: dict, trusted: bool) -> None:
    workspace, base, head = pull_request_repo(tmp_path, CALLBACK_ONLY_MANIFEST)
    text = json.dumps(payload).replace('"HEAD"', json.dumps(head)).replace('"BASE"', json.dumps(base))
    manifest = workspace / ".github" / "simulations.yml"
    trust = workspace_trust(event, json.loads(text), workspace, manifest, sha=base, repository=REPOSITORY)
    assert trust.trusted is trusted, trust.why
