"""The registry of known credentials and the places that register them, without servers.

Scrubbing must catch a value inside longer text and in the forms the run writes it in (JSON-escaped,
percent-encoded, basic auth), leave no piece of overlapping values, keep written JSON valid, and
ignore values too short to be credentials.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import sys
import threading
from pathlib import Path

from simulator.errors import TurnError
from simulator.llm.token_managers import PlainTokenManager
from simulator.manifest import load_manifest
from simulator.report import render_html, render_markdown
from simulator.report.markdown import Links
from simulator.results.folder import ResultWriter, write_summary
from simulator.results.summary import summarize
from simulator.text import known_secrets
from simulator.text.known_secrets import REDACTED, SecretRegistry

SECRET = "sk-unit-0123456789abcdef"


def test_a_secret_inside_longer_text_is_replaced_wherever_it_appears() -> None:
    registry = SecretRegistry()
    registry.register(SECRET)
    text = f"Incorrect API key provided: {SECRET}. Bearer {SECRET}!{SECRET}"
    assert registry.scrub_text(text) == "Incorrect API key provided: ***. Bearer ***!***"
    assert registry.scrub_text("nothing to see") == "nothing to see"


def test_overlapping_and_nested_values_leave_no_piece_behind() -> None:
    registry = SecretRegistry()
    for value in ("abcdef123", "123ghijkl", "xyzabcdef123uvw"):
        registry.register(value)
    assert registry.scrub_text("<abcdef123ghijkl>") == "<***>"  # overlapping: one span
    assert registry.scrub_text("[xyzabcdef123uvw]") == "[***]"  # one value inside another
    assert registry.scrub_text("abcdef123 and 123ghijkl") == "*** and ***"


def test_short_values_and_non_text_are_ignored() -> None:
    registry = SecretRegistry()
    assert not registry.register("abc12")  # shorter than MIN_SECRET_LENGTH
    assert not registry.register("   abc   ")
    assert not registry.register(None)
    assert not registry.register(123456789)  # type: ignore[arg-type]
    assert registry.register("  abc123  ")  # stripped, then long enough
    assert registry.values() == {"abc123"}
    assert registry.scrub_text("abc12 and abc123") == "abc12 and ***"


def test_json_escaped_and_percent_encoded_forms_are_scrubbed() -> None:
    registry = SecretRegistry()
    tricky = 'pa"ss\\word/é+ 1'
    registry.register(tricky)
    escaped = json.dumps({"echo": f"got {tricky}"})
    assert tricky not in escaped and registry.scrub_text(escaped) == '{"echo": "got ***"}'
    assert registry.scrub_text(json.dumps(tricky, ensure_ascii=False)) == '"***"'
    for encoded in (
        "pa%22ss%5Cword%2F%C3%A9%2B%201",
        "pa%22ss%5Cword/%C3%A9%2B%201",
        "pa%22ss%5Cword%2F%C3%A9%2B+1",
        "pa%22ss%5cword%2f%c3%a9%2b%201",  # lowercase hex, as some encoders write it
        "pa%22ss%5cword%2f%c3%a9%2b+1",
    ):
        assert registry.scrub_text(f"http://h/x?q={encoded}&n=2") == "http://h/x?q=***&n=2"


def test_url_userinfo_gives_its_password_and_the_basic_auth_header() -> None:
    registry = SecretRegistry()
    registry.register_url("https://deploy:s3cr%40t-pass@app.example.com/chat")
    basic = base64.b64encode(b"deploy:s3cr@t-pass").decode()
    assert registry.scrub_text(f"Authorization: Basic {basic}") == "Authorization: Basic ***"
    assert registry.scrub_text("password s3cr@t-pass") == "password ***"
    registry.register_url("https://d%C3%A9ploy:p%C3%A4ss-w%C3%B6rt@app.example.com/chat")  # non-ASCII
    for encoding in ("utf-8", "latin-1"):  # clients differ; aiohttp and requests send latin-1
        basic = base64.b64encode("déploy:päss-wört".encode(encoding)).decode()
        assert registry.scrub_text(f"Authorization: Basic {basic}") == "Authorization: Basic ***"
    assert registry.scrub_text("https://app.example.com/chat") == "https://app.example.com/chat"
    registry.register_url("https://ghp_tokenAsUserName123@github.example.com/x")
    assert registry.scrub_text("ghp_tokenAsUserName123") == REDACTED
    registry.register_url("http://127.0.0.1:8000/promptflow")  # no userinfo: nothing to learn
    assert registry.scrub_text("http://127.0.0.1:8000/promptflow") == "http://127.0.0.1:8000/promptflow"


def test_nested_data_is_scrubbed_keys_included() -> None:
    registry = SecretRegistry()
    registry.register(SECRET)
    data = {"a": [f"x{SECRET}", (SECRET, 1)], SECRET: {"n": 2.5, "b": None, "t": True}}
    assert registry.scrub(data) == {"a": ["x***", ("***", 1)], "***": {"n": 2.5, "b": None, "t": True}}
    assert SecretRegistry().scrub(data) is data  # nothing known: nothing to copy


def test_registering_from_many_threads_loses_nothing() -> None:
    registry = SecretRegistry()
    values = [f"thread-secret-{n:04d}" for n in range(400)]

    def add(chunk: list[str]) -> None:
        for value in chunk:
            registry.register(value)

    threads = [threading.Thread(target=add, args=(values[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert registry.values() == set(values)
    assert registry.scrub_text(" ".join(values)) == " ".join([REDACTED] * len(values))


def test_a_written_result_is_valid_json_without_the_secret(tmp_path: Path) -> None:
    """A secret holding `"` and `\\` is JSON-escaped when written; the file must still parse."""
    tricky = 'k"ey\\with-quote'
    known_secrets.register(tricky)
    result = {
        "conversation_id": "c1",
        "conversation": [],
        "meta_data": {"app": {"url": f"http://h/t/{tricky}/chat"}, tricky: [tricky]},
    }
    writer = ResultWriter(tmp_path / "r.jsonl")
    writer.write(result)
    writer.close()
    text = (tmp_path / "r.jsonl").read_text()
    assert tricky not in text and json.dumps(tricky)[1:-1] not in text
    assert json.loads(text)["meta_data"] == {"app": {"url": "http://h/t/***/chat"}, "***": ["***"]}
    summary = summarize([], {"fatal_error": f"the app at http://h/t/{tricky}/chat failed"})
    text = write_summary(tmp_path, summary).read_text()
    assert json.loads(text)["run"]["fatal_error"] == "the app at http://h/t/***/chat failed"


def test_reports_scrub_before_escaping_and_cutting(tmp_path: Path) -> None:
    """Markdown escapes `_` as `\\_` and cuts long turns: the secret must go before either happens."""
    secret = "tok_with_underscores_4242"
    known_secrets.register(secret)
    long_reply = "x" * 597 + secret  # cut at 600 characters: a piece of the secret would survive
    result = {
        "conversation_id": "c1",
        "conversation": [
            {"turn_number": 0, "actor": "user", "response": f"key {secret}", "latency_ms": 1.0, "error": None},
            {"turn_number": 1, "actor": "assistant", "response": long_reply, "latency_ms": 1.0, "error": None},
        ],
        "meta_data": {
            "simulation": "s",
            "persona": {"name": "p"},
            "task": f"use {secret}",
            "stop_reason": "max_turns",
            "turn_count": 2,
        },
        "evaluation": {"status": "fail", "checks": [], "failed": [f"bad {secret}"], "errors": []},
    }
    summary = summarize([], {"fatal_error": f"stopped: {secret}"})
    markdown = render_markdown(summary, [result])
    html = render_html(summary, [result])
    # the lines around the table: where the comparison came from, and why the report is not linked
    noted = render_markdown(
        summary,
        [result],
        header=f"## Run with {secret}",
        baseline_note=f"compared with the run of {secret}",
        links=Links(report_note=f"upload failed for {secret}", artifact_name=f"results-{secret}"),
    )
    for text in (markdown, html, noted):
        assert secret not in text and "tok\\_with" not in text and "tok_with" not in text and "4242" not in text


def test_turn_errors_are_scrubbed_when_made() -> None:
    known_secrets.register(SECRET)
    error = TurnError("llm_error", f"HTTP 401: Incorrect API key provided: {SECRET}", detail={"body": SECRET})
    assert str(error) == "HTTP 401: Incorrect API key provided: ***" and error.detail == {"body": "***"}


def test_a_token_manager_registers_the_key_it_fetches(monkeypatch) -> None:
    monkeypatch.setenv("UNIT_KEY_VAR", SECRET)
    manager = PlainTokenManager(env_var="UNIT_KEY_VAR")
    assert known_secrets.scrub_text(SECRET) == SECRET  # nothing fetched yet
    assert manager.get_token_sync() == SECRET  # the caller gets the real key
    assert known_secrets.scrub_text(f"key {SECRET}") == "key ***"


MANIFEST = """\
version: 1
target:
  url: "${APP_URL}/t/${ROUTE_PART}/chat?lang=${LANG_CODE}&k=${PLAIN_QUERY}"
  format: http
  headers: {X-Tenant: "${TENANT}", Content-Type: "${CONTENT_TYPE}", Accept: "${ACCEPT_VALUE}"}
  request: {method: POST, body: {message: "{{question}}", tenant_ref: "${BODY_VALUE}"}}
  response: data.reply.text
user: {model: "${MODEL_NAME}", endpoint: "${LLM_URL}", api_key_env: UNIT_LLM_KEY}
simulations:
  - {name: "a", persona: jane, task: "${TASK_TEXT} ${OTHER_API_TOKEN}", turns: ["hi"]}
  - name: b
    persona: jane
    task: t
    turns: ["hi"]
    target: {url: "${SECOND_URL}/chat", format: promptflow}
"""


def test_the_manifest_registers_what_it_sends_to_the_app_and_secret_named_values(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(MANIFEST)
    environ = {
        "APP_URL": "http://127.0.0.1:8000",  # a URL: the app's address stays readable
        "SECOND_URL": "https://deploy:pw-in-userinfo@second.example.com",  # but not its password
        "ROUTE_PART": "path-segment-secret",
        "LANG_CODE": "en",  # too short to be a credential
        "PLAIN_QUERY": "query-secret-value",
        "TENANT": "tenant-header-value",
        "CONTENT_TYPE": "application/json",  # a benign header
        "ACCEPT_VALUE": "text/plain-accept",  # a benign header
        "BODY_VALUE": "body-secret-value",
        "MODEL_NAME": "model-name-value",  # not sent to the app, name not secret
        "LLM_URL": "http://127.0.0.1:9000/v1",
        "TASK_TEXT": "task-text-value",
        "OTHER_API_TOKEN": "token-named-value",  # a secret name: wherever it is used
        "UNIT_LLM_KEY": "llm-key-never-interpolated",  # read by the token manager, not by ${}
    }
    load_manifest(tmp_path / "m.yml", environ=environ)
    assert known_secrets.registry.values() >= {
        "path-segment-secret",
        "query-secret-value",
        "tenant-header-value",
        "body-secret-value",
        "token-named-value",
        "pw-in-userinfo",
    }
    for kept in (
        "http://127.0.0.1:8000",
        "https://deploy:pw-in-userinfo@second.example.com",
        "application/json",
        "text/plain-accept",
        "model-name-value",
        "http://127.0.0.1:9000/v1",
        "task-text-value",
        "llm-key-never-interpolated",
    ):
        assert kept not in known_secrets.registry.values(), kept


def test_defaults_written_in_the_manifest_are_not_secrets(tmp_path: Path) -> None:
    (tmp_path / "m.yml").write_text(
        'version: 1\ntarget: {url: "http://h/${SEG:-default-segment}", headers: {X-Api-Key: "${K:-}"}}\n'
        'simulations: [{name: a, persona: jane, task: t, turns: ["hi"]}]\n'
    )
    load_manifest(tmp_path / "m.yml", environ={})
    assert known_secrets.registry.values() == set()


def test_streams_and_logs_are_scrubbed_but_a_mask_command_is_not(capsys) -> None:
    from simulator.github import commands

    known_secrets.register(SECRET)
    buffer = io.StringIO()
    logger = known_secrets.scrub_logs(logging.getLogger("simulator.unit"))
    handler = logging.StreamHandler(buffer)
    logger.addHandler(handler)
    try:
        logger.warning("key %s rejected", SECRET)
        try:
            raise ValueError(f"bad {SECRET}")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    assert SECRET not in buffer.getvalue() and "key *** rejected" in buffer.getvalue()
    assert "ValueError: bad ***" in buffer.getvalue()

    with known_secrets.scrubbed_output():
        print(f"progress {SECRET}")
        sys.stderr.write(f"error {SECRET}\n")
        commands.mask(SECRET)
    out, err = capsys.readouterr()
    assert "progress ***" in out and "error ***" in err
    assert out.count(SECRET) == 1 and f"::add-mask::{SECRET}" in out  # the runner needs the value to mask it


def test_neither_side_of_a_conversation_hears_a_known_secret_from_the_other() -> None:
    """The user's message is scrubbed before the app gets it, the app's reply before the user side does."""
    from simulator import ScriptedUser, Simulator

    known_secrets.register(SECRET)
    heard: list[tuple[str, list[dict[str, str]]]] = []

    def app(question: str, history: list[dict[str, str]], meta_data: dict) -> str:
        heard.append((question, list(history)))
        return f"your key is {SECRET}"

    user = ScriptedUser([f"my key is {SECRET}", "and now?"])
    result = Simulator(simulate_callback=app, userConnection=user).simulate("jane", "t", max_conversation_turns=4)
    assert heard[0][0] == "my key is ***"
    assert heard[1][1] == [
        {"role": "user", "content": "my key is ***"},
        {"role": "assistant", "content": "your key is ***"},
    ]
    assert SECRET not in json.dumps(result)
