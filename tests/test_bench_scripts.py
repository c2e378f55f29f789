"""The bench scripts still run and report every figure the documentation quotes (docs/guides/performance.md,
docs/guides/large-suites.md, docs/guides/reliability.md), at sizes too small to time.

Figures come from the benches, not from tests: these only keep the benches from breaking unseen.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def bench(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / script), *args], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_runner_bench_reports_whole_process_in_process_and_zero_latency_figures() -> None:
    shape = ("--conversations", "3", "--turns", "2", "--concurrency", "2", "--latency", "0", "--repeats", "1")
    report = json.loads(bench("bench_runner.py", *shape))
    for kind in ("whole_process_llm_user", "whole_process_scripted"):
        figures = report[kind]
        assert figures["wall_s"] > 0
        assert 0 < figures["start_to_first_request_s"] < figures["wall_s"]
        assert figures["last_answer_to_exit_s"] >= 0
    assert report["in_process"]["turns"] == 6
    assert report["zero_latency"]["cpu_ms_per_turn"] > 0
    assert report["zero_latency_scripted"]["cpu_ms_per_turn"] > 0
    assert report["imports_openai"] == {"validate": False, "scripted run": False}


def test_the_http_clients_bench_measures_every_client_and_the_sdk_alone() -> None:
    report = json.loads(bench("bench_http_clients.py", "--requests", "40", "--concurrency", "4", "--rounds", "1"))
    figures = report["cpu_ms_per_request"]
    assert len(figures) == 10
    assert all(value > 0 for value in figures.values())
    assert figures["openai SDK alone, answered from memory"] < figures["SDK on simulator.llm.transport"]


def test_the_validate_and_memory_benches_run() -> None:
    lines = [json.loads(line) for line in bench("bench_validate.py", "--simulations", "20", "--runs", "1").splitlines()]
    assert [line["exit_code"] for line in lines] == [0, 0, 0]
    assert "20 simulation(s)" in lines[1]["output"] and "20 simulation(s)" in lines[2]["output"]
    assert lines[2]["manifest"] == "20 simulations, block style"
    assert "20 conversations: peak RSS" in bench("bench_memory.py", "--sizes", "20")


def test_the_datasets_bench_validates_and_runs_rows() -> None:
    lines = [
        json.loads(line)
        for line in bench(
            "bench_datasets.py", "--rows", "30", "60", "--run-rows", "20", "--baseline-rows", "20"
        ).splitlines()
    ]
    validated = [line for line in lines if line["command"] == "validate" and "rows" in line]
    assert [(line["rows"], line["exit_code"]) for line in validated] == [(30, 0), (60, 0)]
    assert "valid; 60 simulation(s)" in validated[1]["output"]
    assert any("peak_rss_60_over_30" in line for line in lines)
    ran = [line for line in lines if line["command"] == "run" and "rows" in line]
    assert ran[0]["exit_code"] == 0 and "Gate: PASS: 20 passed" in ran[0]["output"] and ran[0]["peak_rss_mib"] > 0
    [compared] = [line for line in lines if line["command"] == "run --baseline"]
    assert compared["rows"] == 20 and compared["exit_code"] == 0 and compared["peak_rss_mib"] > 0


def test_the_readers_bench_reports_strict_reading_and_what_changed_against_the_floor() -> None:
    report = json.loads(bench("bench_readers.py", "--conversations", "40", "--turns", "4", "--repeats", "1"))
    assert report["conversations"] == 40 and report["json_loads_s"] > 0
    for key in ("strict_over_floor", "iter_results_over_floor", "what_changed_over_floor"):
        assert report[key] > 0


def test_the_rate_limits_bench_reports_errors_wall_over_ideal_and_refusals() -> None:
    shape = ("--conversations", "4", "--turns", "2", "--concurrency", "4", "--latency", "0", "--rates", "50")
    report = json.loads(bench("bench_rate_limits.py", *shape, "--tpm", "600000"))
    assert [run["scenario"] for run in report["runs"]] == ["50 req/s", "50 req/s and 600000 tokens/min"]
    for run in report["runs"]:
        assert run["exit_code"] == 0 and run["conversations"] == 4 and run["errored"] == 0
        assert run["completions"] == 4 and run["wall_s"] > 0 and run["wall_over_ideal"] > 0
        assert run["received"] == run["completions"] + run["refused"] and 0 <= run["refused_share"] < 1
