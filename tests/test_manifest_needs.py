"""Each command needs only the `${VAR}` it uses: `check` never calls the app, `validate` runs nothing.

A variable unset where the command does not look is a warning naming file and line; where it
does look, it is the same clear error as ever.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, EXIT_OK, main
from simulator.manifest import SECTIONS, ManifestError, load_manifest, section_of
from tests.servers.chat_app import FakeChatApp
from tests.servers.openai_server import FakeOpenAIServer

VERDICT = '{"verdict": "pass", "reason": "Turn 1 answers it."}'

MANIFEST = """\
version: 1
target: {url: "${APP_URL}/promptflow", headers: {Authorization: "Bearer ${APP_TOKEN}"}}
user: {model: sim-user, endpoint: "${USER_ENDPOINT}"}
judge: {model: judge, endpoint: "${JUDGE_ENDPOINT}", api_key_env: JUDGE_KEY}
simulations:
  - name: judged
    persona: jane
    task: Return the tent
    turns: [hi]
    expect: {goal_completed: true, contains: "you said"}
"""


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("APP_URL", "APP_TOKEN", "USER_ENDPOINT", "JUDGE_ENDPOINT", "JUDGE_KEY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def finished_run(tmp_path: Path, env: pytest.MonkeyPatch, llm: FakeOpenAIServer) -> tuple[Path, Path]:
    """A results folder from a real run, with every variable set while it ran."""
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(MANIFEST)
    llm.default = lambda request: VERDICT
    out = tmp_path / "out"
    with FakeChatApp() as app, env.context() as run_env:
        run_env.setenv("APP_URL", app.url)
        run_env.setenv("APP_TOKEN", "app-token-value")
        run_env.setenv("USER_ENDPOINT", "http://127.0.0.1:9/v1")
        run_env.setenv("JUDGE_ENDPOINT", llm.openai_base_url)
        run_env.setenv("JUDGE_KEY", "judge-key-value")
        assert main(["run", str(manifest), "--out", str(out), "--quiet"]) == EXIT_OK
    return manifest, out


def test_check_works_with_the_app_and_user_variables_unset(
    tmp_path: Path, env: pytest.MonkeyPatch, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, out = finished_run(tmp_path, env, llm)
    judged = len(llm.chat_requests)
    env.setenv("JUDGE_ENDPOINT", llm.openai_base_url)
    env.setenv("JUDGE_KEY", "judge-key-value")
    capsys.readouterr()
    assert main(["check", str(out)]) == EXIT_OK  # APP_URL, APP_TOKEN and USER_ENDPOINT are unset
    assert "Gate: PASS: 1 passed" in capsys.readouterr().out
    assert len(llm.chat_requests) == judged + 1  # judged again, the app never called
    summary = json.loads((out / "summary.json").read_text())
    assert "rechecked_at" in summary["run"]

    loaded = load_manifest(manifest, need=("judge", "checks"))
    assert loaded.target["url"] == "${APP_URL}/promptflow"  # kept as written, never sent anywhere
    assert [w.split(": ", 2)[1] for w in loaded.warnings] == [
        "target.url",
        "target.headers.Authorization",
        "user.endpoint",
    ]
    assert loaded.warnings[0].startswith(f"{manifest}:2: target.url: environment variable APP_URL is not set")


def test_check_fails_clearly_when_the_judge_key_is_unset(
    tmp_path: Path, env: pytest.MonkeyPatch, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest, out = finished_run(tmp_path, env, llm)
    before = (out / "conversations.jsonl").read_text()
    env.setenv("JUDGE_ENDPOINT", llm.openai_base_url)
    capsys.readouterr()
    assert main(["check", str(out)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "judge.api_key_env" in err and "JUDGE_KEY" in err
    assert (out / "conversations.jsonl").read_text() == before  # the verdicts are left as they were

    env.setenv("JUDGE_KEY", "judge-key-value")
    env.delenv("JUDGE_ENDPOINT")
    assert main(["check", str(out)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{manifest}:4: judge.endpoint: environment variable JUDGE_ENDPOINT is not set" in err
    assert "APP_URL" not in err  # what check does not use is not its problem


def test_check_needs_the_variables_of_the_checks(tmp_path: Path) -> None:
    path = tmp_path / "m.yml"
    path.write_text(
        "version: 1\ntarget: {url: '${APP_URL}'}\n"
        "defaults: {expect: {not_contains: '${FORBIDDEN}'}}\n"
        "simulations:\n  - {name: a, persona: jane, task: t, turns: [x], expect: {contains: '${WANTED}'}}\n"
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(path, environ={}, need=("judge", "checks"))
    assert [p.split(": ", 2)[1] for p in err.value.problems] == [
        "defaults.expect.not_contains",
        "simulations[0].expect.contains",
    ]
    loaded = load_manifest(path, environ={"FORBIDDEN": "Traceback", "WANTED": "refund"}, need=("judge", "checks"))
    assert loaded.simulations[0].expect == {"not_contains": "Traceback", "contains": "refund"}
    assert len(loaded.warnings) == 1 and "APP_URL" in loaded.warnings[0]


def test_validate_warns_about_unset_variables_and_strict_refuses_them(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(MANIFEST)
    assert main(["validate", str(manifest)]) == EXIT_OK
    captured = capsys.readouterr()
    assert "valid; 1 simulation(s)" in captured.out and "4 warning(s)" in captured.out
    warnings = captured.err.splitlines()
    assert warnings[0] == (
        f"warning: {manifest}:2: target.url: environment variable APP_URL is not set "
        "(set it, or write ${APP_URL:-default})"
    )
    assert [line.split(": ")[2] for line in warnings] == [
        "target.url",
        "target.headers.Authorization",
        "user.endpoint",
        "judge.endpoint",
    ]

    assert main(["validate", "--strict", str(manifest)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "error:" in err and "4 problems" in err and f"{manifest}:4: judge.endpoint" in err

    env.setenv("APP_URL", "http://127.0.0.1:9")
    env.setenv("APP_TOKEN", "app-token-value")
    env.setenv("USER_ENDPOINT", "http://127.0.0.1:9/v1")
    env.setenv("JUDGE_ENDPOINT", "http://127.0.0.1:9/v1")
    assert main(["validate", "--strict", str(manifest)]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.err == "" and "warning" not in captured.out


def test_validate_still_fails_on_every_other_problem(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        MANIFEST.replace("persona: jane", "persona: nobody").replace("${USER_ENDPOINT}", "${GITHUB_TOKEN}")
    )
    assert main(["validate", str(manifest)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "environment variable GITHUB_TOKEN is never readable" in err
    assert "'nobody' is neither a persona file nor a predefined persona" in err


def test_run_still_needs_every_variable_it_uses(
    tmp_path: Path, env: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(MANIFEST)
    env.setenv("APP_TOKEN", "app-token-value")
    env.setenv("USER_ENDPOINT", "http://127.0.0.1:9/v1")
    env.setenv("JUDGE_ENDPOINT", "http://127.0.0.1:9/v1")
    assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{manifest}:2: target.url: environment variable APP_URL is not set" in err
    assert not (tmp_path / "out" / "conversations.jsonl").exists()
    with pytest.raises(ManifestError, match="APP_URL is not set"):
        load_manifest(manifest)


def test_report_reads_no_manifest_variables(
    tmp_path: Path, env: pytest.MonkeyPatch, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    _manifest, out = finished_run(tmp_path, env, llm)
    assert main(["report", str(out)]) == EXIT_OK
    assert (out / "report.html").is_file()


@pytest.mark.parametrize(
    ("path", "section"),
    [
        (("target", "url"), "target"),
        (("simulations", 3, "target", "headers", "X"), "target"),
        (("user", "endpoint"), "user"),
        (("simulations", 0, "user", "endpoint"), "user"),
        (("judge", "endpoint"), "judge"),
        (("defaults", "expect", "contains"), "checks"),
        (("simulations", 2, "expect", "regex", "value"), "checks"),
        (("gate", "required", 0), "checks"),
        (("simulations", 1, "persona", "profile"), "simulations"),
        (("simulations", 1, "task"), "simulations"),
        (("defaults", "tags", 0), "simulations"),
    ],
)
def test_every_field_serves_one_section(path: tuple, section: str) -> None:
    assert section_of(path) == section and section in SECTIONS


def test_unknown_sections_are_a_programming_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown section"):
        load_manifest(tmp_path / "m.yml", need=("app",))
