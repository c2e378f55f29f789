"""Runner throughput as ratios: measured time / ideal time, start-up, and framework CPU per turn.

The app and the user model are one single-loop server in a child process that answers every
request exactly `--latency` seconds after it arrives (tests/servers/steady_server.py), so the CPU
measured here is the simulator's own and the latency it records can be compared with the truth.

    python bench/bench_runner.py                       # 100 conversations x 6 turns, concurrency 32, 100 ms
    python bench/bench_runner.py --conversations 200 --concurrency 64 --latency 0.05

Figures:
- whole process: `simulator run` in a subprocess, as users run it (start-up, manifest, reports
  included), wall / ideal. Ideal = ceil(conversations / concurrency) x turns x latency: the
  schedule if every request cost exactly the injected latency and the framework nothing.
- in process: the runner alone (`run_jobs`), wall / ideal.
- start to first request: process start until the server sees the first request, for an LLM
  user and for a scripted-only run; and whether `validate` and a scripted run import `openai`.
- recorded latency: the p50 of the app turns' `latency_ms` against the injected latency (must be
  within 10%; the bench fails otherwise).
- framework CPU per turn at zero latency (in process).
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from simulator.manifest import load_manifest  # noqa: E402
from simulator.results.folder import read_results  # noqa: E402
from simulator.run.plan import plan_jobs  # noqa: E402
from simulator.run.runner import run_jobs  # noqa: E402
from tests.servers.steady_server import SteadyServer  # noqa: E402


def _manifest(folder: Path, url: str, conversations: int, turns: int, scripted: bool = False) -> Path:
    manifest = folder / "bench.yml"
    script = ", turns: [" + ", ".join(["more please"] * turns) + "]" if scripted else ""
    manifest.write_text(
        "version: 1\n"
        f"target: {{url: '{url}/score', format: promptflow,\n"
        "  promptflow: {input: question, history: chat_history, output: answer}}\n"
        f"user: {{model: bench-user, endpoint: '{url}/v1', max_retries: 0}}\n"
        "simulations:\n"
        f"  - {{name: bench, persona: jane, task: t{script}, repeat: {conversations}, max_turns: {turns}}}\n"
    )
    return manifest


def _ideal(conversations: int, turns: int, concurrency: int, latency: float, scripted: bool = False) -> float:
    requests = turns // 2 if scripted else turns  # a scripted user costs no request
    return math.ceil(conversations / concurrency) * requests * latency


def in_process(conversations: int, turns: int, concurrency: int, latency: float, scripted: bool = False) -> dict:
    """The runner alone: wall / ideal and CPU per turn."""
    import openai  # noqa: F401 - the SDK import is start-up, measured by whole_process, not per turn

    with SteadyServer(latency) as server, tempfile.TemporaryDirectory() as tmp:
        loaded = load_manifest(_manifest(Path(tmp), server.url, conversations, turns, scripted), environ={})
        jobs = plan_jobs(loaded)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        outcome = asyncio.run(run_jobs(loaded, jobs, Path(tmp) / "out", concurrency=concurrency))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        app_latencies = _app_latencies(Path(tmp) / "out")
    totals = outcome.summary["totals"]
    if totals["errors"]:
        raise SystemExit(f"benchmark run had errors: {totals['stop_reasons']}")
    ideal = _ideal(conversations, turns, concurrency, latency, scripted)
    return {
        "turns": totals["turns"],
        "wall_s": round(wall, 3),
        "ideal_wall_s": round(ideal, 3),
        "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_turn": round(cpu * 1000 / totals["turns"], 3),
        "app_latency_p50_ms": round(statistics.median(app_latencies), 2),
    }


def _app_latencies(out: Path) -> list[float]:
    return [
        t["latency_ms"]
        for r in read_results(out / "conversations.jsonl")
        for t in r["conversation"]
        if t["actor"] == "assistant" and "latency_ms" in t
    ]


def whole_process(
    conversations: int, turns: int, concurrency: int, latency: float, scripted: bool = False, repeats: int = 3
) -> dict:
    """`simulator run` as users run it; the best of `repeats` runs (the machine's noise is not ours)."""
    walls, firsts, tails, p50s = [], [], [], []
    for _ in range(repeats):
        with SteadyServer(latency) as server, tempfile.TemporaryDirectory() as tmp:
            manifest = _manifest(Path(tmp), server.url, conversations, turns, scripted)
            command = [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(Path(tmp) / "out")]
            started = time.time()
            done = subprocess.run(
                [*command, "--concurrency", str(concurrency), "--quiet"], capture_output=True, text=True, cwd=REPO
            )
            ended = time.time()
            walls.append(ended - started)
            if done.returncode != 0:
                raise SystemExit(f"simulator run failed ({done.returncode}): {done.stderr[-2000:]}")
            stats = server.stats()
            firsts.append(float(stats["first_request_at"] or 0) - started)
            tails.append(ended - float(stats["last_answer_at"] or 0))
            p50s.append(statistics.median(_app_latencies(Path(tmp) / "out")))
    ideal = _ideal(conversations, turns, concurrency, latency, scripted)
    wall = min(walls)
    return {
        "wall_s": round(wall, 3),
        "ideal_wall_s": round(ideal, 3),
        "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
        "start_to_first_request_s": round(min(firsts), 3),
        "last_answer_to_exit_s": round(min(tails), 3),
        "app_latency_p50_ms": round(statistics.median(p50s), 2),
    }


def imports_openai(*args: str) -> bool:
    """Whether `simulator ARGS` imports the openai package (it should not for validate or scripted runs)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simulator", *args], capture_output=True, text=True, cwd=REPO
    )
    return any(line.rstrip().endswith("| openai") for line in done.stderr.splitlines())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--repeats", type=int, default=3, help="whole-process runs of each kind; the best counts")
    args = parser.parse_args()
    shape = (args.conversations, args.turns, args.concurrency)
    # as installed (pip and the image compile every module): a checkout under PYTHONDONTWRITEBYTECODE
    # would otherwise compile the modules that have no bytecode yet at every start
    compileall.compile_dir(REPO / "simulator", quiet=1)
    process = whole_process(*shape, args.latency, repeats=args.repeats)
    scripted = whole_process(*shape, args.latency, scripted=True, repeats=args.repeats)
    inside = in_process(*shape, args.latency)
    zero = in_process(*shape, 0.0)
    zero_scripted = in_process(*shape, 0.0, scripted=True)
    with tempfile.TemporaryDirectory() as tmp:
        manifest = _manifest(Path(tmp), "http://127.0.0.1:9", 2, 2, scripted=True)
        openai_loaded = {
            "validate": imports_openai("validate", str(manifest)),
            "scripted run": imports_openai("run", str(manifest), "--out", str(Path(tmp) / "o"), "--quiet"),
        }
    target = args.latency * 1000
    report = {
        "shape": {"conversations": args.conversations, "turns": args.turns, "concurrency": args.concurrency},
        "latency_s": args.latency,
        "whole_process_llm_user": process,
        "whole_process_scripted": scripted,
        "in_process": inside,
        "zero_latency": {k: zero[k] for k in ("turns", "wall_s", "cpu_s", "cpu_ms_per_turn")},
        "zero_latency_scripted": {k: zero_scripted[k] for k in ("turns", "wall_s", "cpu_s", "cpu_ms_per_turn")},
        "imports_openai": openai_loaded,
    }
    print(json.dumps(report, indent=2))
    print(
        f"\n{args.conversations} conversations x {args.turns} turns at concurrency {args.concurrency}, "
        f"{target:.0f} ms per request:\n"
        f"  whole process (simulator run, LLM user): {process['wall_s']} s / ideal {process['ideal_wall_s']} s "
        f"= {process['wall_over_ideal']}; first request after {process['start_to_first_request_s']} s, "
        f"exit {process['last_answer_to_exit_s']} s after the last answer\n"
        f"  whole process (scripted user): {scripted['wall_s']} s / ideal {scripted['ideal_wall_s']} s "
        f"= {scripted['wall_over_ideal']}; first request after {scripted['start_to_first_request_s']} s, "
        f"exit {scripted['last_answer_to_exit_s']} s after the last answer\n"
        f"  in process: {inside['wall_s']} s / ideal {inside['ideal_wall_s']} s = {inside['wall_over_ideal']}\n"
        f"  recorded app latency p50: {process['app_latency_p50_ms']} ms (injected {target:.0f} ms)\n"
        f"  framework CPU at zero latency: {zero['cpu_ms_per_turn']} ms per turn with an LLM user, "
        f"{zero_scripted['cpu_ms_per_turn']} ms scripted\n"
        f"  imports openai: {openai_loaded}",
        file=sys.stderr,
    )
    problems = [
        f"recorded p50 {p['app_latency_p50_ms']} ms is not within 10% of {target:.0f} ms"
        for p in (process, scripted, inside)
        if args.latency and abs(p["app_latency_p50_ms"] - target) > 0.1 * target
    ]
    problems += [f"{what} imports openai" for what, loaded in openai_loaded.items() if loaded]
    if problems:
        raise SystemExit("; ".join(problems))


if __name__ == "__main__":
    main()
