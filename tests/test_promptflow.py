"""Format promptflow speaks to a flow under the flow's own names: given in the manifest, or read from
the flow's /swagger.json before the first conversation, else Prompt flow's defaults with a warning.

Real HTTP on 127.0.0.1 against `FakePromptflow`, which serves the swagger documents and answers that
`pf flow serve` gave for the flows in tests/servers/promptflow_flows (checked first, below).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator import ConfigError, Persona, ScriptedUser, Simulator, expand_request, validate_result
from simulator.manifest import ManifestError, load_manifest
from simulator.run.connections import build_target
from simulator.targets import HttpTarget
from simulator.targets.http import encode_body, target_problems
from simulator.targets.http.promptflow_swagger import flow_names, swagger_url
from tests.faults.harness import play, read_back
from tests.servers.promptflow_server import FLOWS, FakePromptflow, Flow

USER_LINES = ["Hi there", "Where is order 5?", "And order 6?", "Thanks ###STOP###"]
WARNINGS = "simulator.targets.http.promptflow"


@pytest.fixture
def chat_io() -> Iterator[FakePromptflow]:
    """A flow named as Azure AI Studio's templates name theirs: chat_input, chat_history, chat_output."""
    with FakePromptflow("chat_io") as server:
        yield server


def converse(target: HttpTarget, lines: list[str] = USER_LINES) -> dict[str, Any]:
    result = Simulator(systemConnection=target, userConnection=ScriptedUser(lines)).simulate(
        Persona.load("jane"), "check orders", max_conversation_turns=20
    )
    validate_result(result)
    return result


def replies(result: dict[str, Any]) -> list[str]:
    return [t["response"] for t in result["conversation"] if t["actor"] == "assistant"]


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == WARNINGS and r.levelno == logging.WARNING]


# --- the fake is Prompt flow's serving app --------------------------------------------------------


@pytest.mark.parametrize("name", ["chat_io", "qa", "nomark", "standard_qa"])
def test_the_fake_answers_as_pf_flow_serve_answered(name: str) -> None:
    """exchanges.json holds what `pf flow serve` (promptflow 1.18.5) answered for each flow."""
    import requests

    exchanges = json.loads((FLOWS / "exchanges.json").read_text())[name]
    with FakePromptflow(name) as server:
        for exchange in exchanges:
            if "get" in exchange:
                answer = requests.get(server.url + exchange["get"], timeout=5)
                assert (answer.status_code, answer.text) == (exchange["status"], exchange["text"])
                continue
            answer = requests.post(server.score_url, json=exchange["request"], timeout=5)
            assert (answer.status_code, answer.json()) == (exchange["status"], exchange["answer"])
        swagger = requests.get(server.url + "/swagger.json", timeout=5).json()
    assert swagger == json.loads((FLOWS / f"{name}.swagger.json").read_text())


def test_the_swagger_marks_the_chat_fields_the_flow_flags() -> None:
    found = flow_names(Flow.load("chat_io").swagger)
    assert (found.input, found.history, found.output) == ("chat_input", "chat_history", "chat_output")
    assert found.inputs == ("chat_history", "chat_input") and found.outputs == ("chat_output",)
    found = flow_names(Flow.load("qa").swagger)
    assert (found.input, found.history, found.output) == ("question", "chat_history", "answer")
    found = flow_names(Flow.load("nomark").swagger)
    assert (found.input, found.history, found.output) == (None, None, None)
    assert found.inputs == ("history", "topic") and found.outputs == ("extra", "text")


def test_an_input_named_chat_history_is_the_history_when_none_is_flagged() -> None:
    swagger = Flow.load("chat_io").swagger
    del swagger["info"]["x-chat-history"]  # Prompt flow takes an input named chat_history as the history
    assert flow_names(swagger).history == "chat_history"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8080/score", "http://127.0.0.1:8080/swagger.json"),
        (
            "https://ep.westeurope.inference.ml.azure.com/score",
            "https://ep.westeurope.inference.ml.azure.com/swagger.json",
        ),
        ("http://app.test/flows/chat/score?code=k1", "http://app.test/flows/chat/swagger.json?code=k1"),
        ("http://app.test:5000", "http://app.test:5000/swagger.json"),
        ("http://app.test/", "http://app.test/swagger.json"),
    ],
)
def test_the_swagger_is_beside_the_scoring_route(url: str, expected: str) -> None:
    assert swagger_url(url) == expected


# --- names read from the swagger ------------------------------------------------------------------


def test_names_are_read_from_the_swagger_and_the_history_goes_as_the_flows_pairs(
    chat_io: FakePromptflow, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=WARNINGS)
    result = converse(HttpTarget.from_config({"url": chat_io.score_url}))
    assert result["meta_data"]["stop_reason"] == "user_done"
    assert chat_io.requests[0].method == "GET" and chat_io.requests[0].path == "/swagger.json"
    assert len(chat_io.swagger_gets) == 1
    first, second, third = (r.body for r in chat_io.scores)
    assert first == {"chat_input": "Hi there", "chat_history": []}
    assert second == {
        "chat_input": "Where is order 5?",
        "chat_history": [
            {"inputs": {"chat_input": "Hi there"}, "outputs": {"chat_output": "echo: Hi there | history=[]"}}
        ],
    }
    assert (
        third["chat_history"]
        == [
            {"inputs": {"chat_input": q}, "outputs": {"chat_output": a}}
            for q, a in zip(USER_LINES, replies(result), strict=False)
        ][:2]
    )
    # the reply is read from chat_output, and the flow saw the history it was sent
    assert replies(result)[1] == "echo: Where is order 5? | history=" + json.dumps(second["chat_history"])
    assert warnings_of(caplog) == []
    assert "input 'chat_input' (swagger), history 'chat_history' (swagger), output 'chat_output' (swagger)" in (
        caplog.text
    )


def test_a_streamed_answer_is_read_at_the_flows_chat_output(chat_io: FakePromptflow) -> None:
    """Prompt flow's streaming mode: `data: {"chat_output": "<piece>"}` events, the other outputs whole
    in a first event (here none), the connection closed at the end; the pieces make the reply."""
    target = HttpTarget.from_config({"url": chat_io.score_url, "headers": {"Accept": "text/event-stream"}})
    result = converse(target, USER_LINES[:2])
    assert replies(result) == ["echo: Hi there | history=[]", replies(result)[1]]
    assert replies(result)[1].startswith("echo: Where is order 5? | history=[{")
    assert result["conversation"][1]["full_json_response"]["events"][:2] == [
        {"chat_output": ""},
        {"chat_output": "echo: "},
    ]


def test_a_hybrid_stream_keeps_the_other_outputs_out_of_the_reply() -> None:
    """A flow with a chat output and another output streams the other one whole in a first event."""
    with FakePromptflow("qa") as server:
        server.flow.outputs["sources"] = {"type": "string"}
        target = HttpTarget.from_config({"url": server.score_url, "headers": {"Accept": "text/event-stream"}})
        result = converse(target, USER_LINES[:1])
    assert replies(result) == ["echo: Hi there | history=[]"]
    assert result["conversation"][1]["full_json_response"]["events"][0] == {"sources": "echo: Hi there | history=[]"}


def test_the_question_answer_flow_is_read_the_same_way(caplog: pytest.LogCaptureFixture) -> None:
    with FakePromptflow("qa") as server:
        result = converse(HttpTarget.from_config({"url": server.score_url}), USER_LINES[:2])
        bodies = [r.body for r in server.scores]
    assert bodies[1]["chat_history"] == [
        {"inputs": {"question": "Hi there"}, "outputs": {"answer": replies(result)[0]}}
    ]
    assert warnings_of(caplog) == []


def test_a_standard_question_answer_flow_gets_its_question_alone_and_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A standard flow (no chat fields flagged) whose input and output are Prompt flow's default names,
    `question` and `answer`, and that has no chat history: nothing to warn about, nothing to send but
    the question."""
    caplog.set_level(logging.INFO, logger="simulator")
    with FakePromptflow("standard_qa") as server:
        result = converse(HttpTarget.from_config({"url": server.score_url}), USER_LINES[:2])
        bodies = [r.body for r in server.scores]
    assert bodies == [{"question": "Hi there"}, {"question": "Where is order 5?"}]
    assert replies(result) == ["about Hi there", "about Where is order 5?"]
    assert warnings_of(caplog) == []
    (names,) = [r.getMessage() for r in caplog.records if "the flow's names" in r.getMessage()]
    assert names == (
        "target: the flow's names: input 'question' (swagger), history none (the flow has no chat history "
        "input: each turn sends the message alone), output 'answer' (swagger)"
    )


def test_a_standard_flow_with_another_input_still_names_what_to_set(caplog: pytest.LogCaptureFixture) -> None:
    """An input beside the question may be where the flow takes the earlier turns: say so."""
    with FakePromptflow("standard_qa") as server:
        server.flow.inputs["context"] = {"type": "string", "default": ""}
        swagger = server.flow.swagger
        score = swagger["paths"]["/score"]["post"]["requestBody"]["content"]["application/json"]["schema"]
        score["properties"]["context"] = {"type": "string"}
        server.swagger_document = swagger
        result = converse(HttpTarget.from_config({"url": server.score_url}), USER_LINES[:1])
        body = server.scores[0].body
    assert replies(result) == ["about Hi there"] and body == {"question": "Hi there", "chat_history": []}
    (warning,) = warnings_of(caplog)
    assert "names no chat history" in warning and "the flow's inputs: question, context" in warning
    assert "chat input" not in warning and "chat output" not in warning


def test_the_names_are_read_once_per_target_before_any_conversation_talks(chat_io: FakePromptflow) -> None:
    chat_io.swagger_delay = 1.0  # each conversation waits for it, before its first turn
    target = HttpTarget.from_config({"url": chat_io.score_url})
    sim = Simulator(systemConnection=target, userConnection=ScriptedUser(USER_LINES[:2]))

    async def many() -> list[dict[str, Any]]:
        try:
            jane = Persona.load("jane")
            return await asyncio.gather(*(sim.simulate_async(jane, "t", 4) for _ in range(6)))
        finally:
            await target.aclose()

    results = asyncio.run(many())
    assert len(chat_io.swagger_gets) == 1 and len(chat_io.scores) == 12
    assert all(r.body.keys() == {"chat_input", "chat_history"} for r in chat_io.scores)
    for result in results:
        assert result["meta_data"]["stop_reason"] == "max_turns"
        first_reply = result["conversation"][1]
        assert first_reply["latency_ms"] < 1000, "reading the swagger is no part of a turn's latency"


def test_a_run_reads_the_names_before_its_first_conversation(tmp_path: Path) -> None:
    """A turn that waited for the swagger would time out: the run reads it before any conversation starts."""
    with FakePromptflow("chat_io", swagger_delay=2.0) as server:
        manifest = {
            "version": 1,
            "target": {"url": server.score_url},
            "defaults": {"turn_timeout": 1.5},
            "simulations": [
                {"name": f"s{i}", "persona": "jane", "task": "t", "turns": USER_LINES[:2]} for i in range(4)
            ],
        }
        outcome, crash = play(manifest, tmp_path)
        paths = [r.path for r in server.requests]
    assert crash is None and outcome is not None
    results, _, problems = read_back(tmp_path / "out")
    assert not problems and [r["meta_data"]["stop_reason"] for r in results] == ["user_done"] * 4
    assert paths[0] == "/swagger.json" and paths.count("/swagger.json") == 1 and paths.count("/score") == 8


def test_the_swagger_is_read_with_the_targets_headers() -> None:
    with FakePromptflow("chat_io", token="s3cret-token") as server:
        target = {
            "url": server.score_url,
            "headers": {"Authorization": "Bearer s3cret-token", "X-Turn": "{{turn_number}}"},
        }
        result = converse(HttpTarget.from_config(target), USER_LINES[:2])
        swagger_get = server.swagger_gets[0]
        assert server.scores[1].body["chat_history"][0]["inputs"] == {"chat_input": "Hi there"}
    assert swagger_get.headers["authorization"] == "Bearer s3cret-token"
    assert "x-turn" not in swagger_get.headers  # a header only filled in per turn is left out
    assert result["meta_data"]["stop_reason"] == "user_done"


# --- names given in the manifest ------------------------------------------------------------------


def test_names_given_in_the_manifest_are_used_without_reading_the_swagger(chat_io: FakePromptflow) -> None:
    names = {"input": "chat_input", "history": "chat_history", "output": "chat_output"}
    result = converse(HttpTarget.from_config({"url": chat_io.score_url, "promptflow": names}), USER_LINES[:2])
    assert chat_io.swagger_gets == []
    assert chat_io.scores[1].body["chat_history"] == [
        {"inputs": {"chat_input": "Hi there"}, "outputs": {"chat_output": replies(result)[0]}}
    ]


def test_a_name_given_overrides_the_swagger_and_the_others_are_read_from_it(
    chat_io: FakePromptflow, caplog: pytest.LogCaptureFixture
) -> None:
    """The flow's reply.py tool reads chat_input; its history input could be told apart by another name."""
    target = HttpTarget.from_config({"url": chat_io.score_url, "promptflow": {"history": "earlier"}})
    converse(target, USER_LINES[:2])
    assert len(chat_io.swagger_gets) == 1
    assert chat_io.scores[1].body == {
        "chat_input": "Where is order 5?",
        "earlier": [{"inputs": {"chat_input": "Hi there"}, "outputs": {"chat_output": "echo: Hi there | history=[]"}}],
    }
    (warning,) = warnings_of(caplog)
    assert warning == (
        f"target.promptflow.history: 'earlier' is not one of the flow's inputs ({chat_io.url}/swagger.json lists "
        "chat_history, chat_input); the flow ignores it"
    )


# --- no swagger, or one that names nothing ----------------------------------------------------------


def test_without_a_swagger_the_defaults_are_used_quietly(caplog: pytest.LogCaptureFixture) -> None:
    """No swagger at all (404): an app of its own in Prompt flow's shape, not worth a warning each run;
    a flow named otherwise refuses the first request, and that error names what to set."""
    caplog.set_level(logging.INFO, logger="simulator")
    with FakePromptflow("qa", swagger=False) as server:
        result = converse(HttpTarget.from_config({"url": server.score_url}), USER_LINES[:2])
        assert [r.path for r in server.requests] == ["/swagger.json", "/score", "/score"]
        assert server.scores[1].body["chat_history"][0] == {
            "inputs": {"question": "Hi there"},
            "outputs": {"answer": replies(result)[0]},
        }
    assert warnings_of(caplog) == []
    (note,) = [r.getMessage() for r in caplog.records if "could not be read" in r.getMessage()]
    assert note == (
        f"target: the flow's names could not be read ({server.url}/swagger.json answered HTTP 404); using Prompt "
        "flow's defaults (input 'question', history 'chat_history', output 'answer'): if the flow names them "
        "otherwise, set target.promptflow.input (the flow input that takes the user's message), "
        "target.promptflow.history (the flow input that takes the earlier turns), target.promptflow.output "
        "(the flow output that holds the reply)"
    )


def test_a_swagger_that_marks_no_chat_fields_names_what_to_set(caplog: pytest.LogCaptureFixture) -> None:
    with FakePromptflow("nomark") as server:
        target = HttpTarget.from_config({"url": server.score_url, "retry": {"attempts": 0}})
        result = converse(target, USER_LINES[:1])
    (warning,) = warnings_of(caplog)
    assert warning == (
        f"target: {server.url}/swagger.json names no chat input, chat history, chat output (no x-chat-input, "
        "x-chat-history, x-chat-output: no flow field has is_chat_input: true, is_chat_history: true, "
        "is_chat_output: true); the flow's inputs: history, topic; its outputs: extra, text; using input "
        "'question', history 'chat_history', output 'answer': if the flow names them otherwise, set "
        "target.promptflow.input (the flow input that takes the user's message), target.promptflow.history (the "
        "flow input that takes the earlier turns), target.promptflow.output (the flow output that holds the reply)"
    )
    assert result["meta_data"]["stop_reason"] == "app_error"
    assert "target.promptflow.input" in result["meta_data"]["error"]["message"]


def test_when_the_flow_refuses_the_input_name_the_error_says_which_names_to_set(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with FakePromptflow("chat_io", swagger=False) as server:
        result = converse(HttpTarget.from_config({"url": server.score_url}))
        assert len(server.scores) == 1  # a 400 is not retried
    assert result["meta_data"]["stop_reason"] == "app_error"
    message = result["meta_data"]["error"]["message"]
    assert message == (
        f"the app at {server.score_url} rejected the request: the flow requires the input(s) chat_input, but the "
        "message went as 'question' and the history as 'chat_history': set target.promptflow.input to the flow "
        "input that takes the user's message (probably chat_input), and target.promptflow.history and .output if "
        "the flow's chat history and chat output are not 'chat_history' and 'answer' either (its /swagger.json "
        "names them as x-chat-input, x-chat-history and x-chat-output) (HTTP 400); body: "
        '{"error": {"code": "UserError", "message": "Required input fields [\'chat_input\'] are missing in request '
        "data {'question': 'Hi there', 'chat_history': []}\"}}"
    )
    assert warnings_of(caplog) == []  # the error says it all; no swagger is no warning of its own


def test_a_wrong_name_in_the_manifest_stops_the_run_with_the_names_to_set(
    tmp_path: Path, chat_io: FakePromptflow
) -> None:
    manifest = {
        "version": 1,
        "target": {"url": chat_io.score_url, "promptflow": {"input": "message"}, "retry": {"attempts": 0}},
        "simulations": [{"name": f"s{i}", "persona": "jane", "task": "t", "turns": USER_LINES} for i in range(6)],
    }
    outcome, crash = play(manifest, tmp_path)
    assert crash is None and outcome is not None
    assert outcome.fatal_error is not None and "set target.promptflow.input" in outcome.fatal_error
    assert "probably chat_input" in outcome.fatal_error
    assert len(chat_io.swagger_gets) == 1 and len(chat_io.scores) < 6  # the fatal error stopped the others


def test_a_reply_under_another_output_name_says_to_set_the_output(chat_io: FakePromptflow) -> None:
    names = {"input": "chat_input", "history": "chat_history"}  # the output left to its default, answer
    result = converse(HttpTarget.from_config({"url": chat_io.score_url, "promptflow": {**names, "output": "reply"}}))
    assert result["meta_data"]["error"]["message"] == (
        f"the app at {chat_io.score_url} answered without the reply text: path 'reply': key 'reply' is missing at "
        "(the whole answer), which is an object with keys: chat_output; set target.promptflow.output to the flow "
        'output that holds the reply (HTTP 200); body: {"chat_output": "echo: Hi there | history=[]"}'
    )
    target = {"url": chat_io.score_url, "promptflow": {**names, "output": "reply"}, "response": "chat_output"}
    assert replies(converse(HttpTarget.from_config(target), USER_LINES[:1])) == ["echo: Hi there | history=[]"]


def test_the_cli_says_nothing_for_an_app_without_a_swagger(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    with FakePromptflow("qa", swagger=False) as server:
        (tmp_path / "simulations.yml").write_text(
            f"version: 1\ntarget: {{url: '{server.score_url}'}}\n"
            "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi, 'bye ###STOP###']}\n"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "simulator", "run", "simulations.yml", "--out", "out"],
            cwd=tmp_path,
            env={k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_OPENAI_"))},
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr and "swagger" not in proc.stderr, proc.stderr


# --- the manifest's promptflow field ----------------------------------------------------------------

BAD_NAMES = {
    "not a mapping": ("promptflow: chat_input", 4, "target.promptflow: must be a mapping of the flow's names, e.g. "
                      "{input: chat_input, history: chat_history, output: chat_output}"),
    "unknown field": ("promptflow: {input: chat_input, answer: chat_output}", 4,
                      "target.promptflow: unknown field(s) answer; use input, history, output"),
    "empty name": ("promptflow: {output: ''}", 4, "target.promptflow.output: must be the name of the flow output "
                   "that holds the reply (a non-empty string without surrounding spaces), e.g. answer; got ''"),
    "spaces": ("promptflow: {input: ' chat_input'}", 4, "target.promptflow.input: must be the name of the flow "
               "input that takes the user's message (a non-empty string without surrounding spaces), e.g. question; "
               "got ' chat_input'"),
    "a number": ("promptflow: {history: 3}", 4, "target.promptflow.history: must be the name of the flow input that "
                 "takes the earlier turns (a non-empty string without surrounding spaces), e.g. chat_history; got 3"),
    "same input and history": ("promptflow: {input: chat, history: chat}", 4, "target.promptflow.history: must "
                               "differ from target.promptflow.input (both 'chat'): the message and the earlier turns "
                               "are two inputs of the flow"),
    "another format": ("format: openai\npromptflow: {input: chat_input}", 5,
                       "target.promptflow: only applies to format: promptflow (format is openai)"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_NAMES))
def test_bad_names_are_named_by_validate_and_by_run_alike(tmp_path: Path, case: str) -> None:
    lines, line, message = BAD_NAMES[case]
    path = tmp_path / "simulations.yml"
    target_lines = textwrap.indent(f"url: http://app.test/score\n{lines}", "  ")
    path.write_text(
        f"version: 1\ntarget:\n{target_lines}\nsimulations:\n  - {{name: a, persona: jane, task: t, turns: [hi]}}\n"
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(path, environ={})
    located = [re.sub(rf"^{re.escape(str(path))}:", "", p) for p in err.value.problems]
    assert any(p.startswith(f"{line}: ") for p in located), located
    config = yaml.safe_load(path.read_text())["target"]
    with pytest.raises(ConfigError) as built:
        build_target(config, tmp_path)
    assert str(built.value) == message
    assert target_problems(config) == [message]


def test_good_names_validate() -> None:
    names = {"input": "chat_input", "history": "chat_history", "output": "chat_output"}
    assert target_problems({"url": "http://app.test/score", "promptflow": names}) == []
    assert target_problems({"url": "http://app.test/score", "promptflow": {"output": "reply"}}) == []


# --- recorded requests stay exact under the flow's names --------------------------------------------


def test_recorded_requests_refer_to_the_turns_and_expand_to_the_bytes_sent(tmp_path: Path) -> None:
    with FakePromptflow("chat_io") as server:
        server.reply = lambda data: "REPLY " + "blah " * 40 + str(data["chat_input"])
        manifest = {
            "version": 1,
            "target": {"url": server.score_url},
            "simulations": [{"name": "s", "persona": "jane", "task": "t", "turns": USER_LINES}],
        }
        outcome, crash = play(manifest, tmp_path)
        received = [r.raw_body for r in server.scores]
    assert crash is None and outcome is not None
    (result,), _, problems = read_back(tmp_path / "out")
    assert not problems
    app_turns = [t for t in result["conversation"] if t["actor"] == "assistant"]
    assert len(app_turns) == len(received) == 3
    for turn, body in zip(app_turns, received, strict=True):
        assert encode_body(expand_request(result, turn)["body"]) == body
        assert "REPLY" not in json.dumps(turn["request"]), "an earlier reply is repeated in the recorded request"
    assert app_turns[-1]["request"]["body"]["chat_history"] == {
        "$turns": [0, 3],
        "$as": "promptflow",
        "$names": {"input": "chat_input", "output": "chat_output"},
    }
