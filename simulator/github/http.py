"""One `requests` session for GitHub calls: retries with back-off that honour Retry-After."""

from __future__ import annotations

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

USER_AGENT = "chat-simulator-action"


def session(retries: int = 4, backoff: float = 1.0, methods: frozenset[str] | None = None) -> requests.Session:
    """A session that retries 429/5xx and dropped connections on the given (idempotent) methods."""
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=methods or frozenset({"GET", "PUT", "PATCH"}),
        respect_retry_after_header=True,
        raise_on_status=False,
    )
    http = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    http.headers["User-Agent"] = USER_AGENT
    return http
