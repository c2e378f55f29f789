"""A rate-limited user model: `simulator run` against a model that refuses what goes over its limit.

The app and the user model are one single-loop server in a child process (tests/servers/steady_server.py)
that answers every request `--latency` seconds after it arrives; the user model has a rate limit
(tests/servers/rate_limit.py: a token bucket holding one second of its rate, or a fixed one-second
window) and answers a request over it at once with 429 and `Retry-After` in whole seconds, as
HTTP writes it (`--headers` adds Azure's `retry-after-ms` and OpenAI's `x-ratelimit-*`).

    python bench/bench_rate_limits.py                     # 100 x 6 at concurrency 32: 20, 5, 50 req/s, and 20 + TPM
    python bench/bench_rate_limits.py --rates 20 --tpm 0  # one rate, no tokens-per-minute scenario
    python bench/bench_rate_limits.py --mode window --headers

Figures, per scenario (`simulator run` in a subprocess, as users run it, with the user model's
default retries):
- errored conversations (goal: 0);
- wall time of the whole process, and wall / ideal, where ideal = the completions the run needed
  at the limit's pace: completions / requests-per-second, or their tokens / tokens-per-second when
  those bind more (goal <= 1.15); and the same for the runner's own time (summary.json's
  `run.wall_time_ms`, without the process's start-up and exit);
- refused requests as a share of all the user model received (goal < 10%), and how many of them
  the first burst cost (the first second: `--concurrency` requests at once, more than the bucket
  holds, before any answer could say there is a limit);
- the progress lines that said so (`rate-limited by user model: waiting 1.0 s; ...`).
"""

from __future__ import annotations

import argparse
import compileall
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from simulator.results.folder import read_results  # noqa: E402
from tests.servers.steady_server import SteadyServer  # noqa: E402

#: the goals the figures are held to
RATIO_GOAL, REFUSED_GOAL = 1.15, 0.10


def _manifest(folder: Path, url: str, conversations: int, turns: int) -> Path:
    manifest = folder / "bench.yml"
    manifest.write_text(
        "version: 1\n"
        f"target: {{url: '{url}/score', format: promptflow,\n"
        "  promptflow: {input: question, history: chat_history, output: answer}}\n"
        f"user: {{model: bench-user, endpoint: '{url}/v1'}}\n"
        "simulations:\n"
        f"  - {{name: bench, persona: jane, task: t, repeat: {conversations}, max_turns: {turns}}}\n"
    )
    return manifest


def scenario(
    name: str,
    conversations: int,
    turns: int,
    concurrency: int,
    latency: float,
    limit: dict[str, Any],
) -> dict[str, Any]:
    """One `simulator run` against a user model with `limit` (RateLimit's fields); its figures."""
    with SteadyServer(latency, **limit) as server, tempfile.TemporaryDirectory() as tmp:
        manifest = _manifest(Path(tmp), server.url, conversations, turns)
        out = Path(tmp) / "out"
        command = [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(out)]
        started = time.perf_counter()
        done = subprocess.run([*command, "--concurrency", str(concurrency)], capture_output=True, text=True, cwd=REPO)
        wall = time.perf_counter() - started
        stats = server.stats()
        results = read_results(out / "conversations.jsonl") if (out / "conversations.jsonl").is_file() else []
        summary = json.loads((out / "summary.json").read_text()) if (out / "summary.json").is_file() else {}
    run_wall = (summary.get("run") or {}).get("wall_time_ms", 0) / 1000
    errored = [r for r in results if r["meta_data"].get("is_error")]
    received = int(stats["chat_requests"] or 0)
    refused = int(stats["refused"] or 0)
    completions = received - refused
    ideal = completions / limit["requests_per_second"]
    tokens = int(stats.get("tokens") or 0)
    if limit.get("tokens_per_minute"):
        ideal = max(ideal, tokens / (limit["tokens_per_minute"] / 60))
    lines = [line for line in done.stderr.splitlines() if "rate-limited" in line or "rate limit" in line]
    return {
        "scenario": name,
        "limit": limit,
        "exit_code": done.returncode,
        "conversations": len(results),
        "errored": len(errored),
        "errors": sorted({str(r["meta_data"].get("stop_detail"))[:200] for r in errored})[:3],
        "wall_s": round(wall, 2),
        "completions": completions,
        "tokens": tokens,
        "ideal_s": round(ideal, 2),
        "wall_over_ideal": round(wall / ideal, 3) if ideal else None,
        "run_wall_s": round(run_wall, 2),
        "run_wall_over_ideal": round(run_wall / ideal, 3) if ideal else None,
        "received": received,
        "refused": refused,
        "refused_share": round(refused / received, 4) if received else 0.0,
        "refused_in_first_second": int(stats.get("refused_in_first_second") or 0),
        "progress_lines": len(lines),
        "progress_sample": lines[:3],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--conversations", type=int, default=100)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--latency", type=float, default=0.1)
    parser.add_argument("--rates", default="20,5,50", help="requests per second, one scenario each")
    parser.add_argument(
        "--tpm",
        type=float,
        default=150000,
        help="a scenario at the first rate with this tokens-per-minute limit (0: none)",
    )
    parser.add_argument("--mode", choices=("bucket", "window"), default="bucket")
    parser.add_argument("--headers", action="store_true", help="send retry-after-ms and x-ratelimit-* too")
    parser.add_argument("--check", action="store_true", help="exit 1 when a figure misses its goal")
    args = parser.parse_args()
    compileall.compile_dir(REPO / "simulator", quiet=1)  # as installed: no compiling inside the timings
    shape = (args.conversations, args.turns, args.concurrency, args.latency)
    common: dict[str, Any] = {"mode": args.mode}
    if args.headers:
        common.update(retry_after_ms=True, ratelimit_headers=True)
    rates = [float(rate) for rate in args.rates.split(",") if rate.strip()]
    runs = [scenario(f"{rate:g} req/s", *shape, {"requests_per_second": rate, **common}) for rate in rates]
    if args.tpm and rates:
        limit = {"requests_per_second": rates[0], "tokens_per_minute": args.tpm, **common}
        runs.append(scenario(f"{rates[0]:g} req/s and {args.tpm:g} tokens/min", *shape, limit))
    names = ("conversations", "turns", "concurrency", "latency_s")
    print(json.dumps({"shape": dict(zip(names, shape, strict=True)), "runs": runs}, indent=2))
    print(
        f"\n{args.conversations} conversations x {args.turns} turns at concurrency {args.concurrency}, "
        f"{args.latency * 1000:.0f} ms per request, limit as a {args.mode}"
        f"{' with retry-after-ms and x-ratelimit-*' if args.headers else ''}:",
        file=sys.stderr,
    )
    for run in runs:
        print(
            f"  {run['scenario']}: {run['errored']} errored of {run['conversations']}; wall {run['wall_s']} s / ideal "
            f"{run['ideal_s']} s = {run['wall_over_ideal']} (the runner alone {run['run_wall_over_ideal']}); "
            f"refused {run['refused']} of {run['received']} ({run['refused_share']:.1%}; "
            f"{run['refused_in_first_second']} in the first second)",
            file=sys.stderr,
        )
    missed = [
        f"{run['scenario']}: {what}"
        for run in runs
        for what, bad in (
            (f"{run['errored']} errored", run["errored"] > 0),
            (f"wall/ideal {run['wall_over_ideal']}", (run["wall_over_ideal"] or 0) > RATIO_GOAL),
            (f"refused {run['refused_share']:.1%}", run["refused_share"] >= REFUSED_GOAL),
        )
        if bad
    ]
    if missed:
        print("  missed: " + "; ".join(missed), file=sys.stderr)
        if args.check:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
