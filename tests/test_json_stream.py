"""A large JSON object read member by member (`parsing.json_stream`), and the base run's summary
read with it: the same values and the same refusals as `strict_json.loads`, whatever the chunks,
and a base run past a thousand simulations compared from disk exactly as from memory."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import UnreadableRecord
from simulator.parsing import json_stream, strict_json
from simulator.parsing.json_stream import stream_members, stream_object
from simulator.report.baseline import compare, load_baseline
from simulator.results.json_writing import write_json
from simulator.results.simulation_store import IN_MEMORY, is_stored
from simulator.results.summary_reading import read_summary_file

VALID = [
    "{}",
    '{"simulations": {}}',
    '{"simulations": 5, "run": {"a": [1, 2.5, null, true]}}',
    '\ufeff {"run": {"x": "é€😀\\u00e9\\ud83d\\ude00"}, "simulations": {"a": {"n": 123456789012}, "b": []}}\n',
    '{"a": 1, "simulations": {"x": {"v": -0.0}, "y": "z"}, "z": {"simulations": {"q": 1}}}',
    '{"simulations":{"k":1},"after":[' + ",".join(str(i) for i in range(500)) + "]}",
]
#: (text, what the refusal says): the same class as `strict_json.loads` raises, saying the same
INVALID = [
    ('{"a": 1, "a": 2}', "repeats the key 'a'"),
    ('{"simulations": {"x": 1, "x": 2}}', "repeats the key 'x'"),
    ('{"simulations": {"x": {"y": 1, "y": 2}}}', "repeats the key 'y'"),
    ('{"simulations": {"x": NaN}}', "NaN is not a JSON number"),
    ('{"simulations": {"x": 1e400}}', "out of range"),
    ('{"simulations": {"x": ' + "1" + "0" * 400 + "}}", "out of range"),
    ('{"simulations": {"x": ' + "[" * 120 + "]" * 120 + "}}", "nested more than 96 deep"),
    ('{"run": ' + "[" * 120 + "]" * 120 + "}", "nested more than 96 deep"),
    ('\n\n  {"simulations": {"x": tru}}', "Expecting value at line 3 column 25"),
    ('{"simulations": {"x": 1}', "line 1 column 25"),
    ('{"simulations": {"x": 1}} trailing', "Extra data at line 1 column 27"),
    ("", "not JSON"),
    ('{"simulations": {"x": "\xff"}}', ""),  # not UTF-8 once encoded below as latin-1
]


def streamed(text: str | bytes, chunk: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The document as the stream gives it, put back together."""
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    data = text.encode("latin-1") if isinstance(text, str) and "\xff" in text else text
    data = data.encode() if isinstance(data, str) else data
    document: dict[str, Any] = {}
    for key, name, value in stream_object(io.BytesIO(data), "simulations"):
        if name is None:
            assert key not in document
            document[key] = value
        else:
            document.setdefault(key, {})[name] = value
    return document


@pytest.mark.parametrize("chunk", [1, 3, 7, 64, 1 << 20])
@pytest.mark.parametrize("text", VALID)
def test_the_stream_reads_what_loads_reads_whatever_the_chunks(
    text: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert streamed(text, chunk, monkeypatch) == strict_json.loads(text.encode())


@pytest.mark.parametrize("chunk", [1, 5, 1 << 20])
@pytest.mark.parametrize(("text", "said"), INVALID)
def test_the_stream_refuses_what_loads_refuses_and_says_where(
    text: str, said: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = text.encode("latin-1") if "\xff" in text else text.encode()
    with pytest.raises(strict_json.JSONError) as loads_refusal:
        strict_json.loads(data)
    with pytest.raises(strict_json.JSONError) as refusal:
        streamed(text, chunk, monkeypatch)
    assert type(refusal.value) is type(loads_refusal.value)
    assert said in str(refusal.value)
    if said.startswith("Expecting value"):  # inside an entry: word for word what loads says
        assert str(refusal.value) == str(loads_refusal.value)


@pytest.mark.parametrize("text", ["[1, 2]", '"simulations"', "null"])
def test_anything_but_an_object_is_not_what_the_stream_reads(text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(strict_json.NotJSON, match=r"Expecting '\{' at line 1 column 1"):
        streamed(text, 2, monkeypatch)


def summary_of(names: list[str], failing: set[str]) -> dict[str, Any]:
    def entry(name: str) -> dict[str, Any]:
        passes, failures = (0, 2) if name in failing else (2, 0)
        return {
            "persona": "jane",
            "task": name,
            "conversations": 2,
            "turns": 6,
            "latency_ms": {"app_p50": 100.0 + len(name), "app_p95": 180.0},
            "verdict": {
                "status": "fail" if failures else "pass",
                "runs": 2,
                "passes": passes,
                "failures": failures,
                "errors": 0,
                "pass_rate": passes / 2,
                "failed_checks": {"contains": failures} if failures else {},
            },
        }

    return {
        "run": {"planned": 2 * len(names)},
        "totals": {"conversations": 2 * len(names)},
        "simulations": {name: entry(name) for name in names},
    }


def test_a_base_run_past_a_thousand_simulations_is_compared_from_disk_as_from_memory(tmp_path: Path) -> None:
    names = [f"sim-{i:05d}" for i in range(IN_MEMORY + 500)]
    base = summary_of(names, failing=set())
    (tmp_path / "summary.json").write_text(json.dumps(base), encoding="utf-8")
    head = summary_of(names[5:] + ["new-one"], failing={names[7], names[1200]})
    loaded = load_baseline(tmp_path)
    assert loaded["simulations"].on_disk and loaded["run"] == base["run"]
    assert list(loaded["simulations"]) == names
    assert compare(head, loaded) == compare(head, base)  # type: ignore[arg-type]
    changes = compare(head, loaded)  # type: ignore[arg-type]
    assert changes[names[1200]]["change"] == "new failure" and changes[names[0]]["verdict"] == "removed"


@pytest.mark.parametrize(
    ("damage", "said"),
    [
        (lambda s: s["simulations"]["sim-01200"]["verdict"].update(passes=-3), "simulations.sim-01200"),
        (lambda s: s["run"].update(planned="many"), "run.planned"),
        (lambda s: s.pop("simulations"), "no 'simulations'"),
        (lambda s: s.update(simulations=[1, 2]), "no 'simulations'"),
    ],
)
def test_a_damaged_entry_anywhere_in_a_large_base_summary_is_refused_by_name(
    tmp_path: Path, damage: Any, said: str
) -> None:
    base = summary_of([f"sim-{i:05d}" for i in range(IN_MEMORY + 500)], failing=set())
    damage(base)
    (tmp_path / "summary.json").write_text(json.dumps(base), encoding="utf-8")
    with pytest.raises(UnreadableRecord) as refusal:
        load_baseline(tmp_path)
    assert said in str(refusal.value)


NESTED = [
    '{"comparison": {}}',
    '{"comparison": null, "simulations": {}}',
    '{"comparison": {"run": {"v": 1}, "simulations": {}, "base_problem": "x"}}',
    '{"simulations": {"a": 1}, "comparison": {"run": [1], "simulations": {"a": {"q": 0.5}, "b": {}}, "z": 2}}',
    '{"comparison": {"simulations": 3}, "z": {"comparison": {"simulations": {"k": 1}}}}',
]
EXPANDED = {("simulations",), ("comparison",), ("comparison", "simulations")}


def members(text: str, chunk: int, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The document as `stream_members` gives it, each member put back at its path."""
    monkeypatch.setattr(json_stream, "CHUNK", chunk)
    document: dict[str, Any] = {}
    for path, key, value in stream_members(io.BytesIO(text.encode()), EXPANDED):
        place = document
        for step in path:
            place = place.setdefault(step, {})
        assert key not in place
        place[key] = value
    return document


@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
@pytest.mark.parametrize("text", [*NESTED, *VALID])
def test_objects_inside_objects_come_member_by_member_and_read_as_loads_reads_them(
    text: str, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert members(text, chunk, monkeypatch) == strict_json.loads(text.encode())


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ('{"comparison": {"simulations": {"a": 1, "a": 2}}}', "repeats the key 'a'"),
        ('{"comparison": {"run": 1, "run": 2}}', "repeats the key 'run'"),
        ('{"comparison": {"simulations": {"a": ' + "[" * 95 + "]" * 95 + "}}}", "nested more than 96 deep"),
        ('{"comparison": {"simulations": {"a": 1}', "line 1 column 40"),
    ],
)
def test_objects_inside_objects_are_refused_as_loads_refuses_them(
    text: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(strict_json.JSONError) as loads_refusal:
        strict_json.loads(text.encode())
    with pytest.raises(strict_json.JSONError) as refusal:
        members(text, 3, monkeypatch)
    assert type(refusal.value) is type(loads_refusal.value) and said in str(refusal.value)


def test_a_compared_summary_read_back_keeps_each_simulations_comparison_on_disk_in_its_order(tmp_path: Path) -> None:
    names = [f"sim-{i:05d}" for i in range(IN_MEMORY + 500)]
    summary = summary_of(names, failing=set())
    moves = {name: {"verdict": "unchanged", "p_value": None, "evidence": "counts"} for name in reversed(names)}
    summary["comparison"] = {"run": {"verdict": "unchanged"}, "simulations": moves, "base_problem": "cut"}
    (tmp_path / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    read = read_summary_file(tmp_path / "summary.json")
    kept = read["comparison"]["simulations"]
    assert is_stored(kept) and list(kept) == list(reversed(names)) and kept[names[3]] == moves[names[3]]
    assert list(read["comparison"]) == ["run", "simulations", "base_problem"]
    assert read["comparison"]["run"] == {"verdict": "unchanged"} and read["comparison"]["base_problem"] == "cut"
    written = tmp_path / "again.json"
    write_json(written, read)  # a folder's summary written back: entry by entry, the same document
    assert json.loads(written.read_text(encoding="utf-8"))["comparison"] == summary["comparison"]
