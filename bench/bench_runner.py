"""Runner throughput: measured wall time / ideal wall time, and framework CPU per turn.

Starts the fake OpenAI-compatible server (plays the user) and the fake chat app in a child
process, so the CPU measured here is the simulator's own, then runs the real runner against them:

    python bench/bench_runner.py                       # 100 conversations x 6 turns, concurrency 32
    python bench/bench_runner.py --conversations 200 --concurrency 64 --latency 0.05

Ideal wall time = ceil(conversations / concurrency) x turns x latency: what the schedule would
take if every request cost exactly the injected latency and the framework cost nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import openai  # noqa: E402, F401 - the SDK is imported on first use; that is start-up, not per-turn cost

from simulator.manifest import load_manifest  # noqa: E402
from simulator.plan import plan_jobs  # noqa: E402
from simulator.runner import run_jobs  # noqa: E402

SERVERS = """
import sys, time
sys.path.insert(0, {repo!r})
from tests.servers.openai_server import FakeOpenAIServer, Reply
from tests.servers.chat_app import FakeChatApp, AppReply
latency = float(sys.argv[1])
llm = FakeOpenAIServer().start()
llm.default = lambda request: Reply(content="Tell me more about that, please.", delay=latency)
app = FakeChatApp().start()
app.default = lambda request: AppReply(text="Here is some more detail.", delay=latency)
print(llm.openai_base_url, app.url, flush=True)
sys.stdin.read()
"""


def measure(conversations: int, turns: int, concurrency: int, latency: float) -> dict:
    child = subprocess.Popen(
        [sys.executable, "-c", SERVERS.format(repo=str(REPO)), str(latency)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        llm_url, app_url = child.stdout.readline().split()
        with tempfile.TemporaryDirectory() as tmp:
            manifest = Path(tmp) / "bench.yml"
            manifest.write_text(
                "version: 1\n"
                f"target: {{url: '{app_url}/promptflow', format: promptflow}}\n"
                f"user: {{model: bench-user, endpoint: '{llm_url}', max_retries: 0}}\n"
                "simulations:\n"
                f"  - {{name: bench, persona: jane, task: t, repeat: {conversations}, max_turns: {turns}}}\n"
            )
            loaded = load_manifest(manifest, environ={})
            jobs = plan_jobs(loaded)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            outcome = asyncio.run(run_jobs(loaded, jobs, Path(tmp) / "out", concurrency=concurrency))
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    totals = outcome.summary["totals"]
    if totals["errors"]:
        raise SystemExit(f"benchmark run had errors: {totals['stop_reasons']}")
    ideal = math.ceil(conversations / concurrency) * turns * latency
    return {
        "conversations": conversations,
        "turns_per_conversation": turns,
        "concurrency": concurrency,
        "latency_s": latency,
        "turns": totals["turns"],
        "wall_s": round(wall, 3),
        "ideal_wall_s": round(ideal, 3),
        "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
        "cpu_s": round(cpu, 3),
        "cpu_ms_per_turn": round(cpu * 1000 / totals["turns"], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    with_latency = measure(args.conversations, args.turns, args.concurrency, args.latency)
    zero_latency = measure(args.conversations, args.turns, args.concurrency, 0.0)
    report = {
        "with_latency": with_latency,
        "zero_latency": {k: zero_latency[k] for k in ("turns", "wall_s", "cpu_s", "cpu_ms_per_turn")},
    }
    print(json.dumps(report, indent=2))
    print(
        f"\n{args.conversations} conversations x {args.turns} turns at concurrency {args.concurrency}, "
        f"{args.latency * 1000:.0f} ms per request: wall {with_latency['wall_s']} s / ideal "
        f"{with_latency['ideal_wall_s']} s = {with_latency['wall_over_ideal']}\n"
        f"framework CPU at zero latency: {zero_latency['cpu_ms_per_turn']} ms per turn",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
