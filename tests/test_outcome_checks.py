"""Outcome checks, setup and teardown against the test chat app's orders (state conversations change).

The app under test answers on /promptflow; `app.order_desk` makes it act on its orders ("refund
order 5" issues the refund, "pretend to refund order 5" only says so), and /orders/<id> reads,
seeds and removes them. Every manifest here is run by the CLI, as a user runs it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, EXIT_GATE_FAILED, EXIT_OK, EXIT_RUN_ERRORS, main
from simulator.results.folder import read_results
from simulator.state.client import Call, StateClient, origin
from simulator.state.requests import StateRequest
from tests.servers.chat_app import AppReply, FakeChatApp

SEED = 'setup: {method: PUT, url: "{{base}}/orders/5", body: {status: delivered, price: 250}}'
REFUNDED = '{url: "{{base}}/orders/5", path: status, equals: refund_issued}'
NAMES = "{input: question, history: chat_history, output: answer}"


@pytest.fixture
def app() -> Iterator[FakeChatApp]:
    with FakeChatApp() as server:
        server.default = server.order_desk
        yield server


def closed_port_url() -> str:
    """A URL nobody listens on: bound and released, so connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def manifest(tmp_path: Path, app: FakeChatApp, simulation: str, top: str = "") -> Path:
    """A manifest whose one simulation `refund` has the given extra lines (indented four spaces)."""
    path = tmp_path / "simulations.yml"
    path.write_text(
        "version: 1\n"
        # the flow's names given, so no swagger is read: the app sees only the state requests and the chat
        f"target: {{url: '{app.url}/promptflow', retry: {{attempts: 0}}, timeout: 5, promptflow: {NAMES}}}\n"
        + top
        + "simulations:\n"
        "  - name: refund\n"
        "    persona: jane\n"
        "    task: Get the refund for order 5\n"
        + "".join(f"    {line}\n" for line in simulation.strip("\n").splitlines())
    )
    return path


def run(path: Path, out: Path, *options: str) -> int:
    return main(["run", str(path), "--out", str(out), "--quiet", "--concurrency", "1", *options])


def only_result(out: Path) -> dict:
    (result,) = read_results(out / "conversations.jsonl")
    return result


def paths(app: FakeChatApp) -> list[tuple[str, str]]:
    return [(request.method, request.path) for request in app.requests]


def test_an_outcome_check_passes_when_the_app_did_what_it_said(tmp_path: Path, app: FakeChatApp) -> None:
    path = manifest(
        tmp_path,
        app,
        f"""turns: ["refund order 5", "thanks ###STOP###"]
{SEED}
expect:
  outcome:
    - {REFUNDED}
    - {{url: "{{{{base}}}}/orders/5", path: refund.amount, min: 1, max: 250}}""",
    )
    assert run(path, tmp_path / "out") == EXIT_OK
    result = only_result(tmp_path / "out")
    checks = {c["name"]: c for c in result["evaluation"]["checks"]}
    refunded = checks['outcome GET {{base}}/orders/5: status equals "refund_issued"']
    assert refunded["status"] == "pass"
    assert refunded["evidence"] == {
        "method": "GET",
        "path": "status",
        "expected": {"equals": "refund_issued"},
        "url": f"{app.url}/orders/5",
        "http_status": 200,
        "found": "refund_issued",
    }
    # setup, the conversation, then one GET for both checks of the same request
    assert paths(app) == [("PUT", "/orders/5"), ("POST", "/promptflow"), ("GET", "/orders/5")]
    state = result["state_requests"]
    assert state["setup"][0]["status"] == 200 and state["setup"][0]["answer"]["status"] == "delivered"
    assert [r["answer"]["status"] for r in state["outcome"]] == ["refund_issued"]


def test_an_outcome_check_fails_when_the_app_only_said_it(tmp_path: Path, app: FakeChatApp, capsys) -> None:
    path = manifest(
        tmp_path,
        app,
        f"""turns: ["pretend to refund order 5", "thanks ###STOP###"]
{SEED}
expect:
  contains: on its way
  outcome: {REFUNDED}""",
    )
    assert main(["run", str(path), "--out", str(tmp_path / "out"), "--concurrency", "1"]) == EXIT_GATE_FAILED
    result = only_result(tmp_path / "out")
    said, did = result["evaluation"]["checks"]
    assert said["status"] == "pass" and did["status"] == "fail"  # "on its way", yet still delivered
    message = f'GET {app.url}/orders/5 (HTTP 200): status is "delivered", expected "refund_issued"'
    assert did["message"] == message
    assert did["evidence"]["found"] == "delivered" and did["evidence"]["http_status"] == 200
    # the evidence reaches every report: summary.json names the check, Markdown and HTML say why
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["simulations"]["refund"]["verdict"]["failed_checks"] == {did["name"]: 1}
    # escaped for Markdown, and the address kept from becoming a link (a word joiner after the scheme)
    assert message.replace("_", "\\_").replace("://", ":\u2060//") in (out / "report.md").read_text()
    assert f'GET {app.url}/orders/5 (HTTP 200): status is \\"delivered\\"' in (out / "report.html").read_text()
    assert "Gate: FAIL" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("fault", "url", "said"),
    [
        (AppReply.error(503, "maintenance"), None, "answered HTTP 503: "),
        (AppReply.not_json(), None, "answered HTTP 200 with a body that is not JSON: <html>oops</html>"),
        (AppReply(close_connection=True), None, "the connection failed"),
        (AppReply(body={"status": "refund_issued"}, delay=2), None, "no complete answer within 0.3 s"),
        (AppReply(chunks=lambda: iter([b" " * 65536] * 40)), None, "answered HTTP 200 with more than 1,048,576 bytes"),
        (None, "closed", "unreachable"),
        (None, "{{base}}/orders/404", "answered HTTP 404"),
    ],
)
def test_an_outcome_endpoint_that_gives_no_answer_is_an_error_not_a_failure(
    tmp_path: Path, app: FakeChatApp, fault: AppReply | None, url: str | None, said: str
) -> None:
    where = {None: "{{base}}/orders/5", "closed": closed_port_url() + "/orders/5"}.get(url, url)
    path = manifest(
        tmp_path,
        app,
        f"""turns: ["refund order 5", "thanks ###STOP###"]
expect: {{outcome: {{url: "{where}", timeout: 0.3, path: status, equals: refund_issued}}}}""",
    )
    app.orders.put("5", {"status": "delivered"})
    app.orders_fault = fault
    assert run(path, tmp_path / "out") == EXIT_RUN_ERRORS
    result = only_result(tmp_path / "out")
    (check,) = result["evaluation"]["checks"]
    assert check["status"] == "error" and result["evaluation"]["status"] == "error"
    assert said in check["message"] and check["message"].startswith("GET http://127.0.0.1:")
    assert result["evaluation"]["errors"] == [f"{check['name']}: {check['message']}"]
    assert result["state_requests"]["outcome"][0]["error"] == check["message"]


def test_setup_failure_skips_the_conversation_with_an_error_and_teardown_still_runs(
    tmp_path: Path, app: FakeChatApp
) -> None:
    path = manifest(
        tmp_path,
        app,
        """turns: ["refund order 5"]
setup:
  - {method: PUT, url: "{{base}}/orders/5", body: {status: delivered}}
  - {method: POST, url: "{{base}}/seed/5", body: {}}
  - {method: PUT, url: "{{base}}/orders/6", body: {status: delivered}}
teardown: {method: DELETE, url: "{{base}}/orders/5"}
expect: {outcome: {url: "{{base}}/orders/5", path: status, equals: refund_issued}}""",
    )
    assert run(path, tmp_path / "out") == EXIT_RUN_ERRORS
    result = only_result(tmp_path / "out")
    meta, evaluation = result["meta_data"], result["evaluation"]
    assert meta["stop_reason"] == "setup_error" and meta["is_error"] and result["conversation"] == []
    assert meta["error"]["message"].startswith(
        f"setup failed, so the conversation was not played: POST {app.url}/seed/5"
    )
    assert "answered HTTP 404" in meta["error"]["message"]
    assert evaluation["status"] == "error" and evaluation["errors"][0].startswith("conversation ended with setup_error")
    # the app was never asked anything; the setup stopped at its failing request; teardown ran
    assert paths(app) == [("PUT", "/orders/5"), ("POST", "/seed/5"), ("DELETE", "/orders/5")]
    assert [r["status"] for r in result["state_requests"]["setup"]] == [200, 404]
    assert result["state_requests"]["teardown"][0]["answer"] == {"deleted": "5"}
    assert "5" not in app.orders
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["totals"]["stop_reasons"] == {"setup_error": 1} and summary["gate"]["errors"] == 1


def test_teardown_runs_after_a_failed_conversation_and_its_own_failure_is_an_error(
    tmp_path: Path, app: FakeChatApp
) -> None:
    top = 'defaults: {teardown: {method: DELETE, url: "{{base}}/orders/5"}}\n'
    path = manifest(tmp_path, app, f'turns: ["refund order 5", "thanks"]\n{SEED}', top)
    app.script(AppReply.error(500, "the app fell over"))
    assert run(path, tmp_path / "out") == EXIT_RUN_ERRORS
    result = only_result(tmp_path / "out")
    assert result["meta_data"]["stop_reason"] == "app_error"
    assert paths(app)[-1] == ("DELETE", "/orders/5") and "5" not in app.orders
    assert result["state_requests"]["teardown"][0]["status"] == 200

    # a passing conversation whose teardown fails is an error (the app is not to blame), not a pass
    path.write_text(path.read_text().replace(SEED, ""))
    assert run(path, tmp_path / "out3") == EXIT_RUN_ERRORS
    evaluation = only_result(tmp_path / "out3")["evaluation"]
    assert evaluation["status"] == "error" and evaluation["checks"] == []
    assert evaluation["errors"] == [
        f"teardown failed: DELETE {app.url}/orders/5: answered HTTP 404: "
        '{"error": {"message": "no order 5", "status": 404}}'
    ]

    # a simulation's own teardown replaces the defaults'
    path.write_text(path.read_text() + '    teardown: {method: GET, url: "{{base}}/health"}\n')
    assert run(path, tmp_path / "out4") == EXIT_OK
    assert paths(app)[-1] == ("GET", "/health")


def test_a_failed_check_is_kept_when_teardown_fails_too(tmp_path: Path, app: FakeChatApp) -> None:
    path = manifest(
        tmp_path,
        app,
        f"""turns: ["pretend to refund order 5"]
{SEED}
teardown: {{method: DELETE, url: "{{{{base}}}}/orders/6"}}
expect: {{outcome: {REFUNDED}}}""",
    )
    assert run(path, tmp_path / "out") == EXIT_GATE_FAILED
    evaluation = only_result(tmp_path / "out")["evaluation"]
    assert evaluation["status"] == "fail" and evaluation["errors"][0].startswith("teardown failed: DELETE")


def test_the_session_and_the_targets_auth_go_to_the_apps_own_origin_only(
    tmp_path: Path, app: FakeChatApp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_TOKEN", "app-token-0123456789")
    app.issue_session = "header"
    app.require_header = ("Authorization", "Bearer app-token-0123456789")
    app.orders.put("sess-1", {"status": "open"})
    with FakeChatApp() as other:
        other.orders.put("7", {"status": "open"})
        path = tmp_path / "simulations.yml"
        path.write_text(
            "version: 1\n"
            f"target: {{url: '{app.url}/promptflow', retry: {{attempts: 0}}, session: {{read: 'header:X-Session-Id'}},\n"
            "  headers: {Authorization: 'Bearer ${APP_TOKEN}', X-Session-Id: '{{session_id}}'}}\n"
            "simulations:\n"
            "  - name: refund\n    persona: jane\n    task: t\n    turns: [hi, again]\n"
            '    teardown: {method: DELETE, url: "{{base}}/orders/{{session_id}}"}\n'
            "    expect:\n      outcome:\n"
            '        - {url: "{{base}}/orders/{{session_id}}", path: id, equals: sess-1}\n'
            f'        - {{url: "{other.url}/orders/7", path: id, equals: "7", headers: {{X-Mine: "yes"}}}}\n'
        )
        assert run(path, tmp_path / "out") == EXIT_OK
        (elsewhere,) = other.requests
        assert elsewhere.headers.get("authorization") is None  # the app's token stays with the app
        assert elsewhere.headers.get("x-session-id") is None and elsewhere.headers.get("x-mine") == "yes"
    result = only_result(tmp_path / "out")
    own = [r for r in app.requests if r.path == "/orders/sess-1"]
    assert [r.method for r in own] == ["GET", "DELETE"]
    assert all(r.headers["authorization"] == "Bearer app-token-0123456789" for r in own)
    assert all(r.headers["x-session-id"] == "sess-1" for r in own)
    recorded = result["state_requests"]["outcome"][0]["headers"]
    assert recorded == {"Authorization": "***", "X-Session-Id": "sess-1"}


def test_base_keeps_the_target_urls_credentials_as_written(tmp_path: Path, app: FakeChatApp) -> None:
    """Only the scheme and the host of `{{base}}` are case-insensitive: a password in the target's URL
    reaches setup and outcome requests as it was written, not lowercased."""
    app.require_header = ("Authorization", "Basic " + base64.b64encode(b"User:PassWord").decode())
    path = manifest(
        tmp_path, app, f'turns: ["refund order 5", "thanks ###STOP###"]\n{SEED}\nexpect: {{outcome: {REFUNDED}}}'
    )
    path.write_text(
        path.read_text().replace(f"'{app.url}/", f"'{app.url.replace('http://', 'HTTP://User:PassWord@')}/")
    )
    assert run(path, tmp_path / "out") == EXIT_OK
    assert paths(app) == [("PUT", "/orders/5"), ("POST", "/promptflow"), ("GET", "/orders/5")]
    assert origin("HTTPS://User:PassWord@App.Example.COM:8443/chat") == "https://User:PassWord@app.example.com:8443"
    assert "PassWord" not in (tmp_path / "out" / "conversations.jsonl").read_text()


def test_secrets_in_state_requests_never_reach_the_results_folder(
    tmp_path: Path, app: FakeChatApp, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    secrets = {"STATE_KEY": "state-secret-value-123", "ADMIN_PASS": "admin-pass-value-456"}
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    app.require_header = ("X-State-Key", secrets["STATE_KEY"])
    path = manifest(
        tmp_path,
        app,
        """turns: ["refund order 5"]
setup:
  method: PUT
  url: "{{base}}/orders/5?key=${STATE_KEY}"
  headers: {X-State-Key: "${STATE_KEY}"}
  body: {status: delivered, note: "${ADMIN_PASS}", password: "${ADMIN_PASS}"}
teardown: {method: DELETE, url: "{{base}}/orders/5", headers: {X-State-Key: "${STATE_KEY}", X-Admin: "${ADMIN_PASS}"}}
expect:
  outcome:
    - {url: "{{base}}/orders/5", headers: {X-State-Key: "${STATE_KEY}"}, path: note, equals: something else}
    - {url: "{{base}}/orders/5?token=${STATE_KEY}", path: status, equals: refund_issued}""",
    )
    app.require_header = None  # the chat itself needs no key; the state endpoint checks it below
    code = run(path, tmp_path / "out")
    assert code == EXIT_GATE_FAILED
    result = only_result(tmp_path / "out")
    first = result["evaluation"]["checks"][0]
    assert first["status"] == "fail" and first["evidence"]["found"] == "***"  # the app echoed a secret back
    assert result["state_requests"]["setup"][0]["url"].endswith("/orders/5?key=***")
    said = capsys.readouterr()
    for file in (tmp_path / "out").rglob("*"):
        if file.is_file():
            text = file.read_text(errors="replace")
            for value in secrets.values():
                assert value not in text, f"{value} in {file.name}"
    for value in secrets.values():
        assert value not in said.out + said.err
    assert app.requests[0].headers["x-state-key"] == secrets["STATE_KEY"]  # yet the app got them


def test_check_reuses_the_recorded_answers_unless_asked_to_query_again(
    tmp_path: Path, app: FakeChatApp, capsys
) -> None:
    path = manifest(
        tmp_path, app, f'turns: ["refund order 5", "thanks ###STOP###"]\n{SEED}\nexpect: {{outcome: {REFUNDED}}}'
    )
    out = tmp_path / "out"
    assert run(path, out) == EXIT_OK
    app.orders.put("5", {"status": "reopened"})  # the app's state moves on after the run
    asked = len(app.requests)

    assert main(["check", str(out)]) == EXIT_OK  # judged on what the run saw: no request
    assert len(app.requests) == asked
    path.write_text(path.read_text().replace("path: status, equals: refund_issued", "path: refund.amount, min: 300"))
    assert main(["check", str(out)]) == EXIT_GATE_FAILED  # a changed expectation, on the recorded answer
    (check,) = only_result(out)["evaluation"]["checks"]
    assert check["message"].endswith("refund.amount is 250, below the min 300") and len(app.requests) == asked

    path.write_text(path.read_text().replace('/orders/5", path', '/orders/5?fresh=1", path'))
    assert main(["check", str(out)]) == EXIT_RUN_ERRORS  # a request the run never made
    (check,) = only_result(out)["evaluation"]["checks"]
    assert check["status"] == "error" and "run `simulator check --requery` to ask the app again" in check["message"]

    path.write_text(
        path.read_text()
        .replace('/orders/5?fresh=1", path', '/orders/5", path')
        .replace("refund.amount, min: 300", "status, equals: refund_issued")
    )
    capsys.readouterr()
    assert main(["check", str(out), "--requery"]) == EXIT_GATE_FAILED  # asked again: the state moved on
    assert paths(app)[asked:] == [("GET", "/orders/5")]
    result = only_result(out)
    (check,) = result["evaluation"]["checks"]
    assert check["evidence"]["found"] == "reopened"
    assert result["state_requests"]["outcome"][0]["answer"]["status"] == "reopened"
    assert "outcome_at" in result["state_requests"] and result["state_requests"]["setup"]  # setup kept as it was


def test_a_requery_cannot_fill_the_session_id_the_results_do_not_keep(tmp_path: Path, app: FakeChatApp) -> None:
    app.issue_session = "header"
    app.orders.put("sess-1", {"status": "open"})
    path = tmp_path / "simulations.yml"
    path.write_text(
        "version: 1\n"
        f"target: {{url: '{app.url}/promptflow', retry: {{attempts: 0}}, session: {{read: 'header:X-Session-Id'}}}}\n"
        "simulations:\n  - name: s\n    persona: jane\n    task: t\n    turns: [hi]\n"
        '    expect: {outcome: {url: "{{base}}/orders/{{session_id}}", path: status, equals: open}}\n'
    )
    assert run(path, tmp_path / "out") == EXIT_OK
    assert main(["check", str(tmp_path / "out")]) == EXIT_OK
    assert main(["check", str(tmp_path / "out"), "--requery"]) == EXIT_RUN_ERRORS
    (check,) = only_result(tmp_path / "out")["evaluation"]["checks"]
    assert "{{session_id}} has no value: the results do not keep the app's session id" in check["message"]


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (
            'expect: {outcome: {url: "{{base}}/o", path: "a..b", equals: 1}}',
            "expect.outcome.path: path 'a..b': empty segment",
        ),
        (
            'expect: {outcome: {url: "{{base}}/o", path: a, equal: 1}}',
            "expect.outcome.equal: unknown field (did you mean 'equals'?)",
        ),
        ('expect: {outcome: {url: "{{base}}/o", path: a}}', "expect.outcome: no expectation; add one of equals"),
        (
            'expect: {outcome: {url: "{{base}}/o", method: FETCH, path: a, exists: true}}',
            "expect.outcome.method: 'FETCH' is not one of",
        ),
        ("expect: {outcome: {path: a, exists: true}}", "expect.outcome.url: required field is missing"),
        (
            'expect: {outcome: {url: "ftp://x/o", path: a, exists: true}}',
            "expect.outcome.url: 'ftp://x/o' is not an http(s) URL",
        ),
        (
            'expect: {outcome: {url: "{{base}}/{{order}}", path: a, exists: true}}',
            "expect.outcome.url: unknown placeholder {{order}}",
        ),
        ('expect: {reply_json: {path: "tools[*", contains: x}}', "expect.reply_json.path: path 'tools[*'"),
        ('setup: {url: "{{base}}/s/{{session_id}}"}', "setup.url: {{session_id}} is not known yet"),
        (
            'teardown: [{url: "{{base}}/ok"}, {method: GET, url: "{{base}}/x", body: {a: 1}}]',
            "teardown[1].body: a GET request sends no body",
        ),
        ("setup: {method: POST}", "setup.url: required field is missing"),
    ],
)
def test_every_new_key_is_validated_with_a_message_naming_the_field(
    tmp_path: Path, app: FakeChatApp, capsys, lines: str, problem: str
) -> None:
    path = manifest(tmp_path, app, f"turns: [hi]\n{lines}")
    assert main(["validate", str(path)]) == EXIT_CONFIG
    said = capsys.readouterr().err
    assert f"{path}:8: simulations[0].{problem}" in said, said
    assert run(path, tmp_path / "out") == EXIT_CONFIG  # run rejects exactly what validate rejects
    assert app.requests == []


def test_the_bundled_example_checks_the_store_apps_state_end_to_end(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parent.parent / "examples" / "simulations.yml"
    assert main(["run", str(example), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_OK
    (jane,) = [
        r
        for r in read_results(tmp_path / "out" / "conversations.jsonl")
        if r["meta_data"]["simulation"] == "jane-returns-tent"
    ]
    kinds = {c["check"]: c for c in jane["evaluation"]["checks"]}
    assert kinds["outcome"]["status"] == "pass" and kinds["outcome"]["evidence"]["found"] == "return_started"
    assert kinds["reply_json"]["status"] == "pass"
    assert jane["conversation_id"] in jane["state_requests"]["outcome"][0]["url"]


def test_the_store_app_over_http_keeps_each_conversations_orders() -> None:
    import threading

    import httpx2

    from simulator.examples import store_app

    server = store_app.serve()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        history = [{"inputs": {"question": "I want to return order 18"}, "outputs": {"answer": "Shall I?"}}]
        with httpx2.Client() as client:
            assert client.get(f"{url}/orders/18?conversation=c1").json()["status"] == "delivered"
            asked = client.post(
                url, json={"question": "yes please", "chat_history": history}, headers={"X-Conversation-Id": "c1"}
            )
            assert asked.json()["tools"] == [{"name": "start_return", "order": "18"}]
            assert client.get(f"{url}/orders/18?conversation=c1").json()["status"] == "return_started"
            assert client.get(f"{url}/orders/18?conversation=c2").json()["status"] == "delivered"
            assert client.get(f"{url}/orders/999").status_code == 404
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("stage", ["setup", "teardown"])
def test_an_interrupted_setup_or_teardown_keeps_the_conversations_record(
    tmp_path: Path, app: FakeChatApp, stage: str
) -> None:
    import asyncio

    from simulator.manifest import load_manifest
    from simulator.run.plan import plan_jobs
    from simulator.run.runner import run_jobs

    path = manifest(tmp_path, app, f'turns: ["hi"]\n{stage}: {{method: DELETE, url: "{{{{base}}}}/orders/5"}}')
    app.orders_fault = AppReply(body={"deleted": "5"}, delay=1.5)  # slow enough to be interrupted
    out = tmp_path / "out"

    async def interrupt() -> None:
        loaded = load_manifest(path)
        task = asyncio.create_task(run_jobs(loaded, plan_jobs(loaded), out))
        await asyncio.to_thread(app.wait_for_requests, 1 if stage == "setup" else 2)  # the slow one arrived
        task.cancel()  # as a signal does
        outcome = await task
        assert outcome.interrupted

    asyncio.run(interrupt())
    result = only_result(out)
    if stage == "setup":
        assert result["meta_data"]["stop_reason"] == "cancelled" and result["conversation"] == []
        assert result["evaluation"]["errors"] == ["the run was interrupted before this conversation was judged"]
    else:  # the conversation was played and judged: kept, with the teardown cut short
        assert result["meta_data"]["stop_reason"] == "user_done" and len(result["conversation"]) == 2
        assert result["evaluation"]["status"] == "error"
        assert result["evaluation"]["errors"] == ["teardown was interrupted with the run"]
        assert result["state_requests"]["teardown"] == []


def test_base_needs_a_url_target_or_a_callback_with_a_base_url(tmp_path: Path, monkeypatch, app: FakeChatApp) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "shop.py").write_text(
        "def respond(question, history, meta):\n    return 'Refund issued.'\n\n"
        "def served(question, history, meta):\n    return 'Refund issued.'\n\n"
        f"served.base_url = lambda: {app.url!r}\n"
    )
    app.orders.put("5", {"status": "refund_issued"})
    path = tmp_path / "simulations.yml"
    path.write_text(
        "version: 1\ntarget: {callback: 'shop.py:respond'}\nsimulations:\n"
        "  - {name: plain, persona: jane, task: t, turns: [hi],\n"
        "     expect: {outcome: {url: '{{base}}/orders/5', path: status, equals: refund_issued}}}\n"
        "  - {name: served, persona: jane, task: t, turns: [hi], target: {callback: 'shop.py:served'},\n"
        "     expect: {outcome: {url: '{{base}}/orders/5', path: status, equals: refund_issued}}}\n"
    )
    assert run(path, tmp_path / "out") == EXIT_RUN_ERRORS
    plain, served = sorted(
        read_results(tmp_path / "out" / "conversations.jsonl"), key=lambda r: r["meta_data"]["simulation"]
    )
    (check,) = plain["evaluation"]["checks"]
    assert check["status"] == "error"
    assert (
        "{{base}} has no value: the callback" in check["message"]
        and "has no base_url; write the full URL" in check["message"]
    )
    assert served["evaluation"]["status"] == "pass", served["evaluation"]


def test_state_requests_of_many_conversations_at_a_time_each_get_a_connection() -> None:
    """150 conversations at a time, each with an outcome request in flight: 150 connections, none
    waiting for a free one inside its timeout (the default pool keeps 128)."""
    with FakeChatApp() as app:
        app.default = lambda request: AppReply(text="state", delay=0.5)
        request = StateRequest(
            method="POST",
            url=app.url + "/promptflow",
            headers={},
            body={"question": "state?", "chat_history": []},
            timeout=10,
            source="expect.outcome[0]",
            label="state",
        )
        client = StateClient()

        async def play() -> list[str | None]:
            client.warm(150)
            try:
                calls = [Call(target=None, values={"conversation_id": f"c{i}"}) for i in range(150)]
                return [exchange.error for exchange in await asyncio.gather(*(client.send(request, c) for c in calls))]
            finally:
                await client.aclose()

        errors = asyncio.run(play())
    assert errors == [None] * 150
    assert len(app.requests) == 150 and app.connection_count == 150
