"""The one sticky pull request comment: found by a hidden marker, updated in place on every push."""

from __future__ import annotations

from dataclasses import dataclass

import requests

from ..known_secrets import scrub_text
from .http import session

MARKER = "<!-- chat-simulator:{key} -->"


class CommentError(Exception):
    """The comment could not be written; `status` 403/404 means no permission (fork PRs)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status

    @property
    def no_permission(self) -> bool:
        return self.status in (401, 403, 404)


@dataclass
class PostedComment:
    url: str
    id: int
    created: bool


class PullRequestComments:
    """Comments of one pull request through the REST API at `api_url` (GitHub or GHES)."""

    def __init__(self, api_url: str, repository: str, number: int, token: str, backoff: float = 1.0) -> None:
        self.base = f"{api_url.rstrip('/')}/repos/{repository}"
        self.number = number
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
            try:
                message = response.json().get("message", "")
            except ValueError:
                message = scrub_text(response.text)[:200]  # scrubbed before the cut: no piece of a token left
            raise CommentError(f"{what}: HTTP {response.status_code} {message}".strip(), response.status_code)
        return response

    def find(self, marker: str) -> dict | None:
        """The first comment carrying `marker`, looking through every page."""
        url: str | None = f"{self.base}/issues/{self.number}/comments?per_page=100"
        while url:
            try:
                response = self._check(self.http.get(url, timeout=30), "listing the pull request's comments")
            except requests.RequestException as exc:
                raise CommentError(f"listing the pull request's comments: {exc}") from None
            for comment in response.json():
                if marker in (comment.get("body") or ""):
                    return comment
            url = response.links.get("next", {}).get("url")
        return None

    def upsert(self, marker: str, body: str) -> PostedComment:
        """Update the marked comment, or create it when this is the first run on the PR (known credentials scrubbed)."""
        text = scrub_text(f"{marker}\n{body}")
        existing = self.find(marker)
        try:
            if existing is not None:
                response = self.http.patch(
                    f"{self.base}/issues/comments/{existing['id']}", json={"body": text}, timeout=30
                )
                comment = self._check(response, "updating the comment").json()
                return PostedComment(comment.get("html_url", ""), comment["id"], created=False)
            response = self.http.post(f"{self.base}/issues/{self.number}/comments", json={"body": text}, timeout=30)
            comment = self._check(response, "creating the comment").json()
            return PostedComment(comment.get("html_url", ""), comment["id"], created=True)
        except requests.RequestException as exc:
            raise CommentError(f"writing the comment: {exc}") from None
