"""Finding and fetching the base branch's artifact, and the one line said when there is none."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.github.baseline_artifact import ArtifactReader, BaselineUnavailable
from simulator.github.baseline_input import resolve_baseline
from simulator.github.inputs import GitHubContext, Inputs
from simulator.text import known_secrets
from tests.servers.github_api import DEFAULT_TOKEN, FakeGitHub

SUMMARY = json.dumps({"simulations": {"a": {"verdict": {"status": "pass", "passes": 1, "failures": 0}}}}).encode()


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        yield server


def reader(gh: FakeGitHub, token: str = DEFAULT_TOKEN) -> ArtifactReader:
    return ArtifactReader(gh.api_url, gh.repository, token, backoff=0.01)


def context(gh: FakeGitHub, tmp_path: Path, **changes: object) -> GitHubContext:
    values: dict = {
        "workspace": tmp_path,
        "repository": gh.repository,
        "api_url": gh.api_url,
        "server_url": gh.server_url,
        "run_id": "77",
        "workflow": "w",
        "job": "j",
        "pr_number": 7,
        "is_fork": False,
        "event_name": "pull_request",
        "base_ref": "main",
    }
    return GitHubContext(**{**values, **changes})


def test_candidates_skip_other_branches_forks_expired_and_this_run(gh: FakeGitHub) -> None:
    older = gh.add_run_artifact("results", {"summary.json": SUMMARY})
    newer = gh.add_run_artifact("results", {"summary.json": SUMMARY})
    gh.add_run_artifact("results", branch="main-2")
    gh.add_run_artifact("results", fork=True)
    gh.add_run_artifact("results", expired=True)
    this_run = gh.add_run_artifact("results")
    found = list(reader(gh).candidates("results", "main", exclude_run=str(this_run.run_id)))
    assert [a.id for a in found] == [newer.id, older.id]
    assert found[0].run_id == newer.run_id and found[0].head_sha == newer.head_sha


def test_a_pull_requests_run_on_a_branch_named_like_the_base_is_not_a_baseline(gh: FakeGitHub) -> None:
    """A branch of this repository named `main` elsewhere (say, a pull request from `main` of the
    repository into `release`): its runs played that pull request's changes, not the base's own."""
    pushed = gh.add_run_artifact("results", {"summary.json": SUMMARY})
    dispatched = gh.add_run_artifact("results", {"summary.json": SUMMARY}, event="workflow_dispatch")
    gh.add_run_artifact("results", {"summary.json": SUMMARY}, event="pull_request")
    gh.add_run_artifact("results", {"summary.json": SUMMARY}, event="pull_request_target")
    found = list(reader(gh).candidates("results", "main"))
    assert [a.id for a in found] == [dispatched.id, pushed.id]
    assert len(gh.run_requests) == 4  # each candidate's run asked once


def test_download_follows_the_redirect_without_the_token_and_caps_the_size(gh: FakeGitHub, tmp_path: Path) -> None:
    artifact = gh.add_run_artifact("results", {"summary.json": SUMMARY})
    (candidate,) = reader(gh).candidates("results", "main")
    assert reader(gh).download(candidate, tmp_path / "a.zip") is True
    assert (tmp_path / "a.zip").read_bytes() == artifact.content
    assert "authorization" not in gh.storage_requests[-1].headers
    with pytest.raises(
        BaselineUnavailable, match=f"its zip has {len(artifact.content)} bytes, more than the 10 allowed"
    ):
        reader(gh).download(candidate, tmp_path / "b.zip", limit=10)
    understated = dataclasses.replace(candidate, size=0)  # the listing's size is not trusted either
    with pytest.raises(BaselineUnavailable, match="its zip is larger than the 10 bytes allowed"):
        reader(gh).download(understated, tmp_path / "c.zip", limit=10)
    artifact.expired = True  # expired between the listing and the download
    assert reader(gh).download(candidate, tmp_path / "d.zip") is False


def test_refusals_say_what_to_do(gh: FakeGitHub) -> None:
    gh.add_run_artifact("results")
    with pytest.raises(BaselineUnavailable, match=r"github-token was refused \(HTTP 401\)") as refused:
        list(reader(gh, token="wrong").candidates("results", "main"))
    assert refused.value.warn
    gh.actions_read = False
    with pytest.raises(BaselineUnavailable, match="add actions: read to the job's permissions"):
        list(reader(gh).candidates("results", "main"))
    gh.actions_read = True
    gh.fail_next("/actions/artifacts", 500, times=10)
    with pytest.raises(BaselineUnavailable, match=r"listing the artifacts failed \(HTTP 500\)"):
        list(reader(gh).candidates("results", "main"))


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("id", True, "id true"),
        ("id", -4, "id -4"),
        ("id", 1001.0, "id 1001.0"),
        ("id", "1001", 'id "1001"'),
        # NaN, Infinity and 2**64 make the whole answer unreadable (strict_json): no entry of it is used
        ("size_in_bytes", -1, "size_in_bytes -1"),
        ("size_in_bytes", None, "size_in_bytes null"),
        ("workflow_run.id", False, "workflow_run.id false"),
        ("workflow_run.id", 0, "workflow_run.id 0"),
    ],
)
def test_an_artifact_listed_with_numbers_that_are_no_numbers_is_passed_over_and_named(
    gh: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, value: object, said: str
) -> None:
    older = gh.add_run_artifact("simulation-results", {"summary.json": SUMMARY})
    broken = gh.add_run_artifact("simulation-results", {"summary.json": SUMMARY})
    broken.listed_as = {field: value}
    assert [a.id for a in reader(gh).candidates("simulation-results", "main")] == [older.id]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    base = resolve_baseline(Inputs(github_token=DEFAULT_TOKEN), context(gh, tmp_path), scratch)
    assert base.summary is not None and base.note is not None and f"run {older.run_id} on main" in base.note
    out = capsys.readouterr().out
    assert f"::warning title=Base artifact skipped::Passed over an artifact listed with {said}, which cannot" in out
    repo = f"/repos/{gh.repository}/actions"
    assert {r.route for r in gh.api_requests if r.route.endswith("/zip")} == {f"{repo}/artifacts/{older.id}/zip"}
    assert {r.route for r in gh.run_requests} == {f"{repo}/runs/{older.run_id}"}  # no URL of the broken one


def test_an_artifact_expiring_after_listing_gives_way_to_the_next(gh: FakeGitHub, tmp_path: Path) -> None:
    older = gh.add_run_artifact("simulation-results", {"summary.json": SUMMARY, "report.html": b"<html>"})
    gh.add_run_artifact("simulation-results", {"summary.json": SUMMARY})
    gh.fail_next("/zip", 410)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    base = resolve_baseline(Inputs(github_token=DEFAULT_TOKEN), context(gh, tmp_path), scratch)
    assert base.summary is not None and base.folder == scratch / "results"
    assert base.note is not None and f"run {older.run_id} on main" in base.note
    assert [p.name for p in scratch.iterdir()] == ["results"]  # the downloaded zip is gone
    assert sorted(p.name for p in base.folder.iterdir()) == ["summary.json"]  # only what a comparison reads


@pytest.mark.parametrize(
    ("inputs", "changes", "note"),
    [
        (Inputs(shard="1/2", replay=False), {}, "No baseline: a shard is not compared on its own"),
        (Inputs(), {"pr_number": None, "event_name": "schedule"}, "No baseline: not a pull request (schedule)"),
        (Inputs(), {"base_ref": ""}, "No baseline: the event names no base branch."),
        (Inputs(github_token=""), {}, "No baseline: no github-token to read"),  # the others have none either
    ],
)
def test_no_lookup_where_there_is_nothing_to_look_for(
    gh: FakeGitHub, tmp_path: Path, inputs: Inputs, changes: dict, note: str
) -> None:
    base = resolve_baseline(inputs, context(gh, tmp_path, **changes), tmp_path)
    assert base.summary is None and base.note is not None and base.note.startswith(note)
    assert not gh.requests


def test_none_and_a_folder(gh: FakeGitHub, tmp_path: Path) -> None:
    assert resolve_baseline(Inputs(baseline=""), context(gh, tmp_path), tmp_path).note is None
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "summary.json").write_bytes(SUMMARY)
    folder = resolve_baseline(Inputs(baseline="base"), context(gh, tmp_path), tmp_path)
    assert folder.summary is not None and folder.folder == tmp_path / "base" and folder.note == "Compared with base."
    missing = resolve_baseline(Inputs(baseline="nowhere"), context(gh, tmp_path), tmp_path)
    assert missing.summary is None and missing.note is not None and "baseline summary not found" in missing.note
    assert not gh.requests


def test_a_dropped_storage_connection_does_not_show_the_signed_urls_signature(gh: FakeGitHub, tmp_path: Path) -> None:
    """The storage URL's signature reads the artifact; the error quoting the URL goes into the comment."""
    artifact = gh.add_run_artifact("results", {"summary.json": SUMMARY})
    (candidate,) = reader(gh).candidates("results", "main")
    gh.fail_next("/storage/", 0, times=10)
    with pytest.raises(BaselineUnavailable, match="downloading artifact .* failed") as failed:
        reader(gh).download(candidate, tmp_path / "a.zip")
    shown = known_secrets.scrub_text(f"No baseline: {failed.value}.")
    assert artifact.signature not in shown
