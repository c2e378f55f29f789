"""What reading results strictly and comparing with a base run cost, next to the floor.

    python bench/bench_readers.py                      # 2,000 conversations of 8 turns
    python bench/bench_readers.py --conversations 10000

Writes a synthetic conversations.jsonl (replies of a few hundred characters, raw answers, recorded
requests), then times, best of `--repeats`:
- `json.loads` of every line: the floor any reader pays;
- `strict_json.loads` of every line (repeated keys, non-finite and huge numbers, nesting refused);
- `iter_results`: the strict parse plus the schema check of each line, as every command reads;
- `add_evidence`: the "What changed" classification of a head run against a base run of that size.
Prints the figures as JSON, with each as a ratio to the floor.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from simulator.parsing import strict_json  # noqa: E402
from simulator.report import compare  # noqa: E402
from simulator.report.change_evidence import add_evidence  # noqa: E402
from simulator.results.reading import iter_results  # noqa: E402
from simulator.results.summary import summarize  # noqa: E402


def conversation(i: int, turns: int, changed: bool) -> dict[str, Any]:
    usage = {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}
    rows: list[dict[str, Any]] = []
    for t in range(turns):
        if t % 2 == 0:
            rows.append(
                {
                    "turn_number": t,
                    "actor": "user",
                    "response": f"question {t} about order {i % 50}",
                    "request": None,
                    "full_json_response": None,
                }
            )
            continue
        reply = f"Answer {t} for order {i % 50}: " + ("the parcel ships tomorrow. " * 12)
        if changed and t == turns - 1:
            reply = "Sorry, I cannot help with that."
        rows.append(
            {
                "turn_number": t,
                "actor": "assistant",
                "response": reply,
                "request": {"question": f"question {t - 1}", "chat_history": [{"inputs": {}, "outputs": {}}]},
                "full_json_response": {"answer": reply, "meta": {"id": f"r-{i}-{t}", "scores": [0.1, 0.2]}},
                "latency_ms": 12.5,
                "error": None,
            }
        )
    passed = not changed
    return {
        "conversation_id": f"c-{i}",
        "conversation": rows,
        "meta_data": {
            "persona": {"name": "Jane", "profile": "p"},
            "task": "t",
            "simulation": f"sim-{i % 20}",
            "repeat": i // 20 + 1,
            "stop_reason": "user_done",
            "turn_count": turns,
            "usage": {"user": usage, "assistant": usage, "total": usage},
            "latency_ms": {"per_turn": [12.5] * turns},
        },
        "evaluation": {"status": "pass" if passed else "fail", "checks": [], "failed": [], "errors": []},
    }


def best(repeats: int, work: Any) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0])
    parser.add_argument("--conversations", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    base = [conversation(i, args.turns, False) for i in range(args.conversations)]
    head = [conversation(i, args.turns, i % 3 == 0) for i in range(args.conversations)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "conversations.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in base), encoding="utf-8")
        lines = path.read_bytes().splitlines()
        floor = best(args.repeats, lambda: [json.loads(line) for line in lines])
        strict = best(args.repeats, lambda: [strict_json.loads(line) for line in lines])
        reading = best(args.repeats, lambda: sum(1 for _ in iter_results(path)))
        size = path.stat().st_size

    def classify() -> None:
        changes = compare(summarize(head), summarize(base))
        add_evidence(changes, head, base)

    evidence = best(args.repeats, classify)
    figures = {
        "conversations": args.conversations,
        "file_mb": round(size / 1e6, 2),
        "json_loads_s": round(floor, 4),
        "strict_loads_s": round(strict, 4),
        "strict_over_floor": round(strict / floor, 2),
        "iter_results_s": round(reading, 4),
        "iter_results_over_floor": round(reading / floor, 2),
        "what_changed_s": round(evidence, 4),
        "what_changed_over_floor": round(evidence / floor, 2),
    }
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
