"""Upload a results folder as a workflow artifact from inside a container (artifact v4 protocol).

CreateArtifact on the Actions results service, the zip to the signed blob URL, then
FinalizeArtifact with its size and sha256. The backend ids come from the runtime token's claims.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests

from ..text import known_secrets
from ..text.known_secrets import scrub_text
from .http import TRANSIENT, rate_limit_note, rate_limited, session
from .json_numbers import NotJSON, answer_json, int64_id, shown

SERVICE = "twirp/github.actions.results.api.v1.ArtifactService"
_FORBIDDEN = re.compile(r'[":<>|*?\r\n\\/]')


class ArtifactError(Exception):
    """The artifact could not be uploaded; the results stay in the workspace."""


def runtime_available(env: Mapping[str, str]) -> bool:
    return bool(env.get("ACTIONS_RUNTIME_TOKEN") and env.get("ACTIONS_RESULTS_URL"))


def safe_name(name: str) -> str:
    """Artifact names may not contain `" : < > | * ? \\r \\n \\ /`."""
    cleaned = _FORBIDDEN.sub("-", name).strip() or "simulation-results"
    return cleaned[:200]


def backend_ids(token: str) -> tuple[str, str]:
    """(workflow run backend id, job run backend id) from the `Actions.Results:<run>:<job>` scope."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError) as exc:
        raise ArtifactError(f"ACTIONS_RUNTIME_TOKEN is not a JWT ({type(exc).__name__})") from None
    for scope in str(claims.get("scp", "")).split():
        parts = scope.split(":")
        if len(parts) == 3 and parts[0] == "Actions.Results":
            return parts[1], parts[2]
    raise ArtifactError("ACTIONS_RUNTIME_TOKEN has no Actions.Results scope; cannot name the artifact's run")


def zip_folder(folder: Path) -> bytes:
    """The folder's files in one zip, in a stable order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def _attempts(count: int) -> str:
    return f"{count} attempt{'s' if count != 1 else ''}"


class ArtifactUploader:
    """Talks to the results service named by the runner's environment."""

    def __init__(self, env: Mapping[str, str], attempts: int = 5, backoff: float = 3.0) -> None:
        self.token = env["ACTIONS_RUNTIME_TOKEN"]
        self.results_url = env["ACTIONS_RESULTS_URL"].rstrip("/") + "/"
        self.retention_days = env.get("GITHUB_RETENTION_DAYS")
        self.run_id, self.job_id = backend_ids(self.token)
        self.attempts = attempts
        self.backoff = backoff
        self.http = session(retries=attempts - 1, backoff=backoff, factor=1.5, methods=frozenset({"POST", "PUT"}))

    def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.results_url}{SERVICE}/{method}"
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        response = self._with_retries(lambda: self.http.post(url, json=body, headers=headers, timeout=60), method)
        try:
            data = answer_json(response) if response.content else {}
        except NotJSON as exc:
            raise ArtifactError(f"{method} answered something that is not usable JSON: {exc}") from None
        if not isinstance(data, dict) or not data.get("ok"):
            raise ArtifactError(f"{method} answered without ok: {scrub_text(str(data))[:200]}")
        return data

    def _with_retries(self, send: Any, what: str) -> requests.Response:
        """The session's retry policy (the official client's: transient statuses and dropped
        connections, backoff × 1.5^n, a Retry-After honoured); a failure says what to do."""
        try:
            response = send()
        except requests.RequestException as exc:
            tries = _attempts(getattr(exc, "attempts", 1))
            raise ArtifactError(f"{what} failed after {tries} ({type(exc).__name__}: {exc})") from None
        if response.status_code < 400:
            return response
        if rate_limited(response):
            raise ArtifactError(f"{what}: {rate_limit_note(response)}")
        if response.status_code in TRANSIENT:
            tries = _attempts(getattr(response, "attempts", 1))
            raise ArtifactError(f"{what} failed after {tries} (HTTP {response.status_code})")
        body = scrub_text(response.text)[:200]  # scrubbed before the cut: no piece of a token left
        raise ArtifactError(f"{what}: HTTP {response.status_code} {body}")

    def upload(self, name: str, folder: Path) -> tuple[str, int]:
        """Upload `folder` as artifact `name`; returns (artifact id, zip size)."""
        name = safe_name(name)
        ids = {"workflow_run_backend_id": self.run_id, "workflow_job_run_backend_id": self.job_id, "name": name}
        create: dict[str, Any] = {**ids, "version": 7, "mime_type": "application/zip"}
        if self.retention_days and self.retention_days.isdigit():
            expires = datetime.now(timezone.utc) + timedelta(days=int(self.retention_days))
            create["expires_at"] = expires.isoformat().replace("+00:00", "Z")
        signed_url = self._call("CreateArtifact", create).get("signed_upload_url")
        if not isinstance(signed_url, str) or not signed_url.startswith(("https://", "http://")):
            raise ArtifactError("CreateArtifact answered no signed upload URL")
        known_secrets.register_signed_url(signed_url)  # its signature lets anyone write the blob
        content = zip_folder(folder)
        headers = {
            "x-ms-blob-type": "BlockBlob",
            "Content-Type": "application/zip",
            "Content-Length": str(len(content)),
        }
        self._with_retries(lambda: self.http.put(signed_url, data=content, headers=headers, timeout=300), "upload")
        digest = hashlib.sha256(content).hexdigest()
        final = self._call("FinalizeArtifact", {**ids, "size": str(len(content)), "hash": f"sha256:{digest}"})
        artifact_id = int64_id(final.get("artifact_id"))
        if artifact_id is None:  # it names the artifact in a URL and an output
            raise ArtifactError(
                f"FinalizeArtifact answered the artifact id {shown(final.get('artifact_id'))}, which is no id; "
                "the artifact may be there all the same"
            )
        return str(artifact_id), len(content)
