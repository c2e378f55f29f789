"""The documentation site (docs/, mkdocs.yml) as a reader meets it: built strictly, every page in the
nav, the generated references equal to what they describe, the pictures there, and every code
block working as shown.

- The manifest, command line and action references are generated (`python tools/docs_reference.py`)
  from the manifest's JSON Schema, the `simulator` parser and `action.yml`; a page that differs
  from what it would be now fails here, naming the command to run. The schema's `default`s are the
  code's, and every key has a description.
- Code blocks: YAML blocks parse and manifests load (`tests/test_readme_blocks.py`, which reads
  these pages too), the recipes run against local servers (`tests/test_readme_recipes.py`); here,
  JSON blocks parse, `simulator` commands parse with the command's own parser, Python blocks run
  in a temporary folder unless `<!-- not-runnable: why -->` is on the line before them (then they
  compile), keyless manifests run and pass their gate, and the dataset example runs with its CSV.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import os
import re
import shlex
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from simulator.cli import main
from simulator.cli_parser import build_parser
from simulator.parsing.schema_check import load_schema

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
PAGES = sorted(DOCS.rglob("*.md"))
FENCE = re.compile(r"^(?P<indent> *)```(?P<lang>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```$", re.MULTILINE | re.DOTALL)
NOT_RUNNABLE = re.compile(r"<!-- not-runnable: (?P<why>\S.*?) -->$")
#: the languages a block may have; each is tested below, or in test_readme_blocks (yaml), or is prose (text)
LANGUAGES = {"yaml", "python", "bash", "json", "csv", "text"}
IMAGES = ("pr-comment.png", "report.png")


def _tool(name: str) -> ModuleType:
    """A script of tools/, imported from its file (tools/ is no package)."""
    spec = importlib.util.spec_from_file_location(f"docs_tools_{name}", REPO / "tools" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


reference = _tool("docs_reference")


class Block:
    """A fenced code block of a page: its language, text (dedented), line, and the line before it."""

    def __init__(self, page: Path, text: str, match: re.Match[str]) -> None:
        indent = len(match.group("indent"))
        self.page = page.relative_to(REPO)
        self.lang = match.group("lang").strip()
        self.body = "\n".join(line[indent:] for line in match.group("body").splitlines()) + "\n"
        self.line = text.count("\n", 0, match.start()) + 1
        before = text[: match.start()].rstrip("\n").rsplit("\n", 1)[-1].strip()
        self.not_runnable = NOT_RUNNABLE.match(before)
        self.marked = before.startswith("<!-- not-runnable")

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _blocks() -> list[Block]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        found += [Block(page, text, match) for match in FENCE.finditer(text)]
    return found


BLOCKS = _blocks()


def of(lang: str) -> list[Block]:
    return [block for block in BLOCKS if block.lang == lang]


def params(lang: str) -> Any:
    return pytest.mark.parametrize("block", of(lang), ids=[block.id for block in of(lang)])


# --- the site -------------------------------------------------------------------------------------


def _nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, list):
        return [page for item in nav for page in _nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in _nav_pages(value)]
    return []


def test_every_page_is_in_the_nav_once() -> None:
    config = yaml.safe_load((REPO / "mkdocs.yml").read_text(encoding="utf-8"))
    assert config["docs_dir"] == "docs" and config["strict"] is True and config["theme"]["name"] == "material"
    listed = _nav_pages(config["nav"])
    assert sorted(listed) == sorted(str(page.relative_to(DOCS)) for page in PAGES)


def test_the_site_builds_with_no_warning(tmp_path: Path) -> None:
    """What CI runs (.ci/run): a broken link or anchor, or a page left out of the nav, fails it."""
    pytest.importorskip("mkdocs", reason="mkdocs is in the test extra: pip install '.[test]'")
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    assert (tmp_path / "site" / "reference" / "manifest" / "index.html").is_file()


def test_pages_link_to_each_other_relatively() -> None:
    """Links between pages are relative `.md` paths (mkdocs checks they resolve); none is absolute."""
    for page in PAGES:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text(encoding="utf-8")):
            assert not target.startswith("/"), f"{page}: {target}"
            if not target.startswith(("http://", "https://", "#")):
                path = target.split("#", 1)[0]
                assert (page.parent / path).resolve().is_file(), f"{page}: {target}"


# --- the generated references ---------------------------------------------------------------------


@pytest.mark.parametrize("path", list(reference.PAGES))
def test_the_generated_reference_matches_what_it_describes(path: str) -> None:
    page = reference.PAGES[path]()
    assert page.startswith("<!-- generated from ") and reference.COMMAND in page.splitlines()[0]
    committed = REPO / path
    assert committed.is_file(), f"{path} is missing: run `{reference.COMMAND}`"
    assert committed.read_text(encoding="utf-8") == page, (
        f"{path} no longer matches what it describes: run `{reference.COMMAND}` and commit the result"
    )


def _properties(node: Any, where: str = "#") -> list[tuple[str, dict[str, Any]]]:
    """Every (pointer, schema) of a key, anywhere in a schema."""
    found = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                found += [(f"{where}/properties/{name}", prop) for name, prop in value.items()]
            found += _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _properties(value, f"{where}/{i}")
    return found


def test_every_manifest_key_is_described_and_its_examples_and_default_are_valid() -> None:
    document = load_schema("manifest")
    schema = reference.Schema(document)
    validator = jsonschema.Draft202012Validator(document)
    for pointer, prop in _properties(document):
        assert schema.annotation(prop, "description"), f"{pointer}: add a description to the manifest schema"
        sub = validator.evolve(schema={"$ref": pointer})
        for value in [*prop.get("examples", []), *([prop["default"]] if "default" in prop else [])]:
            errors = [e.message for e in sub.iter_errors(value)]
            assert not errors, f"{pointer}: {value!r}: {errors}"
    for name, definition in document["$defs"].items():
        sub = validator.evolve(schema={"$ref": f"#/$defs/{name}"})
        for value in [*definition.get("examples", []), *([definition["default"]] if "default" in definition else [])]:
            assert not list(sub.iter_errors(value)), f"$defs/{name}: {value!r}"


def test_the_schema_defaults_are_the_ones_the_code_applies() -> None:
    """A default written in the schema (and so in the reference) is the code's own."""
    from simulator.aio.limiter import DEFAULT_RATE_LIMIT_WAIT
    from simulator.checks.gate import DEFAULT_GATE
    from simulator.conversation.loop import DEFAULT_TURN_TIMEOUT
    from simulator.llm.models import OpenAIChatCompletionsModel
    from simulator.manifest.types import DEFAULT_MAX_TURNS, DEFAULT_REPEAT
    from simulator.targets import retry
    from simulator.targets.http.config import DEFAULT_MAX_REPLY_BYTES, DEFAULT_TIMEOUT
    from simulator.targets.http.registry import DEFAULT_FORMAT

    schema = reference.Schema(load_schema("manifest"))

    def default(pointer: str) -> Any:
        return schema.annotation(schema.at(pointer), "default")

    model = inspect.signature(OpenAIChatCompletionsModel).parameters
    url = "/$defs/url_target/properties"
    expected = {
        "/$defs/max_turns": DEFAULT_MAX_TURNS,
        "/$defs/repeat": DEFAULT_REPEAT,
        "/$defs/simulation/properties/turn_timeout": DEFAULT_TURN_TIMEOUT,
        "/properties/defaults/properties/turn_timeout": DEFAULT_TURN_TIMEOUT,
        "/properties/gate/properties/min_pass_rate": DEFAULT_GATE["min_pass_rate"],
        "/properties/gate/properties/max_error_rate": DEFAULT_GATE["max_error_rate"],
        "/properties/gate/properties/required": DEFAULT_GATE["required"],
        f"{url}/format": DEFAULT_FORMAT,
        f"{url}/timeout": DEFAULT_TIMEOUT,
        f"{url}/max_reply_bytes": DEFAULT_MAX_REPLY_BYTES,
        f"{url}/rate_limit_wait": DEFAULT_RATE_LIMIT_WAIT,
        f"{url}/retry/properties/attempts": retry.DEFAULT_ATTEMPTS,
        f"{url}/retry/properties/backoff": retry.DEFAULT_BACKOFF,
        f"{url}/retry/properties/max_backoff": retry.DEFAULT_MAX_BACKOFF,
        "/$defs/user/properties/max_tokens": model["max_tokens"].default,
        "/$defs/user/properties/temperature": model["temperature"].default,
        "/$defs/user/properties/timeout": model["timeout"].default,
        "/$defs/user/properties/max_retries": model["max_retries"].default,
        "/$defs/user/properties/rate_limit_wait": model["rate_limit_wait"].default,
    }
    for pointer, value in expected.items():
        assert default(pointer) == value, f"{pointer}: the schema says {default(pointer)!r}, the code {value!r}"
    assert "default: 6" not in reference.manifest_reference()  # shown as a table cell, not prose
    assert "| `simulations[].max_turns` | integer, 1 to 200 | `6` | " in reference.manifest_reference()


def test_the_cli_reference_names_every_command_option_and_choice() -> None:
    page = reference.cli_reference()
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in commands.choices.items():
        assert f"## simulator {name} {{#simulator-{name}}}" in page
        for action in sub._actions:
            for option in action.option_strings:
                assert option == "-h" or option == "--help" or f"`{option}" in page, option
            for choice in action.choices or ():
                assert f"`{choice}`" in page, (name, choice)


def test_the_action_reference_lists_every_input_and_output() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text(encoding="utf-8"))
    page = reference.action_reference()
    for name, spec in action["inputs"].items():
        default = str(spec.get("default", ""))
        assert f"| `{name}` | {'yes' if spec.get('required') else 'no'} | " in page
        assert not default or f"`{default}`" in page
    for name in action["outputs"]:
        assert f"| `{name}` |" in page


# --- the pictures ---------------------------------------------------------------------------------


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.parametrize("name", IMAGES)
def test_the_pictures_are_committed_small_and_shown(name: str) -> None:
    path = DOCS / "images" / name
    assert path.is_file(), f"docs/images/{name} is missing: run `python tools/docs_images.py`"
    width, height = _png_size(path)
    assert width <= 1000 and height <= 2000 and path.stat().st_size < 400_000, (width, height)
    assert any(f"images/{name}" in page.read_text(encoding="utf-8") for page in PAGES)


def test_the_pictures_are_made_by_the_suites_chromium(browser, tmp_path: Path) -> None:
    images = _tool("docs_images")
    made = images.render(browser, tmp_path / "images", tmp_path / "work")
    assert [path.name for path in made] == list(IMAGES)
    for path in made:
        width, height = _png_size(path)
        assert 600 <= width <= 1000 and height >= 300
    comment = (tmp_path / "work" / "comment.html").read_text(encoding="utf-8")
    assert "Regressed" in comment and "caused by the app" in comment and "jane-returns-tent" in comment


# --- the code blocks ------------------------------------------------------------------------------


def test_every_block_has_a_language_that_is_tested() -> None:
    unknown = [(block.id, block.lang) for block in BLOCKS if block.lang not in LANGUAGES]
    assert not unknown, f"blocks without a known language (one of {sorted(LANGUAGES)}): {unknown}"
    assert of("python") and of("bash") and of("json") and of("yaml")


def test_a_not_runnable_marker_says_why_and_precedes_a_python_block() -> None:
    for block in BLOCKS:
        if block.marked:
            assert block.not_runnable, f"{block.id}: write <!-- not-runnable: why --> on the line before"
            assert block.lang == "python", f"{block.id}: only Python blocks are run"


@params("json")
def test_every_json_block_parses(block: Block) -> None:
    json.loads(block.body)


@params("python")
def test_every_python_block_runs(block: Block, tmp_path: Path) -> None:
    """In a fresh interpreter and a temporary folder, as a reader would paste it, with this checkout's
    package; a not-runnable block must still compile."""
    compile(block.body, str(block.id), "exec")
    if block.not_runnable:
        return
    done = subprocess.run(
        [sys.executable, "-c", block.body],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert done.returncode == 0, f"{block.id} failed:\n{done.stdout}\n{done.stderr}"


def _commands(body: str) -> list[str]:
    """The commands of a shell block: its lines, split at `&&`."""
    return [part.strip() for line in body.splitlines() for part in line.split("&&") if part.strip()]


@params("bash")
def test_every_command_of_a_shell_block_exists(block: Block) -> None:
    """`simulator ...` parses with the command's own parser; `python tools/x.py` and `bench/x.py` exist."""
    parser = build_parser()
    for command in _commands(block.body):
        words = shlex.split(command)
        if words[0] == "simulator":
            try:
                parser.parse_args(words[1:])
            except SystemExit as exc:
                pytest.fail(f"{block.id}: `{command}` does not parse (exit {exc.code})")
        elif words[0] == "python" and words[1].endswith(".py"):
            assert (REPO / words[1]).is_file(), f"{block.id}: {words[1]} does not exist"


def _keyless(data: Any) -> bool:
    """A whole manifest that plays scripted users against the bundled app: it runs anywhere."""
    if not isinstance(data, dict):
        return False
    target = data.get("target") or {}
    sims = data.get("simulations")
    return (
        data.get("version") == 1
        and str(target.get("callback", "")).startswith("simulator.examples.")
        and bool(sims)
        and all("turns" in sim for sim in sims)
        and "simulations_from" not in data
    )


KEYLESS = [block for block in of("yaml") if "${" not in block.body and _keyless(yaml.safe_load(block.body) or {})]


def test_there_are_keyless_manifests_to_run() -> None:
    assert KEYLESS


@pytest.mark.parametrize("block", KEYLESS, ids=[block.id for block in KEYLESS])
def test_every_keyless_manifest_runs_and_passes(block: Block, tmp_path: Path) -> None:
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(block.body, encoding="utf-8")
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--quiet"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert code == 0, summary["gate"]


def test_the_dataset_example_runs_as_shown(tmp_path: Path) -> None:
    page = DOCS / "guides" / "large-suites.md"
    blocks = [block for block in BLOCKS if block.page == page.relative_to(REPO)]
    manifest = next(b for b in blocks if b.lang == "yaml" and "simulations_from" in b.body)
    rows = next(b for b in blocks if b.lang == "csv")
    data = yaml.safe_load(manifest.body)
    (tmp_path / data["simulations_from"]["file"]).write_text(rows.body, encoding="utf-8")
    (tmp_path / "simulations.yml").write_text(manifest.body, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "simulations.yml"), "--out", str(out), "--quiet"]) == 0
    played = sorted(json.loads(line)["meta_data"]["simulation"] for line in (out / "conversations.jsonl").open())
    assert played == ["order-5", "order-999"]
