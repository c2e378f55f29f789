"""Tests for the fake GitHub REST API + Actions results service (tests/servers/github_api.py)."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from tests.servers.github_api import (
    ARTIFACT_SERVICE_PATH,
    BOT_LOGIN,
    DEFAULT_TOKEN,
    MAX_COMMENT_LENGTH,
    FakeGitHub,
    make_runtime_token,
    runtime_token_scope,
)

REPO = "octo-org/octo-repo"


def _auth(token: str = DEFAULT_TOKEN, scheme: str = "Bearer") -> dict[str, str]:
    return {"Authorization": f"{scheme} {token}", "Accept": "application/vnd.github+json"}


def _comments_url(gh: FakeGitHub, number: int, repo: str = REPO) -> str:
    return f"{gh.api_url}/repos/{repo}/issues/{number}/comments"


def _comment_url(gh: FakeGitHub, comment_id: int) -> str:
    return f"{gh.api_url}/repos/{REPO}/issues/comments/{comment_id}"


def _twirp(gh: FakeGitHub, method: str, body: dict[str, Any], token: str | None = None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token if token is not None else gh.runtime_token}"}
    return requests.post(gh.results_url + ARTIFACT_SERVICE_PATH + method, json=body, headers=headers, timeout=5)


def _create_body(gh: FakeGitHub, name: str, **extra: Any) -> dict[str, Any]:
    return {
        "workflow_run_backend_id": gh.run_backend_id,
        "workflow_job_run_backend_id": gh.job_backend_id,
        "name": name,
        "version": 7,
        "mime_type": "application/zip",
        **extra,
    }


def _finalize_body(gh: FakeGitHub, name: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {
        "workflow_run_backend_id": gh.run_backend_id,
        "workflow_job_run_backend_id": gh.job_backend_id,
        "name": name,
        "size": str(len(data)),
        "hash": "sha256:" + hashlib.sha256(data).hexdigest(),
        **extra,
    }


def _zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return buf.getvalue()


def _create(gh: FakeGitHub, name: str) -> str:
    resp = _twirp(gh, "CreateArtifact", _create_body(gh, name))
    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is True
    return resp.json()["signed_upload_url"]


def _put_blob(url: str, data: bytes, blob_type: str | None = "BlockBlob") -> requests.Response:
    headers = {"Content-Type": "application/zip"}
    if blob_type is not None:
        headers["x-ms-blob-type"] = blob_type
    return requests.put(url, data=data, headers=headers, timeout=5)


# -- lifecycle and addresses --------------------------------------------------------


def test_lifecycle_and_addresses() -> None:
    gh = FakeGitHub()
    with pytest.raises(RuntimeError):
        _ = gh.port
    with gh:
        assert gh.api_url == f"http://127.0.0.1:{gh.port}/api/v3"
        assert gh.results_url == f"http://127.0.0.1:{gh.port}/results/"
        env = gh.env()
        assert env["GITHUB_API_URL"] == gh.api_url
        assert env["ACTIONS_RESULTS_URL"].endswith("/results/")
        assert env["ACTIONS_RUNTIME_TOKEN"] == gh.runtime_token
        assert env["GITHUB_REPOSITORY"] == REPO
        with pytest.raises(RuntimeError):
            gh.start()
        port = gh.port
    gh.close()  # idempotent
    with pytest.raises(RuntimeError):
        gh.start()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/api/v3/", timeout=2)


def test_runtime_token_is_a_jwt_with_results_scope() -> None:
    token = make_runtime_token("run-42", "job-7")
    header, payload, signature = token.split(".")
    assert signature and "=" not in token
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert "Actions.Results:run-42:job-7" in claims["scp"].split()
    assert json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))["typ"] == "JWT"
    assert runtime_token_scope(token) == ("run-42", "job-7")
    assert runtime_token_scope("not-a-jwt") is None
    assert runtime_token_scope("a.b.c") is None


def test_unknown_paths_and_missing_prefix_are_404(gh: FakeGitHub) -> None:
    # the same route without the Enterprise prefix does not exist: proves GITHUB_API_URL is honoured
    resp = requests.get(f"{gh.url}/repos/{REPO}/issues/1/comments", headers=_auth(), timeout=5)
    assert resp.status_code == 404
    resp = requests.get(f"{gh.api_url}/repos/{REPO}/pulls/1", headers=_auth(), timeout=5)
    assert resp.status_code == 404
    assert resp.json()["message"] == "Not Found"
    assert gh.requests[0].service is None and gh.requests[1].service == "api"


# -- listing and pagination ---------------------------------------------------------


def test_pagination_past_100_comments_with_link_headers(gh: FakeGitHub) -> None:
    noise = gh.add_comments(5, 150)
    mine = gh.add_comment(5, "<!-- sticky -->\nold report")
    assert mine["user"] == {"login": BOT_LOGIN, "type": "Bot"}
    assert noise[0]["user"] == {"login": "someone", "type": "User"} and noise[0]["body"] == "noise 1"

    first = requests.get(_comments_url(gh, 5), params={"per_page": 100}, headers=_auth(), timeout=5)
    assert first.status_code == 200
    assert len(first.json()) == 100
    assert set(first.links) == {"next", "last"}
    next_url = first.links["next"]["url"]
    assert next_url.startswith(gh.api_url + f"/repos/{REPO}/issues/5/comments?")
    assert "page=2" in next_url and "per_page=100" in next_url
    assert first.links["last"]["url"] == next_url

    second = requests.get(next_url, headers=_auth(), timeout=5)
    body = second.json()
    assert len(body) == 51
    assert body[-1]["id"] == mine["id"] and body[-1]["body"].startswith("<!-- sticky -->")
    assert set(second.links) == {"prev", "first"}
    assert "page=1" in second.links["prev"]["url"]

    beyond = requests.get(_comments_url(gh, 5), params={"per_page": 100, "page": 3}, headers=_auth(), timeout=5)
    assert beyond.status_code == 200 and beyond.json() == []


def test_following_links_with_default_page_size_collects_everything_in_order(gh: FakeGitHub) -> None:
    created = gh.add_comments(9, 151)
    url: str | None = _comments_url(gh, 9)
    pages: list[list[dict[str, Any]]] = []
    while url:
        resp = requests.get(url, headers=_auth(), timeout=5)
        assert resp.status_code == 200
        pages.append(resp.json())
        url = resp.links.get("next", {}).get("url")
    assert [len(p) for p in pages] == [30, 30, 30, 30, 30, 1]
    assert [c["id"] for p in pages for c in p] == [c["id"] for c in created]
    middle = requests.get(_comments_url(gh, 9), params={"page": 3}, headers=_auth(), timeout=5)
    assert set(middle.links) == {"prev", "next", "last", "first"}
    assert "page=6" in middle.links["last"]["url"]
    assert "page=2" in middle.links["prev"]["url"] and "page=4" in middle.links["next"]["url"]


def test_per_page_is_capped_at_100_and_single_page_has_no_link(gh: FakeGitHub) -> None:
    gh.add_comments(3, 120)
    resp = requests.get(_comments_url(gh, 3), params={"per_page": 500}, headers=_auth(), timeout=5)
    assert len(resp.json()) == 100
    assert "per_page=100" in resp.links["next"]["url"]
    gh.add_comments(4, 2)
    small = requests.get(_comments_url(gh, 4), headers=_auth(), timeout=5)
    assert len(small.json()) == 2 and "Link" not in small.headers
    empty = requests.get(_comments_url(gh, 99), headers=_auth(), timeout=5)
    assert empty.status_code == 200 and empty.json() == [] and "Link" not in empty.headers


# -- create / update / validation ---------------------------------------------------------


def test_create_comment(gh: FakeGitHub) -> None:
    resp = requests.post(_comments_url(gh, 12), json={"body": "hello"}, headers=_auth(), timeout=5)
    assert resp.status_code == 201
    comment = resp.json()
    assert comment["body"] == "hello"
    assert comment["user"] == {"login": "github-actions[bot]", "type": "Bot"}
    assert comment["html_url"] == f"https://github.example/{REPO}/pull/12#issuecomment-{comment['id']}"
    assert comment["created_at"].endswith("Z") and comment["updated_at"] == comment["created_at"]
    assert resp.headers["Location"] == _comment_url(gh, comment["id"])
    assert gh.comments[12] == [comment]
    [post] = gh.comment_posts
    assert post.path == f"/api/v3/repos/{REPO}/issues/12/comments"
    assert post.body == {"body": "hello"}
    assert post.headers["authorization"] == f"Bearer {DEFAULT_TOKEN}"
    assert post.raw_body == b'{"body": "hello"}'


def test_update_comment(gh: FakeGitHub) -> None:
    old = gh.add_comment(12, "first version")
    gh.add_comments(12, 2)
    resp = requests.patch(_comment_url(gh, old["id"]), json={"body": "second version"}, headers=_auth(), timeout=5)
    assert resp.status_code == 200
    assert resp.json()["id"] == old["id"] and resp.json()["body"] == "second version"
    assert gh.comments_on(12)[0]["body"] == "second version"
    assert len(gh.comments_on(12)) == 3
    assert [p.route for p in gh.comment_patches] == [f"/repos/{REPO}/issues/comments/{old['id']}"]
    got = requests.get(_comment_url(gh, old["id"]), headers=_auth(), timeout=5)
    assert got.json()["body"] == "second version"

    missing = requests.patch(_comment_url(gh, 1), json={"body": "x"}, headers=_auth(), timeout=5)
    assert missing.status_code == 404 and missing.json()["message"] == "Not Found"


def test_delete_comment(gh: FakeGitHub) -> None:
    old = gh.add_comment(2, "stale")
    resp = requests.delete(_comment_url(gh, old["id"]), headers=_auth(), timeout=5)
    assert resp.status_code == 204 and resp.content == b""
    assert gh.comments_on(2) == []
    assert requests.delete(_comment_url(gh, old["id"]), headers=_auth(), timeout=5).status_code == 404


@pytest.mark.parametrize(
    "payload",
    [{}, {"body": None}, {"body": 5}, {"body": ""}, {"body": "   "}, {"body": "x" * (MAX_COMMENT_LENGTH + 1)}],
    ids=["missing", "null", "number", "empty", "blank", "too-long"],
)
def test_comment_validation(gh: FakeGitHub, payload: dict[str, Any]) -> None:
    target = gh.add_comment(1, "keep me")
    for resp in (
        requests.post(_comments_url(gh, 1), json=payload, headers=_auth(), timeout=5),
        requests.patch(_comment_url(gh, target["id"]), json=payload, headers=_auth(), timeout=5),
    ):
        assert resp.status_code == 422
        assert resp.json()["message"] == "Validation Failed"
        assert resp.json()["errors"][0]["field"] == "body"
    assert gh.comments_on(1) == [target]


def test_comment_at_exact_limit_and_bad_json(gh: FakeGitHub) -> None:
    text = "é" * MAX_COMMENT_LENGTH  # characters, not bytes
    resp = requests.post(_comments_url(gh, 1), json={"body": text}, headers=_auth(), timeout=5)
    assert resp.status_code == 201 and resp.json()["body"] == text
    bad = requests.post(_comments_url(gh, 1), data=b"{nope", headers=_auth(), timeout=5)
    assert bad.status_code == 400 and bad.json()["message"] == "Problems parsing JSON"
    assert gh.comment_posts[1].body is None and gh.comment_posts[1].raw_body == b"{nope"


# -- auth, permissions, missing repo ---------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{}, _auth("wrong"), _auth(scheme="Basic"), {"Authorization": DEFAULT_TOKEN}, _auth("")],
    ids=["none", "wrong-token", "basic", "no-scheme", "empty"],
)
def test_bad_credentials(gh: FakeGitHub, headers: dict[str, str]) -> None:
    for resp in (
        requests.get(_comments_url(gh, 1), headers=headers, timeout=5),
        requests.post(_comments_url(gh, 1), json={"body": "x"}, headers=headers, timeout=5),
    ):
        assert resp.status_code == 401
        assert resp.json()["message"] == "Bad credentials"
    assert gh.comments == {}


@pytest.mark.parametrize("scheme", ["Bearer", "token", "bearer"])
def test_accepted_auth_schemes(gh: FakeGitHub, scheme: str) -> None:
    resp = requests.get(_comments_url(gh, 1), headers=_auth(scheme=scheme), timeout=5)
    assert resp.status_code == 200


def test_custom_token(gh: FakeGitHub) -> None:
    gh.token = "ghp_other"
    assert requests.get(_comments_url(gh, 1), headers=_auth(), timeout=5).status_code == 401
    assert requests.get(_comments_url(gh, 1), headers=_auth("ghp_other"), timeout=5).status_code == 200


def test_who_the_token_is_depends_on_its_kind(gh: FakeGitHub) -> None:
    """An installation token (the workflow's own by default) may not ask GET /user; GraphQL's viewer
    names its bot. A personal token is its user's. A comment created is by the token's account."""
    viewer = {"query": "query { viewer { login } }"}
    graphql = f"{gh.url}/api/graphql"
    assert gh.graphql_url == graphql
    user = requests.get(f"{gh.api_url}/user", headers=_auth(), timeout=5)
    assert user.status_code == 403 and user.json()["message"] == "Resource not accessible by integration"
    assert requests.post(graphql, json=viewer, headers=_auth(), timeout=5).json() == {
        "data": {"viewer": {"login": BOT_LOGIN}}
    }
    created = requests.post(_comments_url(gh, 3), json={"body": "by the app"}, headers=_auth(), timeout=5).json()
    assert created["user"] == {"login": BOT_LOGIN, "type": "Bot"}
    assert created["performed_via_github_app"]["slug"] == "github-actions"

    gh.app_slug = "sim-reporter"
    assert requests.post(graphql, json=viewer, headers=_auth(), timeout=5).json()["data"]["viewer"] == {
        "login": "sim-reporter[bot]"
    }
    gh.token, gh.token_owner = "ghp_personal", "octo-maintainer"
    assert requests.get(f"{gh.api_url}/user", headers=_auth("ghp_personal"), timeout=5).json()["login"] == (
        "octo-maintainer"
    )
    created = requests.post(_comments_url(gh, 3), json={"body": "by hand"}, headers=_auth("ghp_personal"), timeout=5)
    assert created.json()["user"] == {"login": "octo-maintainer", "type": "User"}
    assert created.json()["performed_via_github_app"] is None
    assert requests.get(f"{gh.api_url}/user", headers=_auth(), timeout=5).status_code == 401
    assert len(gh.identity_requests) == 5
    requests.delete(_comment_url(gh, created.json()["id"]), headers=_auth("ghp_personal"), timeout=5)
    assert [r.route for r in gh.comment_deletes] == [f"/repos/{REPO}/issues/comments/{created.json()['id']}"]


def test_read_only_token_gets_403_on_writes_only(gh: FakeGitHub) -> None:
    existing = gh.add_comment(8, "old")
    gh.read_only = True
    assert requests.get(_comments_url(gh, 8), headers=_auth(), timeout=5).json() == [existing]
    post = requests.post(_comments_url(gh, 8), json={"body": "new"}, headers=_auth(), timeout=5)
    patch = requests.patch(_comment_url(gh, existing["id"]), json={"body": "new"}, headers=_auth(), timeout=5)
    for resp in (post, patch):
        assert resp.status_code == 403
        assert resp.json()["message"] == "Resource not accessible by integration"
        assert resp.json()["documentation_url"].startswith("https://")
    assert gh.comments_on(8) == [existing]
    assert len(gh.comment_posts) == 1 and len(gh.comment_patches) == 1


def test_missing_repo_and_other_repo_are_404(gh: FakeGitHub) -> None:
    other = requests.get(_comments_url(gh, 1, repo="someone/else"), headers=_auth(), timeout=5)
    assert other.status_code == 404
    same_case_insensitive = requests.get(_comments_url(gh, 1, repo="Octo-Org/Octo-Repo"), headers=_auth(), timeout=5)
    assert same_case_insensitive.status_code == 200
    gh.missing_repo = True
    for resp in (
        requests.get(_comments_url(gh, 1), headers=_auth(), timeout=5),
        requests.post(_comments_url(gh, 1), json={"body": "x"}, headers=_auth(), timeout=5),
        requests.patch(_comment_url(gh, 1), json={"body": "x"}, headers=_auth(), timeout=5),
    ):
        assert resp.status_code == 404 and resp.json()["message"] == "Not Found"
    assert gh.comments == {}


# -- fault injection ----------------------------------------------------------------


def test_fail_next_counts_matches_and_headers(gh: FakeGitHub) -> None:
    gh.fail_next("/issues/4/comments", 502, times=2, headers={"Retry-After": "0"})
    assert gh.pending_failures == 2
    other = requests.get(_comments_url(gh, 5), headers=_auth(), timeout=5)
    assert other.status_code == 200  # not matching: untouched
    statuses = []
    for _ in range(3):
        resp = requests.post(_comments_url(gh, 4), json={"body": "x"}, headers=_auth(), timeout=5)
        statuses.append(resp.status_code)
        if resp.status_code == 502:
            assert resp.headers["Retry-After"] == "0"
            assert resp.json()["message"] == "Bad Gateway"
    assert statuses == [502, 502, 201]
    assert gh.pending_failures == 0
    assert len(gh.comments_on(4)) == 1
    assert len(gh.comment_posts) == 3  # failed attempts are recorded too


def test_fail_next_applies_before_auth_and_on_results_and_blob(gh: FakeGitHub) -> None:
    gh.fail_next("/comments", 500)
    assert requests.get(_comments_url(gh, 1), timeout=5).status_code == 500  # no auth header at all
    gh.fail_next("CreateArtifact", 503)
    resp = _twirp(gh, "CreateArtifact", _create_body(gh, "a"))
    assert resp.status_code == 503 and resp.json()["code"] == "unavailable"
    assert "a" not in gh.artifacts
    url = _create(gh, "a")
    gh.fail_next("/blob/", 500)
    assert _put_blob(url, b"data").status_code == 500
    assert gh.artifacts["a"].uploaded is False
    assert _put_blob(url, b"data").status_code == 201
    with pytest.raises(ValueError):
        gh.fail_next("x", 500, times=0)


def test_reset_forgets_requests_but_keeps_state(gh: FakeGitHub) -> None:
    gh.add_comment(1, "kept")
    requests.get(_comments_url(gh, 1), headers=_auth(), timeout=5)
    gh.fail_next("/", 500)
    gh.reset()
    assert gh.requests == [] and gh.pending_failures == 0
    assert requests.get(_comments_url(gh, 1), headers=_auth(), timeout=5).json()[0]["body"] == "kept"
    assert gh.last_request is not None and gh.last_request.method == "GET"


def test_concurrent_posts_are_all_recorded_with_unique_ids(gh: FakeGitHub) -> None:
    def post(i: int) -> int:
        resp = requests.post(_comments_url(gh, 1), json={"body": f"c{i}"}, headers=_auth(), timeout=10)
        assert resp.status_code == 201
        return resp.json()["id"]

    with ThreadPoolExecutor(max_workers=16) as pool:
        ids = list(pool.map(post, range(64)))
    assert len(set(ids)) == 64
    assert len(gh.comments_on(1)) == 64
    assert len(gh.wait_for_requests(64)) == 64
    assert gh.errors == []


def test_keep_alive_session(gh: FakeGitHub) -> None:
    with requests.Session() as session:
        session.headers.update(_auth())
        for i in range(5):
            assert session.post(_comments_url(gh, 1), json={"body": f"{i}"}, timeout=5).status_code == 201
    assert gh._httpd is not None and gh._httpd.accepted == 1


# -- artifacts: happy paths --------------------------------------------------------------


def test_artifact_single_put_flow(gh: FakeGitHub) -> None:
    data = _zip({"summary.json": b'{"ok": true}', "runs/1.jsonl": b"line\n"})
    body = _create_body(gh, "simulation-results", expires_at="2030-01-01T00:00:00Z")
    resp = _twirp(gh, "CreateArtifact", body)
    assert resp.status_code == 200
    url = resp.json()["signed_upload_url"]
    assert url.startswith(f"{gh.url}/blob/") and "sig=" in url and "se=" in url

    put = _put_blob(url, data)
    assert put.status_code == 201
    artifact = gh.artifacts["simulation-results"]
    assert artifact.uploaded and not artifact.finalized and artifact.upload_mode == "single"

    fin = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "simulation-results", data))
    assert fin.status_code == 200
    assert fin.json() == {"ok": True, "artifact_id": str(artifact.id)}
    assert artifact.finalized
    assert artifact.content == data and artifact.size == len(data)
    assert artifact.sha256 == hashlib.sha256(data).hexdigest()
    assert artifact.created["version"] == 7 and artifact.created["mime_type"] == "application/zip"
    assert artifact.files() == {"summary.json": b'{"ok": true}', "runs/1.jsonl": b"line\n"}
    [create_req, finalize_req] = gh.results_requests
    assert create_req.path == "/results/" + ARTIFACT_SERVICE_PATH + "CreateArtifact"
    assert create_req.route == "CreateArtifact" and finalize_req.route == "FinalizeArtifact"
    assert gh.blob_requests[0].headers["x-ms-blob-type"] == "BlockBlob"


def test_artifact_block_upload_flow(gh: FakeGitHub) -> None:
    payloads = {
        f"f{i}.bin": b"".join(hashlib.sha256(f"{i}-{j}".encode()).digest() for j in range(100)) for i in range(5)
    }
    data = _zip(payloads)  # incompressible: several 1000-byte blocks
    chunks = [data[i : i + 1000] for i in range(0, len(data), 1000)]
    assert len(chunks) >= 5 and len(set(chunks)) == len(chunks)
    block_ids = [base64.b64encode(f"block-{i:06d}".encode()).decode() for i in range(len(chunks))]
    url = _create(gh, "blocks")
    # upload out of order: the block list decides the order
    for i in reversed(range(len(chunks))):
        resp = requests.put(url, params={"comp": "block", "blockid": block_ids[i]}, data=chunks[i], timeout=5)
        assert resp.status_code == 201
    assert not gh.artifacts["blocks"].uploaded
    xml = "<?xml version='1.0' encoding='utf-8'?><BlockList>"
    xml += "".join(f"<Latest>{b}</Latest>" for b in block_ids) + "</BlockList>"
    commit = requests.put(url, params={"comp": "blocklist"}, data=xml.encode(), timeout=5)
    assert commit.status_code == 201
    artifact = gh.artifacts["blocks"]
    assert artifact.content == data and artifact.upload_mode == "blocks"
    assert artifact.committed_blocks == block_ids
    fin = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "blocks", data))
    assert fin.status_code == 200 and artifact.finalized
    assert artifact.files() == payloads


def test_artifact_accepts_old_clients_and_camel_case(gh: FakeGitHub) -> None:
    body = {
        "workflowRunBackendId": gh.run_backend_id,
        "workflowJobRunBackendId": gh.job_backend_id,
        "name": "old",
        "version": 4,
    }
    resp = _twirp(gh, "CreateArtifact", body)
    assert resp.status_code == 200
    assert gh.artifacts["old"].created["workflow_run_backend_id"] == gh.run_backend_id
    data = b"not even a zip"
    assert _put_blob(resp.json()["signed_upload_url"], data).status_code == 201
    fin = _twirp(gh, "FinalizeArtifact", {**_finalize_body(gh, "old", data), "size": len(data)})
    assert fin.status_code == 200  # protobuf JSON also accepts int64 as a number


def test_custom_runtime_token_scope(gh: FakeGitHub) -> None:
    gh.runtime_token = make_runtime_token("r-9", "j-9")
    assert (gh.run_backend_id, gh.job_backend_id) == ("r-9", "j-9")
    assert _twirp(gh, "CreateArtifact", _create_body(gh, "x")).status_code == 200
    assert gh.artifacts["x"].run_backend_id == "r-9"


# -- artifacts: validation ------------------------------------------------------------


@pytest.mark.parametrize("bad", list('":<>|*?\r\n\\/'))
def test_artifact_name_forbidden_characters(gh: FakeGitHub, bad: str) -> None:
    resp = _twirp(gh, "CreateArtifact", _create_body(gh, f"results{bad}1"))
    assert resp.status_code == 400
    assert resp.json()["code"] == "invalid_argument"
    assert gh.artifacts == {}


def test_artifact_name_empty_and_duplicate(gh: FakeGitHub) -> None:
    empty = _twirp(gh, "CreateArtifact", _create_body(gh, ""))
    assert empty.status_code == 400 and empty.json()["code"] == "invalid_argument"
    _create(gh, "results-shard-1")
    dup = _twirp(gh, "CreateArtifact", _create_body(gh, "results-shard-1"))
    assert dup.status_code == 409 and dup.json()["code"] == "already_exists"
    assert _twirp(gh, "CreateArtifact", _create_body(gh, "results-shard-2")).status_code == 200
    assert sorted(gh.artifacts) == ["results-shard-1", "results-shard-2"]


def test_artifact_scope_and_auth(gh: FakeGitHub) -> None:
    wrong_run = _twirp(gh, "CreateArtifact", {**_create_body(gh, "a"), "workflow_run_backend_id": "other-run"})
    assert wrong_run.status_code == 403 and wrong_run.json()["code"] == "permission_denied"
    wrong_job = _twirp(gh, "CreateArtifact", {**_create_body(gh, "a"), "workflow_job_run_backend_id": "other-job"})
    assert wrong_job.status_code == 403
    missing = _create_body(gh, "a")
    del missing["workflow_run_backend_id"]
    resp = _twirp(gh, "CreateArtifact", missing)
    assert resp.status_code == 400 and resp.json()["code"] == "invalid_argument"
    bad_token = _twirp(gh, "CreateArtifact", _create_body(gh, "a"), token=make_runtime_token())
    assert bad_token.status_code == 401 and bad_token.json()["code"] == "unauthenticated"  # a different token
    no_auth = requests.post(
        gh.results_url + ARTIFACT_SERVICE_PATH + "CreateArtifact", json=_create_body(gh, "a"), timeout=5
    )
    assert no_auth.status_code == 401
    assert gh.artifacts == {}


def test_results_routing_errors(gh: FakeGitHub) -> None:
    headers = {"Authorization": f"Bearer {gh.runtime_token}"}
    # double slash: a client that joins ACTIONS_RESULTS_URL with an extra "/"
    double = requests.post(
        gh.results_url + "/" + ARTIFACT_SERVICE_PATH + "CreateArtifact", json={}, headers=headers, timeout=5
    )
    assert double.status_code == 404 and double.json()["code"] == "bad_route"
    unknown = _twirp(gh, "DeleteArtifact", _create_body(gh, "a"))
    assert unknown.status_code == 404 and unknown.json()["code"] == "bad_route"
    text = requests.post(
        gh.results_url + ARTIFACT_SERVICE_PATH + "CreateArtifact",
        data=json.dumps(_create_body(gh, "a")),
        headers={**headers, "Content-Type": "text/plain"},
        timeout=5,
    )
    assert text.status_code == 404
    malformed = requests.post(
        gh.results_url + ARTIFACT_SERVICE_PATH + "CreateArtifact",
        data=b"{oops",
        headers={**headers, "Content-Type": "application/json"},
        timeout=5,
    )
    assert malformed.status_code == 400 and malformed.json()["code"] == "malformed"
    bad_expiry = _twirp(gh, "CreateArtifact", _create_body(gh, "a", expires_at="tomorrow"))
    assert bad_expiry.status_code == 400
    assert _twirp(gh, "CreateArtifact", _create_body(gh, "a", expires_at="2030-01-01T00:00:00.123456789+02:00")).ok


def test_blob_upload_validation(gh: FakeGitHub) -> None:
    url = _create(gh, "a")
    missing_type = _put_blob(url, b"data", blob_type=None)
    assert missing_type.status_code == 400
    assert missing_type.headers["x-ms-error-code"] == "MissingRequiredHeader"
    assert _put_blob(url, b"data", blob_type="AppendBlob").status_code == 400
    assert not gh.artifacts["a"].uploaded
    tampered = url.replace("sig=", "sig=x")
    assert _put_blob(tampered, b"data").status_code == 403
    no_query = url.split("?")[0]
    assert _put_blob(no_query, b"data").status_code == 403
    assert requests.get(url, timeout=5).status_code == 405
    # block ids must be valid base64 and all of the same length
    assert requests.put(url, params={"comp": "block", "blockid": "%%%"}, data=b"x", timeout=5).status_code == 400
    ok = requests.put(
        url, params={"comp": "block", "blockid": base64.b64encode(b"aaaa").decode()}, data=b"x", timeout=5
    )
    assert ok.status_code == 201
    other_len = base64.b64encode(b"bbbbbbbb").decode()
    assert requests.put(url, params={"comp": "block", "blockid": other_len}, data=b"y", timeout=5).status_code == 400
    unknown = "<BlockList><Latest>" + base64.b64encode(b"zzzz").decode() + "</Latest></BlockList>"
    resp = requests.put(url, params={"comp": "blocklist"}, data=unknown, timeout=5)
    assert resp.status_code == 400 and resp.headers["x-ms-error-code"] == "InvalidBlockList"
    assert requests.put(url, params={"comp": "blocklist"}, data=b"<BlockList", timeout=5).status_code == 400
    assert not gh.artifacts["a"].uploaded


def test_finalize_validation(gh: FakeGitHub) -> None:
    data = _zip({"a.txt": b"hello"})
    url = _create(gh, "a")
    before = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "a", data))
    assert before.status_code == 400 and before.json()["code"] == "invalid_argument"  # nothing uploaded yet
    assert _put_blob(url, data).status_code == 201

    wrong_size = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "a", data, size=str(len(data) + 1)))
    assert wrong_size.status_code == 400
    wrong_hash = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "a", data, hash="sha256:" + "0" * 64))
    assert wrong_hash.status_code == 400
    md5 = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "a", data, hash="md5:abc"))
    assert md5.status_code == 400
    no_hash = _finalize_body(gh, "a", data)
    del no_hash["hash"]
    assert _twirp(gh, "FinalizeArtifact", no_hash).status_code == 400
    assert _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "a", data, size="-1")).status_code == 400
    unknown = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "nope", data))
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    scope = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "a", data, workflow_job_run_backend_id="x"))
    assert scope.status_code == 403
    assert not gh.artifacts["a"].finalized

    upper = _finalize_body(gh, "a", data, hash="sha256:" + hashlib.sha256(data).hexdigest().upper())
    assert _twirp(gh, "FinalizeArtifact", upper).status_code == 200
    assert gh.artifacts["a"].finalized
    again = _twirp(gh, "FinalizeArtifact", _finalize_body(gh, "a", data))
    assert again.status_code == 412 and again.json()["code"] == "failed_precondition"
