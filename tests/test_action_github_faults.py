"""The action when GitHub misbehaves: rate limits, 5xx and dropped connections, a read-only token,
a comment deleted or doubled by someone else, GITHUB_* files that cannot be written. The results,
the job summary and the outputs always come out, and each warning says what to do."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest

from simulator.github.artifact import ArtifactError, ArtifactUploader
from simulator.github.commands import output_lines
from simulator.github.comment import MARKER, CommentError, PullRequestComments
from simulator.github.inputs import GitHubContext, Inputs
from simulator.github.publish import post_comment
from simulator.report import COMMENT_LIMIT
from tests.servers.chat_app import FakeChatApp
from tests.servers.github_api import BOT_LOGIN, FakeGitHub
from tests.test_action import GREETING, PR, make_workspace, run_entrypoint

SCRIPTED = (
    """\
version: 1
target: {url: "${APP_URL}", format: promptflow}
gate: {min_pass_rate: 1.0}
simulations:
"""
    + GREETING
)

COMMENTS = "/issues/7/comments"


def run(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, inputs: dict[str, str] | None = None, **env: str):
    workspace = tmp_path / "workspace"
    if not workspace.exists():
        make_workspace(tmp_path, SCRIPTED)
    return run_entrypoint(tmp_path, workspace, gh, inputs or {}, {"APP_URL": app.url + "/promptflow", **env})


def marked(gh: FakeGitHub) -> list[dict]:
    return [c for c in gh.comments_on(PR) if c["body"].startswith("<!-- chat-simulator:")]


def assert_reported(result) -> None:
    """What a run must leave whatever GitHub did: outputs, the job summary, the results."""
    assert result.code == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    assert result.outputs["verdict"] == "pass" and result.outputs["conversations"] == "1"
    assert "Conversation simulations: PASS" in result.step_summary
    assert (result.workspace / "simulation-results" / "conversations.jsonl").is_file()


def test_a_used_up_rate_limit_that_resets_soon_is_waited_for(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp) -> None:
    reset = str(int(time.time()) + 1)
    gh.fail_next(COMMENTS, 403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert len(marked(gh)) == 1 and result.outputs["comment-url"]
    assert "pull-requests: write" not in result.stdout


def test_secondary_rate_limits_and_429_on_the_create_are_retried_once_each(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp
) -> None:
    gh.fail_next(COMMENTS, 403, headers={"Retry-After": "1"})  # the listing
    gh.fail_next(COMMENTS, 429, headers={"Retry-After": "0"})  # the listing again
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert len(marked(gh)) == 1 and len(gh.comment_posts) == 1


def test_a_rate_limit_that_lasts_says_until_when_not_to_add_a_permission(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp
) -> None:
    reset = str(int(time.time()) + 3600)
    headers = {"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset, "x-ratelimit-resource": "core"}
    gh.fail_next(COMMENTS, 403, times=5, headers=headers)
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert not marked(gh) and result.outputs["comment-url"] == ""
    assert "rate limit (core) for this token is used up until" in result.stdout
    assert "run the job again after that" in result.stdout
    assert "pull-requests: write" not in result.stdout and "read-only" not in result.stdout
    assert gh.pending_failures == 4  # gave up at once instead of sleeping for an hour


@pytest.mark.parametrize(("value", "status"), [("nan", 429), ("inf", 403), ("1e400", 429), ("-1", 403)])
def test_a_retry_after_that_is_no_number_is_backed_off_and_the_comment_posted(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, value: str, status: int
) -> None:
    gh.fail_next(COMMENTS, status, headers={"Retry-After": value}, method="GET")
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert len(marked(gh)) == 1 and result.outputs["comment-url"] and not gh.pending_failures


@pytest.mark.parametrize("reset", ["nan", "1e400", "-5", str(10**40)])
def test_a_rate_limit_reset_that_is_no_time_says_to_run_again_later(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, reset: str
) -> None:
    gh.fail_next(COMMENTS, 403, headers={"x-ratelimit-remaining": "0", "x-ratelimit-reset": reset})
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert not marked(gh) and result.outputs["comment-url"] == ""
    assert "rate limit (core) for this token is used up; run the job again later" in result.stdout


@pytest.mark.parametrize("status", [502, 0])
def test_a_failed_list_or_create_is_tried_again_without_doubling_the_comment(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, status: int
) -> None:
    gh.fail_next(COMMENTS, status, method="GET").fail_next(COMMENTS, status, method="POST")
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert len(marked(gh)) == 1 and len(gh.comment_posts) == 2 and not gh.pending_failures
    assert result.outputs["comment-url"].endswith(f"#issuecomment-{marked(gh)[0]['id']}")
    gh.fail_next("/issues/comments/", status, method="PATCH")  # the next push updates it
    again = run(tmp_path, gh, app)
    assert_reported(again)
    assert len(marked(gh)) == 1 and len(gh.comment_patches) == 2


def test_a_read_only_token_names_the_permission_and_still_reports(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp
) -> None:
    gh.read_only = True
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert "::warning title=No pull request comment::" in result.stdout
    assert "Resource not accessible by integration" in result.stdout
    assert "permissions: pull-requests: write" in result.stdout


def test_a_comment_deleted_between_runs_or_while_updating_is_written_again(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp
) -> None:
    first = run(tmp_path, gh, app)
    assert_reported(first)
    (comment,) = marked(gh)
    gh.comments[PR].clear()  # a maintainer deleted it
    second = run(tmp_path, gh, app)
    assert_reported(second)
    (again,) = marked(gh)
    assert again["id"] != comment["id"]
    gh.fail_next("/issues/comments/", 404)  # deleted between the listing and the update
    third = run(tmp_path, gh, app)
    assert_reported(third)
    assert [c["id"] for c in marked(gh)] == [again["id"]] and third.outputs["comment-url"]
    assert "pull-requests: write" not in third.stdout


def test_a_comment_that_quotes_the_marker_is_not_overwritten(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp) -> None:
    assert_reported(run(tmp_path, gh, app))
    (ours,) = marked(gh)
    marker = ours["body"].splitlines()[0]
    quoted = gh.add_comment(PR, f"Why does this say\n\n> {marker}\n> PASS", login="someone")
    gh.comments[PR].remove(next(c for c in gh.comments[PR] if c["id"] == ours["id"]))  # then ours was deleted
    assert_reported(run(tmp_path, gh, app))
    by_id = {c["id"]: c for c in gh.comments_on(PR)}
    assert by_id[quoted["id"]]["body"] == quoted["body"] and len(marked(gh)) == 1


def job_marker(workflow: str = "simulations", job: str = "") -> str:
    """The marker of a job's comment: anyone can work it out from the workflow, as these tests do."""
    return MARKER.format(key=hashlib.sha256(f"{workflow}|{job}|.github/simulations.yml".encode()).hexdigest()[:12])


#: the fake's token as the workflow's GITHUB_TOKEN, a maintainer's personal token, another app's token;
#: and a bot that is not the token's, whose comment carrying the marker is not ours either
TOKENS = {
    "workflow": ({}, "some-app[bot]"),
    "personal": ({"token": "ghp_maintainer_token_0123", "token_owner": "octo-maintainer"}, BOT_LOGIN),
    "app": ({"app_slug": "sim-reporter"}, BOT_LOGIN),
}


@pytest.mark.parametrize("kind", list(TOKENS))
def test_a_comment_by_someone_else_carrying_the_marker_is_never_edited_or_deleted(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, kind: str
) -> None:
    settings, other_bot = TOKENS[kind]
    for name, value in settings.items():
        setattr(gh, name, value)
    marker = job_marker()
    gh.add_comments(PR, 120)  # two pages of comments to read: the account is still asked once per run
    fake_pass = f"{marker}\n## ✅ Conversation simulations: PASS\nAll 40 simulations passed."
    planted = [gh.add_comment(PR, fake_pass, login="mallory"), gh.add_comment(PR, fake_pass, login=other_bot)]

    first = run(tmp_path, gh, app)
    assert_reported(first)
    (ours,) = [c for c in marked(gh) if c["user"]["login"] == gh.token_author]
    assert first.outputs["comment-url"].endswith(f"#issuecomment-{ours['id']}")
    assert "::warning title=Pull request comment::" in first.stdout and "@mallory" in first.stdout
    assert f"@{other_bot}" in first.stdout and "left alone" in first.stdout
    assert "pull-requests: write" not in first.stdout  # nothing was refused: nothing of theirs was tried

    second = run(tmp_path, gh, app)
    assert_reported(second)
    (again,) = [c for c in marked(gh) if c["user"]["login"] == gh.token_author]
    assert again["id"] == ours["id"] and second.outputs["comment-url"] == first.outputs["comment-url"]
    by_id = {c["id"]: c for c in gh.comments_on(PR)}
    assert [by_id[c["id"]] for c in planted] == planted  # body and updated_at as they were
    assert [r.route for r in gh.comment_patches + gh.comment_deletes] == [
        f"/repos/{gh.repository}/issues/comments/{ours['id']}"  # the second run's update, nothing else
    ]
    assert len(gh.comment_posts) == 1
    assert [r.route for r in gh.identity_requests].count("/user") == 2  # once per run


def test_the_race_check_never_edits_or_deletes_a_comment_by_someone_else(gh: FakeGitHub) -> None:
    """A marked comment that appears between our listing and our create looks like another run's:
    it is one only when the token's account wrote it."""
    marker = MARKER.format(key="race")
    comments = PullRequestComments(gh.api_url, gh.repository, PR, gh.token, backoff=0.01)
    listed = comments.find_all
    planted: list[dict] = []

    def someone_posts_right_after_our_listing(marker: str) -> list[dict]:
        found = listed(marker)
        if not planted:
            planted.append(gh.add_comment(PR, f"{marker}\nPASS, trust me", login="mallory"))
        return found

    comments.find_all = someone_posts_right_after_our_listing  # type: ignore[method-assign]
    posted = comments.upsert(marker, "our report")
    by_id = {c["id"]: c for c in gh.comments_on(PR)}
    assert posted.created and by_id[posted.id]["body"] == f"{marker}\nour report"
    assert by_id[planted[0]["id"]] == planted[0]
    assert gh.comment_patches == [] and gh.comment_deletes == []


def test_a_token_whose_account_cannot_be_found_posts_a_new_comment_and_says_so(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inputs = Inputs(github_token=gh.token)
    ctx = GitHubContext(tmp_path, gh.repository, gh.api_url, "https://github.com", "1", "w", "j", PR, False)
    summary: Any = {"gate": {"status": "fail"}}
    planted = gh.add_comment(PR, f"{job_marker('w', 'j')}\nPASS", login="mallory")
    gh.fail_next("/user", 404)  # neither a user's token nor an app's: nobody can tell whose comments are ours
    url = post_comment(inputs, ctx, summary, lambda limit: "our report")
    (ours,) = [c for c in gh.comments_on(PR) if c["user"]["login"] == BOT_LOGIN]
    assert url == ours["html_url"] and ours["body"].endswith("\nour report")
    assert gh.comments_on(PR)[0] == planted and gh.comment_patches == [] and gh.comment_deletes == []
    out = capsys.readouterr().out
    assert "::warning title=Pull request comment::Could not find the account the github-token writes as" in out
    assert "GET /user: HTTP 404" in out

    assert post_comment(inputs, ctx, summary, lambda limit: "the next report") == url  # found: updated in place
    assert gh.comments_on(PR)[0] == planted and len(gh.comment_patches) == 1


def test_two_runs_racing_to_create_the_comment_leave_one(gh: FakeGitHub) -> None:
    marker = MARKER.format(key="race")
    comments = PullRequestComments(gh.api_url, gh.repository, PR, gh.token, backoff=0.01)
    listed = comments.find_all

    def other_run_posts_right_after_our_listing(marker: str) -> list[dict]:
        found = listed(marker)
        if not marked(gh):
            gh.add_comment(PR, f"{marker}\nthe other run's report")
        return found

    comments.find_all = other_run_posts_right_after_our_listing  # type: ignore[method-assign]
    posted = comments.upsert(marker, "our report")
    (kept,) = [c for c in gh.comments_on(PR) if c["body"].startswith(marker)]
    assert kept["body"] == f"{marker}\nour report" and posted.id == kept["id"] and not posted.created


@pytest.mark.parametrize("bad_id", [True, 0, -1, 2.5, "12"])
def test_a_marked_comment_whose_id_is_no_id_is_never_put_into_a_url(gh: FakeGitHub, bad_id: object) -> None:
    marker = MARKER.format(key="ids")
    gh.add_comment(PR, f"{marker}\nan earlier report")
    gh.comments[PR][-1]["id"] = bad_id  # as the listing will show it
    comments = PullRequestComments(gh.api_url, gh.repository, PR, gh.token, backoff=0.01)
    posted = comments.upsert(marker, "our report")
    assert posted.created and isinstance(posted.id, int) and posted.id >= 1
    assert [r.route for r in gh.api_requests if "/issues/comments/" in r.route] == []  # no PATCH, no DELETE
    (note,) = [n for n in comments.notes() if "which is no id" in n]
    assert note.startswith("GitHub's answer gives a comment carrying the marker the id ")


@pytest.mark.parametrize("bad_id", [float("nan"), float("inf"), 2**64])
def test_a_comment_listing_with_numbers_no_reader_takes_is_refused_whole(gh: FakeGitHub, bad_id: object) -> None:
    marker = MARKER.format(key="ids")
    gh.add_comment(PR, f"{marker}\nan earlier report")
    gh.comments[PR][-1]["id"] = bad_id  # as the listing will show it
    comments = PullRequestComments(gh.api_url, gh.repository, PR, gh.token, backoff=0.01)
    with pytest.raises(
        CommentError, match="the answer is not usable JSON: (the number .* is out of range|NaN|Infinity)"
    ):
        comments.upsert(marker, "our report")
    assert [r.route for r in gh.api_requests if "/issues/comments/" in r.route] == []  # no PATCH, no DELETE


@pytest.mark.parametrize("bad_id", [True, 0, -1, 1.5, "", "12abc", "-3", "1e3", str(2**64)])
def test_an_artifact_id_that_is_no_id_is_an_upload_error_not_an_output(
    tmp_path: Path, gh: FakeGitHub, bad_id: object
) -> None:
    folder = tmp_path / "results"
    folder.mkdir()
    (folder / "summary.json").write_text("{}")
    gh.finalized_id = bad_id
    with pytest.raises(ArtifactError, match="FinalizeArtifact answered the artifact id .*, which is no id"):
        ArtifactUploader(gh.env(), backoff=0.01).upload("results", folder)
    gh.finalized_id = None
    assert ArtifactUploader(gh.env(), backoff=0.01).upload("results-2", folder)[0] == str(gh.artifacts["results-2"].id)


def test_an_unwritable_job_summary_costs_only_the_summary(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp) -> None:
    result = run(tmp_path, gh, app, GITHUB_STEP_SUMMARY=str(tmp_path / "gone" / "step_summary"))
    assert result.code == 0, result.stdout + result.stderr
    assert "::warning title=No job summary::The job summary could not be written: $GITHUB_STEP_SUMMARY" in result.stdout
    assert "simulation-results/report.md" in result.stdout
    assert result.outputs["verdict"] == "pass" and len(marked(gh)) == 1


def test_an_unwritable_output_file_is_named_and_the_gate_decides_the_exit(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp
) -> None:
    result = run(tmp_path, gh, app, GITHUB_OUTPUT=str(tmp_path / "gone" / "output"))
    assert result.code == 0, result.stdout + result.stderr
    assert "::error title=Outputs not set::The step's outputs could not be written: $GITHUB_OUTPUT" in result.stdout
    assert "the verdict was pass" in result.stdout
    assert "Conversation simulations: PASS" in result.step_summary and len(marked(gh)) == 1


def test_a_refused_artifact_says_how_to_keep_the_results(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp) -> None:
    gh.fail_next("CreateArtifact", 403)
    result = run(tmp_path, gh, app)
    assert_reported(result)
    assert "::warning title=Results not uploaded::" in result.stdout
    assert "uses: actions/upload-artifact@v4" in result.stdout and result.outputs["artifact-id"] == ""


def test_a_report_that_fills_the_comment_limit_still_fits_beside_the_marker(gh: FakeGitHub, tmp_path: Path) -> None:
    inputs = Inputs(github_token=gh.token)
    ctx = GitHubContext(tmp_path, gh.repository, gh.api_url, "https://github.com", "1", "w", "j", PR, False)
    summary: Any = {"gate": {"status": "fail"}}
    url = post_comment(inputs, ctx, summary, lambda limit: "x" * limit)
    (comment,) = marked(gh)
    assert url and len(comment["body"]) == COMMENT_LIMIT


def test_an_output_value_cannot_end_its_block_and_set_another_output() -> None:
    """As the runner reads $GITHUB_OUTPUT: `name<<delimiter`, the lines up to the delimiter."""
    hostile = "pass\nverdict<<EOF\nfail\nEOF\nghadelimiter_x"
    text = output_lines({"summary": hostile, "verdict": "pass", "empty": None})
    read: dict[str, str] = {}
    lines = iter(text.splitlines())
    for line in lines:
        name, delimiter = line.split("<<", 1)
        value = []
        for inner in lines:
            if inner == delimiter:
                break
            value.append(inner)
        read[name] = "\n".join(value)
    assert read == {"summary": hostile, "verdict": "pass", "empty": ""}


def test_a_next_page_on_another_host_is_not_followed_with_the_token(gh: FakeGitHub) -> None:
    """The session carries the token: a listing's `Link` must not be able to send it elsewhere."""
    marker = MARKER.format(key="pages")
    gh.add_comments(PR, 150)
    with FakeGitHub() as elsewhere:
        gh.link_base = elsewhere.api_url
        comments = PullRequestComments(gh.api_url, gh.repository, PR, gh.token, backoff=0.01)
        assert comments.find_all(marker) == []
        assert elsewhere.api_requests == []
    gh.link_base = None
    gh.add_comment(PR, f"{marker}\nours")  # on the second page, where the pages of this API go
    (found,) = PullRequestComments(gh.api_url, gh.repository, PR, gh.token, backoff=0.01).find_all(marker)
    assert found["body"] == f"{marker}\nours"


def test_comment_listings_stop_after_a_hundred_pages(gh: FakeGitHub) -> None:
    """An answer that keeps offering a next page (a loop, a huge thread) must not keep the job going."""
    marker = MARKER.format(key="cap")
    gh.add_comments(PR, 100 * 100 + 50)
    gh.add_comment(PR, f"{marker}\nbeyond the pages read")
    assert PullRequestComments(gh.api_url, gh.repository, PR, gh.token, backoff=0.01).find_all(marker) == []
    listed = [r for r in gh.api_requests if r.method == "GET" and COMMENTS in r.path]
    assert len(listed) == 100
