"""Plain YAML read straight from libyaml's events says exactly what the general loader says.

The general loader composes PyYAML's nodes (libyaml's events when PyYAML has them, else the pure
Python parser, which decides whatever libyaml refuses); the plain reader skips the nodes for
documents with no anchor, alias, tag or merge key.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from simulator.errors import ConfigError
from simulator.parsing import yaml_source
from simulator.parsing.yaml_plain import read_plain
from simulator.parsing.yaml_source import MAX_DEPTH, parse_yaml
from tests.test_hostile_input import SETTINGS, structures

plain_values = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)


def general(text: str) -> tuple[Any, dict[tuple, int]]:
    doc = yaml_source._parse_nodes(text, "doc.yml", ConfigError)
    return doc.data, doc.lines


@SETTINGS
@given(document=structures(plain_values, st.text(max_size=10)), flow=st.booleans())
def test_the_plain_reader_matches_the_general_loader(document: Any, flow: bool) -> None:
    text = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=60, default_flow_style=flow)
    try:
        expected = general(text)
    except ConfigError:  # a number that is not finite: the plain reader must not take it either
        assert read_plain(text, MAX_DEPTH) is None
        return
    assert read_plain(text, MAX_DEPTH) == expected
    assert expected[0] == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: &x 1\nb: *x\n",
        "a: {<<: {b: 1}}\n",
        "a: 2024-01-01\n",
        "1: one\n",
        "a: .nan\n",
        "a: .inf\n",
        "a: x\n---\nb: y\n",
        "a: [1, 2\n",
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        "a: !!binary aGk=\n",
        "a: =\n",
    ],
)
def test_the_plain_reader_leaves_everything_else_to_the_general_loader(text: str) -> None:
    assert read_plain(text, MAX_DEPTH) is None


@pytest.mark.parametrize(
    "text",
    [
        "",
        "# only a comment\n",
        "---\n",
        "a: 1\nb: [x, 'y', {c: null, d: ~}]\nc: |\n  block\n  text\nd: >-\n  folded\n",
        "- a\n- - b\n  - c\n- {x: 1.5, y: -3, z: true, w: 0x1f, v: 1_000}\n",
        "'quoted key': \"double\"\n? plain\n: value\n",
        "a: !!str 1\nb: !!int '2'\n",
    ],
)
def test_plain_documents_read_the_same_both_ways(text: str) -> None:
    expected = general(text)
    assert read_plain(text, MAX_DEPTH) == expected
    assert parse_yaml(text, "doc.yml").data == yaml.safe_load(text)


def test_a_key_given_twice_is_refused_both_ways_never_the_last_value() -> None:
    text = "a: 1\na: 2\nb:\n  c: 1\n  c: 2\n"
    assert read_plain(text, MAX_DEPTH) is None  # the general loader decides, and names both
    with pytest.raises(ConfigError) as err:
        parse_yaml(text, "doc.yml")
    assert "doc.yml:2: a: the key is given twice (first at line 1)" in str(err.value)
    assert "doc.yml:5: b.c: the key is given twice (first at line 4)" in str(err.value)


@pytest.mark.parametrize("loader", ["libyaml", "pure Python"])
def test_the_general_loader_reads_the_same_with_or_without_libyaml(
    loader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if loader == "pure Python":
        monkeypatch.setattr(yaml_source, "_LOADER", yaml_source._LineLoader)
    text = "base: &b {x: 1, y: [a, b]}\nmerged: {<<: *b, z: 2024-01-02}\nlist: [*b, *b]\n"
    data, lines = general(text)
    assert data == {
        "base": {"x": 1, "y": ["a", "b"]},
        "merged": {"x": 1, "y": ["a", "b"], "z": "2024-01-02"},
        "list": [{"x": 1, "y": ["a", "b"]}, {"x": 1, "y": ["a", "b"]}],
    }
    assert lines[("merged", "z")] == 2 and lines[("list",)] == 3 and lines[("list", 1)] == 1  # the anchor's line
    with pytest.raises(ConfigError, match=r"doc.yml:2: invalid YAML: an alias refers to a node that contains it"):
        general("a: 1\nb: &x [*x]\n")
