"""A check's configuration fingerprint, and the base run's verdicts a replayed conversation may reuse.

Every check result records `config_sha`: a digest of what decides its verdict besides the
conversation, i.e. the check's kind, its `expect` configuration and, for a judge check, the judge
(model, endpoint and generation settings), `JUDGE_PROMPT_VERSION` and the prompt it renders. A
conversation that replayed its base conversation identically (`meta_data.replay.identical`) gets the
base's verdict for each judge check whose `config_sha` is the same, with no judge call, marked
`reused_from_baseline: true`. Everything else runs live: a judge check whose configuration or judge
changed, one the base run recorded without a fingerprint or without a verdict (an error), every
deterministic check (cheap, and latency is not part of "identical") and every outcome check (the
app's state is not in the transcript).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ..records import CheckOutcome
from ..text.known_secrets import scrub
from .base import FAIL, PASS, Check

#: what `build_checks` sets on each check: the `expect` key it came from and its own part of that
#: key's configuration (one item of a list)
EXPECT_ATTRIBUTE = "expect_config"
#: the judge's settings that change its answers (never its credentials, timeout or retries)
JUDGE_SETTINGS = (
    "max_tokens",
    "max_completion_tokens",
    "temperature",
    "top_p",
    "stop",
    "reasoning",
    "reasoning_effort",
    "seed",
    "extra_body",
)


def _digest(material: Any) -> str:
    """SHA-256 of `material` as canonical JSON, credentials the run knows left out (a digest of a
    weak password could be guessed back; a credential does not decide a verdict)."""
    text = json.dumps(scrub(material), sort_keys=True, default=str, ensure_ascii=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def _without_credentials(url: str | None) -> str | None:
    """The endpoint as a place: a user:password@ in it is no part of which judge answers."""
    if not url:
        return url
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, parts.query, ""))


def judge_identity(judge: Any) -> dict[str, Any] | None:
    """Which judge answers and how: its model (or deployment), endpoint and generation settings."""
    if judge is None:
        return None
    described = judge.describe() if callable(getattr(judge, "describe", None)) else {"model": repr(judge)}
    identity = {key: value for key, value in described.items() if key != "endpoint"}
    identity["endpoint"] = _without_credentials(described.get("endpoint"))
    identity.update({key: getattr(judge, key) for key in JUDGE_SETTINGS if hasattr(judge, key)})
    return identity


def config_sha(check: Check, judge: Any = None) -> str:
    """The fingerprint of `check`'s configuration; for a judge check, `judge` and its prompt too."""
    expect = getattr(check, EXPECT_ATTRIBUTE, None)
    material: dict[str, Any] = {"kind": check.kind}
    if expect is not None:
        material["expect"] = expect
    else:  # built by hand, not from a manifest's expect: its name says what it checks
        material["name"] = check.name
    if check.needs_judge:
        material["judge"] = judge_identity(judge)
        material["prompt"] = getattr(check, "prompt_fingerprint", lambda: None)()
    return _digest(material)


class BaseVerdicts:
    """The judge verdicts of one base conversation, by `config_sha`, each reusable once (two checks
    with the same configuration take the base's two verdicts in order)."""

    def __init__(self, checks: Iterable[Mapping[str, Any]]) -> None:
        self._by_sha: dict[str, deque[Mapping[str, Any]]] = {}
        for outcome in checks:
            sha = outcome.get("config_sha")
            if isinstance(sha, str) and outcome.get("status") in (PASS, FAIL):
                self._by_sha.setdefault(sha, deque()).append(outcome)

    def __bool__(self) -> bool:
        return bool(self._by_sha)

    @classmethod
    def of(cls, evaluation: Any) -> BaseVerdicts:
        """The verdicts a base conversation's `evaluation` holds (none when it is not a mapping)."""
        checks = evaluation.get("checks") if isinstance(evaluation, Mapping) else None
        return cls(c for c in (checks if isinstance(checks, list) else []) if isinstance(c, Mapping))

    def take(self, check: Check, sha: str) -> CheckOutcome | None:
        """The base's verdict for `check` (a judge check), marked reused; None: judge it live."""
        if not check.needs_judge:
            return None
        queue = self._by_sha.get(sha)
        if not queue:
            return None
        base = queue.popleft()
        evidence = base.get("evidence")
        kept = {k: v for k, v in evidence.items() if k != "usage"} if isinstance(evidence, Mapping) else {}
        return {
            "check": check.kind,
            "name": check.name,
            "status": str(base["status"]),
            "message": str(base.get("message", "")),
            "evidence": kept,  # the tokens were spent by the base run, not this one
            "config_sha": sha,
            "reused_from_baseline": True,
        }
