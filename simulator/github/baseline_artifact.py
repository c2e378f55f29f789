"""The base branch's newest results artifact, found through the REST API and downloaded.

`GET /repos/{owner}/{repo}/actions/artifacts?name=...` lists artifacts newest first. One counts
when it has not expired, its run's head branch is the pull request's base branch, its run
belongs to this repository (a fork's branch may carry the same name, and its artifact must never
become the baseline: `workflow_run.head_repository_id` ≠ `repository_id`), and its run was not a
pull request's: a branch of this repository can be named like the base and have a pull request of
its own, whose runs played that pull request's changes (`GET .../actions/runs/{id}` says the
event, asked once per candidate run). Its `/zip` answers
with a redirect to blob storage, which is fetched without the token: the signed URL is the
credential, and the token must not travel to another host.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import requests

from ..text import known_secrets
from ..text.known_secrets import scrub_text
from .http import next_page, rate_limit_note, rate_limited, session
from .json_numbers import NotJSON, answer_count, answer_id, answer_json, shown

#: artifacts listed per page, and pages read at most (the newest 1,000 artifacts of that name)
PER_PAGE, MAX_PAGES = 100, 10
#: runs of these events played a pull request's changes, not the branch's own
PULL_REQUEST_EVENTS = frozenset({"pull_request", "pull_request_target", "pull_request_review", "merge_group"})
#: a results zip larger than this is not downloaded
MAX_DOWNLOAD_BYTES = 1024**3
CHUNK = 1 << 20


class BaselineUnavailable(Exception):
    """No baseline; the message says why in one line. `warn` marks what the user should fix."""

    def __init__(self, message: str, warn: bool = False) -> None:
        super().__init__(message)
        self.warn = warn


@dataclass(frozen=True)
class BaseArtifact:
    """One artifact of a base-branch run."""

    id: int
    name: str
    size: int
    run_id: int
    head_sha: str
    branch: str
    created_at: str


def _same_repository(run: dict[str, Any]) -> bool:
    head, repository = answer_id(run.get("head_repository_id")), answer_id(run.get("repository_id"))
    return head is not None and head == repository


def _parse(item: Any, name: str, branch: str, exclude_run: str) -> BaseArtifact | str | None:
    """The artifact, when it is a live one of `name` from a run of this repository's `branch`; None
    when it is not one; why not, when it is one whose numbers cannot be used (an id that is no id
    must not go into a URL, a size that is no size must not pass the size limit)."""
    if not isinstance(item, dict) or item.get("name") != name or item.get("expired") is not False:
        return None
    run = item.get("workflow_run")
    if not isinstance(run, dict) or run.get("head_branch") != branch or not _same_repository(run):
        return None
    if str(run.get("id")) == exclude_run:
        return None
    artifact_id, size, run_id = (
        answer_id(item.get("id")),
        answer_count(item.get("size_in_bytes")),
        answer_id(run.get("id")),
    )
    if artifact_id is None or size is None or run_id is None:
        read = {"id": artifact_id, "size_in_bytes": size, "workflow_run.id": run_id}
        sent = {"id": item.get("id"), "size_in_bytes": item.get("size_in_bytes"), "workflow_run.id": run.get("id")}
        bad = ", ".join(f"{key} {shown(sent[key])}" for key, value in read.items() if value is None)
        return f"an artifact listed with {bad}, which cannot be used"
    return BaseArtifact(
        id=artifact_id,
        name=name,
        size=size,
        run_id=run_id,
        head_sha=str(run.get("head_sha") or ""),
        branch=branch,
        created_at=str(item.get("created_at") or ""),
    )


class ArtifactReader:
    """Reads the repository's artifacts through the REST API at `api_url` (GitHub or GHES)."""

    def __init__(self, api_url: str, repository: str, token: str, backoff: float = 1.0) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repository}/actions/artifacts"
        self.repository = repository
        self.api_url = api_url
        self.http = session(backoff=backoff, methods=frozenset({"GET"}))
        #: why listed candidates were passed over (numbers that cannot be used), newest first
        self.unusable: list[str] = []
        self.api_headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": "2022-11-28",
        }

    def _get(self, url: str, what: str, **options: Any) -> requests.Response:
        try:
            return self.http.get(url, timeout=60, **options)
        except requests.RequestException as exc:
            detail = scrub_text(f"{type(exc).__name__}: {exc}")[:200]
            raise BaselineUnavailable(f"{what} failed ({detail})") from None

    def _check(self, response: requests.Response, what: str) -> None:
        status = response.status_code
        if rate_limited(response):
            raise BaselineUnavailable(f"{what}: {rate_limit_note(response)}", warn=True)
        if status == 401:
            raise BaselineUnavailable(f"{what}: the github-token was refused (HTTP 401)", warn=True)
        if status in (403, 404):
            raise BaselineUnavailable(
                f"{what}: the token may not read this repository's artifacts (HTTP {status}); "
                "add actions: read to the job's permissions",
                warn=True,
            )
        if status >= 400:
            raise BaselineUnavailable(f"{what} failed (HTTP {status})")

    def candidates(self, name: str, branch: str, exclude_run: str = "") -> Iterator[BaseArtifact]:
        """Live artifacts `name` of this repository's `branch`, newest first."""
        url: str | None = f"{self.base}?name={quote(name)}&per_page={PER_PAGE}"
        pages = 0
        while url and pages < MAX_PAGES:
            response = self._get(url, "listing the artifacts", headers=self.api_headers)
            self._check(response, "listing the artifacts")
            pages += 1
            try:
                items = answer_json(response).get("artifacts")
            except (NotJSON, AttributeError):
                raise BaselineUnavailable("listing the artifacts: the answer was not the expected JSON") from None
            for item in items if isinstance(items, list) else []:
                artifact = _parse(item, name, branch, exclude_run)
                if isinstance(artifact, str):
                    self.unusable.append(artifact)
                elif artifact is not None and self._branch_run(artifact.run_id):
                    yield artifact
            url = next_page(response, self.base)

    def _branch_run(self, run_id: int) -> bool:
        """Whether the run played its branch's own code (a push, a schedule, a dispatch), not a pull
        request's; a run that no longer exists (404) does not count."""
        what = f"reading run {run_id}"
        response = self._get(
            f"{self.api_url.rstrip('/')}/repos/{self.repository}/actions/runs/{run_id}", what, headers=self.api_headers
        )
        if response.status_code == 404:
            return False
        self._check(response, what)
        try:
            event = answer_json(response).get("event")
        except (NotJSON, AttributeError):
            raise BaselineUnavailable(f"{what}: the answer was not the expected JSON") from None
        return isinstance(event, str) and event not in PULL_REQUEST_EVENTS

    def download(self, artifact: BaseArtifact, into: Path, limit: int = MAX_DOWNLOAD_BYTES) -> bool:
        """Write the artifact's zip to the new file `into`; False when it expired meanwhile (HTTP 410)."""
        if artifact.size > limit:
            raise BaselineUnavailable(f"its zip has {artifact.size:,} bytes, more than the {limit:,} allowed", True)
        what = f"downloading artifact {artifact.id}"
        url = f"{self.base}/{artifact.id}/zip"
        with self._get(url, what, headers=self.api_headers, allow_redirects=False, stream=True) as answer:
            if answer.status_code == 410:
                return False
            self._check(answer, what)
            location = answer.headers.get("Location")
            if answer.status_code not in (301, 302, 303, 307, 308) or not location:
                self._save(answer, into, limit, what)
                return True
        # the signed storage URL is the credential: the token is not sent there, and an error naming it shows none
        known_secrets.register_signed_url(location)
        with self._get(urljoin(url, location), what, stream=True, allow_redirects=False) as storage:
            if storage.status_code >= 400:
                raise BaselineUnavailable(f"{what}: the storage answered HTTP {storage.status_code}")
            self._save(storage, into, limit, what)
        return True

    def _save(self, response: requests.Response, into: Path, limit: int, what: str) -> None:
        """The body streamed to a file, never past `limit` bytes."""
        size = 0
        try:
            with open(into, "xb") as out:
                for chunk in response.iter_content(CHUNK):
                    size += len(chunk)
                    if size > limit:
                        raise BaselineUnavailable(f"its zip is larger than the {limit:,} bytes allowed", warn=True)
                    out.write(chunk)
        except requests.RequestException as exc:
            raise BaselineUnavailable(f"{what} failed ({type(exc).__name__})") from None
