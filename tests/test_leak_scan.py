"""Leak scan: the whole action runs with a distinct secret in every place one can hide; none comes out.

`entrypoint.py` runs as a subprocess exactly as the runner runs the container (helpers from
`tests.test_action`), with known secret values in every secret input (`openai-api-key`,
`azure-openai-api-key`, `github-token`), in the runner's own `ACTIONS_RUNTIME_TOKEN`, and in the
environment variables a manifest puts in request headers, in a URL query and in a request body.
The manifest has scripted and LLM-played simulations, passing and failing checks, a judge, and one
simulation the app answers with 401. Every file the run produced, every pull request comment and
the log (all but the `::add-mask::` lines themselves) is then searched: no secret may appear.

A second scan hides secrets where only the run's known-secrets rule catches them: in a target URL's
path and under a query name that looks like nothing, in a user LLM's completion that quotes its
request's headers (which would become the simulated user's message to the app), and in the error
bodies of a user LLM and a judge that answer 400, 401 and 500 quoting the key.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.chat_app import AppReply, FakeChatApp, RecordedRequest
from tests.servers.github_api import FakeGitHub
from tests.servers.openai_server import FakeOpenAIServer, Reply
from tests.test_action import PR, make_workspace, run_entrypoint, user_says

OPENAI_KEY = "sk-leakscan-openai-Q1w2E3r4T5y6U7i8"
AZURE_KEY = "azure-leakscan-api-key-Z9x8C7v6B5n4"
GITHUB_TOKEN = "ghs_leakscan_github_token_M1n2B3v4C5"
APP_TOKEN = "app-leakscan-bearer-P0o9I8u7Y6t5"
APP_STALE_TOKEN = "app-leakscan-stale-bearer-R4e3W2q1"
APP_HEADER_KEY = "app-leakscan-header-key-L5k4J3h2G1"
APP_CLIENT_SECRET = "app-leakscan-client-secret-H8j7K6l5"
APP_QUERY_KEY = "app-leakscan-query-key-G1f2D3s4A5"
APP_BODY_SECRET = "app-leakscan-body-secret-A5s6D7f8G9"
JUDGE_SYSTEM_START = "You are a strict, fair evaluator"

MANIFEST = """\
version: 1
target:
  url: "${APP_URL}/promptflow?api_key=${APP_KEY}"
  format: promptflow
  headers:
    Authorization: "Bearer ${APP_TOKEN}"
    X-Api-Key: "${APP_HEADER_KEY}"
    X-Client-Secret: "${APP_CLIENT_SECRET}"
user: {model: sim-user, endpoint: "${AZURE_OPENAI_ENDPOINT}", api_version: "2024-06-01"}
judge: {model: judge-model, endpoint: "${JUDGE_URL}", api_key_env: OPENAI_API_KEY}
gate: {min_pass_rate: 1.0, max_error_rate: 0.0}
simulations:
  - name: scripted-pass
    persona: jane
    task: Say hello
    turns: ["Hello there", "Thanks ###STOP###"]
    expect: {contains: "you said"}
  - name: scripted-fail
    persona: walter
    task: Ask about the weather
    turns: ["Is it sunny?"]
    expect: {contains: "a phrase no reply contains"}
  - name: llm-played
    persona: marcus
    task: Get a refund
    max_turns: 4
    expect: {not_contains: "error", goal_completed: true}
  - name: http-body
    persona: priya
    task: Check an order
    turns: ["Where is order 5?"]
    target:
      url: "${APP_URL}/chat?api_key=${APP_KEY}&lang=en"
      format: http
      request: {method: POST, body: {message: "{{question}}", token: "${APP_SECRET}"}}
      response: data.reply.text
    expect: {contains: "you said"}
  - name: unauthorized
    persona: dana
    task: Log in
    turns: ["hi"]
    target: {headers: {Authorization: "Bearer ${APP_TOKEN_STALE}"}}
"""


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    with FakeGitHub() as server:
        server.token = GITHUB_TOKEN
        yield server


@pytest.fixture
def app() -> Iterator[FakeChatApp]:
    with FakeChatApp() as server:
        yield server


def app_reply(request: RecordedRequest) -> AppReply:
    """Echo the user, but 401 for a stale token (the app's error names no credential)."""
    if request.headers.get("authorization") != f"Bearer {APP_TOKEN}":
        return AppReply.error(401, "invalid or expired credentials")
    return AppReply(text=f"You said: {request.user_text or ''}")


def llm_reply(user: object):
    """The judge gets a valid verdict; the user model says one thing, then stops."""

    def reply(request) -> str:
        system = request.messages[0].get("content", "") if request.messages else ""
        if isinstance(system, str) and system.startswith(JUDGE_SYSTEM_START):
            return json.dumps({"verdict": "pass", "reason": "the refund was discussed"})
        return user(request)  # type: ignore[operator]

    return reply


def keys_are_checked(headers: dict[str, str]) -> bool:
    return headers.get("api-key") == AZURE_KEY or headers.get("authorization") == f"Bearer {OPENAI_KEY}"


def produced_texts(tmp_path: Path, run, gh: FakeGitHub) -> dict[str, str]:
    """Everything the run left behind, by where it was found."""
    texts: dict[str, str] = {}
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file():
            texts[f"file {path.relative_to(tmp_path)}"] = path.read_bytes().decode("utf-8", errors="replace")
    for name, artifact in gh.artifacts.items():
        for member, content in artifact.files().items():
            texts[f"artifact {name}/{member}"] = content.decode("utf-8", errors="replace")
    for index, request in enumerate(gh.comment_posts + gh.comment_patches):
        texts[f"comment request {index}"] = json.dumps(request.body, ensure_ascii=False)
    for comment in gh.comments_on(PR):
        texts[f"comment {comment['id']}"] = comment["body"]
    log = (run.stdout + run.stderr).splitlines()
    texts["log"] = "\n".join(line for line in log if not line.startswith("::add-mask::"))
    texts["step summary"] = run.step_summary
    texts["outputs"] = json.dumps(run.outputs)
    return texts


def header_maps(node: object) -> Iterator[dict]:
    """Every recorded `headers` mapping anywhere in a result (requests, error details, raw answers)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "headers" and isinstance(value, dict):
                yield value
            else:
                yield from header_maps(value)
    elif isinstance(node, list):
        for value in node:
            yield from header_maps(value)


def is_credential(name: str) -> bool:
    return name.lower() in ("authorization", "x-api-key", "x-client-secret", "api-key", "cookie")


SECRETS = {
    "openai-api-key": OPENAI_KEY,
    "azure-openai-api-key": AZURE_KEY,
    "github-token": GITHUB_TOKEN,
    "header Authorization": APP_TOKEN,
    "header Authorization (stale)": APP_STALE_TOKEN,
    "header X-Api-Key": APP_HEADER_KEY,
    "header X-Client-Secret": APP_CLIENT_SECRET,
    "query api_key": APP_QUERY_KEY,
    "body token": APP_BODY_SECRET,
}


def run_action(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer):
    llm.default = llm_reply(user_says("I want my money back for order 5"))
    llm.require_auth = keys_are_checked
    workspace = make_workspace(tmp_path, MANIFEST)
    env = {
        "APP_URL": app.url,
        "APP_TOKEN": APP_TOKEN,
        "APP_TOKEN_STALE": APP_STALE_TOKEN,
        "APP_HEADER_KEY": APP_HEADER_KEY,
        "APP_CLIENT_SECRET": APP_CLIENT_SECRET,
        "APP_KEY": APP_QUERY_KEY,
        "APP_SECRET": APP_BODY_SECRET,
        "JUDGE_URL": llm.openai_base_url,
    }
    inputs = {
        "openai-api-key": OPENAI_KEY,
        "azure-openai-api-key": AZURE_KEY,
        "azure-openai-endpoint": llm.azure_endpoint,
        "concurrency": "1",  # the 401 is fatal: it comes last, after everything else ran
    }
    return run_entrypoint(tmp_path, workspace, gh, inputs, env)


def leaks(tmp_path: Path, run, gh: FakeGitHub, known: dict[str, str] = SECRETS) -> list[str]:
    secrets = {**known, "ACTIONS_RUNTIME_TOKEN": gh.runtime_token}
    texts = produced_texts(tmp_path, run, gh)
    assert any(name.startswith("file workspace/simulation-results/") for name in texts)
    assert any(name.startswith("artifact ") for name in texts) and "comment request 0" in texts
    return [
        f"{what} ({secret}) in {where}"
        for what, secret in secrets.items()
        for where, text in texts.items()
        if secret in text
    ]


def test_no_secret_leaves_the_action(tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer) -> None:
    app.default = app_reply
    run = run_action(tmp_path, gh, app, llm)
    workspace = run.workspace
    assert run.code == 3, run.stdout + run.stderr  # a fatal 401 and a failing check
    assert "Traceback" not in run.stdout + run.stderr

    # the secrets were really in play: sent where they belong, so a clean scan means something
    chats = [r for r in app.requests if r.route in ("promptflow", "chat")]
    assert any(r.headers.get("authorization") == f"Bearer {APP_TOKEN}" for r in chats)
    assert any(r.headers.get("authorization") == f"Bearer {APP_STALE_TOKEN}" for r in chats)
    assert all(r.headers.get("x-api-key") == APP_HEADER_KEY for r in chats)
    assert all(r.headers.get("x-client-secret") == APP_CLIENT_SECRET for r in chats)
    assert all(r.query.get("api_key") == APP_QUERY_KEY for r in chats)
    assert any(isinstance(r.body, dict) and r.body.get("token") == APP_BODY_SECRET for r in chats)
    assert any(r.headers.get("api-key") == AZURE_KEY for r in llm.chat_requests)  # the user model
    assert any(r.headers.get("authorization") == f"Bearer {OPENAI_KEY}" for r in llm.chat_requests)  # the judge
    assert gh.comment_posts and gh.artifacts and gh.runtime_token

    # the run covered what it should: a pass, a failed check, an LLM-played and judged conversation, an error
    results = [json.loads(line) for line in (workspace / "simulation-results" / "conversations.jsonl").open()]
    by_name = {r["meta_data"]["simulation"]: r for r in results}
    assert set(by_name) == {"scripted-pass", "scripted-fail", "llm-played", "http-body", "unauthorized"}
    assert by_name["scripted-pass"]["evaluation"]["status"] == "pass"
    assert by_name["scripted-fail"]["evaluation"]["status"] == "fail"
    assert by_name["llm-played"]["meta_data"]["user"]["kind"] == "azure_openai"  # played by the LLM
    assert any(
        c["check"] == "goal_completed" and c["status"] == "pass" for c in by_name["llm-played"]["evaluation"]["checks"]
    )
    unauthorized = by_name["unauthorized"]
    assert (
        unauthorized["meta_data"]["stop_reason"] == "app_error"
        and "401" in unauthorized["meta_data"]["error"]["message"]
    )

    # request headers, query and body are redacted in results: in each turn's request and
    # full_json_response, and in the error's detail and message
    for result in results:
        for turn in result["conversation"]:
            if turn["actor"] != "assistant":
                continue
            request = turn["request"] or {}
            headers = request.get("headers") or {}
            assert headers.get("Authorization") == "***" and headers.get("X-Api-Key") == "***", headers
            assert headers.get("X-Client-Secret") == "***", headers
            assert "api_key=%2A%2A%2A" in request["url"] or "api_key=***" in request["url"], request["url"]
            if result["meta_data"]["simulation"] == "http-body":
                assert request["body"]["token"] == "***"
        recorded = [h for h in header_maps(result) if h]
        assert recorded and all(value == "***" for h in recorded for name, value in h.items() if is_credential(name))
    error = unauthorized["conversation"][-1]["error"]
    assert error and "401" in error["message"] and unauthorized["meta_data"]["error"]["message"] == error["message"]
    assert not any(secret in json.dumps(error) for secret in SECRETS.values())

    found = leaks(tmp_path, run, gh)
    assert not found, "\n".join(found)


def test_an_app_echoing_the_credential_in_its_error_does_not_leak_it(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    def echoing(request: RecordedRequest) -> AppReply:
        if request.headers.get("authorization") != f"Bearer {APP_TOKEN}":
            return AppReply.error(401, f"invalid token: {request.headers.get('authorization')}")
        return AppReply(text=f"You said: {request.user_text or ''}")

    app.default = echoing
    run = run_action(tmp_path, gh, app, llm)
    assert run.code == 3, run.stdout + run.stderr
    found = leaks(tmp_path, run, gh)
    assert not found, "\n".join(found)


def test_a_manifest_cannot_send_the_runners_credentials_anywhere(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    manifest = """\
version: 1
target:
  url: "${APP_URL}/promptflow?t=${ACTIONS_RUNTIME_TOKEN}"
  headers: {X-Token: "${GITHUB_TOKEN}", X-Input: "${INPUT_GITHUB_TOKEN:-none}"}
user: {model: m, endpoint: "${USER_LLM_URL}", api_key_env: ACTIONS_ID_TOKEN_REQUEST_TOKEN}
simulations:
  - {name: a, persona: jane, task: t}
"""
    workspace = make_workspace(tmp_path, manifest)
    env = {
        "APP_URL": app.url,
        "USER_LLM_URL": llm.openai_base_url,
        "GITHUB_TOKEN": GITHUB_TOKEN,
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "oidc-request-token-never-read",
    }
    run = run_entrypoint(tmp_path, workspace, gh, {"openai-api-key": OPENAI_KEY}, env)
    assert run.code == 2, run.stdout + run.stderr
    file = f"file={workspace}/.github/simulations.yml"
    for line, name in ((3, "ACTIONS_RUNTIME_TOKEN"), (4, "GITHUB_TOKEN"), (4, "INPUT_GITHUB_TOKEN")):
        assert f"::error title=Invalid manifest,{file},line={line}::" in run.stdout
        assert f"environment variable {name} is never readable from a manifest" in run.stdout
    assert "api_key_env: environment variable ACTIONS_ID_TOKEN_REQUEST_TOKEN is never readable" in run.stdout
    assert not app.requests and not llm.chat_requests  # nothing ran, nothing was sent
    log = "\n".join(line for line in (run.stdout + run.stderr).splitlines() if not line.startswith("::add-mask::"))
    for secret in (gh.runtime_token, GITHUB_TOKEN, "oidc-request-token-never-read", OPENAI_KEY):
        assert secret not in log and secret not in run.step_summary


ROUTE_SECRET = "route-leakscan-path-segment-K7j6H5"
REF_SECRET = "ref-leakscan-plain-query-V3c2X1"
LLM_ERRORS = (400, 401, 500)

ECHO_MANIFEST = """\
version: 1
target:
  url: "${APP_URL}/t/${APP_ROUTE}/promptflow?ref=${APP_REF}&k=${OPENAI_API_KEY}"
  format: promptflow
  retry: {attempts: 0}
user: {model: sim-user, endpoint: "${AZURE_OPENAI_ENDPOINT}", api_version: "2024-06-01", max_retries: 0}
judge: {model: judge-model, endpoint: "${JUDGE_URL}", api_key_env: OPENAI_API_KEY, max_retries: 0}
simulations:
  - name: url-secrets
    persona: jane
    task: Say hello
    turns: ["Hello there"]
    expect: {contains: "you said"}
  - name: url-secrets-app-error
    persona: jane
    task: Say hello
    turns: ["Hello there"]
    target: {headers: {X-Fail: "yes"}}
  - name: echo-api-key-header
    persona: marcus
    task: Get a refund
    max_turns: 4
  - name: echo-authorization-header
    persona: marcus
    task: Get a refund
    max_turns: 4
    user: {model: echo-bearer, endpoint: "${JUDGE_URL}", api_version: "", api_key_env: OPENAI_API_KEY}
  - {name: judge-400, persona: jane, task: t, turns: ["answer judge-400"], expect: {goal_completed: true}}
  - {name: judge-401, persona: jane, task: t, turns: ["answer judge-401"], expect: {goal_completed: true}}
  - {name: judge-500, persona: jane, task: t, turns: ["answer judge-500"], expect: {goal_completed: true}}
  - name: user-400
    persona: dana
    task: t
    user: {model: error-400, endpoint: "${JUDGE_URL}", api_version: "", api_key_env: OPENAI_API_KEY}
  - name: user-500
    persona: dana
    task: t
    user: {model: error-500, endpoint: "${JUDGE_URL}", api_version: "", api_key_env: OPENAI_API_KEY}
  - name: user-401
    persona: dana
    task: t
    user: {model: error-401, endpoint: "${JUDGE_URL}", api_version: "", api_key_env: OPENAI_API_KEY}
"""


def sent_key(request) -> str:
    """The key an LLM request carried, as OpenAI quotes it in its 401 ("Incorrect API key provided: sk-...")."""
    return request.headers.get("api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")


def hostile_llm(request) -> str | Reply:
    """Quotes the request's credential: in an error body by model (or judge marker), else in a completion."""
    system = request.messages[0].get("content", "") if request.messages else ""
    if isinstance(system, str) and system.startswith(JUDGE_SYSTEM_START):
        prompt = json.dumps(request.messages)
        status = next((code for code in LLM_ERRORS if f"judge-{code}" in prompt), None)
        if status is None:
            return json.dumps({"verdict": "pass", "reason": "fine"})
        return Reply.error(status, f"Incorrect API key provided: {sent_key(request)}. Find your key in settings.")
    model = request.deployment or request.model or ""
    if model.startswith("error-"):
        status = int(model.removeprefix("error-"))
        return Reply.error(status, f"Incorrect API key provided: {sent_key(request)}. Find your key in settings.")
    if any(m["role"] == "assistant" for m in request.messages):
        return "thanks ###STOP###"
    return f"My request carried these headers: {json.dumps(request.headers)}"


def test_secrets_in_urls_llm_echoes_and_llm_error_bodies_never_leave_the_action(
    tmp_path: Path, gh: FakeGitHub, app: FakeChatApp, llm: FakeOpenAIServer
) -> None:
    app.mount = f"/t/{ROUTE_SECRET}"
    app.default = lambda request: (
        AppReply.error(500, "the app failed") if request.headers.get("x-fail") else app_reply_echo(request)
    )
    llm.default = hostile_llm
    llm.require_auth = keys_are_checked
    workspace = make_workspace(tmp_path, ECHO_MANIFEST)
    env = {"APP_URL": app.url, "APP_ROUTE": ROUTE_SECRET, "APP_REF": REF_SECRET, "JUDGE_URL": llm.openai_base_url}
    inputs = {
        "openai-api-key": OPENAI_KEY,
        "azure-openai-api-key": AZURE_KEY,
        "azure-openai-endpoint": llm.azure_endpoint,
        "concurrency": "1",  # the user model's 401 is fatal: it comes last, after everything else ran
    }
    run = run_entrypoint(tmp_path, workspace, gh, inputs, env)
    assert run.code == 3, run.stdout + run.stderr
    assert "Traceback" not in run.stdout + run.stderr

    # the secrets were really in play: the app got them in its URL, the LLMs got the keys and quoted them
    chats = [r for r in app.requests if r.route == "promptflow"]
    assert chats and all(r.path == f"/t/{ROUTE_SECRET}/promptflow" for r in chats)
    assert all(r.query == {"ref": REF_SECRET, "k": OPENAI_KEY} for r in chats)
    assert any(r.headers.get("api-key") == AZURE_KEY for r in llm.chat_requests)
    assert any(r.headers.get("authorization") == f"Bearer {OPENAI_KEY}" for r in llm.chat_requests)

    # the app never received a key as the user's message (or anywhere else in a body)
    echoed = [r.user_text or "" for r in chats if (r.user_text or "").startswith("My request carried")]
    assert len(echoed) == 2 and all('"api-key": "***"' in t or '"authorization": "Bearer ***"' in t for t in echoed)
    for request in app.requests:
        body = request.raw_body.decode("utf-8", errors="replace")
        for what, secret in {**SECRETS, "route": ROUTE_SECRET, "ref": REF_SECRET}.items():
            assert secret not in body, f"{what} reached the app in a request body"

    # every source produced what it should: URLs in results and errors, echoes, LLM error bodies
    results = [json.loads(line) for line in (workspace / "simulation-results" / "conversations.jsonl").open()]
    by_name = {r["meta_data"]["simulation"]: r for r in results}
    assert len(by_name) == 10
    assert by_name["url-secrets"]["evaluation"]["status"] == "pass"
    assert "/t/***/promptflow?ref=***&k=***" in by_name["url-secrets"]["meta_data"]["app"]["url"]
    assert by_name["url-secrets"]["conversation"][1]["request"]["url"].endswith("/t/***/promptflow?ref=***&k=***")
    app_error = by_name["url-secrets-app-error"]["meta_data"]["error"]["message"]
    assert "/t/***/promptflow?ref=***&k=*** failed (HTTP 500)" in app_error
    for name in ("judge-400", "judge-401", "judge-500"):
        (check,) = by_name[name]["evaluation"]["checks"]
        assert check["status"] == "error" and "Incorrect API key provided: ***" in check["message"], check
    for name in ("user-400", "user-500", "user-401"):
        meta = by_name[name]["meta_data"]
        assert meta["stop_reason"] == "llm_error" and "Incorrect API key provided: ***" in meta["error"]["message"]
    summary = json.loads((workspace / "simulation-results" / "summary.json").read_text())
    assert "Incorrect API key provided: ***" in summary["run"]["fatal_error"]

    found = leaks(tmp_path, run, gh, {**SECRETS, "path segment": ROUTE_SECRET, "query ref": REF_SECRET})
    assert not found, "\n".join(found)


def app_reply_echo(request: RecordedRequest) -> AppReply:
    return AppReply(text=f"You said: {request.user_text or ''}")
