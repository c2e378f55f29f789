"""The runner: concurrency, results written as they finish, fatal stops, signals, shards, merge."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from simulator import validate_result
from simulator.cli import EXIT_CONFIG, EXIT_OK, EXIT_RUN_ERRORS, main
from simulator.manifest import load_manifest
from simulator.results.folder import read_results
from simulator.results.shards import merge_results
from simulator.run.plan import plan_jobs
from simulator.run.runner import run_jobs
from tests.servers.chat_app import AppReply, FakeChatApp
from tests.servers.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent

APP = """\
import asyncio, time
in_flight = 0
peak = 0

async def respond(question, conversation_history, meta_data):
    global in_flight, peak
    in_flight += 1
    peak = max(peak, in_flight)
    try:
        await asyncio.sleep({delay})
    finally:
        in_flight -= 1
    if "explode" in question:
        raise RuntimeError("the app fell over")
    return {{"answer": f"answer {{len(conversation_history) // 2 + 1}}", "peak": peak}}
"""


def project(tmp_path: Path, simulations: str, delay: float = 0.0, extra: str = "") -> Path:
    (tmp_path / "app.py").write_text(APP.format(delay=delay))
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {callback: 'app.py:respond'}\n" + extra + "simulations:\n" + textwrap.dedent(simulations)
    )
    return manifest


MANY = """\
  - {name: alpha, persona: jane, task: t, turns: [one, two], repeat: 8, max_turns: 4}
  - {name: beta, persona: walter, task: t, turns: [hello, "explode please"], repeat: 4, max_turns: 4}
  - {name: gamma, persona: priya, task: t, turns: [x], repeat: 4, max_turns: 4}
"""


def run(manifest: Path, out: Path, **kwargs):
    loaded = load_manifest(manifest, environ={})
    jobs = plan_jobs(loaded, shard=kwargs.pop("shard", None), repeat=kwargs.pop("repeat", None))
    return asyncio.run(run_jobs(loaded, jobs, out, **kwargs))


def test_results_are_complete_and_summarised(tmp_path: Path) -> None:
    outcome = run(project(tmp_path, MANY), tmp_path / "out", concurrency=4)
    results = read_results(tmp_path / "out" / "conversations.jsonl")
    assert len(results) == 16 and len({r["conversation_id"] for r in results}) == 16
    for result in results:
        validate_result(result)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary == outcome.summary
    assert list(summary["simulations"]) == ["alpha", "beta", "gamma"]
    alpha, beta, gamma = (summary["simulations"][n] for n in ("alpha", "beta", "gamma"))
    assert alpha["conversations"] == 8 and alpha["turns"] == 32 and alpha["errors"] == 0
    assert alpha["stop_reasons"] == {"max_turns": 8}
    assert beta["errors"] == 4 and beta["stop_reasons"] == {"app_error": 4} and beta["error_rate"] == 1.0
    assert gamma["stop_reasons"] == {"user_done": 4} and gamma["turns"] == 8
    totals = summary["totals"]
    assert totals["conversations"] == 16 and totals["errors"] == 4 and totals["turns"] == 32 + 16 + 8
    assert (
        totals["latency_ms"]["app_p50"] is not None
        and totals["latency_ms"]["app_p95"] >= totals["latency_ms"]["app_p50"]
    )
    assert summary["run"]["planned"] == 16 and not summary["run"]["interrupted"]
    assert sorted({r["meta_data"]["repeat"] for r in results if r["meta_data"]["simulation"] == "alpha"}) == list(
        range(1, 9)
    )
    assert oct(os.stat(tmp_path / "out" / "conversations.jsonl").st_mode & 0o777) == "0o644"


def test_conversations_really_overlap_under_the_bound(tmp_path: Path) -> None:
    manifest = project(
        tmp_path, "  - {name: a, persona: jane, task: t, turns: [q1, q2], repeat: 16, max_turns: 4}\n", delay=0.1
    )
    outcome = run(manifest, tmp_path / "out", concurrency=8)
    # the app counts requests in flight: 8 at once proves overlap without reading a clock
    peaks = [
        t["full_json_response"]["peak"] for r in outcome.results for t in r["conversation"] if t["actor"] == "assistant"
    ]
    assert max(peaks) == 8


def test_each_conversation_is_on_disk_as_soon_as_it_ends(tmp_path: Path) -> None:
    manifest = project(
        tmp_path,
        "  - {name: fast, persona: jane, task: t, turns: [x], max_turns: 2}\n"
        "  - {name: slow, persona: jane, task: t, turns: [slow], max_turns: 2, turn_timeout: 5}\n",
    )
    release = tmp_path / "release"
    (tmp_path / "app.py").write_text(  # the slow conversation waits until the test has looked at the file
        "import asyncio, pathlib\n"
        f"RELEASE = pathlib.Path({str(release)!r})\n"
        "async def respond(q, h, m):\n"
        "    while q == 'slow' and not RELEASE.exists():\n"
        "        await asyncio.sleep(0.01)\n"
        "    return 'ok'\n"
    )
    out = tmp_path / "out"
    seen_while_running: list[int] = []

    async def watch_and_run():
        loaded = load_manifest(manifest, environ={})
        task = asyncio.create_task(run_jobs(loaded, plan_jobs(loaded), out, concurrency=2))
        results = out / "conversations.jsonl"
        for _ in range(2000):  # until the fast one is on disk, however slow the machine
            if results.is_file() and results.read_text().count("\n") >= 1:
                break
            await asyncio.sleep(0.01)
        seen_while_running.append(len(results.read_text().splitlines()))
        release.touch()
        return await task

    asyncio.run(watch_and_run())
    assert seen_while_running == [1]  # written while the other conversation was still running


def test_a_fatal_error_stops_new_conversations(tmp_path: Path, llm: FakeOpenAIServer) -> None:
    llm.require_auth = lambda headers: False
    manifest = project(
        tmp_path,
        "  - {name: llm, persona: jane, task: t, repeat: 5}\n",
        extra=f"user: {{model: m, endpoint: '{llm.openai_base_url}', api_key_env: SIM_TEST_KEY}}\n",
    )
    os.environ["SIM_TEST_KEY"] = "wrong-key"
    try:
        outcome = run(manifest, tmp_path / "out", concurrency=1)
    finally:
        del os.environ["SIM_TEST_KEY"]
    assert len(outcome.results) == 1
    assert outcome.results[0]["meta_data"]["stop_reason"] == "llm_error"
    assert "401" in outcome.fatal_error and "rejected the credential" in outcome.fatal_error
    assert outcome.not_run == ["llm#2", "llm#3", "llm#4", "llm#5"]
    assert outcome.summary["run"]["not_run"] == outcome.not_run
    assert "wrong-key" not in (tmp_path / "out" / "conversations.jsonl").read_text()


def test_missing_llm_key_is_a_config_error_before_anything_runs(tmp_path: Path, capsys) -> None:
    manifest = project(
        tmp_path,
        "  - {name: llm, persona: jane, task: t}\n",
        extra="user: {model: m, api_key_env: SIM_UNSET_KEY}\n",
    )
    code = main(["run", str(manifest), "--out", str(tmp_path / "out")])
    assert code == EXIT_CONFIG
    err = capsys.readouterr().err
    assert "SIM_UNSET_KEY" in err and "user.api_key_env" in err  # the field where the value was written
    assert not (tmp_path / "out").exists()


def test_callback_that_cannot_be_imported_is_a_config_error(tmp_path: Path, capsys) -> None:
    manifest = project(tmp_path, "  - {name: a, persona: jane, task: t, turns: [x]}\n")
    manifest.write_text(manifest.read_text().replace("app.py:respond", "app.py:nope"))
    assert main(["run", str(manifest), "--out", str(tmp_path / "out")]) == EXIT_CONFIG
    assert "target.callback: app.py defines no 'nope'" in capsys.readouterr().err  # before anything runs


def test_shards_then_merge_equal_one_run(tmp_path: Path) -> None:
    manifest = project(tmp_path, MANY)
    for i in (1, 2, 3):
        run(manifest, tmp_path / f"shard{i}", concurrency=4, shard=(i, 3))
    counts = [len(read_results(tmp_path / f"shard{i}" / "conversations.jsonl")) for i in (1, 2, 3)]
    assert sum(counts) == 16 and max(counts) - min(counts) <= 1
    summary = merge_results(tmp_path / "merged", [tmp_path / f"shard{i}" for i in (1, 2, 3)])
    merged = read_results(tmp_path / "merged" / "conversations.jsonl")
    keys = sorted((r["meta_data"]["simulation"], r["meta_data"]["repeat"]) for r in merged)
    assert keys == sorted(
        [("alpha", i) for i in range(1, 9)] + [("beta", i) for i in range(1, 5)] + [("gamma", i) for i in range(1, 5)]
    )
    assert summary["totals"]["conversations"] == 16 and summary["totals"]["errors"] == 4
    with pytest.raises(Exception, match="appears in two shards"):
        merge_results(tmp_path / "again", [tmp_path / "shard1", tmp_path / "shard1"])


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_mid_run_keeps_finished_conversations(tmp_path: Path, sig: signal.Signals, code: int) -> None:
    manifest = project(
        tmp_path, "  - {name: a, persona: jane, task: t, turns: [q1, q2, q3], repeat: 300, max_turns: 6}\n", delay=0.05
    )  # 300 conversations take over 20 s: the signal always arrives mid-run, however busy the machine
    out = tmp_path / "out"
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(out), "--concurrency", "2"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    results_file = out / "conversations.jsonl"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if results_file.exists() and len(results_file.read_text().splitlines()) >= 3:
            break
        time.sleep(0.02)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=20)
    assert proc.returncode == code, stderr
    results = read_results(results_file)
    finished = [r for r in results if r["meta_data"]["stop_reason"] == "max_turns"]
    cancelled = [r for r in results if r["meta_data"]["stop_reason"] == "cancelled"]
    assert len(finished) >= 3 and len(finished) + len(cancelled) == len(results) < 300
    assert all(len(r["conversation"]) == 6 for r in finished)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["run"]["interrupted"] is True
    assert summary["totals"]["conversations"] == len(results)
    assert summary["run"]["missing_count"] == 300 - len(results)
    assert f"Interrupted by {sig.name}" in stderr
    # a conversation the signal cut short has a result, but is not counted as finished
    cut = f", {len(cancelled)} cut short" if cancelled else ""
    assert f"300 planned, {len(finished)} finished{cut}, {300 - len(results)} missing" in stdout


def test_cli_exit_codes_and_commands(tmp_path: Path, capsys) -> None:
    example = str(REPO / "examples" / "simulations.yml")
    assert main(["run", example, "--out", str(tmp_path / "ok"), "--quiet"]) == EXIT_OK
    assert main(["run", example, "--out", str(tmp_path / "f"), "--filter", "zzz"]) == EXIT_CONFIG
    assert "no simulation matches zzz" in capsys.readouterr().err
    manifest = project(tmp_path, MANY)
    assert main(["run", str(manifest), "--out", str(tmp_path / "err")]) == EXIT_RUN_ERRORS
    err = capsys.readouterr().out
    assert "Gate: ERROR: 12 passed, 0 failed, 4 errors" in err and "error rate 25% is above 0%" in err
    assert "alpha" in err
    assert main(["validate", example]) == EXIT_OK
    assert "valid; 3 simulation(s)" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text("version: 1\nsimulations: []\n")
    assert main(["validate", str(bad)]) == EXIT_CONFIG
    assert f"{bad}:2: simulations" in capsys.readouterr().err
    assert main(["personas"]) == EXIT_OK
    assert "jane" in capsys.readouterr().out
    assert main(["personas", "show", "walter"]) == EXIT_OK
    assert "{{task}}" in capsys.readouterr().out
    assert main(["run", example, "--shard", "3/2"]) == EXIT_CONFIG


def test_manifest_run_against_an_http_app_and_an_llm_user(tmp_path: Path, llm: FakeOpenAIServer) -> None:
    from tests.servers.chat_app import AppReply, FakeChatApp

    llm.default = lambda request: "Where is my order?" if len(request.messages) < 4 else "Thanks! ###STOP###"
    with FakeChatApp() as app:
        app.default = lambda request: AppReply(text="It ships tomorrow.", delay=0.05)
        manifest = tmp_path / "simulations.yml"
        manifest.write_text(
            "version: 1\n"
            "target: {url: 'http://127.0.0.1:9/unused', format: promptflow, headers: {Authorization: 'Bearer ${APP_TOKEN}'}}\n"
            f"user: {{model: sim-user, endpoint: '{llm.openai_base_url}'}}\n"
            "simulations:\n"
            "  - {name: order-status, persona: dana, task: Find out when my order ships, repeat: 6, max_turns: 8}\n"
        )
        os.environ["APP_TOKEN"] = "app-secret-token"
        try:
            code = main(
                ["run", str(manifest), "--app-url", app.url + "/promptflow", "--out", str(tmp_path / "out"), "--quiet"]
            )
        finally:
            del os.environ["APP_TOKEN"]
        assert code == EXIT_OK
        assert all(r.headers.get("authorization") == "Bearer app-secret-token" for r in app.requests)
        assert app.max_in_flight > 1
    results = read_results(tmp_path / "out" / "conversations.jsonl")
    assert len(results) == 6
    for result in results:
        assert [t["response"] for t in result["conversation"]] == [
            "Where is my order?",
            "It ships tomorrow.",
            "Thanks!",
        ]
        assert result["meta_data"]["stop_reason"] == "user_done"
        assert result["meta_data"]["app"] == {"kind": "http", "format": "promptflow", "url": app.url + "/promptflow"}
    text = (tmp_path / "out" / "conversations.jsonl").read_text() + (tmp_path / "out" / "summary.json").read_text()
    assert "app-secret-token" not in text


def test_an_unreachable_app_stops_the_run_with_a_clear_message(tmp_path: Path, capsys) -> None:
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {url: 'http://127.0.0.1:9/chat', retry: {attempts: 1, backoff: 0.01}}\n"
        "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi], repeat: 10}\n"
    )
    assert (
        main(["run", str(manifest), "--out", str(tmp_path / "out"), "--concurrency", "2", "--quiet"]) == EXIT_RUN_ERRORS
    )
    err = capsys.readouterr().err
    assert "Stopped early" in err and "unreachable at http://127.0.0.1:9/chat" in err
    results = read_results(tmp_path / "out" / "conversations.jsonl")
    assert 1 <= len(results) <= 2


def http_project(tmp_path: Path, url: str, response: str = "data.reply.text", repeat: int = 10) -> Path:
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        f"version: 1\ntarget: {{url: '{url}', format: http, request: {{body: {{text: '{{{{question}}}}'}}}}, "
        f"response: '{response}', retry: {{attempts: 0}}}}\n"
        f"simulations:\n  - {{name: a, persona: jane, task: t, turns: [hi, again], repeat: {repeat}, max_turns: 4}}\n"
    )
    return manifest


def test_the_same_mistake_at_every_first_reply_stops_the_run_with_one_message(tmp_path: Path, capsys) -> None:
    """An HTML page where the app's JSON should be: every conversation would fail alike at its first turn."""
    with FakeChatApp() as app:
        app.default = lambda request: AppReply.not_json("<html><body>Sign in to continue</body></html>")
        manifest = http_project(tmp_path, app.url + "/chat")
        code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--concurrency", "1", "--quiet"])
    assert code == EXIT_RUN_ERRORS
    err = capsys.readouterr().err
    assert "Stopped early: 3 conversations (a#1, a#2, a#3) failed at the app's first reply the same way" in err
    assert "answered with a body that is not JSON (text/html; charset=utf-8)" in err
    assert "7 conversation(s) did not run" in err
    assert len(read_results(tmp_path / "out" / "conversations.jsonl")) == 3


def test_a_wrong_response_path_at_every_first_reply_stops_the_run(tmp_path: Path) -> None:
    with FakeChatApp() as app:
        manifest = http_project(tmp_path, app.url + "/chat", response="data.reply.message")
        outcome = run(manifest, tmp_path / "out", concurrency=2)
    assert outcome.fatal_error is not None and "failed at the app's first reply the same way" in outcome.fatal_error
    assert "answered without the reply text" in outcome.fatal_error and "'message' is missing" in outcome.fatal_error
    assert len(outcome.results) < 10 and outcome.not_run


def test_failures_after_a_good_reply_or_unlike_each_other_do_not_stop_the_run(tmp_path: Path) -> None:
    with FakeChatApp() as app:
        # every conversation: a good first reply, then an HTML page
        app.default = lambda r: AppReply(text="ok") if r.user_text == "hi" else AppReply.not_json("<html>x</html>")
        outcome = run(http_project(tmp_path, app.url + "/chat"), tmp_path / "a", concurrency=1)
        assert outcome.fatal_error is None and len(outcome.results) == 10
        assert {r["meta_data"]["stop_reason"] for r in outcome.results} == {"app_error"}

        # the first conversation went well: later first-turn failures are not every conversation's
        app.reset()
        app.script("fine", "fine too")
        app.default = lambda r: AppReply.not_json("<html>x</html>")
        outcome = run(http_project(tmp_path, app.url + "/chat"), tmp_path / "b", concurrency=1)
        assert outcome.fatal_error is None and len(outcome.results) == 10

        # first-turn failures, but not the same one
        app.reset()
        answers = iter([AppReply.not_json("<html>x</html>"), AppReply.error(400, "bad field")] * 10)
        app.default = lambda r: next(answers)
        outcome = run(http_project(tmp_path, app.url + "/chat"), tmp_path / "c", concurrency=1)
        assert outcome.fatal_error is None and len(outcome.results) == 10
