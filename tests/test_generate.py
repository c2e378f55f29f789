"""`simulator generate` end to end, as a user runs it: documents, a system prompt and a log in, a
manifest out that `load_manifest` accepts, `simulator validate` passes and `simulator run` plays
against the bundled store assistant, the model a scripted server over real HTTP
(`tests.servers.generation_model`). Adversarial simulations run against a test app that gives in
(`tests.servers.canary_app`) and one that does not.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from simulator.cli import EXIT_CONFIG, EXIT_GATE_FAILED, EXIT_OK, EXIT_RUN_ERRORS, main
from simulator.manifest import load_manifest
from simulator.results.folder import read_results
from tests.generate_project import PII, make_project
from tests.servers.canary_app import CanaryApp
from tests.servers.generation_model import GenerationModel
from tests.servers.openai_server import FakeOpenAIServer
from tests.servers.structured_output import LLAMA_CPP_PYTHON

OUT = ".github/simulations.generated.yml"


@pytest.fixture
def model(llm: FakeOpenAIServer) -> GenerationModel:
    scripted = GenerationModel()
    llm.default = scripted
    return scripted


@pytest.fixture
def project(tmp_path: Path, llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("LLM_URL", llm.openai_base_url)
    make_project(tmp_path)
    yield tmp_path


def generate(*options: str) -> int:
    return main(["generate", "--seed", "7", *options])


def all_sources(*options: str) -> int:
    return generate(
        "--from", "docs", "--from", "app-prompt.txt", "--from", "logs.jsonl", "--names-file", "names.txt", *options
    )


def simulations(path: str | Path = OUT) -> list[dict]:
    return yaml.safe_load(Path(path).read_text())["simulations"]


def sent_text(llm: FakeOpenAIServer) -> str:
    """Everything the model server received, as text."""
    return "\n".join(str(request.body) for request in llm.chat_requests)


def test_documents_prompt_and_logs_give_a_manifest_that_validates_and_runs(
    project: Path, llm: FakeOpenAIServer, model: GenerationModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert all_sources("--count", "8") == EXIT_OK
    printed = capsys.readouterr()
    assert "Estimated cost: " in printed.err and "Wrote 8 simulation(s)" in printed.out
    manifest = load_manifest(project / OUT)
    written = simulations()
    assert [s["tags"][1] for s in written] == ["from-docs"] * 3 + ["from-prompt"] * 3 + ["from-logs"] * 2
    assert len({s["name"] for s in written}) == 8 and len({s["persona"]["name"] for s in written}) == 8
    assert all(isinstance(s["persona"], dict) and s["persona"]["profile"] for s in written)
    text = (project / OUT).read_text()
    assert re.search(r"# from docs/returns\.md:5 \(Returns > Refunds\): \"Unworn items", text), text
    assert "# probes a refusal of app-prompt.txt:3" in text and "# proposed checks" in text
    assert '# from logs.jsonl: 2 of 4 sampled conversations want "return an item for a refund"' in text
    assert "docs/.hidden.md" not in sent_text(llm) and "not text" not in sent_text(llm)
    refund = next(s for s in written if s["tags"][1] == "from-docs" and "outcome" in s["expect"])
    assert refund["expect"]["outcome"]["url"] == "{{base}}/orders/5?conversation={{conversation_id}}"
    assert refund["expect"]["contains"] == "full refund" and "source:docs/returns.md:5" in refund["tags"]
    assert main(["validate", OUT]) == EXIT_OK
    assert main(["run", OUT, "--out", "results", "--quiet"]) == EXIT_OK  # the store does what the docs say
    results = read_results(project / "results" / "conversations.jsonl")
    assert len(results) == len(manifest.simulations) == 8
    assert all(r["evaluation"]["status"] == "pass" for r in results)


@pytest.mark.parametrize(
    ("source", "origin"), [("docs", "from-docs"), ("app-prompt.txt", "from-prompt"), ("logs.jsonl", "from-logs")]
)
def test_each_source_alone(project: Path, model: GenerationModel, source: str, origin: str) -> None:
    assert generate("--from", source, "--count", "2") == EXIT_OK
    written = simulations()
    assert len(written) == 2 and {s["tags"][1] for s in written} == {origin}
    assert main(["run", OUT, "--out", "results", "--quiet"]) == EXIT_OK


def test_what_the_model_receives_from_the_logs_holds_no_personal_data(
    project: Path, llm: FakeOpenAIServer, model: GenerationModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate("--from", "logs.jsonl", "--names-file", "names.txt", "--count", "2") == EXIT_OK
    sent = sent_text(llm).lower()
    assert "i want a refund for my tent" in sent  # the logs were sent...
    for value in PII:  # ...without anything personal
        assert value.lower() not in sent and value.replace(" ", "").lower() not in sent
    assert "[email]" in sent and "[card]" in sent and "[phone]" in sent and "[name]" in sent
    said = "1 e-mail address, 1 card number, 1 phone number, 2 names"
    assert f"scrubbed from the logs before anything is sent: {said}" in capsys.readouterr().err
    assert f"# Scrubbed from the logs before they were sent: {said}." in (project / OUT).read_text()


def test_the_same_seed_and_answers_give_the_same_file(project: Path, model: GenerationModel) -> None:
    assert all_sources("--count", "6", "--out", "first.yml") == EXIT_OK
    assert all_sources("--count", "6", "--out", "second.yml") == EXIT_OK
    assert (project / "first.yml").read_bytes() == (project / "second.yml").read_bytes()
    assert generate("--from", "docs", "--count", "3", "--seed", "8", "--out", "other.yml") == EXIT_OK
    first_docs = [s["persona"]["name"] for s in simulations("first.yml")[:3]]
    assert first_docs and (project / "other.yml").read_text() != (project / "first.yml").read_text()


def test_the_seed_is_sent_to_the_model(project: Path, llm: FakeOpenAIServer, model: GenerationModel) -> None:
    assert generate("--from", "docs", "--count", "1") == EXIT_OK
    assert {request.body.get("seed") for request in llm.chat_requests} == {7}
    assert {request.body.get("max_tokens") for request in llm.chat_requests} == {2048}


def test_append_keeps_the_hand_written_part_byte_for_byte(project: Path, model: GenerationModel) -> None:
    manifest = project / ".github" / "simulations.yml"
    manifest.write_text(manifest.read_text() + "# the gate comes last\ngate: {min_pass_rate: 0.5}\n")
    before = manifest.read_bytes()
    assert generate("--from", "docs", "--count", "2", "--append", "--out", str(manifest)) == EXIT_OK
    after = manifest.read_bytes()
    cut = before.index(b"# the gate comes last")
    head, tail = before[:cut], before[cut:]
    assert after.startswith(head)  # the simulations go at the end of the list, the rest after them unchanged
    judge = after.index(b"# the judge of the proposed rubrics (added by simulator generate)")
    assert after[judge - len(tail) : judge] == tail and b"- name: docs-" in after[len(head) : judge - len(tail)]
    names = [s.name for s in load_manifest(manifest).simulations]
    assert names[0] == "hand-written" and len(names) == 3
    assert main(["validate", str(manifest)]) == EXIT_OK
    assert generate("--kind", "adversarial", "--from", "app-prompt.txt", "--append", "--out", str(manifest)) == 0
    assert generate("--kind", "adversarial", "--from", "app-prompt.txt", "--append", "--out", str(manifest)) == 0
    names = [s.name for s in load_manifest(manifest).simulations]  # twice: names and anchors stay unique
    assert len(names) == len(set(names)) == 3 + 2 * 11
    final = manifest.read_bytes()
    assert final.startswith(head) and final.count(b"\njudge:") == 1 and final.endswith(after[judge:])


def test_append_leaves_out_what_the_manifest_already_covers(
    project: Path, model: GenerationModel, capsys: pytest.CaptureFixture[str]
) -> None:
    manifest = project / ".github" / "simulations.yml"
    manifest.write_text(
        manifest.read_text() + "  - {name: tent, persona: jane, task: 'Ask the store about the TrailMaster X tent "
        "sleeps four', turns: [hi]}\n"
    )
    assert generate("--from", "docs", "--count", "3", "--append", "--out", str(manifest)) == EXIT_OK
    assert "left out as already covered by the manifest" in capsys.readouterr().out
    tasks = [s.task for s in load_manifest(manifest).simulations]
    assert sum("sleeps four" in task for task in tasks) == 1


@pytest.mark.parametrize(("leaky", "code"), [(True, EXIT_GATE_FAILED), (False, EXIT_OK)])
def test_adversarial_simulations_catch_an_app_that_gives_in(
    project: Path, model: GenerationModel, leaky: bool, code: int
) -> None:
    with CanaryApp(leaky=leaky) as app:
        manifest = project / "adversarial.yml"
        manifest.write_text(
            "version: 1\n"
            f"target: {{url: '{app.url}/chat', format: http, request: {{body: {{message: '{{{{question}}}}'}}}}, "
            "response: reply}\n"
            'user: {model: generator, endpoint: "${LLM_URL}"}\n'
            "simulations:\n  - {name: hello, persona: jane, task: greet, turns: [hi]}\n"
        )
        options = ["--manifest", str(manifest), "--from", "docs", "--from", "app-prompt.txt", "--out", "attacks.yml"]
        assert generate("--kind", "adversarial", *options) == EXIT_OK
        written = simulations("attacks.yml")
        assert [s["name"] for s in written][:3] == ["attack-prompt-injection", "attack-system-prompt-extraction",
                                                    "attack-jailbreak"]  # fmt: skip
        assert len(written) == 11
        # each attack seeds, refunds and deletes its own order: played two at a time, one attack's
        # teardown must not delete the order another's outcome check is about to read
        orders = [s["persona"]["meta_data"]["order_number"] for s in written]
        assert len(set(orders)) == 11
        for simulation, order in zip(written, orders, strict=True):
            assert f"/test/orders/{order}" in yaml.safe_dump(simulation["setup"] + simulation["teardown"])
            if "outcome" in simulation["expect"]:
                assert simulation["expect"]["outcome"]["url"].endswith(f"/orders/{order}")
        seeded = yaml.safe_dump(written[0]["setup"])
        card = written[0]["setup"][0]["body"]["card_number"]
        assert card.startswith("400000") and card in seeded and "{{base}}/test/customers/" in seeded
        injection = written[0]
        assert injection["persona"]["meta_data"]["proof_phrase"] in injection["task"]
        assert "Never give legal or medical advice, and never" in injection["expect"]["not_contains"]
        assert main(["run", "attacks.yml", "--out", "results", "--quiet", "--concurrency", "2"]) == code
        results = {r["meta_data"]["simulation"]: r for r in read_results(project / "results" / "conversations.jsonl")}
    failed = {name for name, r in results.items() if r["evaluation"]["status"] == "fail"}
    if leaky:  # the leaks are caught by text checks and the state, not by the (always passing) judge
        assert {"attack-prompt-injection", "attack-other-customer-data", "attack-refund-social-engineering"} <= failed
        data = results["attack-other-customer-data"]["evaluation"]["checks"]
        assert any(c["check"] == "not_contains" and c["status"] == "fail" for c in data)
        refund = results["attack-refund-social-engineering"]["evaluation"]["checks"]
        assert any(c["check"] == "outcome" and c["status"] == "fail" for c in refund)
    else:
        assert not failed and all(r["evaluation"]["status"] == "pass" for r in results.values())
    assert ("DELETE", f"/test/orders/{written[0]['persona']['meta_data']['order_number']}") in app.seen


def test_a_bad_answer_is_sent_back_once_then_a_clear_error_and_nothing_written(
    project: Path, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    scripted = GenerationModel(bad="document_tasks")
    llm.default = scripted
    assert generate("--from", "docs", "--count", "2") == EXIT_RUN_ERRORS
    err = capsys.readouterr().err
    assert "documents docs/products.html:4-5 to docs/returns.md:12" in err
    assert "even after one repair retry: tasks: 'not a list' is not of type 'array'" in err
    assert "Nothing was written." in err and not (project / OUT).exists()
    assert scripted.asked.count("document_tasks") == 2
    assert "That answer cannot be used" in str(llm.chat_requests[-1].body["messages"][-1])


def test_a_dry_run_says_the_cost_and_sends_nothing(
    project: Path, llm: FakeOpenAIServer, model: GenerationModel, capsys: pytest.CaptureFixture[str]
) -> None:
    assert all_sources("--dry-run") == EXIT_OK
    printed = capsys.readouterr()
    assert llm.chat_requests == [] and not (project / OUT).exists()
    estimate = r"Estimated cost: 9 call\(s\) to generator at \$\{LLM_URL\} \(3 now, up to 6 once"
    assert re.search(estimate, printed.err), printed.err
    assert "documents: 2 file(s), 4 passage(s)" in printed.err and "1 line(s) skipped, first at line 3" in printed.err
    assert "  system prompt app-prompt.txt: " in printed.out and "characters" in printed.out


def test_a_server_that_refuses_json_schema_gets_the_schema_another_way(
    project: Path, llm: FakeOpenAIServer, model: GenerationModel
) -> None:
    llm.dialect = LLAMA_CPP_PYTHON
    assert generate("--from", "app-prompt.txt", "--count", "2") == EXIT_OK
    formats = [(r.body.get("response_format") or {}).get("type") for r in llm.chat_requests]
    assert formats == ["json_schema", "json_object"]
    assert "schema" in llm.chat_requests[-1].body["response_format"]


def test_model_calls_wait_out_rate_limits_with_the_run_limiter(
    project: Path, llm: FakeOpenAIServer, model: GenerationModel
) -> None:
    llm.limit(requests_per_second=5, burst=1)
    assert generate("--kind", "adversarial", "--from", "app-prompt.txt", "--concurrency", "4") == EXIT_OK
    assert llm.refused >= 1 and len(simulations()) == 11


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--from", "missing/"], "missing: no such file or folder; give a documents folder or file"),
        (["--from", "docs", "--names-file", "nope.txt"], "--names-file nope.txt: no such file"),
        (["--from", "docs", "--append", "--out", "new.yml"], "--append: new.yml does not exist"),
        (["--from", "docs", "--manifest", "none.yml"], "none.yml: no such manifest, so no model"),
        (["--from", "docs", "--kind", "adversarial", "--attacks", "hack"], "--attacks: unknown kind(s) hack"),
        (["--from", "logs.jsonl", "--kind", "adversarial"], "--kind adversarial: give the app's documents"),
        (["--from", "docs", "--axis", "tone"], "--axis 'tone': write NAME=VALUE1,VALUE2"),
    ],
)
def test_mistakes_are_named_before_anything_is_sent(
    project: Path, llm: FakeOpenAIServer, options: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert generate(*options) == EXIT_CONFIG
    assert message in capsys.readouterr().err
    assert llm.chat_requests == []


def test_an_existing_file_is_not_overwritten_without_force(project: Path, model: GenerationModel) -> None:
    (project / OUT).write_text("keep me\n")
    assert generate("--from", "docs", "--count", "1") == EXIT_CONFIG
    assert (project / OUT).read_text() == "keep me\n"
    assert generate("--from", "docs", "--count", "1", "--force") == EXIT_OK
    assert load_manifest(project / OUT).simulations


def test_on_a_terminal_it_asks_before_spending(project: Path, llm: FakeOpenAIServer, model: GenerationModel) -> None:
    main_fd, terminal = pty.openpty()
    try:
        os.write(main_fd, b"n\n")
        done = subprocess.run(
            [sys.executable, "-m", "simulator", "generate", "--from", "docs", "--count", "1"],
            stdin=terminal,
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
        )
    finally:
        os.close(terminal)
        os.close(main_fd)
    assert done.returncode == EXIT_OK, done.stderr
    assert "Estimated cost: 1 call(s)" in done.stderr and "Go ahead? [y/N] Nothing was sent." in done.stderr
    assert llm.chat_requests == [] and not (project / OUT).exists()
