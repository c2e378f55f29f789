"""A run of very many distinct simulations in flat memory.

The summary keeps only the simulations still in play: a simulation the run is done with becomes
its summary entry, kept on disk once there are many (`SimulationStore`), and summary.json, the
gate and the reports read it from there; they say exactly what they would say from memory.
"""

from __future__ import annotations

import errno
import json
import math
import random
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from simulator.cli import EXIT_GATE_FAILED, main
from simulator.manifest import load_manifest
from simulator.results import simulation_store
from simulator.results.folder import summarize_folder
from simulator.results.simulation_store import SimulationStore, is_stored
from simulator.results.summary import SummaryBuilder, summarize
from simulator.run.completion import Completion
from simulator.run.connections import Connections
from simulator.run.plan import Plan, distinct_simulations, plan_jobs

STATUSES = ("pass", "pass", "pass", "fail", "error")


def result(name: str, repeat: int, rng: random.Random, **meta: Any) -> dict[str, Any]:
    """A conversation result as the runner writes one (only what the summary reads)."""
    status = rng.choice(STATUSES)
    return {
        "conversation": [
            {"actor": "user", "turn_number": 1},
            {"actor": "assistant", "turn_number": 1, "latency_ms": round(rng.uniform(1, 900), 3)},
        ],
        "meta_data": {
            "simulation": name,
            "repeat": repeat,
            "persona": {"name": f"persona of {name}"},
            "task": f"task of {name}",
            "tags": [name[:3]],
            "stop_reason": "error" if status == "error" else "user_done",
            "duration_ms": rng.uniform(5, 50),
            "usage": {"total": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}},
            **meta,
        },
        "evaluation": {"status": status, "failed": ["says sorry"] if status == "fail" else []},
    }


def test_the_store_reads_back_in_plan_order_exactly_what_was_put() -> None:
    store = SimulationStore(["b", "a", "c"], in_memory=2)
    odd: Any = {"task": "lone \ud800 surrogate, é, \u2028", "value": math.inf, "nested": {"k": [1, None]}}
    store.put("zz-unplanned", {"n": 1})  # type: ignore[typeddict-item]
    store.put("a", odd)
    assert not store.on_disk and isinstance(store.as_summary_value(), dict)
    store.put("c", {"n": 3})  # type: ignore[typeddict-item]
    assert store.on_disk and is_stored(store) and store.as_summary_value() is store
    store.put("yy-unplanned", {"n": 4})  # type: ignore[typeddict-item]
    store.put("c", {"n": 33})  # type: ignore[typeddict-item]
    assert list(store) == ["a", "c", "zz-unplanned", "yy-unplanned"] and len(store) == 4
    assert "b" not in store and "a" in store
    assert store["a"] == odd and store["c"] == {"n": 33}
    with pytest.raises(KeyError):
        store["b"]
    assert dict(store.items()) == {"a": odd, "c": {"n": 33}, "zz-unplanned": {"n": 1}, "yy-unplanned": {"n": 4}}


class FullDisk:
    """A file whose writes fail as they do when the disk is full; reads go to the real file."""

    def __init__(self, file: Any) -> None:
        self.file = file

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.file, name)


def test_a_temporary_folder_that_refuses_the_file_costs_memory_not_a_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))
    store = SimulationStore(["a", "b", "c"], in_memory=1)
    for name in "abc":
        store.put(name, {"n": name})  # type: ignore[typeddict-item]
    assert not store.on_disk and list(store) == ["a", "b", "c"] and store["b"] == {"n": "b"}
    assert isinstance(store.as_summary_value(), dict)
    assert "keeping them in memory" in caplog.text and "no-such-folder" in caplog.text

    # a folder that takes the first entries and then refuses: those stay on disk, the rest in memory
    monkeypatch.setattr(tempfile, "tempdir", None)
    store = SimulationStore(["a", "b", "c", "d"], in_memory=1)
    store.put("a", {"n": "a"})  # type: ignore[typeddict-item]
    store.put("b", {"n": "b"})  # type: ignore[typeddict-item]
    assert store.on_disk
    store._file._file = FullDisk(store._file._file)  # type: ignore[assignment]  # the next writes fail as on a full disk
    store.put("c", {"n": "c"})  # type: ignore[typeddict-item]
    store.put("d", {"n": "d"})  # type: ignore[typeddict-item]
    assert len(store) == 4 and [store[n]["n"] for n in "abcd"] == list("abcd")  # type: ignore[typeddict-item]
    assert list(store) == list("abcd") and "No space left on device" in caplog.text


def play(order: list[str], repeats: int, concurrency: int, builder: SummaryBuilder, seed: int) -> list[dict]:
    """The runner's pattern: jobs drawn in plan order, ended in any order, at most `concurrency` in flight."""
    rng = random.Random(seed)
    completion = Completion(order, builder.close)
    jobs = iter([(name, r) for name in order for r in range(1, repeats + 1)])
    in_flight: list[tuple[str, int]] = []
    played: list[dict] = []
    most_open = 0
    while True:
        while len(in_flight) < concurrency and (job := next(jobs, None)) is not None:
            completion.drawn(job[0])
            in_flight.append(job)
        if not in_flight:
            break
        name, repeat = in_flight.pop(rng.randrange(len(in_flight)))
        played.append(result(name, repeat, rng))
        builder.add(played[-1])
        completion.ended(name)
        most_open = max(most_open, builder.open_simulations)
    assert most_open <= concurrency + 1  # the ones in flight, and the one being drawn
    return played


@pytest.mark.parametrize("in_memory", [0, 7, 10_000])
def test_a_summary_of_simulations_closed_as_the_run_passes_them_is_the_summary_of_all_its_results(
    in_memory: int, tmp_path: Path
) -> None:
    order = [f"sim-{i:04d}" for i in range(300)]
    builder = SummaryBuilder(order, in_memory=in_memory)
    played = play(order, repeats=3, concurrency=8, builder=builder, seed=in_memory)
    gate = {"min_pass_rate": 0.5, "required": ["sim-0007", "sim-9999"]}
    streamed, reference = builder.build({}, gate), summarize(played, {}, order, gate)  # type: ignore[arg-type]
    assert is_stored(streamed["simulations"]) == (in_memory < 300)
    assert list(streamed["simulations"]) == order == list(reference["simulations"])
    assert streamed == reference
    assert "required simulation sim-9999 did not run" in streamed["gate"]["reasons"]

    from simulator.results.folder import write_summary

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    write_summary(tmp_path / "a", streamed)
    write_summary(tmp_path / "b", reference)
    assert (tmp_path / "a/summary.json").read_bytes() == (tmp_path / "b/summary.json").read_bytes()


def test_a_simulation_the_run_never_draws_again_is_closed_when_a_later_one_is_drawn() -> None:
    closed: list[str] = []
    completion = Completion(["a", "b", "c", "d"], closed.append)
    completion.drawn("c")  # a resumed run: a and b were played before, all kept
    assert closed == ["a", "b"]
    completion.drawn("c")
    completion.ended("c")
    completion.drawn("d")  # c still has one conversation in flight
    assert closed == ["a", "b"]
    completion.ended("c")
    assert closed == ["a", "b", "c"]
    completion.drawn("zz")  # a name the order does not know is never closed early
    completion.ended("zz")
    completion.ended("d")
    assert closed == ["a", "b", "c"]


def test_a_result_of_a_simulation_after_it_was_closed_is_refused_not_lost() -> None:
    builder = SummaryBuilder(["a"])
    builder.add(result("a", 1, random.Random(1)))
    builder.close("a")
    with pytest.raises(RuntimeError, match="simulation a came after the run was done with it"):
        builder.add(result("a", 2, random.Random(2)))


MANIFEST = """\
version: 1
target: {callback: simulator.examples.store_app:respond}
gate: {min_pass_rate: 0.9}
simulations_from:
  file: tasks.csv
  simulation:
    name: "order-{{order_id}}"
    task: "Return order {{order_id}}"
    repeat: 2
    tags: ["{{category}}"]
    turns: ["I'd like to return order {{order_id}}", "Thanks! ###STOP###"]
    expect: {contains: "{{expected}}"}
"""


def write_suite(folder: Path, rows: int) -> Path:
    folder.mkdir()
    lines = ["order_id,persona,category,expected"]
    lines += [
        f"{i},{('jane', 'marcus')[i % 2]},{'vip' if i % 3 else 'returns'},{'zebra' if i % 5 == 0 else 'order'}"
        for i in range(rows)
    ]
    (folder / "tasks.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "simulations.yml").write_text(MANIFEST, encoding="utf-8")
    return folder / "simulations.yml"


def run_files(manifest: Path, out: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    """The exit code, summary.json and report.md of a run, without what timing changes from run to run."""
    code = main(["run", str(manifest), "--out", str(out), "--concurrency", "6", "--quiet", *extra])
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    for key in ("started_at", "finished_at", "wall_time_ms"):
        summary["run"].pop(key)
    for figures in [summary["totals"], *summary["simulations"].values()]:
        figures.pop("latency_ms"), figures.pop("duration_ms")
    report = (out / "report.md").read_text(encoding="utf-8")
    return code, summary, re.sub(r"[\d.,]+ (ms|s)\b", "T", report)


def test_a_run_of_many_simulations_writes_from_disk_what_it_writes_from_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    manifest = write_suite(tmp_path / "suite", rows=120)
    code, in_memory, report = run_files(manifest, tmp_path / "memory")
    monkeypatch.setattr(simulation_store, "IN_MEMORY", 10)
    code_disk, on_disk, report_disk = run_files(manifest, tmp_path / "disk")
    assert code == code_disk == EXIT_GATE_FAILED  # every fifth row expects what the app never says: 80% pass
    assert on_disk == in_memory
    assert list(on_disk["simulations"])[:3] == ["order-0", "order-1", "order-2"] and len(on_disk["simulations"]) == 120
    assert on_disk["gate"]["simulations_failed"] == 24 and on_disk["totals"]["conversations"] == 240
    assert report_disk == report

    # the folder read again (`simulator report`, `check`, `merge`): each simulation closed once all its
    # planned conversations are read, the same summary
    rebuilt = summarize_folder(tmp_path / "disk").summary
    assert is_stored(rebuilt["simulations"]) and len(rebuilt["simulations"]) == 120
    written = json.loads((tmp_path / "disk/summary.json").read_text(encoding="utf-8"))
    assert {name: dict(sim) for name, sim in rebuilt["simulations"].items()} == written["simulations"]
    assert rebuilt["gate"] == written["gate"] and rebuilt["totals"] == written["totals"]

    # an interrupted run resumed: the kept simulations are closed as the run passes them
    results = tmp_path / "disk/conversations.jsonl"
    lines = results.read_text(encoding="utf-8").splitlines()
    results.write_text("\n".join(lines[:100]) + "\n", encoding="utf-8")
    code_resumed, resumed, _ = run_files(manifest, tmp_path / "disk", "--resume")
    assert code_resumed == EXIT_GATE_FAILED
    assert resumed["simulations"] == in_memory["simulations"] and resumed["gate"] == in_memory["gate"]


def test_setting_up_a_run_reads_the_simulations_once_so_they_can_stream(tmp_path: Path) -> None:
    manifest = load_manifest(write_suite(tmp_path / "suite", rows=30), environ={})
    plan = plan_jobs(manifest)
    assert isinstance(plan, Plan)
    counts = manifest.rows.counts  # type: ignore[union-attr]
    # what a plan of many rows keeps is the rows' own (name, repeats) pairs and one tuple per set of tags
    assert all(mine is theirs for mine, theirs in zip(plan.entries, counts.entries, strict=True))
    assert plan.record()["simulations"][5] is counts.entries[5]
    assert counts.tags[0] is counts.tags[3] and len({id(tags) for tags in counts.tags}) == 2
    assert [n for n, _ in plan_jobs(manifest, tags=["returns"]).entries] == [f"order-{i}" for i in range(0, 30, 3)]
    assert {r for _, r in plan_jobs(manifest, repeat=3).entries} == {3}
    stream = distinct_simulations(plan)
    assert iter(stream) is stream  # a stream, not a list of every simulation
    connections = Connections(manifest)
    connections.prepare(stream)
    assert next(stream, None) is None
    first = next(distinct_simulations(plan))
    assert connections.sides(first)[0] is connections.sides(next(iter(plan)).simulation)[0]  # one target, shared


def test_a_failure_while_closing_a_simulation_is_an_internal_error_and_no_worker_is_lost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from simulator.results import summary as summary_module

    original, failed = summary_module.SummaryBuilder.close, []

    def close_failing_once(self: SummaryBuilder, name: str) -> None:
        if not failed:
            failed.append(name)
            raise RuntimeError("the summary could not be kept")
        original(self, name)

    monkeypatch.setattr(summary_module.SummaryBuilder, "close", close_failing_once)
    manifest = write_suite(tmp_path / "suite", rows=12)
    code = main(["run", str(manifest), "--out", str(tmp_path / "out"), "--concurrency", "1", "--quiet"])
    summary = json.loads((tmp_path / "out/summary.json").read_text(encoding="utf-8"))
    assert code == 3 and summary["gate"]["status"] == "error"  # the runner failed: never a pass
    assert summary["run"]["finished"] == 24 and summary["run"]["missing_count"] == 0  # the one worker went on
    [problem] = summary["run"]["internal_errors"]
    assert problem == f"{failed[0]}: summarising the simulation failed: RuntimeError: the summary could not be kept"
