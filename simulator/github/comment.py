"""The one sticky pull request comment: found by a hidden marker, updated in place on every push.

Anyone can write the marker into a comment of their own, so a comment is ours only when the
github-token's account wrote it: asked once per run (`GET /user` names a user's token; an app's
installation token, which may not ask that, writes as `<slug>[bot]`, which GraphQL's `viewer`
names, else the workflow token's `github-actions[bot]`), and confirmed by the author of a comment
the run creates. A marked comment by anyone else is never edited or deleted; when the account
cannot be found at all, no comment is edited before a new one, the run's own, shows it.
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Any

import requests

from ..text.known_secrets import scrub_text
from .http import TRANSIENT, next_page, rate_limit_note, rate_limited, session
from .json_numbers import NotJSON, answer_id, answer_json, shown

MARKER = "<!-- chat-simulator:{key} -->"
#: who the workflow's own GITHUB_TOKEN (an installation token of the GitHub Actions app) writes as
ACTIONS_BOT = "github-actions[bot]"
#: a login as GitHub names an account (users, `<slug>[bot]` apps, `_shortcode` managed users)
_LOGIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}(?:\[bot\])?", re.ASCII)
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
    #: None when GitHub's answer gave no usable id
    id: int | None
    created: bool


def _posted(answer: Any, created: bool, fallback_id: int | None = None) -> PostedComment:
    """What an answer to a create or an update says of the comment, its numbers checked."""
    comment = answer if isinstance(answer, dict) else {}
    url = comment.get("html_url")
    return PostedComment(url if isinstance(url, str) else "", answer_id(comment.get("id")) or fallback_id, created)


class _Gone(Exception):
    """The marked comment was deleted between listing and updating it."""


@dataclass(frozen=True)
class Author:
    """The account a token writes comments as; a bot's comments must also say `type: Bot`."""

    login: str
    bot: bool = False

    def wrote(self, comment: Any) -> bool:
        other = author_of(comment)
        return other is not None and other.login.casefold() == self.login.casefold() and (other.bot or not self.bot)


def author_of(comment: Any) -> Author | None:
    """Who wrote `comment` (its `user`), None when the answer does not say in a usable form."""
    user = comment.get("user") if isinstance(comment, dict) else None
    if not isinstance(user, dict):
        return None
    login = user.get("login")
    if not isinstance(login, str) or not _LOGIN.fullmatch(login):
        return None
    return Author(login, bot=user.get("type") == "Bot")


def graphql_url(api_url: str) -> str:
    """GitHub's GraphQL endpoint beside the REST API: `api.github.com/graphql`, or `/api/graphql`
    beside GitHub Enterprise Server's `/api/v3`."""
    base = api_url.rstrip("/")
    return base[: -len("/v3")] + "/graphql" if base.endswith("/api/v3") else base + "/graphql"


class PullRequestComments:
    """Comments of one pull request through the REST API at `api_url` (GitHub or GHES)."""

    def __init__(self, api_url: str, repository: str, number: int, token: str, backoff: float = 1.0) -> None:
        self.api = api_url.rstrip("/")
        self.base = f"{self.api}/repos/{repository}"
        self.number = number
        self._author: Author | None = None
        self._looked_up = False
        #: why the token's account could not be found, when it could not
        self.unknown_author: str | None = None
        #: comments seen that start with a marker, by id: those by others are named in `notes`
        self._marked: dict[int, dict] = {}
        #: what GitHub answered that could not be used (an id that is no id), for `notes`
        self._unusable: list[str] = []
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

    def author(self) -> Author | None:
        """The account this token writes as, found once per run; None when it cannot be found."""
        if not self._looked_up:
            self._looked_up = True
            self._author = self._look_up_author()
        return self._author

    def _look_up_author(self) -> Author | None:
        what = "finding the account the github-token writes as"
        try:
            response = self.http.get(f"{self.api}/user", timeout=30)
        except requests.RequestException as exc:
            self.unknown_author = f"GET /user: {type(exc).__name__}"
            return None
        if rate_limited(response):
            self._check(response, what)  # raises: every call after it would be refused too
        if response.status_code in (401, 403):
            return self._app_author()  # an app's installation token may not ask who it is
        if response.status_code >= 400:
            self.unknown_author = f"GET /user: HTTP {response.status_code}"
            return None
        try:
            found = author_of({"user": answer_json(response)})
        except NotJSON:
            found = None
        if found is None:
            self.unknown_author = "GET /user answered no login"
        return found

    def _app_author(self) -> Author:
        """An installation token writes as `<slug>[bot]`; GraphQL's `viewer` names it (REST's
        `GET /app` wants the app's own JWT). Failing that: the workflow token's `github-actions[bot]`."""
        login = None
        with contextlib.suppress(requests.RequestException, NotJSON, AttributeError):
            response = self.http.post(graphql_url(self.api), json={"query": "query { viewer { login } }"}, timeout=30)
            if response.status_code == 200:
                login = ((answer_json(response).get("data") or {}).get("viewer") or {}).get("login")
        if isinstance(login, str) and login.endswith("[bot]") and _LOGIN.fullmatch(login):
            return Author(login, bot=True)
        return Author(ACTIONS_BOT, bot=True)

    def notes(self) -> list[str]:
        """What the user should know about whose comments were left alone, one line each."""
        notes = []
        if self.unknown_author:
            notes.append(
                f"Could not find the account the github-token writes as ({self.unknown_author}): no comment "
                "carrying the marker was edited before this run's own comment showed it, so the report may be "
                "in a new comment."
            )
        ours = self._author
        others = sorted(
            {a.login for c in self._marked.values() if (a := author_of(c)) is not None and not (ours and ours.wrote(c))}
        )
        unnamed = sum(1 for c in self._marked.values() if author_of(c) is None)
        if others or unnamed:
            who = ", ".join(f"@{login}" for login in others[:3]) + (" and others" if len(others) > 3 else "")
            who = who or "an author the answer does not name"
            mine = f" (it writes as @{ours.login})" if ours else ""
            notes.append(
                f"Comments by {who} start with this job's marker but were not written with the github-token{mine}: "
                "they were left alone, never edited or deleted."
            )
        return notes + self._unusable[:3]

    def _unusable_id(self, what: str, value: Any) -> None:
        """Said once however often the listing is read: `what` is never put into a URL or compared."""
        note = f"GitHub's answer gives {what} the id {shown(value)}, which is no id: it is left alone."
        if note not in self._unusable:
            self._unusable.append(note)

    def find_all(self, marker: str) -> list[dict]:
        """Every comment with `marker` (it starts the body) that this token's account wrote, oldest
        first, looking through every page. A comment that only quotes the marker is not one of
        them, nor one anybody else wrote starting with it."""
        author = self.author()
        url: str | None = f"{self.base}/issues/{self.number}/comments?per_page=100"
        found = []
        pages = 0
        while url and pages < MAX_PAGES:
            what = "listing the pull request's comments"
            response = self._send("GET", url, what)
            try:
                listed = answer_json(response)
            except NotJSON as exc:
                raise CommentError(f"{what}: the answer is not usable JSON: {exc}") from None
            if not isinstance(listed, list):
                raise CommentError(f"{what}: the answer is not a list of comments")
            for comment in listed:
                body = comment.get("body") if isinstance(comment, dict) else None
                if not isinstance(body, str) or not body.lstrip().startswith(marker):
                    continue
                comment_id = answer_id(comment.get("id"))
                if comment_id is None:  # never put into a URL, never compared
                    self._unusable_id("a comment carrying the marker", comment.get("id"))
                    continue
                self._marked[comment_id] = comment
                if author is not None and author.wrote(comment):
                    found.append(comment)
            url = next_page(response, self.base)
            pages += 1
        return sorted(found, key=lambda c: c["id"])

    def find(self, marker: str) -> dict | None:
        """The oldest comment carrying `marker`."""
        marked = self.find_all(marker)
        return marked[0] if marked else None

    def _update(self, comment_id: int, text: str) -> PostedComment:
        try:
            response = self._send(
                "PATCH", f"{self.base}/issues/comments/{comment_id}", "updating the comment", json={"body": text}
            )
        except CommentError as exc:
            if exc.status == 404:
                raise _Gone from None
            raise
        try:
            answer = answer_json(response)
        except NotJSON:
            answer = None  # updated all the same: the comment is the one listed
        return _posted(answer, created=False, fallback_id=comment_id)

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
                    return self._update(existing["id"], text)
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
            self._check(response, "creating the comment")
            try:
                comment = answer_json(response)
            except NotJSON:
                comment = None  # created all the same
            self._author = author_of(comment) or self._author  # who wrote it is who this token writes as
            return self._keep_oldest(marker, text, comment)
        raise CommentError("writing the comment: it was deleted each time it was about to be updated")

    def _keep_oldest(self, marker: str, text: str, created: Any) -> PostedComment:
        """One comment per marker even when two runs created one at the same time; only comments
        of this token's account are compared, updated or deleted."""
        posted = _posted(created, created=True)
        if posted.id is None:
            self._unusable_id("the comment just created", created.get("id") if isinstance(created, dict) else None)
            return posted  # not compared, never deleted
        author = self._author
        if author is None or not author.wrote(created):
            return posted
        try:
            marked = self.find_all(marker)
        except CommentError:
            marked = []
        older = [c for c in marked if c["id"] < posted.id]
        if not older:
            return posted
        try:
            kept = self._update(older[0]["id"], text)
        except (_Gone, CommentError):
            return posted
        with contextlib.suppress(CommentError):
            self._send("DELETE", f"{self.base}/issues/comments/{posted.id}", "deleting a duplicate comment")
        return kept
