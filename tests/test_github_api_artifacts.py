"""The fake GitHub's artifacts of other runs: REST listing, the /zip redirect and storage."""

from __future__ import annotations

import io
import zipfile

import requests

from tests.servers.github_api import DEFAULT_TOKEN, FakeGitHub

AUTH = {"Authorization": f"Bearer {DEFAULT_TOKEN}", "Accept": "application/vnd.github+json"}


def test_listing_is_newest_first_filtered_by_name_and_paginated(gh: FakeGitHub) -> None:
    made = [gh.add_run_artifact("results", {"a.txt": str(i).encode()}, branch=f"b{i}") for i in range(150)]
    gh.add_run_artifact("other")
    url: str | None = f"{gh.api_url}/repos/{gh.repository}/actions/artifacts?name=results&per_page=100"
    seen = []
    while url:
        response = requests.get(url, headers=AUTH, timeout=5)
        assert response.status_code == 200
        assert response.json()["total_count"] == 150
        seen += response.json()["artifacts"]
        url = response.links.get("next", {}).get("url")
    assert [a["id"] for a in seen] == [a.id for a in reversed(made)]
    first = seen[0]
    assert first["workflow_run"] == {
        "id": made[-1].run_id,
        "repository_id": gh.repository_id,
        "head_repository_id": gh.repository_id,
        "head_branch": "b149",
        "head_sha": made[-1].head_sha,
    }
    assert first["expired"] is False and first["size_in_bytes"] == len(made[-1].content)
    assert first["archive_download_url"].endswith(f"/actions/artifacts/{made[-1].id}/zip")
    assert len(gh.artifact_list_requests) == 2


def test_fork_runs_carry_another_head_repository(gh: FakeGitHub) -> None:
    fork = gh.add_run_artifact("results", branch="main", fork=True)
    (listed,) = requests.get(f"{gh.api_url}/repos/{gh.repository}/actions/artifacts", headers=AUTH, timeout=5).json()[
        "artifacts"
    ]
    run = listed["workflow_run"]
    assert listed["id"] == fork.id and run["head_branch"] == "main"
    assert run["head_repository_id"] != run["repository_id"] == gh.repository_id


def test_zip_redirects_to_storage_that_refuses_an_authorization_header(gh: FakeGitHub) -> None:
    artifact = gh.add_run_artifact("results", {"summary.json": b"{}"})
    zip_url = f"{gh.api_url}/repos/{gh.repository}/actions/artifacts/{artifact.id}/zip"
    answer = requests.get(zip_url, headers=AUTH, allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert "/storage/" in location and "sig=" in location
    refused = requests.get(location, headers={"Authorization": AUTH["Authorization"]}, timeout=5)
    assert refused.status_code == 400 and b"InvalidAuthenticationInfo" in refused.content
    fetched = requests.get(location, timeout=5)
    assert fetched.status_code == 200 and fetched.headers["Content-Type"] == "application/zip"
    assert zipfile.ZipFile(io.BytesIO(fetched.content)).read("summary.json") == b"{}"
    assert requests.get(location.replace("sig=", "sig=x"), timeout=5).status_code == 403
    assert len(gh.storage_requests) == 3


def test_expired_unknown_and_unauthorised(gh: FakeGitHub) -> None:
    expired = gh.add_run_artifact("results", expired=True)
    base = f"{gh.api_url}/repos/{gh.repository}/actions/artifacts"
    assert requests.get(f"{base}/{expired.id}/zip", headers=AUTH, timeout=5).status_code == 410
    assert requests.get(f"{base}/999999/zip", headers=AUTH, timeout=5).status_code == 404
    assert requests.get(base, headers={"Authorization": "Bearer wrong"}, timeout=5).status_code == 401
    assert (
        requests.get(f"{gh.api_url}/repos/someone/else/actions/artifacts", headers=AUTH, timeout=5).status_code == 404
    )
    gh.actions_read = False
    denied = requests.get(base, headers=AUTH, timeout=5)
    assert denied.status_code == 403 and denied.json()["message"] == "Resource not accessible by integration"
    assert requests.get(f"{base}/{expired.id}/zip", headers=AUTH, timeout=5).status_code == 403
