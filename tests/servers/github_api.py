"""In-process fake of the GitHub REST API, the Actions results (artifact v4) service and blob storage.

One server plays three parts, so a test can point an action at it through the
environment the runner would set::

    with FakeGitHub() as gh:
        gh.add_comments(7, 150)  # unrelated noise before the sticky comment
        env = gh.env()  # GITHUB_API_URL, GITHUB_REPOSITORY, ACTIONS_RESULTS_URL, ...
        ...  # run the code under test with env and gh.token
        assert gh.comment_posts[0].body["body"].startswith("<!-- sticky -->")
        assert gh.artifacts["results"].files()["summary.json"]

Parts and routes:

* REST API under :attr:`FakeGitHub.api_url` (``http://127.0.0.1:PORT/api/v3``, a GitHub
  Enterprise style prefix, so a client that ignores ``GITHUB_API_URL`` gets nowhere):
  ``GET``/``POST /repos/{owner}/{repo}/issues/{number}/comments`` (paginated with ``per_page``,
  ``page`` and a ``Link`` header), ``GET``/``PATCH``/``DELETE
  /repos/{owner}/{repo}/issues/comments/{id}``. Only :attr:`FakeGitHub.repository` exists.
  A comment carries its author (``user.login``, ``user.type``, ``performed_via_github_app``);
  one created through the API is by the token's account, :attr:`FakeGitHub.token_author`.
  ``GET /user`` answers as GitHub does per token kind: the login for a personal token
  (:attr:`FakeGitHub.token_owner` set), ``403 Resource not accessible by integration`` for an
  app's installation token (the default, like ``GITHUB_TOKEN``).
* GraphQL at :attr:`FakeGitHub.graphql_url` (``/api/graphql`` beside ``/api/v3``, as on GitHub
  Enterprise): ``POST`` ``{"query": "... viewer { login } ..."}`` answers
  ``{"data": {"viewer": {"login": <token_author>}}}``, for an installation token too; any other
  query answers a GraphQL error.
* Results service under :attr:`FakeGitHub.results_url` (``http://127.0.0.1:PORT/results/``, with
  the trailing slash the runner puts in ``ACTIONS_RESULTS_URL``): Twirp JSON ``POST
  twirp/github.actions.results.api.v1.ArtifactService/CreateArtifact`` and ``.../FinalizeArtifact``,
  errors as ``{"code": ..., "msg": ...}``.
* Blob storage at ``/blob/<artifact id>?...&sig=...``, the signed upload URL CreateArtifact hands
  out: a single ``PUT`` with ``x-ms-blob-type: BlockBlob``, or Azure's ``comp=block`` /
  ``comp=blocklist`` pair. Errors are Azure-style XML.
* Artifacts of other workflow runs (:meth:`FakeGitHub.add_run_artifact`), read back through the
  REST API: ``GET /repos/{owner}/{repo}/actions/artifacts?name=...`` (newest first, paginated like
  the comments, expired ones included), ``GET .../actions/runs/{run_id}`` (the run's ``event``)
  and ``GET .../actions/artifacts/{id}/zip``, which answers
  ``302`` to ``/storage/<id>?...&sig=...`` (``410`` when expired). Storage serves the zip and
  refuses (``400``) any request carrying an ``Authorization`` header, as a signed blob URL does.
  With :attr:`FakeGitHub.actions_read` false (a token without ``actions: read``), the artifact
  routes answer ``403``.

Every request is recorded (:attr:`FakeGitHub.requests`), whatever its outcome, before
:meth:`FakeGitHub.fail_next` faults, auth and validation apply. Standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import secrets
import time
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from typing import Any
from urllib.parse import urlencode
from xml.etree import ElementTree

from tests.servers.base import BaseRecordedRequest, HeaderItems, LocalHandler, LocalServer

__all__ = [
    "ARTIFACT_SERVICE_PATH",
    "BOT_LOGIN",
    "DEFAULT_TOKEN",
    "FORBIDDEN_ARTIFACT_NAME_CHARS",
    "MAX_COMMENT_LENGTH",
    "Artifact",
    "FakeGitHub",
    "RecordedRequest",
    "RunArtifact",
    "make_runtime_token",
    "runtime_token_scope",
]

DEFAULT_TOKEN = "ghs_test_token"
BOT_LOGIN = "github-actions[bot]"
MAX_COMMENT_LENGTH = 65536
ARTIFACT_SERVICE_PATH = "twirp/github.actions.results.api.v1.ArtifactService/"
"""Twirp path of the artifact service, relative to ``ACTIONS_RESULTS_URL``."""
FORBIDDEN_ARTIFACT_NAME_CHARS = '":<>|*?\r\n\\/'

_DOCS_URL = "https://docs.github.com/rest"
_RESULTS_PREFIX = "/results/"
_BLOB_PREFIX = "/blob/"
_STORAGE_PREFIX = "/storage/"
_ISSUE_COMMENTS_RE = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/(\d+)/comments$")
_RUN_ARTIFACTS_RE = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/artifacts$")
_RUN_ARTIFACT_ZIP_RE = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/artifacts/(\d+)/zip$")
_RUN_RE = re.compile(r"^/repos/([^/]+)/([^/]+)/actions/runs/(\d+)$")
_COMMENT_RE = re.compile(r"^/repos/([^/]+)/([^/]+)/issues/comments/(\d+)$")
_TWIRP_STATUS = {
    "canceled": 408,
    "unknown": 500,
    "invalid_argument": 400,
    "malformed": 400,
    "deadline_exceeded": 408,
    "not_found": 404,
    "bad_route": 404,
    "already_exists": 409,
    "permission_denied": 403,
    "unauthenticated": 401,
    "resource_exhausted": 429,
    "failed_precondition": 412,
    "aborted": 409,
    "out_of_range": 400,
    "unimplemented": 501,
    "internal": 500,
    "unavailable": 503,
    "dataloss": 500,
}
_TWIRP_CODE_FOR_STATUS = {
    400: "invalid_argument",
    401: "unauthenticated",
    403: "permission_denied",
    404: "not_found",
    408: "deadline_exceeded",
    409: "already_exists",
    412: "failed_precondition",
    429: "resource_exhausted",
    500: "internal",
    501: "unimplemented",
    502: "unavailable",
    503: "unavailable",
    504: "deadline_exceeded",
}


# --------------------------------------------------------------------------
# runtime token
# --------------------------------------------------------------------------


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def make_runtime_token(run_backend_id: str = "run-backend-1", job_backend_id: str = "job-backend-1") -> str:
    """An unsigned JWT shaped like ``ACTIONS_RUNTIME_TOKEN``.

    Its ``scp`` claim carries ``Actions.Results:<run_backend_id>:<job_backend_id>`` between
    other scopes, as the runner's token does; the signature part is junk.
    """
    now = int(time.time())
    header = {"typ": "JWT", "alg": "RS256", "x5t": "ZmFrZS14NXQ"}
    host = "00000000-0000-0000-0000-000000000000"
    payload = {
        "nameid": "dddddddd-dddd-dddd-dddd-dddddddddddd",
        "scp": (
            f"Actions.GenericRead:{host} Actions.Results:{run_backend_id}:{job_backend_id} "
            f"Actions.UploadArtifacts:{host}/1:{run_backend_id}/1 "
            f"LocationService.Connect ReadAndUpdateBuildByUri:{host}/1:{run_backend_id}"
        ),
        "IdentityTypeClaim": "System:ServiceIdentity",
        "ac": "[]",
        "acsl": "10",
        "orchid": f"{run_backend_id}.build.__default",
        "iss": "vstoken.actions.githubusercontent.com",
        "aud": "vstoken.actions.githubusercontent.com",
        "nbf": now - 60,
        "iat": now - 60,
        "exp": now + 6 * 3600,
        "jti": secrets.token_hex(8),  # every token is distinct, even with the same scope
    }
    parts = [json.dumps(header, separators=(",", ":")).encode(), json.dumps(payload, separators=(",", ":")).encode()]
    return ".".join([*(_b64url(p) for p in parts), _b64url(b"fake-signature-not-verified")])


def runtime_token_scope(token: str) -> tuple[str, str] | None:
    """``(workflow_run_backend_id, workflow_job_run_backend_id)`` from a runtime token's ``scp``.

    ``None`` when the token is not a JWT or carries no ``Actions.Results`` scope.
    """
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (ValueError, binascii.Error):
        return None
    scp = payload.get("scp") if isinstance(payload, dict) else None
    if not isinstance(scp, str):
        return None
    for scope in scp.split():
        pieces = scope.split(":")
        if len(pieces) == 3 and pieces[0] == "Actions.Results":
            return pieces[1], pieces[2]
    return None


# --------------------------------------------------------------------------
# records and state
# --------------------------------------------------------------------------


@dataclass
class RecordedRequest(BaseRecordedRequest):
    """One HTTP request received by the fake server."""

    path: str
    """Full URL path as received (API requests include the ``/api/v3`` prefix)."""
    raw_body: bytes = b""
    target: str = ""
    """The raw request target (path and query string), what ``fail_next`` matches."""
    service: str | None = None
    """``"api"``, ``"results"``, ``"blob"`` or ``None`` (no such service)."""
    route: str = ""
    """Path inside the service: API path without prefix, Twirp method name, or artifact id."""


@dataclass
class Artifact:
    """An artifact created through the results service."""

    name: str
    id: int
    content: bytes = b""
    """The committed blob bytes (the last single PUT or block list commit)."""
    size: int = 0
    sha256: str = ""
    """Hex SHA-256 of :attr:`content`."""
    finalized: bool = False
    created: dict[str, Any] = field(default_factory=dict)
    """The CreateArtifact request body (keys in snake_case)."""
    finalize_request: dict[str, Any] | None = None
    """The accepted FinalizeArtifact request body."""
    run_backend_id: str = ""
    job_backend_id: str = ""
    signature: str = ""
    """The ``sig`` of the signed upload URL."""
    uploaded: bool = False
    """True once a single PUT or a block list commit stored content."""
    upload_mode: str | None = None
    """``"single"`` or ``"blocks"``: how the content was last committed."""
    blocks: dict[str, bytes] = field(default_factory=dict)
    """Uncommitted blocks by block id (base64, as sent)."""
    committed_blocks: list[str] = field(default_factory=list)
    """Block ids of the last block list commit, in order."""
    committed_block_data: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Bytes of each committed block (a later block list may reuse them)."""

    def files(self) -> dict[str, bytes]:
        """Unzip :attr:`content`: archive member name -> bytes (directories skipped)."""
        with zipfile.ZipFile(io.BytesIO(self.content)) as archive:
            return {info.filename: archive.read(info) for info in archive.infolist() if not info.is_dir()}


@dataclass
class RunArtifact:
    """An artifact some earlier workflow run uploaded, as the REST API lists it."""

    id: int
    name: str
    content: bytes
    """The zip the storage URL serves."""
    head_branch: str
    head_sha: str
    run_id: int
    repository_id: int
    head_repository_id: int
    """Differs from :attr:`repository_id` for a run of a fork's pull request."""
    expired: bool
    created_at: str
    signature: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    event: str = "push"
    """What triggered the run (``GET .../actions/runs/{id}`` says it)."""
    listed_as: dict[str, Any] = field(default_factory=dict)
    """Fields the listing shows instead of the true ones (``workflow_run.<key>`` for the run's),
    e.g. ``{"id": True}``: an answer whose numbers are broken."""

    def listed(self, api_url: str, repository: str) -> dict[str, Any]:
        """The artifact object of ``GET /repos/{owner}/{repo}/actions/artifacts``."""
        listed = self._listed(api_url, repository)
        for key, value in self.listed_as.items():
            if key.startswith("workflow_run."):
                listed["workflow_run"][key[len("workflow_run.") :]] = value
            else:
                listed[key] = value
        return listed

    def _listed(self, api_url: str, repository: str) -> dict[str, Any]:
        url = f"{api_url}/repos/{repository}/actions/artifacts/{self.id}"
        created = datetime.strptime(self.created_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
        return {
            "id": self.id,
            "node_id": f"MDg6QXJ0aWZhY3Qx{self.id}",
            "name": self.name,
            "size_in_bytes": len(self.content),
            "url": url,
            "archive_download_url": f"{url}/zip",
            "expired": self.expired,
            "created_at": self.created_at,
            "updated_at": self.created_at,
            "expires_at": (created + timedelta(days=90)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "digest": f"sha256:{hashlib.sha256(self.content).hexdigest()}",
            "workflow_run": {
                "id": self.run_id,
                "repository_id": self.repository_id,
                "head_repository_id": self.head_repository_id,
                "head_branch": self.head_branch,
                "head_sha": self.head_sha,
            },
        }


@dataclass
class _Fault:
    path_contains: str
    status: int
    remaining: int
    headers: dict[str, str]
    method: str | None = None


def _now_iso() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _user(login: str) -> dict[str, Any]:
    return {"login": login, "type": "Bot" if login.endswith("[bot]") else "User"}


def _app(login: str) -> dict[str, Any] | None:
    """``performed_via_github_app`` of a comment by ``login``: the app of a ``<slug>[bot]``."""
    if not login.endswith("[bot]"):
        return None
    slug = login[: -len("[bot]")]
    return {"id": 15368 if slug == "github-actions" else 900_000 + len(slug), "slug": slug, "name": slug}


class FakeGitHub(LocalServer[RecordedRequest]):
    """GitHub REST API + Actions results service + blob storage in a daemon thread.

    Use as a context manager or call :meth:`start` / :meth:`close`. Tune behaviour through
    the public attributes (``token``, ``runtime_token``, ``read_only``, ``missing_repo``,
    ``repository``) at any time. :meth:`reset` forgets recorded requests and errors and
    drops pending failures (state is kept).
    """

    requests: list[RecordedRequest]
    """Every request received (all three parts), in arrival order."""
    errors: list[BaseException]
    """Unexpected exceptions raised while handling requests (answered 500)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        api_prefix: str = "/api/v3",
        repository: str = "octo-org/octo-repo",
    ) -> None:
        """Prepare the server; nothing is bound until :meth:`start`."""
        if api_prefix and (not api_prefix.startswith("/") or api_prefix.endswith("/")):
            raise ValueError("api_prefix must be empty or start (and not end) with '/'")
        super().__init__(host, port, _Handler)
        self._api_prefix = api_prefix
        self._faults: list[_Fault] = []
        self._next_comment_id = 2_000_000_000
        self._next_artifact_id = 1000
        self.token = DEFAULT_TOKEN
        """The REST API token (``Authorization: Bearer <token>`` or ``token <token>``)."""
        self.token_owner: str | None = None
        """None: :attr:`token` is an app's installation token (``GET /user`` answers 403); a
        login: it is that user's personal access token."""
        self.app_slug = "github-actions"
        """The app whose installation token :attr:`token` is (when :attr:`token_owner` is None);
        ``github-actions`` is the workflow's own ``GITHUB_TOKEN``."""
        self.runtime_token = make_runtime_token()
        """The ``ACTIONS_RUNTIME_TOKEN`` the results service accepts."""
        self.repository = repository
        """``owner/repo`` that exists (compared case-insensitively); others answer 404."""
        self.server_url = "https://github.example"
        """Base of the comments' ``html_url`` (``GITHUB_SERVER_URL``)."""
        self.read_only = False
        #: where listings' `Link` pages point (None: this server): an answer that sends the reader elsewhere
        self.link_base: str | None = None
        """True: every API POST/PATCH/PUT/DELETE answers 403, as with a fork PR's token."""
        self.missing_repo = False
        """True: every (authenticated) API request answers 404."""
        self.comments: dict[int, list[dict[str, Any]]] = {}
        """Comments per issue/PR number, in creation order."""
        self.artifacts: dict[str, Artifact] = {}
        """Artifacts by name."""
        self.repository_id = 1296269
        """Id of :attr:`repository` in artifacts' ``workflow_run``."""
        self.actions_read = True
        """False: the artifact routes answer 403, as for a token without ``actions: read``."""
        self.finalized_id: Any = None
        """What FinalizeArtifact answers as ``artifact_id``; None: the id as a string, as the service does."""
        self.run_artifacts: list[RunArtifact] = []
        """Artifacts of other workflow runs (:meth:`add_run_artifact`), oldest first."""
        self._next_run_id = 9000
        self._clock = datetime(2024, 5, 1, tzinfo=timezone.utc)

    # -- addresses ---------------------------------------------------------

    @property
    def api_prefix(self) -> str:
        """Path prefix of the REST API (``/api/v3`` by default)."""
        return self._api_prefix

    @property
    def api_url(self) -> str:
        """``GITHUB_API_URL``, e.g. ``http://127.0.0.1:PORT/api/v3`` (no trailing slash)."""
        return self.url + self._api_prefix

    @property
    def graphql_url(self) -> str:
        """GraphQL endpoint: ``/api/graphql`` beside an ``/api/v3`` prefix, else ``<api_url>/graphql``."""
        return self.url + _graphql_path(self._api_prefix)

    @property
    def token_author(self) -> str:
        """Who :attr:`token` writes as: :attr:`token_owner`, or the app's ``<slug>[bot]``."""
        return self.token_owner or f"{self.app_slug}[bot]"

    @property
    def results_url(self) -> str:
        """``ACTIONS_RESULTS_URL``, e.g. ``http://127.0.0.1:PORT/results/`` (trailing slash)."""
        return self.url + _RESULTS_PREFIX

    @property
    def run_backend_id(self) -> str:
        """``workflow_run_backend_id`` from :attr:`runtime_token`."""
        return self._runtime_scope()[0]

    @property
    def job_backend_id(self) -> str:
        """``workflow_job_run_backend_id`` from :attr:`runtime_token`."""
        return self._runtime_scope()[1]

    def env(self) -> dict[str, str]:
        """Environment variables a runner would set for these services (not the API token)."""
        return {
            "GITHUB_API_URL": self.api_url,
            "GITHUB_SERVER_URL": self.server_url,
            "GITHUB_REPOSITORY": self.repository,
            "ACTIONS_RESULTS_URL": self.results_url,
            "ACTIONS_RUNTIME_TOKEN": self.runtime_token,
            "ACTIONS_RUNTIME_URL": self.url + "/runtime/",
        }

    # -- state helpers -----------------------------------------------------

    def add_comment(self, number: int, body: str, login: str = BOT_LOGIN) -> dict[str, Any]:
        """Add a comment to issue/PR ``number`` directly; return (a copy of) it."""
        with self._lock:
            return dict(self._new_comment(number, body, login))

    def add_comments(
        self, number: int, count: int, body: str = "noise", login: str = "someone"
    ) -> list[dict[str, Any]]:
        """Add ``count`` comments ``"<body> <i>"`` (i from 1) to ``number``; return copies."""
        with self._lock:
            return [dict(self._new_comment(number, f"{body} {i}", login)) for i in range(1, count + 1)]

    def comments_on(self, number: int) -> list[dict[str, Any]]:
        """A snapshot (copies) of the comments on ``number``."""
        with self._lock:
            return [dict(c) for c in self.comments.get(number, [])]

    def add_run_artifact(
        self,
        name: str,
        files: dict[str, bytes] | None = None,
        *,
        content: bytes | None = None,
        branch: str = "main",
        sha: str | None = None,
        run_id: int | None = None,
        expired: bool = False,
        fork: bool = False,
        event: str = "push",
    ) -> RunArtifact:
        """An artifact of an earlier run, newer than every one added before: the zip of ``files``
        (or ``content`` as is); ``fork`` makes it a run of a fork's branch of that name; ``event``
        is what triggered its run."""
        if content is None:
            buffer = io.BytesIO()
            with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
                for path, data in (files or {}).items():
                    archive.writestr(path, data)
            content = buffer.getvalue()
        with self._lock:
            self._next_artifact_id += 1
            self._next_run_id += 1
            self._clock += timedelta(minutes=5)
            artifact = RunArtifact(
                id=self._next_artifact_id,
                name=name,
                content=content,
                head_branch=branch,
                head_sha=sha or secrets.token_hex(20),
                run_id=run_id or self._next_run_id,
                repository_id=self.repository_id,
                head_repository_id=self.repository_id + 1 if fork else self.repository_id,
                expired=expired,
                created_at=self._clock.strftime("%Y-%m-%dT%H:%M:%SZ"),
                event=event,
            )
            self.run_artifacts.append(artifact)
        return artifact

    def fail_next(
        self,
        path_contains: str,
        status: int,
        times: int = 1,
        headers: dict[str, str] | None = None,
        method: str | None = None,
    ) -> FakeGitHub:
        """Answer the next ``times`` requests whose target (path + query) contains ``path_contains``
        with ``status`` and a JSON error body (Twirp-shaped on the results service); status ``0``
        drops the connection without an answer.

        Applies to every part (API, results, blob), before auth; ``headers`` (e.g.
        ``{"Retry-After": "0"}``) are added to those answers; ``method`` (e.g. ``"POST"``) limits the
        rule to requests of that method. Rules are checked in order.
        """
        if times < 1:
            raise ValueError("times must be >= 1")
        with self._lock:
            self._faults.append(_Fault(path_contains, status, times, dict(headers or {}), method))
        return self

    @property
    def pending_failures(self) -> int:
        """Number of injected failures not consumed yet."""
        with self._lock:
            return sum(f.remaining for f in self._faults)

    # -- inspection --------------------------------------------------------

    @property
    def api_requests(self) -> list[RecordedRequest]:
        """Recorded requests to the REST API part."""
        return self._select(lambda r: r.service == "api")

    @property
    def results_requests(self) -> list[RecordedRequest]:
        """Recorded requests to the results service."""
        return self._select(lambda r: r.service == "results")

    @property
    def blob_requests(self) -> list[RecordedRequest]:
        """Recorded requests to blob storage."""
        return self._select(lambda r: r.service == "blob")

    @property
    def storage_requests(self) -> list[RecordedRequest]:
        """Recorded requests to artifact storage (the ``/zip`` redirects' target)."""
        return self._select(lambda r: r.service == "storage")

    @property
    def run_requests(self) -> list[RecordedRequest]:
        """Recorded ``GET .../actions/runs/{id}`` requests."""
        return self._select(lambda r: r.service == "api" and bool(_RUN_RE.match(r.route)))

    @property
    def artifact_list_requests(self) -> list[RecordedRequest]:
        """Recorded ``GET .../actions/artifacts`` requests."""
        return self._select(lambda r: r.service == "api" and bool(_RUN_ARTIFACTS_RE.match(r.route)))

    @property
    def comment_posts(self) -> list[RecordedRequest]:
        """Recorded ``POST .../issues/{number}/comments`` requests (whatever their answer)."""
        return self._select(
            lambda r: r.service == "api" and r.method == "POST" and bool(_ISSUE_COMMENTS_RE.match(r.route))
        )

    @property
    def comment_patches(self) -> list[RecordedRequest]:
        """Recorded ``PATCH .../issues/comments/{id}`` requests (whatever their answer)."""
        return self._select(lambda r: r.service == "api" and r.method == "PATCH" and bool(_COMMENT_RE.match(r.route)))

    @property
    def comment_deletes(self) -> list[RecordedRequest]:
        """Recorded ``DELETE .../issues/comments/{id}`` requests (whatever their answer)."""
        return self._select(lambda r: r.service == "api" and r.method == "DELETE" and bool(_COMMENT_RE.match(r.route)))

    @property
    def identity_requests(self) -> list[RecordedRequest]:
        """Recorded ``GET /user`` and GraphQL requests: asking who the token is."""
        return self._select(lambda r: (r.service == "api" and r.route == "/user") or r.service == "graphql")

    # -- internals (call with self._lock held where noted) ---------------------

    def _forget(self) -> None:
        """Drop pending failures (lock held); comments and artifacts are kept."""
        self._faults.clear()

    def _runtime_scope(self) -> tuple[str, str]:
        scope = runtime_token_scope(self.runtime_token)
        if scope is None:
            raise ValueError("runtime_token has no Actions.Results scope")
        return scope

    def _select(self, predicate: Any) -> list[RecordedRequest]:
        with self._lock:
            return [r for r in self.requests if predicate(r)]

    def _take_fault(self, target: str, method: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method not in (None, method):
                    continue
                if fault.remaining > 0 and fault.path_contains in target:
                    fault.remaining -= 1
                    if fault.remaining == 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def _new_comment(self, number: int, body: str, login: str) -> dict[str, Any]:
        """Create and store a comment (lock held)."""
        self._next_comment_id += 1
        cid = self._next_comment_id
        now = _now_iso()
        comment = {
            "id": cid,
            "body": body,
            "user": _user(login),
            "performed_via_github_app": _app(login),
            "html_url": f"{self.server_url}/{self.repository}/pull/{number}#issuecomment-{cid}",
            "url": f"{self.api_url if self._httpd else ''}/repos/{self.repository}/issues/comments/{cid}",
            "created_at": now,
            "updated_at": now,
        }
        self.comments.setdefault(number, []).append(comment)
        return comment

    def _find_comment(self, comment_id: int) -> tuple[int, dict[str, Any]] | None:
        """``(number, comment)`` for an id (lock held)."""
        for number, comments in self.comments.items():
            for comment in comments:
                if comment.get("id") == comment_id:
                    return number, comment
        return None


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _Handler(LocalHandler):
    server_version = "FakeGitHub/1.0"
    json_content_type = "application/json; charset=utf-8"

    def version_string(self) -> str:
        """``Server`` header value."""
        return self.server_version

    # -- dispatch ------------------------------------------------------------

    def _handle(self) -> None:
        fake: FakeGitHub = self.server.fake
        incoming = self._read_request()
        json_ok = incoming.json_ok
        service, route = self._classify(incoming.path)
        request = incoming.record(
            RecordedRequest, raw_body=incoming.raw_body, target=self.path, service=service, route=route
        )
        fake._record(request)

        fault = fake._take_fault(self.path, self.command)
        if fault is not None:
            self._send_fault(service, fault)
            return
        try:
            if service == "api":
                self._handle_api(fake, request, json_ok)
            elif service == "results":
                self._handle_results(fake, request, json_ok)
            elif service == "blob":
                self._handle_blob(fake, request)
            elif service == "storage":
                self._handle_storage(fake, request)
            elif service == "graphql":
                self._handle_graphql(fake, request, json_ok)
            else:
                self._send_json(404, {"message": "Not Found", "documentation_url": _DOCS_URL})
        except Exception as exc:  # a bug in the fake: report it and answer 500
            fake._record_error(exc)
            self._send_json(500, {"message": f"fake GitHub failed: {exc!r}"})

    def _classify(self, path: str) -> tuple[str | None, str]:
        prefix = self.server.fake.api_prefix
        if path.startswith(_BLOB_PREFIX):
            return "blob", path[len(_BLOB_PREFIX) :]
        if path.startswith(_STORAGE_PREFIX):
            return "storage", path[len(_STORAGE_PREFIX) :]
        if path == _graphql_path(prefix):
            return "graphql", path
        if path.startswith(_RESULTS_PREFIX):
            rest = path[len(_RESULTS_PREFIX) :]
            if rest.startswith(ARTIFACT_SERVICE_PATH):
                return "results", rest[len(ARTIFACT_SERVICE_PATH) :]
            return "results", rest
        if not prefix or path.startswith(prefix + "/"):
            return "api", path[len(prefix) :]
        return None, path

    def _send_fault(self, service: str | None, fault: _Fault) -> None:
        if fault.status == 0:  # the connection drops without an answer
            self._reset_connection()
            return
        try:
            phrase = HTTPStatus(fault.status).phrase
        except ValueError:
            phrase = "Injected failure"
        if service == "results":
            code = _TWIRP_CODE_FOR_STATUS.get(fault.status, "unknown")
            payload: dict[str, Any] = {"code": code, "msg": f"injected failure: {phrase}"}
        else:
            payload = {"message": phrase, "status": str(fault.status)}
        self._send_json(fault.status, payload, fault.headers)

    # -- REST API ------------------------------------------------------------

    def _api_error(self, status: int, message: str, **extra: Any) -> None:
        self._send_json(status, {"message": message, **extra, "documentation_url": _DOCS_URL})

    def _handle_api(self, fake: FakeGitHub, request: RecordedRequest, json_ok: bool) -> None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or not token.strip() or token.strip() != fake.token:
            self._api_error(401, "Bad credentials")
            return
        if request.route == "/user" and request.method == "GET":
            self._authenticated_user(fake)
            return
        if fake.missing_repo:
            self._api_error(404, "Not Found")
            return
        method = request.method
        if fake.read_only and method in ("POST", "PATCH", "PUT", "DELETE"):
            self._api_error(403, "Resource not accessible by integration")
            return
        route = request.route
        artifacts_match = _RUN_ARTIFACTS_RE.match(route) or _RUN_ARTIFACT_ZIP_RE.match(route) or _RUN_RE.match(route)
        if artifacts_match is not None:
            if f"{artifacts_match[1]}/{artifacts_match[2]}".lower() != fake.repository.lower() or method != "GET":
                self._api_error(404, "Not Found")
            elif not fake.actions_read:
                self._api_error(403, "Resource not accessible by integration")
            elif artifacts_match.re is _RUN_ARTIFACTS_RE:
                self._list_run_artifacts(fake, request)
            elif artifacts_match.re is _RUN_RE:
                self._get_run(fake, int(artifacts_match[3]))
            else:
                self._redirect_to_storage(fake, int(artifacts_match[3]))
            return
        list_match = _ISSUE_COMMENTS_RE.match(route)
        item_match = _COMMENT_RE.match(route)
        match = list_match or item_match
        if match is None or f"{match[1]}/{match[2]}".lower() != fake.repository.lower():
            self._api_error(404, "Not Found")
            return
        if method in ("POST", "PATCH") and (not json_ok or (request.raw_body and not isinstance(request.body, dict))):
            self._api_error(400, "Problems parsing JSON")
            return
        if list_match is not None:
            number = int(list_match[3])
            if method in ("GET", "HEAD"):
                self._list_comments(fake, request, number)
            elif method == "POST":
                self._create_comment(fake, request, number)
            else:
                self._api_error(404, "Not Found")
            return
        assert item_match is not None
        comment_id = int(item_match[3])
        if method in ("GET", "HEAD", "PATCH", "DELETE"):
            self._comment_item(fake, request, comment_id)
        else:
            self._api_error(404, "Not Found")

    def _authenticated_user(self, fake: FakeGitHub) -> None:
        """``GET /user``: a personal token's user; an installation token may not ask (403)."""
        if fake.token_owner is None:
            docs = f"{_DOCS_URL}/users/users#get-the-authenticated-user"
            self._send_json(403, {"message": "Resource not accessible by integration", "documentation_url": docs})
            return
        self._send_json(200, {**_user(fake.token_owner), "id": 583231, "site_admin": False})

    def _handle_graphql(self, fake: FakeGitHub, request: RecordedRequest, json_ok: bool) -> None:
        """``POST /graphql`` with ``{ viewer { login } }``, the one query the fake knows."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "token") or token.strip() != fake.token:
            self._send_json(401, {"message": "Bad credentials", "documentation_url": _DOCS_URL})
            return
        query = request.body.get("query") if json_ok and isinstance(request.body, dict) else None
        if request.method != "POST" or not isinstance(query, str):
            self._send_json(400, {"message": "Problems parsing JSON", "documentation_url": _DOCS_URL})
        elif re.search(r"\bviewer\s*\{\s*login\s*\}", query):
            self._send_json(200, {"data": {"viewer": {"login": fake.token_author}}})
        else:
            self._send_json(200, {"errors": [{"message": "the fake GraphQL API answers only { viewer { login } }"}]})

    def _list_comments(self, fake: FakeGitHub, request: RecordedRequest, number: int) -> None:
        per_page = _int_param(request.query.get("per_page"), 30)
        per_page = 30 if per_page < 1 else min(per_page, 100)
        page = max(1, _int_param(request.query.get("page"), 1))
        with fake._lock:
            comments = [dict(c) for c in fake.comments.get(number, [])]
        last = max(1, -(-len(comments) // per_page))
        items = comments[(page - 1) * per_page : page * per_page]
        self._send_json(200, items, self._link_header(fake, request, page, last, per_page))

    def _validate_comment_body(self, body: Any) -> bool:
        """Answer 422 and return False when ``body`` has no acceptable ``body`` field."""
        text = body.get("body") if isinstance(body, dict) else None
        if not isinstance(text, str):
            error = {"resource": "IssueComment", "code": "missing_field", "field": "body"}
        elif not text.strip():
            error = {
                "resource": "IssueComment",
                "code": "missing_field",
                "field": "body",
                "message": "Body cannot be blank",
            }
        elif len(text) > MAX_COMMENT_LENGTH:
            message = f"Body is too long (maximum is {MAX_COMMENT_LENGTH} characters)"
            error = {"resource": "IssueComment", "code": "custom", "field": "body", "message": message}
        else:
            return True
        self._api_error(422, "Validation Failed", errors=[error])
        return False

    def _create_comment(self, fake: FakeGitHub, request: RecordedRequest, number: int) -> None:
        if not self._validate_comment_body(request.body):
            return
        with fake._lock:
            comment = dict(fake._new_comment(number, request.body["body"], fake.token_author))
        self._send_json(201, comment, {"Location": comment["url"]})

    def _comment_item(self, fake: FakeGitHub, request: RecordedRequest, comment_id: int) -> None:
        if request.method == "PATCH" and not self._validate_comment_body(request.body):
            return
        with fake._lock:
            found = fake._find_comment(comment_id)
            if found is not None:
                number, comment = found
                if request.method == "PATCH":
                    comment["body"] = request.body["body"]
                    comment["updated_at"] = _now_iso()
                elif request.method == "DELETE":
                    fake.comments[number].remove(comment)
                snapshot = dict(comment)
        if found is None:
            self._api_error(404, "Not Found")
        elif request.method == "DELETE":
            self._send(204, b"", "application/json")
        else:
            self._send_json(200, snapshot)

    # -- artifacts of other runs ------------------------------------------------------

    def _get_run(self, fake: FakeGitHub, run_id: int) -> None:
        """``GET .../actions/runs/{id}``: the fields of a workflow run the action reads."""
        with fake._lock:
            found = next((a for a in fake.run_artifacts if a.run_id == run_id), None)
        if found is None:
            self._api_error(404, "Not Found")
            return
        self._send_json(
            200,
            {
                "id": run_id,
                "event": found.event,
                "head_branch": found.head_branch,
                "head_sha": found.head_sha,
                "repository": {"id": found.repository_id, "full_name": fake.repository},
                "head_repository": {"id": found.head_repository_id},
            },
        )

    def _list_run_artifacts(self, fake: FakeGitHub, request: RecordedRequest) -> None:
        per_page = _int_param(request.query.get("per_page"), 30)
        per_page = 30 if per_page < 1 else min(per_page, 100)
        page = max(1, _int_param(request.query.get("page"), 1))
        name = request.query.get("name")
        with fake._lock:
            matching = [a for a in fake.run_artifacts if name is None or a.name == name]
        matching.sort(key=lambda a: (a.created_at, a.id), reverse=True)  # newest first
        items = [a.listed(fake.api_url, fake.repository) for a in matching[(page - 1) * per_page : page * per_page]]
        headers = self._link_header(fake, request, page, max(1, -(-len(matching) // per_page)), per_page)
        self._send_json(200, {"total_count": len(matching), "artifacts": items}, headers)

    def _link_header(
        self, fake: FakeGitHub, request: RecordedRequest, page: int, last: int, per_page: int
    ) -> dict[str, str]:
        links: list[tuple[int, str]] = []
        if page > 1:
            links.append((page - 1, "prev"))
        if page < last:
            links += [(page + 1, "next"), (last, "last")]
        if page > 1:
            links.append((1, "first"))
        if not links:
            return {}
        base = (fake.link_base or fake.api_url) + request.route
        parts = []
        for target_page, rel in links:
            query = {**request.query, "per_page": str(per_page), "page": str(target_page)}
            parts.append(f'<{base}?{urlencode(query)}>; rel="{rel}"')
        return {"Link": ", ".join(parts)}

    def _redirect_to_storage(self, fake: FakeGitHub, artifact_id: int) -> None:
        with fake._lock:
            artifact = next((a for a in fake.run_artifacts if a.id == artifact_id), None)
        if artifact is None:
            self._api_error(404, "Not Found")
        elif artifact.expired:
            self._api_error(410, "Artifact has expired")
        else:
            expiry = (datetime.now(timezone.utc) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
            query = urlencode({"sv": "2023-11-03", "se": expiry, "sr": "b", "sp": "r", "sig": artifact.signature})
            location = f"{fake.url}{_STORAGE_PREFIX}{artifact.id}?{query}"
            self._send(302, b"", "text/html", {"Location": location})

    def _handle_storage(self, fake: FakeGitHub, request: RecordedRequest) -> None:
        with fake._lock:
            artifact = next((a for a in fake.run_artifacts if str(a.id) == request.route), None)
        if request.method != "GET":
            self._blob_error(405, "UnsupportedHttpVerb", f"The resource doesn't support {request.method}.")
        elif "authorization" in request.headers:
            message = "Only one authentication mechanism is allowed: the signature in the URL, no Authorization."
            self._blob_error(400, "InvalidAuthenticationInfo", message)
        elif artifact is None or request.query.get("sig") != artifact.signature:
            message = "Server failed to authenticate the request (unknown blob or bad signature)."
            self._blob_error(403, "AuthenticationFailed", message)
        else:
            self._send(200, artifact.content, "application/zip")

    # -- results service (Twirp) --------------------------------------------------

    def _twirp_error(self, code: str, msg: str) -> None:
        self._send_json(_TWIRP_STATUS[code], {"code": code, "msg": msg})

    def _handle_results(self, fake: FakeGitHub, request: RecordedRequest, json_ok: bool) -> None:
        if not request.path.startswith(_RESULTS_PREFIX + ARTIFACT_SERVICE_PATH):
            self._twirp_error("bad_route", f"no handler for path {request.path!r}")
            return
        if request.method != "POST":
            self._twirp_error("bad_route", f"unsupported method {request.method} (only POST is allowed)")
            return
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            self._twirp_error("bad_route", f"unexpected Content-Type: {content_type!r}")
            return
        if request.route not in ("CreateArtifact", "FinalizeArtifact"):
            self._twirp_error("bad_route", f"no handler for path {request.path!r}")
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or token.strip() != fake.runtime_token:
            self._twirp_error("unauthenticated", "invalid or missing runtime token")
            return
        if not json_ok or not isinstance(request.body, dict):
            self._twirp_error("malformed", "the json request could not be decoded")
            return
        body = {_snake(k): v for k, v in request.body.items()}
        scope = runtime_token_scope(token.strip())
        if scope is None:
            self._twirp_error("permission_denied", "runtime token has no Actions.Results scope")
            return
        run_id, job_id = body.get("workflow_run_backend_id"), body.get("workflow_job_run_backend_id")
        if not isinstance(run_id, str) or not run_id or not isinstance(job_id, str) or not job_id:
            self._twirp_error(
                "invalid_argument", "workflow_run_backend_id and workflow_job_run_backend_id are required"
            )
            return
        if (run_id, job_id) != scope:
            self._twirp_error("permission_denied", "backend ids do not match the token's Actions.Results scope")
            return
        name = body.get("name")
        if not isinstance(name, str) or not name:
            self._twirp_error("invalid_argument", "name is required")
            return
        if request.route == "CreateArtifact":
            self._create_artifact(fake, body, name, run_id, job_id)
        else:
            self._finalize_artifact(fake, body, name, run_id)

    def _create_artifact(self, fake: FakeGitHub, body: dict[str, Any], name: str, run_id: str, job_id: str) -> None:
        bad = sorted({c for c in name if c in FORBIDDEN_ARTIFACT_NAME_CHARS})
        if bad:
            self._twirp_error("invalid_argument", f"artifact name {name!r} contains invalid characters {bad!r}")
            return
        version = body.get("version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            self._twirp_error("invalid_argument", "version must be an integer")
            return
        expires_at = body.get("expires_at")
        if expires_at is not None and not _is_rfc3339(expires_at):
            self._twirp_error("invalid_argument", f"expires_at is not an RFC 3339 timestamp: {expires_at!r}")
            return
        mime_type = body.get("mime_type")
        if mime_type is not None and not isinstance(mime_type, str):
            self._twirp_error("invalid_argument", "mime_type must be a string")
            return
        with fake._lock:
            existing = fake.artifacts.get(name)
            if existing is not None and existing.run_backend_id == run_id:
                conflict = True
            else:
                conflict = False
                fake._next_artifact_id += 1
                artifact = Artifact(
                    name=name,
                    id=fake._next_artifact_id,
                    created=body,
                    run_backend_id=run_id,
                    job_backend_id=job_id,
                    signature=secrets.token_urlsafe(12),
                )
                fake.artifacts[name] = artifact
        if conflict:
            self._twirp_error("already_exists", f"an artifact with name {name!r} already exists on the workflow run")
            return
        expiry = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = urlencode({"sv": "2023-11-03", "se": expiry, "sr": "b", "sp": "cw", "sig": artifact.signature})
        url = f"{fake.url}{_BLOB_PREFIX}{artifact.id}?{query}"
        self._send_json(200, {"ok": True, "signed_upload_url": url})

    def _finalize_artifact(self, fake: FakeGitHub, body: dict[str, Any], name: str, run_id: str) -> None:
        size, digest = body.get("size"), body.get("hash")
        if isinstance(size, bool) or not (isinstance(size, int) or (isinstance(size, str) and size.isdigit())):
            self._twirp_error("invalid_argument", f"size must be a non-negative int64, got {size!r}")
            return
        if not isinstance(digest, str) or not digest.startswith("sha256:"):
            self._twirp_error("invalid_argument", f"hash must look like 'sha256:<hex>', got {digest!r}")
            return
        error: tuple[str, str] | None = None
        with fake._lock:
            artifact = fake.artifacts.get(name)
            if artifact is None or artifact.run_backend_id != run_id:
                error = ("not_found", f"artifact {name!r} not found on the workflow run")
            elif artifact.finalized:
                error = ("failed_precondition", f"artifact {name!r} is already finalized")
            elif not artifact.uploaded:
                error = ("invalid_argument", f"no content was uploaded for artifact {name!r}")
            elif int(size) != artifact.size:
                error = ("invalid_argument", f"size {size} does not match the {artifact.size} bytes uploaded")
            elif digest[len("sha256:") :].lower() != artifact.sha256:
                error = ("invalid_argument", f"hash {digest} does not match the uploaded content")
            else:
                artifact.finalized = True
                artifact.finalize_request = body
                artifact_id = artifact.id
        if error is not None:
            self._twirp_error(*error)
            return
        answered = str(artifact_id) if fake.finalized_id is None else fake.finalized_id
        self._send_json(200, {"ok": True, "artifact_id": answered})

    # -- blob storage (Azure-style) -------------------------------------------------

    def _blob_error(self, status: int, code: str, message: str) -> None:
        data = (
            '<?xml version="1.0" encoding="utf-8"?>'
            f"<Error><Code>{code}</Code><Message>{_xml_escape(message)}</Message></Error>"
        ).encode()
        self._send(status, data, "application/xml", {"x-ms-error-code": code})

    def _handle_blob(self, fake: FakeGitHub, request: RecordedRequest) -> None:
        if request.method != "PUT":
            self._blob_error(405, "UnsupportedHttpVerb", f"The resource doesn't support {request.method}.")
            return
        with fake._lock:
            artifact = next((a for a in fake.artifacts.values() if str(a.id) == request.route), None)
        if artifact is None or request.query.get("sig") != artifact.signature:
            message = "Server failed to authenticate the request (unknown blob or bad signature)."
            self._blob_error(403, "AuthenticationFailed", message)
            return
        comp = request.query.get("comp")
        if comp is None:
            self._put_blob(fake, artifact, request)
        elif comp == "block":
            self._put_block(fake, artifact, request)
        elif comp == "blocklist":
            self._put_block_list(fake, artifact, request)
        else:
            self._blob_error(
                400, "InvalidQueryParameterValue", f"Value for one of the query parameters is invalid: comp={comp}"
            )

    def _blob_created(self, content: bytes | None = None) -> None:
        headers = {
            "ETag": f'"0x{secrets.token_hex(8).upper()}"',
            "x-ms-request-id": secrets.token_hex(16),
            "x-ms-version": "2023-11-03",
            "x-ms-request-server-encrypted": "true",
        }
        if content is not None:
            headers["Content-MD5"] = base64.b64encode(hashlib.md5(content).digest()).decode()
        self._send(201, b"", "application/octet-stream", headers)

    def _put_blob(self, fake: FakeGitHub, artifact: Artifact, request: RecordedRequest) -> None:
        blob_type = request.headers.get("x-ms-blob-type")
        if blob_type is None:
            self._blob_error(
                400,
                "MissingRequiredHeader",
                "An HTTP header that's mandatory for this request is not specified: x-ms-blob-type",
            )
            return
        if blob_type != "BlockBlob":
            self._blob_error(400, "InvalidHeaderValue", f"The value for x-ms-blob-type is not supported: {blob_type}")
            return
        with fake._lock:
            _commit(artifact, request.raw_body, "single")
            artifact.blocks.clear()
            artifact.committed_blocks = []
            artifact.committed_block_data = {}
        self._blob_created(request.raw_body)

    def _put_block(self, fake: FakeGitHub, artifact: Artifact, request: RecordedRequest) -> None:
        block_id = request.query.get("blockid", "")
        try:
            decoded = base64.b64decode(block_id, validate=True)
        except (binascii.Error, ValueError):
            decoded = b""
        if not block_id or not decoded or len(decoded) > 64:
            self._blob_error(
                400,
                "InvalidQueryParameterValue",
                f"Value for one of the query parameters is invalid: blockid={block_id}",
            )
            return
        with fake._lock:
            lengths = {len(b) for b in artifact.blocks} | {len(b) for b in artifact.committed_blocks}
            mismatch = bool(lengths) and lengths != {len(block_id)}
            if not mismatch:
                artifact.blocks[block_id] = request.raw_body
        if mismatch:
            self._blob_error(
                400,
                "InvalidBlobOrBlock",
                "The specified blob or block content is invalid (block ids of different lengths).",
            )
            return
        self._blob_created(request.raw_body)

    def _put_block_list(self, fake: FakeGitHub, artifact: Artifact, request: RecordedRequest) -> None:
        try:
            root = ElementTree.fromstring(request.raw_body)
        except ElementTree.ParseError:
            self._blob_error(400, "InvalidXmlDocument", "XML specified is not syntactically valid.")
            return
        if root.tag != "BlockList":
            self._blob_error(400, "InvalidXmlDocument", "The root element must be BlockList.")
            return
        wanted = [(child.tag, (child.text or "").strip()) for child in root]
        with fake._lock:
            pieces: list[bytes] = []
            ids: list[str] = []
            missing = None
            for kind, bid in wanted:
                if kind in ("Latest", "Uncommitted") and bid in artifact.blocks:
                    pieces.append(artifact.blocks[bid])
                elif kind in ("Latest", "Committed") and bid in artifact.committed_block_data:
                    pieces.append(artifact.committed_block_data[bid])
                else:
                    missing = f"{kind}:{bid}"
                    break
                ids.append(bid)
            if missing is None:
                _commit(artifact, b"".join(pieces), "blocks")
                artifact.committed_blocks = ids
                artifact.committed_block_data = dict(zip(ids, pieces, strict=True))
                artifact.blocks.clear()
        if missing is not None:
            self._blob_error(400, "InvalidBlockList", f"The specified block list is invalid ({missing} not found).")
            return
        self._blob_created()

    # -- response writing ----------------------------------------------------

    def _send(self, status: int, data: bytes, content_type: str, headers: HeaderItems | None = None) -> None:
        super()._send(status, b"" if status == 204 else data, content_type, headers)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _commit(artifact: Artifact, content: bytes, mode: str) -> None:
    artifact.content = content
    artifact.size = len(content)
    artifact.sha256 = hashlib.sha256(content).hexdigest()
    artifact.uploaded = True
    artifact.upload_mode = mode


def _graphql_path(api_prefix: str) -> str:
    """Where GraphQL is, from the REST prefix: ``/api/v3`` -> ``/api/graphql`` (GitHub Enterprise), else ``/graphql``."""
    return api_prefix[: -len("/v3")] + "/graphql" if api_prefix.endswith("/v3") else api_prefix + "/graphql"


def _int_param(value: str | None, default: int) -> int:
    try:
        return int(value) if value is not None else default
    except ValueError:
        return default


def _snake(key: str) -> str:
    """``workflowRunBackendId`` -> ``workflow_run_backend_id`` (protobuf JSON accepts both)."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", key).lower()


def _is_rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value.upper():
        return False
    text = value[:-1] + "+00:00" if value[-1:] in ("Z", "z") else value
    try:
        parsed = datetime.fromisoformat(re.sub(r"\.(\d{6})\d+", r".\1", text))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
