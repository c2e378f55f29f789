"""`simulator validate` rejects exactly the manifests `simulator run` rejects (exit 2 before anything runs).

A corpus of manifests, each wrong in one way a user can be (and a few right ones), goes through
both commands with the same environment; whenever one says "configuration error" the other must
too. Valid manifests talk to a closed local port with no retries, so `run` ends at once (exit 3)
instead of playing anything.
"""

from __future__ import annotations

import socket
import textwrap
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, main


def closed_port_url() -> str:
    """A URL nobody listens on: bound and released, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


TARGET = "target: {url: '${APP_URL}/chat', retry: {attempts: 0}, timeout: 2}\n"
SIMS = "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi]}\n"

CORPUS: dict[str, str] = {
    "valid": TARGET + SIMS,
    "valid callback": "target: {callback: 'app.py:respond'}\n" + SIMS,
    "schema: unknown top-level field": TARGET + "colour: blue\n" + SIMS,
    "schema: max_turns zero": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, max_turns: 0, turns: [x]}\n",
    "unknown predefined persona": TARGET + "simulations:\n  - {name: a, persona: nobody, task: t, turns: [hi]}\n",
    "persona file missing": TARGET + "simulations:\n  - {name: a, persona: personas/x.yaml, task: t, turns: [hi]}\n",
    "duplicate simulation names": TARGET + SIMS + "  - {name: a, persona: jane, task: t, turns: [hi]}\n",
    "min_passes above repeat": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], repeat: 2, min_passes: 3}\n",
    "unknown placeholder in url": "target: {url: '${APP_URL}/{{nope}}', retry: {attempts: 0}}\n" + SIMS,
    "unknown target field": "target: {url: '${APP_URL}/chat', colour: blue}\n" + SIMS,
    "bad session spec": "target: {url: '${APP_URL}/chat', format: http, request: {body: {q: '{{question}}'}}, "
    "response: a, session: {read: 'nowhere:x'}}\n" + SIMS,
    "response path missing for http": "target: {url: '${APP_URL}/chat', format: http, "
    "request: {body: {q: '{{question}}'}}}\n" + SIMS,
    "openai field on promptflow": "target: {url: '${APP_URL}/chat', stream: true}\n" + SIMS,
    "override with a bad placeholder": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], target: {url: '${APP_URL}/{{oops}}'}}\n",
    "bad regex in expect": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], expect: {regex: '(unclosed'}}\n",
    "unset variable": "target: {url: '${NOT_SET_ANYWHERE}/chat'}\n" + SIMS,
    "a runner variable": "target: {url: '${APP_URL}/chat?t=${GITHUB_TOKEN}'}\n" + SIMS,
    "callback file outside the root": "target: {callback: '../outside.py:respond'}\n" + SIMS,
    "callback file missing": "target: {callback: 'missing.py:respond'}\n" + SIMS,
    "gate requires an unknown simulation": TARGET + "gate: {required: [nobody]}\n" + SIMS,
    "valid outcome, setup and teardown": TARGET
    + "defaults: {teardown: {method: DELETE, url: '{{base}}/orders/{{session_id}}'}}\n"
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], setup: {method: PUT, url: '{{base}}/o', body: {}},\n"
    + "     expect: {outcome: {url: '{{base}}/o', path: 'items[*].id', contains: 5}, reply_json: {path: a, exists: true}}}\n",
    "outcome path malformed": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], expect: {outcome: {url: '{{base}}/o', path: 'a..b', equals: 1}}}\n",
    "outcome without an expectation": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], expect: {outcome: {url: '{{base}}/o', path: a}}}\n",
    "setup uses the session id": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], setup: {url: '{{base}}/{{session_id}}'}}\n",
    "teardown in defaults is not a URL": TARGET + "defaults: {teardown: {url: 'mailto:x@y'}}\n" + SIMS,
    "reply_json min above max": TARGET
    + "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], expect: {reply_json: {path: n, min: 5, max: 1}}}\n",
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_validate_and_run_reject_the_same_manifests(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "app.py").write_text("def respond(question, history, meta):\n    return 'ok'\n")
    (tmp_path / "outside.py").write_text("def respond(question, history, meta):\n    return 'ok'\n")
    manifest = project / "simulations.yml"
    manifest.write_text("version: 1\n" + textwrap.dedent(CORPUS[name]))
    monkeypatch.chdir(project)
    monkeypatch.setenv("APP_URL", closed_port_url())
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)

    validated = main(["validate", "--strict", str(manifest)])
    said_validate = capsys.readouterr().err
    ran = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"])
    said_run = capsys.readouterr().err
    assert (validated == EXIT_CONFIG) == (ran == EXIT_CONFIG), (validated, ran, said_validate, said_run)
    assert (validated == EXIT_CONFIG) == (not name.startswith("valid")), said_validate


def test_validate_without_secrets_warns_about_a_url_variable_but_still_checks_placeholders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI often validates without secrets: an unset `${APP_URL}` is a warning, not "not an http(s) URL"."""
    manifest = tmp_path / "simulations.yml"
    manifest.write_text("version: 1\n" + TARGET + SIMS)
    monkeypatch.delenv("APP_URL", raising=False)
    assert main(["validate", str(manifest)]) == 0
    said = capsys.readouterr().err
    assert "environment variable APP_URL is not set" in said and "http(s) URL" not in said
    assert main(["validate", "--strict", str(manifest)]) == EXIT_CONFIG
    manifest.write_text("version: 1\ntarget: {url: '${APP_URL}/{{nope}}'}\n" + SIMS)
    assert main(["validate", str(manifest)]) == EXIT_CONFIG
    assert "unknown placeholder {{nope}}" in capsys.readouterr().err
