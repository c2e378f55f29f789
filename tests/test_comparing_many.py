"""Comparing two runs of very many simulations in flat memory.

Each simulation's comparison lives in a `RecordStore` and both runs' conversations are gathered by
simulation in `RecordGroups`; past a few thousand, both move to disk. What a compared run writes
(summary.json's `comparison`, report.md, the gate) is the same either way.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest

from simulator.cli import main
from simulator.report.baseline import Divergence
from simulator.results import record_groups, simulation_store
from simulator.results.record_groups import RecordGroups
from simulator.results.simulation_store import RecordStore, is_stored
from tests.test_many_simulations import FullDisk, run_files, write_suite

ODD = {"text": "lone \ud800 surrogate, é, \u2028", "list": [1, None, [2]], "n": 3.5}


def test_groups_read_back_each_group_in_the_order_added_across_the_move_to_disk() -> None:
    groups = RecordGroups(in_memory=3)
    added: dict[str, list[Any]] = {}
    for i, group in enumerate(["a", "b", "a", "c", "a", "b", "a"]):
        record = {**ODD, "i": i}
        groups.add(group, record)
        added.setdefault(group, []).append(record)
        if i == 2:
            assert not groups.on_disk
    assert groups.on_disk and len(groups) == 7
    assert {name: groups.group(name) for name in "abc"} == added
    assert groups.group("never added") == []


def test_groups_keep_in_memory_what_the_temporary_folder_refuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    groups = RecordGroups(in_memory=1)
    for i in range(4):
        groups.add("a" if i % 2 else "b", {"i": i})
    assert not groups.on_disk and groups.group("a") == [{"i": 1}, {"i": 3}]
    assert "keeping them in memory" in caplog.text and "no-such-folder" in caplog.text

    # a folder that takes the first records and then fills up: those stay on disk, the rest in memory
    monkeypatch.setattr(tempfile, "tempdir", None)
    groups = RecordGroups(in_memory=1)
    groups.add("a", {"i": 0})
    groups.add("a", {"i": 1})
    assert groups.on_disk
    groups._file._file = FullDisk(groups._file._file)  # type: ignore[assignment]
    groups.add("a", {"i": 2})
    groups.add("b", {"i": 3})
    assert groups.group("a") == [{"i": 0}, {"i": 1}, {"i": 2}] and groups.group("b") == [{"i": 3}]
    assert "No space left on device" in caplog.text


def test_a_record_put_again_keeps_its_place_and_a_copy_read_back_changes_nothing_until_put() -> None:
    store: RecordStore[dict[str, Any]] = RecordStore(in_memory=2)
    for name in ["x", "y", "z", "w"]:
        store[name] = {"name": name}
    assert store.on_disk and is_stored(store)
    copy = store["y"]
    copy["changed"] = True
    assert store["y"] == {"name": "y"}  # read from disk: a copy
    store["y"] = copy
    assert list(store) == ["x", "y", "z", "w"] and store["y"] == {"name": "y", "changed": True}
    del store["x"]
    assert list(store) == ["y", "z", "w"] and "x" not in store and len(store) == 3
    with pytest.raises(KeyError):
        del store["x"]


def test_a_compared_run_of_many_simulations_writes_from_disk_what_it_writes_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base run expects what the app never says on every fifth row; this run on every seventh:
    simulations regress, improve and stay, all paired (a scripted user sends the same messages)."""
    base = write_suite(tmp_path / "base-suite", rows=70)
    main(["run", str(base), "--out", str(tmp_path / "base"), "--concurrency", "6", "--quiet"])
    head = write_suite(tmp_path / "suite", rows=70)
    csv = head.with_name("tasks.csv")
    rows = csv.read_text(encoding="utf-8").splitlines()
    rows[1:] = [",".join([*row.split(",")[:3], "zebra" if i % 7 == 0 else "order"]) for i, row in enumerate(rows[1:])]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")

    compared = ("--baseline", str(tmp_path / "base"))
    code, in_memory, report = run_files(head, tmp_path / "memory", *compared)
    monkeypatch.setattr(simulation_store, "IN_MEMORY", 5)
    monkeypatch.setattr(record_groups, "IN_MEMORY", 5)
    code_disk, on_disk, report_disk = run_files(head, tmp_path / "disk", *compared)
    assert code_disk == code and report_disk == report
    assert on_disk == in_memory
    comparison = on_disk["comparison"]
    assert list(comparison["simulations"])[:3] == ["order-0", "order-1", "order-2"]
    verdicts = [move["verdict"] for move in comparison["simulations"].values()]
    assert len(verdicts) == 70 and {"unchanged", "within noise"} <= set(verdicts)
    paired = comparison["run"]["paired"]
    assert (paired["down"], paired["up"]) == (2 * 8, 2 * 12)  # rows 7k not 5k fail now; rows 5k not 7k pass
    assert all(move["paired"]["pairs"] == 2 for move in comparison["simulations"].values())
    assert "What changed since base" in report
    page = (tmp_path / "disk/report.html").read_text(encoding="utf-8")
    assert '"baseline":{"order-0":' in page
    json.loads((tmp_path / "disk/summary.json").read_text(encoding="utf-8"))  # one valid document


def test_where_replayed_conversations_diverged_is_kept_in_changes_read_from_disk() -> None:
    changes: RecordStore[dict[str, Any]] = RecordStore(in_memory=1)
    for name in ["a", "b", "c"]:
        changes[name] = {"verdict": "unchanged"}
    assert changes.on_disk

    def replayed(name: str, repeat: int, turn: int | None) -> Any:
        meta = {"simulation": name, "repeat": repeat, "persona": {"name": "jane"}}
        return {"meta_data": {**meta, "replay": {"diverged_at_turn": turn}}, "conversation": []}

    divergence = Divergence()
    seen = [replayed("a", 1, None), replayed("a", 2, 3), replayed("c", 1, 2), replayed("c", 2, 1)]
    assert list(divergence.watch(seen)) == seen  # each passed on as it is seen
    divergence.note(changes)
    assert changes["a"]["replay"] == {"conversations": 2, "diverged": 1, "first_diverged_at_turn": 3}
    assert changes["c"]["replay"] == {"conversations": 2, "diverged": 2, "first_diverged_at_turn": 1}
    assert "replay" not in changes["b"] and list(changes) == ["a", "b", "c"]
