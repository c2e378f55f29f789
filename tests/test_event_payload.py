"""The runner's event file is read as data from outside: any shape yields a context, never a crash,
and only a real pull request number goes into API paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.github.inputs import GitHubContext


@pytest.mark.parametrize(
    ("payload", "number", "base"),
    [
        ('{"pull_request": {"number": 7, "base": {"ref": "main"}}}', 7, "main"),
        ('{"pull_request": {"number": 7, "number": 8, "base": {"ref": "main"}}}', None, ""),  # which one?
        ('{"pull_request": {"number": true}}', None, ""),
        ('{"pull_request": {"number": -3}}', None, ""),
        ('{"pull_request": {"number": 1' + "0" * 400 + "}}", None, ""),
        ('{"pull_request": {"number": 1e400}}', None, ""),
        ('{"pull_request": {"number": "7/../../x"}}', None, ""),
        ('{"pull_request": "7"}', None, ""),
        ('{"pull_request": {"base": "main", "head": [1]}}', None, ""),
        ('{"pull_request": {"base": {"repo": 5}, "head": {"repo": "x"}}}', None, ""),
        ("[1, 2, 3]", None, ""),
        ("[" * 10_000 + "]" * 10_000, None, ""),
        ("", None, ""),
        ("\xff", None, ""),
    ],
)
def test_any_event_payload_gives_a_context_with_only_a_real_pull_request_number(
    tmp_path: Path, payload: str, number: int | None, base: str
) -> None:
    event = tmp_path / "event.json"
    event.write_text(payload, encoding="utf-8", errors="surrogateescape")
    context = GitHubContext.from_env({"GITHUB_EVENT_PATH": str(event), "GITHUB_REPOSITORY": "o/r"})
    assert context.pr_number == number
    assert context.base_ref == base
    assert isinstance(context.event, dict)
