"""Simulations from a dataset (`simulations_from`): each CSV or JSONL row fills the template simulation.

Rows are checked like written simulations, each problem at the row's line; a run plays them like
any other simulation (filters, tags, shards, resume).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import EXIT_CONFIG, EXIT_OK, main
from simulator.manifest import ManifestError, load_manifest

TEMPLATE = """\
version: 1
target:
  callback: simulator.examples.store_app:respond
simulations_from:
  file: {file}
  simulation:
    name: "order-{{{{order_id}}}}"
    task: "Ask about order {{{{order_id}}}} ({{{{category}}}})"
    tags: ["{{{{category}}}}"]
    turns: ["Hi, about order {{{{order_id}}}}", "Thanks ###STOP###"]
    expect:
      contains: "{{{{expected}}}}"
"""

CSV = """\
order_id,persona,category,expected,max_turns
1001,jane,refunds,refunded,4
1002,marcus,shipping,shipped,
"1003",priya,refunds,"refunded, thanks",3
"""


def write(tmp_path: Path, manifest: str, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    path = tmp_path / "simulations.yml"
    path.write_text(manifest, encoding="utf-8")
    return path


def problems_of(path: Path, **options: object) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, environ={}, **options)  # type: ignore[arg-type]
    return caught.value.problems


def test_each_csv_row_fills_the_template_and_its_columns_set_the_fields_they_name(tmp_path: Path) -> None:
    path = write(tmp_path, TEMPLATE.format(file="tasks.csv"), {"tasks.csv": CSV})
    manifest = load_manifest(path, environ={})
    assert manifest.simulations == [] and manifest.count == 3
    rows = list(manifest.all_simulations())
    assert [s.name for s in rows] == ["order-1001", "order-1002", "order-1003"]
    first, second, third = rows
    assert (first.persona.name, first.task, first.tags, first.max_turns) == (
        "Jane",
        "Ask about order 1001 (refunds)",
        ["refunds"],
        4,
    )
    assert second.max_turns == 6  # an empty cell leaves the default
    assert first.turns == ["Hi, about order 1001", "Thanks ###STOP###"]
    assert [c.name for c in third.checks] == ["contains 'refunded, thanks' in any reply"]
    assert (first.where, third.where) == (f"{tmp_path}/tasks.csv:2", f"{tmp_path}/tasks.csv:4")
    assert list(manifest.all_simulations())[0].name == "order-1001"  # streamed again, the same


def test_jsonl_rows_keep_their_json_types(tmp_path: Path) -> None:
    manifest = """\
version: 1
target: {callback: simulator.examples.store_app:respond}
simulations_from:
  - file: tasks.jsonl
    simulation: {persona: jane, task: "{{task}}", turns: "{{turns}}"}
"""
    rows = [
        {"task": "Return a tent", "turns": ["I want to return a tent", "bye ###STOP###"], "repeat": 2},
        {"task": "Ask for a refund", "turns": ["refund please ###STOP###"], "expect": {"contains": "refund"}},
    ]
    path = write(tmp_path, manifest, {"tasks.jsonl": "\n".join(json.dumps(r) for r in rows) + "\n\n"})
    first, second = load_manifest(path, environ={}).all_simulations()
    assert (first.name, first.turns, first.repeat) == ("tasks-1", rows[0]["turns"], 2)
    assert (second.name, [c.name for c in second.checks]) == ("tasks-2", ["contains 'refund' in any reply"])


def test_every_bad_row_is_named_at_its_line(tmp_path: Path) -> None:
    csv = (
        "order_id,persona,category,expected,max_turns\n"
        "1,jane,refunds,refunded,4\n"
        "2,nobody,refunds,refunded,4\n"  # line 3: no such persona
        "3,jane,refunds,refunded,lots\n"  # line 4: max_turns not a number
        "4,jane,refunds\n"  # line 5: too few fields
        "1,jane,refunds,refunded,4\n"  # line 6: the name of line 2 again
    )
    path = write(tmp_path, TEMPLATE.format(file="tasks.csv"), {"tasks.csv": csv})
    found = problems_of(path)
    where = f"{tmp_path}/tasks.csv"
    assert found[0].startswith(f"{where}:3: persona: 'nobody' is neither a persona file nor a predefined persona")
    assert found[1].startswith(f"{where}:4: max_turns: ")
    assert found[2] == f"{where}:5: 3 fields, but the header has 5 (order_id, persona, category, expected, max_turns)"
    assert found[3] == f"{where}:6: name: duplicate simulation name 'order-1' (first used at {where}:2)"
    assert len(found) == 4


def test_a_jsonl_row_that_is_not_an_object_and_a_placeholder_without_a_value(tmp_path: Path) -> None:
    manifest = """\
version: 1
target: {callback: simulator.examples.store_app:respond}
simulations_from: {file: tasks.jsonl, simulation: {persona: jane, task: "Order {{order}}", turns: [hi]}}
"""
    text = '{"order": 5}\n[1, 2]\n{"order": 6, "order": 7}\n{"ordr": 8}\n'
    path = write(tmp_path, manifest, {"tasks.jsonl": text})
    where = f"{tmp_path}/tasks.jsonl"
    assert problems_of(path) == [
        f"{where}:2: expected a JSON object (one simulation's columns), got list",
        f"{where}:3: not JSON: it repeats the key 'order' (which value is meant cannot be known)",
        f"{where}:4: task: {{{{order}}}} has no value in this row (its columns: ordr)",
    ]


def test_the_problems_of_many_bad_rows_are_listed_for_the_first_and_counted_for_the_rest(tmp_path: Path) -> None:
    csv = "order_id,persona,category,expected,max_turns\n" + "".join(f"{i},nobody,x,y,4\n" for i in range(50))
    path = write(tmp_path, TEMPLATE.format(file="tasks.csv"), {"tasks.csv": csv})
    found = problems_of(path)
    assert len(found) == 21 and found[-1] == f"{tmp_path}/tasks.csv: ... and 30 more rows with problems"


@pytest.mark.parametrize(
    ("file", "expected"),
    [
        ("missing.csv", "dataset file {tmp}/missing.csv not found"),
        ("tasks.txt", "'tasks.txt' is neither .csv nor .jsonl"),
        ("../outside.csv", "'../outside.csv' is outside {tmp}; dataset files must lie inside it"),
    ],
)
def test_a_dataset_file_that_cannot_be_read_is_a_problem_at_its_line(tmp_path: Path, file: str, expected: str) -> None:
    inside = tmp_path / "m"
    inside.mkdir()
    (tmp_path / "outside.csv").write_text(CSV)
    path = write(inside, TEMPLATE.format(file=file), {"tasks.txt": CSV})
    assert problems_of(path, root=inside) == [
        f"{path}:5: simulations_from.file: " + expected.format(tmp=inside.resolve() if "outside" in file else inside)
    ]


def test_an_untrusted_manifest_reads_no_dataset(tmp_path: Path) -> None:
    path = write(tmp_path, TEMPLATE.format(file="tasks.csv"), {"tasks.csv": CSV})
    found = problems_of(path, trusted=False, untrusted_note="not here")
    assert f"{path}:5: simulations_from.file: 'tasks.csv' would read a dataset file; not here" in found


def test_the_gate_can_require_a_row_and_a_row_can_require_itself(tmp_path: Path) -> None:
    csv = "order_id,persona,category,expected,required\n1,jane,a,b,yes\n2,jane,a,b,\n3,jane,a,b,no\n"
    manifest = TEMPLATE.format(file="tasks.csv") + "gate:\n  required: [order-2]\n"
    manifest_path = write(tmp_path, manifest, {"tasks.csv": csv})
    manifest_ = load_manifest(manifest_path, environ={})
    assert manifest_.gate is not None and manifest_.gate["required"] == ["order-2", "order-1"]
    assert [s.required for s in manifest_.all_simulations()] == [True, True, False]

    manifest_path.write_text(TEMPLATE.format(file="tasks.csv") + "gate:\n  required: [order-9]\n")
    assert problems_of(manifest_path)[-1].endswith("gate.required[0]: no simulation is named 'order-9'")


def test_validate_counts_the_rows(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, TEMPLATE.format(file="tasks.csv"), {"tasks.csv": CSV})
    assert main(["validate", str(path)]) == EXIT_OK
    assert "valid; 3 simulation(s), 3 conversation(s) per run, 0 played by an LLM" in capsys.readouterr().out
    (tmp_path / "tasks.csv").write_text(CSV.replace("marcus", "nobody"))
    assert main(["validate", str(path)]) == EXIT_CONFIG
    assert f"{tmp_path}/tasks.csv:3: persona: 'nobody'" in capsys.readouterr().err


def _docs_example(tmp_path: Path) -> Path:
    """The documentation's dataset example (docs/guides/large-suites.md), as written: its manifest
    block and its CSV block."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "guides" / "large-suites.md").read_text()
    section = text[text.index("## Simulations from a dataset") :]
    manifest = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    rows = section.split("```csv\n", 1)[1].split("```", 1)[0]
    return write(tmp_path, manifest, {"orders.csv": rows})


def test_the_docs_example_runs_as_shown(tmp_path: Path) -> None:
    path = _docs_example(tmp_path)
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out)]) == EXIT_OK
    lines = [json.loads(line) for line in (out / "conversations.jsonl").read_text().splitlines()]
    assert sorted(r["meta_data"]["simulation"] for r in lines) == ["order-5", "order-999"]
    assert json.loads((out / "plan.json").read_text())["simulations"] == [["order-5", 1], ["order-999", 1]]


def test_rows_are_selected_sharded_and_resumed_like_written_simulations(tmp_path: Path) -> None:
    csv = "order_id,persona,category,expected\n" + "".join(
        f"{i},jane,{'refunds' if i % 2 else 'shipping'},order\n" for i in range(1, 9)
    )
    path = write(
        tmp_path, TEMPLATE.format(file="tasks.csv") + "  # a written one beside the rows\n", {"tasks.csv": csv}
    )

    def played(*options: str) -> list[str]:
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}"
        main(["run", str(path), "--out", str(out), *options])
        return sorted(json.loads(line)["meta_data"]["simulation"] for line in (out / "conversations.jsonl").open())

    assert played("--tag", "shipping") == ["order-2", "order-4", "order-6", "order-8"]
    assert played("--filter", "order-1") == ["order-1"]
    first, second = played("--shard", "1/2"), played("--shard", "2/2")
    assert sorted(first + second) == sorted(f"order-{i}" for i in range(1, 9)) and len(first) == 4

    out = tmp_path / "resumed"
    main(["run", str(path), "--out", str(out), "--filter", "order-1", "--filter", "order-2"])
    results = out / "conversations.jsonl"
    kept = results.read_text().splitlines()[:1]
    results.write_text(kept[0] + "\n")  # as if the run died after its first conversation
    assert main(["run", str(path), "--out", str(out), "--resume", "--filter", "order-1", "--filter", "order-2"]) in (
        EXIT_OK,
        1,
    )
    assert sorted(json.loads(line)["meta_data"]["simulation"] for line in results.open()) == ["order-1", "order-2"]
