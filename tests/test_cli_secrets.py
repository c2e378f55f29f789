"""`simulator run` as a subprocess: credentials hidden where only the known-secrets rule catches them.

Three leaks, each against local servers: a secret in a target URL's path and under a query name
that looks like nothing (in each turn's request, the app's description and the app's errors); a
user LLM that quotes its request's headers in its completion (which becomes the user's message to
the app); and a user LLM and a judge that answer 400, 401 and 500 with a body quoting the key.
conversations.jsonl, summary.json, report.md, report.html, stdout and stderr must not hold them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from simulator.checks.judge import JUDGE_SYSTEM
from tests.servers.chat_app import AppReply, FakeChatApp, RecordedRequest
from tests.servers.openai_server import FakeOpenAIServer, Reply

OPENAI_KEY = "sk-cli-openai-key-Aa11Bb22Cc33Dd44"
AZURE_KEY = "azure-cli-api-key-Ee55Ff66Gg77"
ROUTE_SECRET = "cli-route-segment-Hh88Ii99"
REF_SECRET = "cli-plain-query-Jj00Kk11"
SECRETS = {"openai key": OPENAI_KEY, "azure key": AZURE_KEY, "path segment": ROUTE_SECRET, "query ref": REF_SECRET}
OUTPUTS = ("conversations.jsonl", "summary.json", "report.md", "report.html")


def echo_or_fail(request: RecordedRequest) -> AppReply:
    if request.headers.get("x-fail"):
        return AppReply.error(500, "the app failed")
    return AppReply(text=f"You said: {request.user_text or ''}")


def run_cli(tmp_path: Path, manifest: str, env: dict[str, str]) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    """Run the manifest with `simulator run`; returns the process and every text it produced, by name."""
    (tmp_path / "simulations.yml").write_text(manifest)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "simulator", "run", "simulations.yml", "--out", "out", "--concurrency", "1"],
        cwd=tmp_path,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    texts = {name: (tmp_path / "out" / name).read_text(encoding="utf-8") for name in OUTPUTS}
    texts.update(stdout=proc.stdout, stderr=proc.stderr)
    return proc, texts


def leaks(texts: dict[str, str]) -> list[str]:
    return [f"{what} in {where}" for what, secret in SECRETS.items() for where, text in texts.items() if secret in text]


def results(tmp_path: Path) -> dict[str, dict]:
    lines = (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()
    return {r["meta_data"]["simulation"]: r for r in map(json.loads, lines)}


URL_MANIFEST = """\
version: 1
target:
  url: "${APP_URL}/t/${APP_ROUTE}/promptflow?ref=${APP_REF}&k=${OPENAI_API_KEY}"
  retry: {attempts: 0}
simulations:
  - {name: url-ok, persona: jane, task: t, turns: ["hello"], expect: {contains: "you said"}}
  - {name: url-app-error, persona: jane, task: t, turns: ["hello"], target: {headers: {X-Fail: "yes"}}}
  - name: url-missing
    persona: jane
    task: t
    turns: ["hello"]
    target: {url: "${APP_URL}/t/${APP_ROUTE}/missing?ref=${APP_REF}"}
"""


def test_secrets_in_a_target_url_stay_out_of_results_reports_and_the_console(tmp_path: Path, app: FakeChatApp) -> None:
    app.mount = f"/t/{ROUTE_SECRET}"
    app.default = echo_or_fail
    env = {"APP_URL": app.url, "APP_ROUTE": ROUTE_SECRET, "APP_REF": REF_SECRET, "OPENAI_API_KEY": OPENAI_KEY}
    proc, texts = run_cli(tmp_path, URL_MANIFEST, env)
    assert proc.returncode == 3, proc.stderr  # the 404 is fatal and stops the run
    assert "Traceback" not in proc.stderr

    first = next(r for r in app.requests if r.route)  # after the GET of the flow's swagger
    assert first.path == f"/t/{ROUTE_SECRET}/promptflow"
    assert first.query == {"ref": REF_SECRET, "k": OPENAI_KEY}
    by_name = results(tmp_path)
    assert by_name["url-ok"]["meta_data"]["app"]["url"].endswith("/t/***/promptflow?ref=***&k=***")
    assert by_name["url-ok"]["conversation"][1]["request"]["url"].endswith("/t/***/promptflow?ref=***&k=***")
    assert (
        "/t/***/promptflow?ref=***&k=*** failed (HTTP 500)" in by_name["url-app-error"]["meta_data"]["error"]["message"]
    )
    assert "Stopped early: url-missing: the app at http://" in proc.stderr
    assert "/t/***/missing?ref=*** has no such endpoint" in proc.stderr
    found = leaks(texts)
    assert not found, "\n".join(found)


ECHO_MANIFEST = """\
version: 1
target: {url: "${APP_URL}/promptflow"}
simulations:
  - name: echo-bearer
    persona: marcus
    task: Get a refund
    max_turns: 4
    user: {model: echo, endpoint: "${LLM_URL}", api_key_env: OPENAI_API_KEY}
    expect: {not_contains: "sk-"}
  - name: echo-api-key
    persona: marcus
    task: Get a refund
    max_turns: 4
    user: {model: echo, endpoint: "${AZURE_OPENAI_ENDPOINT}", api_version: "2024-06-01"}
"""


def echo_headers(request) -> str:
    """The first message quotes every header the request carried; the second ends the conversation."""
    if any(m["role"] == "assistant" for m in request.messages):
        return "thanks ###STOP###"
    return f"Here is what I was sent: {json.dumps(request.headers)} and again {request.headers}"


def test_a_user_llm_echoing_its_request_headers_never_sends_the_key_to_the_app(
    tmp_path: Path, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    llm.default = echo_headers
    env = {
        "APP_URL": app.url,
        "LLM_URL": llm.openai_base_url,
        "AZURE_OPENAI_ENDPOINT": llm.azure_endpoint,
        "OPENAI_API_KEY": OPENAI_KEY,
        "AZURE_OPENAI_API_KEY": AZURE_KEY,
    }
    proc, texts = run_cli(tmp_path, ECHO_MANIFEST, env)
    assert proc.returncode == 0, proc.stderr
    assert {r.headers.get("authorization") for r in llm.chat_requests} >= {f"Bearer {OPENAI_KEY}"}
    assert {r.headers.get("api-key") for r in llm.chat_requests} >= {AZURE_KEY}

    questions = [r.user_text or "" for r in app.requests]
    assert sum(q.startswith("Here is what I was sent") for q in questions) == 2
    assert any('"authorization": "Bearer ***"' in q for q in questions)
    assert any('"api-key": "***"' in q for q in questions)
    for request in app.requests:
        assert OPENAI_KEY not in request.raw_body.decode() and AZURE_KEY not in request.raw_body.decode()
    found = leaks(texts)
    assert not found, "\n".join(found)


ERROR_MANIFEST = """\
version: 1
target: {url: "${APP_URL}/promptflow"}
judge: {model: judge, endpoint: "${LLM_URL}", api_key_env: OPENAI_API_KEY, max_retries: 0}
user: {model: user, endpoint: "${LLM_URL}", api_key_env: OPENAI_API_KEY, max_retries: 0}
simulations:
  - {name: judge-400, persona: jane, task: t, turns: ["answer judge-400"], expect: {goal_completed: true}}
  - {name: judge-401, persona: jane, task: t, turns: ["answer judge-401"], expect: {goal_completed: true}}
  - {name: judge-500, persona: jane, task: t, turns: ["answer judge-500"], expect: {goal_completed: true}}
  - {name: user-400, persona: dana, task: t, user: {model: error-400}}
  - {name: user-500, persona: dana, task: t, user: {model: error-500}}
  - {name: user-401, persona: dana, task: t, user: {model: error-401}}
"""


def quote_the_key(request) -> Reply:
    """An error whose body quotes the key, as OpenAI's 401 does; the status by model or judge marker."""
    key = request.headers.get("authorization", "").removeprefix("Bearer ")
    prompt = json.dumps(request.messages)
    if request.messages and request.messages[0].get("content") == JUDGE_SYSTEM:
        status = next(code for code in (400, 401, 500) if f"judge-{code}" in prompt)
    else:
        status = int((request.model or "").removeprefix("error-"))
    return Reply.error(status, f"Incorrect API key provided: {key}. You can find your API key in your settings.")


def test_llm_error_bodies_quoting_the_key_are_scrubbed(tmp_path: Path, app: FakeChatApp, llm: FakeOpenAIServer) -> None:
    llm.default = quote_the_key
    env = {"APP_URL": app.url, "LLM_URL": llm.openai_base_url, "OPENAI_API_KEY": OPENAI_KEY}
    proc, texts = run_cli(tmp_path, ERROR_MANIFEST, env)
    assert proc.returncode == 3, proc.stderr  # the user model's 401 is fatal
    assert "Traceback" not in proc.stderr

    by_name = results(tmp_path)
    for name in ("judge-400", "judge-401", "judge-500"):
        (check,) = by_name[name]["evaluation"]["checks"]
        assert check["status"] == "error" and "Incorrect API key provided: ***." in check["message"]
    for name in ("user-400", "user-500", "user-401"):
        error = by_name[name]["meta_data"]["error"]
        assert error["reason"] == "llm_error" and "Incorrect API key provided: ***." in error["message"]
    assert "Stopped early: user-401: " in proc.stderr and "Incorrect API key provided: ***." in proc.stderr
    assert "Incorrect API key provided: ***." in texts["report.md"] and "Incorrect API key" in texts["report.html"]
    found = leaks(texts)
    assert not found, "\n".join(found)


STEERING = "ok\x1b[2K\x1b[1A\x1b]0;pwned-title\x07 \u202eevil\u202c\rALL PASSED"
STEERING_MANIFEST = """\
version: 1
target: {url: "${APP_URL}/promptflow"}
simulations:
  - {name: steer, persona: jane, task: t, turns: ["hello"]}
"""


def test_an_apps_control_characters_never_steer_the_console_or_the_report(tmp_path: Path, app: FakeChatApp) -> None:
    """A plain-text error body with ANSI escapes, a carriage return and a bidi override: the console
    and report.md show them as escapes, so they cannot rewrite a line, retitle the terminal or
    reverse the words after them."""
    app.default = lambda request: AppReply(status=404, body=STEERING, content_type="text/plain")
    (tmp_path / "m.yml").write_text(STEERING_MANIFEST)
    proc = subprocess.run(  # bytes, so a carriage return is not read as a line end
        [sys.executable, "-m", "simulator", "run", "m.yml", "--out", "out"],
        cwd=tmp_path,
        env={**os.environ, "APP_URL": app.url},
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 3, proc.stderr
    shown = {"stdout": proc.stdout, "stderr": proc.stderr, "report.md": (tmp_path / "out" / "report.md").read_bytes()}
    for where, data in shown.items():
        text = data.decode()
        assert not any(c in text for c in "\x1b\x07\r\u202e\u202c"), where
    assert "body: ok\\x1b[2K\\x1b[1A\\x1b]0;pwned-title\\x07 \\u202eevil\\u202c\\rALL PASSED" in proc.stderr.decode()
