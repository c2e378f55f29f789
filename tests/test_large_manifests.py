"""A manifest of 10,000 plain simulations validates: every persona, check and override resolved.

`bench/bench_validate.py` measures how long that takes; this only says that it works.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.cli import EXIT_OK, main
from simulator.manifest import load_manifest

PERSONAS = ("jane", "marcus", "priya", "walter", "sofia", "alex", "ming", "dana")


def plain_manifest(simulations: int) -> str:
    """Plain simulations (no alias): predefined personas, scripted and LLM-played, overrides, checks."""
    lines = [
        "version: 1",
        "target: {url: '${APP_URL:-http://127.0.0.1:9/chat}', format: promptflow}",
        "user: {model: gpt-4o-mini, endpoint: 'http://127.0.0.1:9/v1'}",
        "defaults: {max_turns: 6, tags: [big], expect: {not_contains: [Traceback]}}",
        "simulations:",
    ]
    for i in range(simulations):
        extra = ", turns: [hi, 'bye ###STOP###']" if i % 2 else ""
        extra += ", expect: {contains: order}" if i % 5 == 0 else ""
        extra += ", target: {timeout: 5}" if i % 7 == 0 else ""
        lines.append(f"  - {{name: s{i}, persona: {PERSONAS[i % len(PERSONAS)]}, task: Order {i}{extra}}}")
    return "\n".join(lines) + "\n"


def block_manifest(simulations: int) -> str:
    """Simulations as people write them, one field per line: 10,000 of them are 1.8 MB of YAML."""
    lines = [
        "version: 1",
        "target:\n  url: ${APP_URL:-http://127.0.0.1:9/chat}\n  format: promptflow",
        "user:\n  model: gpt-4o-mini\n  endpoint: http://127.0.0.1:9/v1",
        "defaults:\n  max_turns: 6\n  expect:\n    not_contains: [Traceback]",
        "simulations:",
    ]
    for i in range(simulations):
        lines += [
            f"  - name: refund-request-{i:05d}",
            f"    persona: {PERSONAS[i % len(PERSONAS)]}",
            f"    task: Ask for a refund of order {i} and confirm the amount",
            "    tags: [refunds, smoke]",
            "    expect:\n      contains: refunded",
        ]
    return "\n".join(lines) + "\n"


def test_a_manifest_past_a_million_characters_validates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "simulations.yml"
    path.write_text(block_manifest(10_000))
    assert path.stat().st_size > 1_700_000
    assert main(["validate", str(path)]) == EXIT_OK
    assert "valid; 10000 simulation(s), 10000 conversation(s) per run" in capsys.readouterr().out


def test_ten_thousand_plain_simulations_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "simulations.yml"
    path.write_text(plain_manifest(10_000))
    assert main(["validate", str(path)]) == EXIT_OK
    assert "valid; 10000 simulation(s), 10000 conversation(s) per run, 5000 played by an LLM" in capsys.readouterr().out

    manifest = load_manifest(path, environ={})
    first, ninth, last = manifest.simulations[0], manifest.simulations[8], manifest.simulations[-1]
    assert (last.name, last.line, last.persona.name, last.task) == ("s9999", 10_005, "Dana", "Order 9999")
    assert first.persona == ninth.persona and first.persona is not ninth.persona  # each its own copy
    assert first.target == {"url": "http://127.0.0.1:9/chat", "format": "promptflow", "timeout": 5}
    assert first.target is not manifest.target and ninth.target == manifest.target
    assert [c.name for c in first.checks] == [
        "not_contains 'Traceback' in every reply",
        "contains 'order' in any reply",
    ]
    assert first.tags == ["big"] and first.max_turns == 6 and first.needs_llm and not manifest.simulations[1].needs_llm
