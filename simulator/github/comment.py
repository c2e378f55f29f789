"""The one sticky pull request comment: found by a hidden marker, updated in place on every push."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Any

import requests

from ..known_secrets import scrub_text
from .http import TRANSIENT, next_page, rate_limit_note, rate_limited, session

MARKER = "<!-- chat-simulator:{key} -->"
#: pages of 100 comments read at most: a pull request with more is not one people read either, and
#: an answer whose `Link` pages back to itself must not keep the job going
MAX_PAGES = 100


class CommentError(Exception):
    """The comment could not be written; `no_permission` when the token may not (fork PRs, no
    `pull-requests: write`), `rate_limited` when GitHub's rate limit stopped it."""

    def __init__(self, message: str, status: int | None = None, rate_limited: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.rate_limited = rate_limited

    @property
    def no_permission(self) -> bool:
        return not self.rate_limited and self.status in (401, 403, 404)


@dataclass
class PostedComment:
    url: str
    id: int
    created: bool


class _Gone(Exception):
    """The marked comment was deleted between listing and updating it."""


class PullRequestComments:
    """Comments of one pull request through the REST API at `api_url` (GitHub or GHES)."""

    def __init__(self, api_url: str, repository: str, number: int, token: str, backoff: float = 1.0) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repository}"
        self.number = number
        self.backoff = backoff
        self.http = session(backoff=backoff)
        self.http.headers.update(
            {
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            }
        )

    def _check(self, response: requests.Response, what: str) -> requests.Response:
        if response.status_code >= 400:
            if rate_limited(response):
                raise CommentError(f"{what}: {rate_limit_note(response)}", response.status_code, rate_limited=True)
            try:
                message = str(response.json().get("message", ""))
            except (ValueError, AttributeError):
                message = scrub_text(response.text)[:200]  # scrubbed before the cut: no piece of a token left
            raise CommentError(f"{what}: HTTP {response.status_code} {message}".strip(), response.status_code)
        return response

    def _send(self, method: str, url: str, what: str, **options: Any) -> requests.Response:
        try:
            return self._check(self.http.request(method, url, timeout=30, **options), what)
        except requests.RequestException as exc:
            raise CommentError(f"{what}: {type(exc).__name__}: {exc}") from None

    def find_all(self, marker: str) -> list[dict]:
        """Every comment this action wrote with `marker` (it starts the body), oldest first,
        looking through every page; a comment that only quotes the marker is not one of them."""
        url: str | None = f"{self.base}/issues/{self.number}/comments?per_page=100"
        found = []
        pages = 0
        while url and pages < MAX_PAGES:
            response = self._send("GET", url, "listing the pull request's comments")
            found += [c for c in response.json() if (c.get("body") or "").lstrip().startswith(marker)]
            url = next_page(response, self.base)
            pages += 1
        return sorted(found, key=lambda c: c.get("id", 0))

    def find(self, marker: str) -> dict | None:
        """The oldest comment carrying `marker`."""
        marked = self.find_all(marker)
        return marked[0] if marked else None

    def _update(self, comment_id: int, text: str) -> dict:
        try:
            response = self._send(
                "PATCH", f"{self.base}/issues/comments/{comment_id}", "updating the comment", json={"body": text}
            )
        except CommentError as exc:
            if exc.status == 404:
                raise _Gone from None
            raise
        return response.json()

    def upsert(self, marker: str, body: str, attempts: int = 4) -> PostedComment:
        """Update the marked comment, or create it when this is the first run on the PR (known
        credentials scrubbed). A create is never repeated blindly: after a failed one the comments
        are listed again, so a comment the server made anyway is updated, not doubled; and when
        another run created one at the same time, the older is kept and the newer deleted."""
        text = scrub_text(f"{marker}\n{body}")
        for attempt in range(attempts):
            existing = self.find(marker)
            try:
                if existing is not None:
                    comment = self._update(existing["id"], text)
                    return PostedComment(comment.get("html_url", ""), comment["id"], created=False)
                response = self.http.post(f"{self.base}/issues/{self.number}/comments", json={"body": text}, timeout=30)
            except _Gone:
                continue  # someone deleted it meanwhile: create a new one
            except requests.RequestException as exc:
                if attempt + 1 == attempts:
                    raise CommentError(f"creating the comment: {type(exc).__name__}: {exc}") from None
                time.sleep(self.backoff * 2**attempt)
                continue
            if response.status_code in TRANSIENT and not rate_limited(response) and attempt + 1 < attempts:
                time.sleep(self.backoff * 2**attempt)
                continue
            comment = self._check(response, "creating the comment").json()
            return self._keep_oldest(marker, text, comment)
        raise CommentError("writing the comment: it was deleted each time it was about to be updated")

    def _keep_oldest(self, marker: str, text: str, created: dict) -> PostedComment:
        """One comment per marker even when two runs created one at the same time."""
        try:
            marked = self.find_all(marker)
        except CommentError:
            marked = []
        older = [c for c in marked if c.get("id", 0) < created["id"]]
        if not older:
            return PostedComment(created.get("html_url", ""), created["id"], created=True)
        try:
            kept = self._update(older[0]["id"], text)
        except (_Gone, CommentError):
            return PostedComment(created.get("html_url", ""), created["id"], created=True)
        with contextlib.suppress(CommentError):
            self._send("DELETE", f"{self.base}/issues/comments/{created['id']}", "deleting a duplicate comment")
        return PostedComment(kept.get("html_url", ""), kept["id"], created=False)
