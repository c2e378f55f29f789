"""What a first-time user sees after the usual mistakes: each message names their own file, field or URL.

The user model is the fake OpenAI server on 127.0.0.1; the app is a callback file in the test's folder.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, EXIT_RUN_ERRORS, main
from tests.servers.openai_server import FakeOpenAIServer, Reply

APP = """\
def respond(question, history, meta):
    return 'You said: ' + question

def broken(question, history, meta):
    raise RuntimeError('database is down')
"""


def project(tmp_path: Path, *, callback: str = "app.py:respond", user: str = "", name: str = "asks") -> Path:
    """A manifest with one LLM-played simulation against a callback file, as a user writes one."""
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\n"
        f"target: {{callback: '{callback}'}}\n" + textwrap.dedent(user) + "simulations:\n"
        f"  - {{name: '{name}', persona: jane, task: ask about order 5, max_turns: 4}}\n"
    )
    return manifest


def user_block(llm: FakeOpenAIServer, model: str = "gpt-4o-mini", extra: str = "") -> str:
    return f"user: {{model: {model}, endpoint: '{llm.openai_base_url}', api_key_env: MY_KEY{extra}}}\n"


def results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]


def test_a_raising_callback_file_is_named_as_the_manifest_names_it(tmp_path: Path, llm: FakeOpenAIServer) -> None:
    """Not as the module the simulator loaded it under (`simulator_callback_8812...:broken`)."""
    manifest = project(tmp_path, callback="app.py:broken", user=user_block(llm))
    llm.default = lambda request: Reply(content="Where is order 5?")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MY_KEY", "k")
        assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_RUN_ERRORS
    [result] = results(tmp_path / "out")
    assert result["meta_data"]["stop_detail"].startswith("callback app.py:broken raised RuntimeError: database is down")
    assert result["meta_data"]["app"]["callback"] == "app.py:broken"
    assert "simulator_callback_" not in json.dumps(result)


@pytest.mark.parametrize(
    ("reply", "model", "extra", "says"),
    [
        (
            Reply.error(401, "Incorrect API key provided", code="invalid_api_key"),
            "gpt-4o-mini",
            "",
            "check the key in MY_KEY (user.api_key_env)",
        ),
        (
            Reply.error(404, "The model `gpt-4o-mni` does not exist", code="model_not_found"),
            "gpt-4o-mni",
            "",
            "check user.endpoint and user.model",
        ),
        (
            Reply.rate_limited(0.01),
            "gpt-4o-mini",
            ", max_retries: 1, rate_limit_wait: 0.2",
            "and user.rate_limit_wait allows 0.2 s; lower --concurrency, raise user.rate_limit_wait",
        ),
    ],
    ids=["401", "404", "429"],
)
def test_a_user_model_failure_names_the_manifest_fields_to_fix_and_shows_on_the_console(
    tmp_path: Path,
    llm: FakeOpenAIServer,
    capsys: pytest.CaptureFixture[str],
    reply: Reply,
    model: str,
    extra: str,
    says: str,
) -> None:
    """A manifest has no `endpoint_url`, `name` or token manager: the hint speaks of its own fields, and
    the progress line says why the conversation ended instead of a bare `llm_error`."""
    manifest = project(tmp_path, user=user_block(llm, model, extra))
    llm.default = lambda request: reply
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MY_KEY", "wrong")
        assert main(["run", str(manifest), "--out", str(tmp_path / "out")]) == EXIT_RUN_ERRORS
    [result] = results(tmp_path / "out")
    assert says in result["meta_data"]["stop_detail"]
    err = capsys.readouterr().err
    assert "asks#1: llm_error after 1 turn in " in err
    assert says in err
    assert "endpoint_url" not in err and "token manager" not in err


def test_a_default_key_variable_is_named_when_the_manifest_names_none(
    tmp_path: Path, llm: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = project(tmp_path, user=f"user: {{model: gpt-4o-mini, endpoint: '{llm.openai_base_url}'}}\n")
    monkeypatch.setenv("OPENAI_API_KEY", "wrong")
    llm.default = lambda request: Reply.error(401, "Incorrect API key provided", code="invalid_api_key")
    assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"]) == EXIT_RUN_ERRORS
    [result] = results(tmp_path / "out")
    assert (
        "check the key in OPENAI_API_KEY (or name another variable in user.api_key_env)"
        in (result["meta_data"]["stop_detail"])
    )


@pytest.mark.parametrize(
    ("field", "manifest_kwargs", "says"),
    [
        ("target.callback", {"callback": "app.py"}, "'app.py' is not module:function or path/to/file.py:function"),
        ("simulations[0].name", {"name": "jane returns"}, "'jane returns' is not a simulation name: letters"),
    ],
    ids=["callback", "name"],
)
def test_a_value_of_the_wrong_form_says_the_form_in_words_not_as_a_regular_expression(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], field: str, manifest_kwargs: dict[str, str], says: str
) -> None:
    manifest = project(tmp_path, **manifest_kwargs)
    assert main(["validate", str(manifest)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert f"{field}: {says}" in err, err
    assert "does not match" not in err and "^[" not in err


def test_every_pattern_in_a_shipped_schema_says_in_words_what_it_wants() -> None:
    """So no later field falls back to printing its regular expression to the user."""
    from importlib import resources

    def patterns(node: object) -> list[dict]:
        if isinstance(node, dict):
            found = [node] if "pattern" in node else []
            return found + [p for value in node.values() for p in patterns(value)]
        if isinstance(node, list):
            return [p for value in node for p in patterns(value)]
        return []

    for schema_file in resources.files("simulator.schemas").iterdir():
        if schema_file.name.endswith(".schema.json"):
            for node in patterns(json.loads(schema_file.read_text())):
                assert node.get("x-expected"), f"{schema_file.name}: pattern {node['pattern']} has no x-expected"


@pytest.mark.parametrize(
    ("callback", "source", "says"),
    [
        ("app.py:respnd", APP, "target.callback: app.py defines no 'respnd' (did you mean 'respond'?)"),
        ("app.py:answer", APP, "target.callback: app.py defines no 'answer' (its functions: broken, respond)"),
        ("app.py:respond", "def respond(q, h, m)\n    return q\n", "target.callback: app.py:1: not valid Python"),
    ],
    ids=["misspelt", "absent", "syntax error"],
)
def test_validate_finds_a_callback_file_without_the_function_before_run_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], callback: str, source: str, says: str
) -> None:
    """`validate` reads the file without running it, so it no longer says "valid" for what `run` refuses."""
    manifest = project(tmp_path, callback=callback)
    (tmp_path / "app.py").write_text(source)
    assert main(["validate", str(manifest)]) == EXIT_CONFIG
    assert says in capsys.readouterr().err


@pytest.mark.parametrize(
    "source",
    [
        "from helpers import *\n",
        "def __getattr__(name):\n    return lambda q, h, m: q\n",
        "globals()['respond'] = lambda q, h, m: q\n",
        "def _install():\n    global respond\n    respond = lambda q, h, m: q\n_install()\n",
        "try:\n    from fast import respond\nexcept ImportError:\n    respond = lambda q, h, m: q\n",
        "if True:\n    class respond:\n        pass\n",
        "def _install():\n    globals()['respond'] = lambda q, h, m: q\n_install()\n",
        "import sys\ndef _install():\n    sys.modules[__name__].respond = lambda q, h, m: q\n_install()\n",
    ],
    ids=[
        "star import",
        "module __getattr__",
        "globals()",
        "global statement",
        "import in try",
        "class in if",
        "globals() in a function",
        "attribute of the module",
    ],
)
def test_a_callback_file_that_may_define_the_function_is_not_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str
) -> None:
    manifest = project(tmp_path)
    (tmp_path / "app.py").write_text(source)
    main(["validate", str(manifest)])
    assert "target.callback" not in capsys.readouterr().err
