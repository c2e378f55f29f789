"""The container's contract: `entrypoint.py` run exactly as the runner runs a docker action.

Each test builds a workspace, the `INPUT_*` and `GITHUB_*` variables and files, and a
pull_request event, then runs the entrypoint as a subprocess against local servers: the chat app,
the OpenAI-compatible server playing the user, and a GitHub API + Actions results service.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.github.artifact import ArtifactError, ArtifactUploader
from simulator.text import known_secrets
from tests.servers.chat_app import AppReply, FakeChatApp
from tests.servers.github_api import FakeGitHub, make_runtime_token
from tests.servers.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent
PR = 7
OPENAI_KEY = "sk-live-openai-0123456789abcdef"
APP_TOKEN = "app-bearer-token-9876543210"

#: a scripted simulation the fake app passes
GREETING = """\
  - name: scripted-greeting
    persona: jane
    task: Say hello
    turns: ["Hello there"]
    expect: {contains: "you said"}
"""

MANIFEST = (
    """\
version: 1
target:
  url: ${APP_URL}
  format: promptflow
  headers: {Authorization: "Bearer ${APP_TOKEN}"}
user: {model: sim-user, endpoint: "${USER_LLM_URL}", api_key_env: OPENAI_API_KEY}
gate: {min_pass_rate: 1.0, max_error_rate: 0.0}
simulations:
"""
    + GREETING
    + """\
  - name: llm-refund
    persona: marcus
    task: Get a refund
    max_turns: 4
    expect: {not_contains: "error"}
"""
)


@dataclass
class ActionRun:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    step_summary: str
    workspace: Path


def parse_outputs(text: str) -> dict[str, str]:
    outputs, lines = {}, iter(text.splitlines())
    for line in lines:
        match = re.match(r"^([\w-]+)<<(.+)$", line)
        if match:
            name, delimiter, value = match.group(1), match.group(2), []
            for inner in lines:
                if inner == delimiter:
                    break
                value.append(inner)
            outputs[name] = "\n".join(value)
    return outputs


def make_workspace(tmp_path: Path, manifest: str = MANIFEST) -> Path:
    workspace = tmp_path / "workspace"
    (workspace / ".github").mkdir(parents=True)
    (workspace / ".github" / "simulations.yml").write_text(manifest)
    return workspace


def run_entrypoint(
    tmp_path: Path,
    workspace: Path,
    gh: FakeGitHub | None,
    inputs: dict[str, str],
    env: dict[str, str] | None = None,
    fork: bool = False,
    runtime: bool = True,
) -> ActionRun:
    files = tmp_path / "github"
    files.mkdir(exist_ok=True)
    event = files / "event.json"
    head = "someone/fork" if fork else "octo-org/octo-repo"
    event.write_text(
        json.dumps(
            {
                "action": "synchronize",
                "pull_request": {
                    "number": PR,
                    "head": {"repo": {"full_name": head}},
                    "base": {"repo": {"full_name": "octo-org/octo-repo"}},
                },
            }
        )
    )
    outputs, summary = files / "output", files / "step_summary"
    outputs.write_text("")
    summary.write_text("")
    full_env = {
        "PATH": os.environ["PATH"],
        "HOME": str(tmp_path),
        "PYTHONPATH": str(REPO),
        "PYTHONUNBUFFERED": "1",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "GITHUB_EVENT_NAME": "pull_request",
        "GITHUB_EVENT_PATH": str(event),
        "GITHUB_OUTPUT": str(outputs),
        "GITHUB_STEP_SUMMARY": str(summary),
        "GITHUB_RUN_ID": "4242",
        "GITHUB_WORKFLOW": "simulations",
        "GITHUB_REPOSITORY": "octo-org/octo-repo",
        "RUNNER_TEMP": str(tmp_path),
    }
    if gh is not None:
        full_env.update(gh.env())
        if not runtime:
            full_env.pop("ACTIONS_RUNTIME_TOKEN", None)
            full_env.pop("ACTIONS_RESULTS_URL", None)
        inputs = {"github-token": gh.token, **inputs}
    full_env.update({f"INPUT_{name.upper()}": value for name, value in inputs.items()})
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, str(REPO / "entrypoint.py")],
        env=full_env,
        cwd=workspace,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return ActionRun(
        proc.returncode, proc.stdout, proc.stderr, parse_outputs(outputs.read_text()), summary.read_text(), workspace
    )


def user_says(*messages: str):
    """A user LLM that sends `messages` in turn (by how many it already sent), then stops."""

    def reply(request) -> str:
        sent = sum(1 for m in request.messages if m["role"] == "assistant")
        return messages[sent] if sent < len(messages) else "thanks ###STOP###"

    return reply


def standard_env(app: FakeChatApp, llm: FakeOpenAIServer) -> dict[str, str]:
    return {"APP_URL": app.url + "/promptflow", "APP_TOKEN": APP_TOKEN, "USER_LLM_URL": llm.openai_base_url}


def test_first_run_posts_comment_uploads_artifact_and_sets_outputs(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    llm.default = user_says("I want my money back")
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, standard_env(app, llm))
    assert run.code == 0, run.stdout + run.stderr
    assert run.outputs["verdict"] == "pass"
    assert run.outputs["passed"] == "2" and run.outputs["failed"] == "0" and run.outputs["errors"] == "0"
    assert run.outputs["conversations"] == "2" and run.outputs["pass-rate"] == "1.0"
    assert run.outputs["results-dir"] == "simulation-results"
    assert run.outputs["report-path"] == "simulation-results/report.html"
    assert (workspace / "simulation-results" / "report.html").is_file()
    assert all(r.headers["authorization"] == f"Bearer {OPENAI_KEY}" for r in llm.chat_requests)

    (post,) = gh.comment_posts
    assert post.path == "/api/v3/repos/octo-org/octo-repo/issues/7/comments"
    assert post.body["body"].startswith("<!-- chat-simulator:")
    assert "✅ Conversation simulations: PASS" in post.body["body"]
    assert "actions/runs/4242" in post.body["body"]
    assert run.outputs["comment-url"].endswith(f"#issuecomment-{gh.comments_on(PR)[0]['id']}")

    artifact = gh.artifacts["simulation-results"]
    assert artifact.finalized and run.outputs["artifact-id"] == str(artifact.id)
    assert artifact.sha256 == hashlib.sha256(artifact.content).hexdigest()
    files = artifact.files()
    assert set(files) == {"plan.json", "conversations.jsonl", "summary.json", "report.md", "report.html"}
    assert json.loads(files["summary.json"])["gate"]["status"] == "pass"
    assert f"artifacts/{artifact.id}" in post.body["body"]
    assert "Conversation simulations: PASS" in run.step_summary

    for path in [workspace / "simulation-results", *(workspace / "simulation-results").iterdir()]:
        mode = path.stat().st_mode & 0o777
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    assert "::group::scripted-greeting: pass (1/1 passed)" in run.stdout


def test_second_run_updates_the_same_comment_past_many_pages(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    llm.default = user_says("refund please")
    gh.add_comments(PR, 150)
    workspace = make_workspace(tmp_path)
    first = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, standard_env(app, llm))
    assert first.code == 0, first.stdout
    gh.add_comments(PR, 30, body="later noise")
    app.default = lambda request: AppReply(text="Sorry, an error occurred.")
    gh.runtime_token = make_runtime_token("run-backend-2", "job-backend-2")  # the next push is a new run
    second = run_entrypoint(
        tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, {**standard_env(app, llm), "GITHUB_RUN_ID": "4243"}
    )
    assert second.code == 1, second.stdout
    assert len(gh.comment_posts) == 1 and len(gh.comment_patches) == 1
    marked = [c for c in gh.comments_on(PR) if c["body"].startswith("<!-- chat-simulator:")]
    assert len(marked) == 1 and "❌ Conversation simulations: FAIL" in marked[0]["body"]
    assert gh.comment_patches[0].path.endswith(f"/issues/comments/{marked[0]['id']}")
    pages = [r for r in gh.api_requests if r.method == "GET" and "/issues/7/comments" in r.path]
    assert any(r.query.get("page") == "2" for r in pages)
    assert second.outputs["verdict"] == "fail" and second.outputs["failed"] == "2"


def test_gate_failure_annotates_the_manifest_line_and_fail_on_decides_the_exit(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    llm.default = user_says("hello")
    app.default = lambda request: AppReply(text="An error occurred.")
    workspace = make_workspace(tmp_path)
    env = standard_env(app, llm)
    failed = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY, "comment": "never"}, env)
    assert failed.code == 1
    assert "::error title=Simulation scripted-greeting failed,file=.github/simulations.yml,line=9::" in failed.stdout
    assert "::error title=Simulation llm-refund failed,file=.github/simulations.yml,line=14::" in failed.stdout
    assert not gh.comment_posts
    never = run_entrypoint(
        tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY, "comment": "never", "fail-on": "never"}, env
    )
    assert never.code == 0 and never.outputs["verdict"] == "fail"
    errors_only = run_entrypoint(
        tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY, "comment": "never", "fail-on": "errors"}, env
    )
    assert errors_only.code == 0


def test_report_url_links_each_failed_conversation_in_the_comment(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    llm.default = user_says("hello")
    app.default = lambda request: AppReply(text="An error occurred.")
    workspace = make_workspace(tmp_path)
    env = standard_env(app, llm)
    published = "https://reports.example/octo-repo/runs/42/report.html"
    run = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY, "report-url": published}, env)
    assert run.code == 1, run.stdout
    (body,) = [c["body"] for c in gh.comments_on(PR)]
    assert f'<a href="{published}#scripted-greeting/1">' in body and f'<a href="{published}#llm-refund/1">' in body
    bad = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY, "report-url": "reports/x.html"}, env)
    assert bad.code == 2 and "input report-url: must be an http(s) URL" in bad.stdout


def test_on_failure_comment_mode_stays_quiet_when_passing(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    llm.default = user_says("hi")
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(
        tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY, "comment": "on-failure"}, standard_env(app, llm)
    )
    assert run.code == 0 and not gh.comment_posts and run.outputs["comment-url"] == ""


def test_fork_pr_without_key_or_write_access_still_reports(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    gh.read_only = True
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(tmp_path, workspace, gh, {}, standard_env(app, llm), fork=True)
    assert run.code == 0, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr
    assert "::notice title=LLM key not available::Skipped 1 simulation(s)" in run.stdout
    assert "secrets are not passed to workflows run from forks" in run.stdout
    assert "::warning title=No pull request comment::" in run.stdout and "read-only" in run.stdout
    assert not llm.chat_requests
    assert run.outputs["conversations"] == "1" and run.outputs["verdict"] == "pass"
    assert "Skipped 1 simulation(s)" in run.step_summary
    assert "scripted-greeting" in run.step_summary and run.outputs["comment-url"] == ""


def test_no_runtime_token_keeps_results_in_the_workspace(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    llm.default = user_says("hi")
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, standard_env(app, llm), runtime=False)
    assert run.code == 0
    assert "::notice title=Results not uploaded::" in run.stdout and "actions/upload-artifact@v4" in run.stdout
    assert not gh.artifacts and run.outputs["artifact-id"] == ""
    assert (workspace / "simulation-results" / "conversations.jsonl").is_file()


def test_hostile_app_text_is_neutralised_everywhere(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    hostile = (
        "::add-mask::Hello\n::error file=x,line=1::pwned\n@octocat <img src=x onerror=alert(1)> "
        "| table | break\n```\n</details>"
    )
    llm.default = user_says("hi")
    app.default = lambda request: AppReply(text=hostile)
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, standard_env(app, llm))
    assert run.code == 1
    # in the log, the hostile lines only ever appear between ::stop-commands:: and its token
    active = True
    token = None
    for line in run.stdout.splitlines():
        if line.startswith("::stop-commands::"):
            token, active = line.split("::")[2], False
            continue
        if token and line == f"::{token}::":
            active, token = True, None
            continue
        if active:
            assert not line.startswith("::add-mask::Hello") and "pwned" not in line, line
    body = gh.comment_posts[0].body["body"]
    # outside code blocks (whose fence the text cannot close) nothing is raw HTML or a mention
    fences = re.findall(r"^(`{3,})text$", body, re.MULTILINE)
    assert fences and all(len(f) > 3 for f in fences)  # longer than the ``` in the app's text
    prose = re.sub(r"^(`{3,})text\n.*?\n\1$", "", body, flags=re.MULTILINE | re.DOTALL)
    assert "<img" not in prose and "@octocat" not in prose and "@\u2060octocat" in prose
    assert prose.count("<details>") == prose.count("</details>")


def test_control_characters_and_bidi_overrides_from_the_app_show_as_escapes(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    """ANSI escapes would colour, hide or rewrite log lines, and U+202E would reverse the words after
    it in the comment; every sink shows them as visible escapes instead."""
    llm.default = user_says("hi")
    app.default = lambda request: AppReply(text="fine\x1b[8m hidden\x1b]0;title\x07 \u202eliaf\u202c \x9b2J done")
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, standard_env(app, llm))
    assert run.code == 1
    body = gh.comment_posts[0].body["body"]
    for where, text in {"log": run.stdout + run.stderr, "comment": body, "job summary": run.step_summary}.items():
        assert not any(c in text for c in "\x1b\x07\x9b\u202e\u202c"), where
        assert "fine\\x1b[8m hidden\\x1b]0;title\\x07 \\u202eliaf\\u202c \\x9b2J done" in text, where


def test_oversized_report_is_trimmed_under_the_comment_limit(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    manifest = "version: 1\ntarget: {url: '${APP_URL}'}\nsimulations:\n" + "".join(
        f"  - {{name: sim-{i:03d}, persona: jane, task: t, turns: [a, b, c], expect: {{contains: nope}}}}\n"
        for i in range(60)
    )
    app.default = lambda request: AppReply(text="x" * 3000)
    workspace = make_workspace(tmp_path, manifest)
    run = run_entrypoint(tmp_path, workspace, gh, {"concurrency": "16"}, {"APP_URL": app.url + "/promptflow"})
    assert run.code == 1
    body = gh.comment_posts[0].body["body"]
    assert len(body) <= 65_536
    assert "more failed or errored conversation(s) are not shown here" in body
    assert body.count("<details>") == body.count("</details>") > 3
    assert len(run.step_summary) > len(body)  # the job summary has room for more


def test_secrets_never_reach_comment_summary_artifact_or_logs(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    gh.token = "ghs_secret_github_token_abcdef"
    llm.default = user_says("where is my refund")
    app.require_header = ("authorization", f"Bearer {APP_TOKEN}")
    workspace = make_workspace(tmp_path)
    run = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, standard_env(app, llm))
    assert run.code == 0, run.stdout
    masked = {line.split("::", 2)[2] for line in run.stdout.splitlines() if line.startswith("::add-mask::")}
    assert {OPENAI_KEY, APP_TOKEN, gh.token} <= masked
    log = "\n".join(line for line in (run.stdout + run.stderr).splitlines() if not line.startswith("::add-mask::"))
    produced = [log, run.step_summary, json.dumps(run.outputs)]
    produced += [c["body"] for c in gh.comments_on(PR)]
    produced += [content.decode() for content in gh.artifacts["simulation-results"].files().values()]
    produced += [p.read_text() for p in (workspace / "simulation-results").iterdir()]
    for secret in (OPENAI_KEY, APP_TOKEN, gh.token):
        assert not any(secret in text for text in produced), secret


def test_invalid_manifest_fails_with_annotations_at_the_lines(tmp_path: Path, gh: FakeGitHub) -> None:
    workspace = make_workspace(tmp_path, "version: 1\nsimulations:\n  - {name: a, persona: nobody, task: t}\n")
    run = run_entrypoint(tmp_path, workspace, gh, {})
    assert run.code == 2
    assert f"::error title=Invalid manifest,file={workspace}/.github/simulations.yml,line=3::" in run.stdout
    assert "Traceback" not in run.stdout + run.stderr
    bad_input = run_entrypoint(tmp_path, workspace, gh, {"fail-on": "sometimes"})
    assert bad_input.code == 2 and "input fail-on: must be one of gate, errors, never" in bad_input.stdout


def test_shards_then_merge_comment_once(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp) -> None:
    manifest = "version: 1\ntarget: {url: '${APP_URL}'}\nsimulations:\n" + "".join(
        f"  - {{name: s{i}, persona: jane, task: t, turns: [hi]}}\n" for i in range(5)
    )
    env = {"APP_URL": app.url + "/promptflow"}
    shards = []
    for i in (1, 2):
        workspace = make_workspace(tmp_path / f"shard{i}", manifest)
        run = run_entrypoint(tmp_path / f"shard{i}", workspace, gh, {"shard": f"{i}/2", "comment": "never"}, env)
        assert run.code == 0, run.stdout
        shards.append(workspace / "simulation-results")
    assert set(gh.artifacts) == {"simulation-results-shard-1", "simulation-results-shard-2"}
    final = make_workspace(tmp_path / "final", manifest)
    for i, folder in enumerate(shards, 1):
        shutil.copytree(folder, final / "shards" / f"simulation-results-shard-{i}")
    merged = run_entrypoint(
        tmp_path / "final",
        final,
        gh,
        {"merge": "shards/simulation-results-shard-1\nshards/simulation-results-shard-2"},
        env,
    )
    assert merged.code == 0, merged.stdout
    assert merged.outputs["conversations"] == "5"
    assert len(gh.comment_posts) == 1 and "5 passed" in gh.comment_posts[0].body["body"].replace("**", "")


def test_a_dropped_upload_does_not_show_the_signed_urls_signature(tmp_path: Path, gh: FakeGitHub) -> None:
    """The signed upload URL lets anyone write the blob; the warning quoting it goes into the log."""
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    gh.fail_next("/blob/", 0, times=10)
    with pytest.raises(ArtifactError, match="upload failed after 5 attempts") as failed:
        ArtifactUploader(gh.env(), backoff=0.01).upload("results", folder)
    shown = known_secrets.scrub_text(f"Uploading the results artifact failed: {failed.value}.")
    assert gh.artifacts["results"].signature not in shown


def test_artifact_upload_retries_transient_failures(tmp_path: Path, gh: FakeGitHub) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    gh.fail_next("CreateArtifact", 503).fail_next("/blob/", 500).fail_next("FinalizeArtifact", 429)
    uploader = ArtifactUploader(gh.env(), backoff=0.01)
    artifact_id, size = uploader.upload("results: run/1", folder)
    stored = gh.artifacts["results- run-1"]
    assert stored.finalized and str(stored.id) == artifact_id and stored.size == size
    assert stored.files() == {"summary.json": b"{}"}
    gh.fail_next("CreateArtifact", 500, times=10)
    with pytest.raises(ArtifactError, match="after 5 attempts"):
        ArtifactUploader(gh.env(), backoff=0.01).upload("other", folder)
