"""summary.json: a pure function of the conversation results, per simulation and for the run."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import Any

from .checks.gate import decide_gate, simulation_verdict
from .result import ERROR_REASONS


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (q in 0..100) of `values`, or None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return round(ordered[rank - 1], 3)


def _totals(results: list[dict[str, Any]]) -> dict[str, Any]:
    reasons = Counter(r["meta_data"]["stop_reason"] for r in results)
    app_latency = [
        t["latency_ms"]
        for r in results
        for t in r["conversation"]
        if t["actor"] == "assistant" and t.get("error") is None and "latency_ms" in t
    ]
    tokens = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for r in results:
        for key in tokens:
            tokens[key] += r["meta_data"].get("usage", {}).get("total", {}).get(key, 0)
    errors = sum(n for reason, n in reasons.items() if reason in ERROR_REASONS)
    return {
        "conversations": len(results),
        "turns": sum(len(r["conversation"]) for r in results),
        "errors": errors,
        "error_rate": round(errors / len(results), 4) if results else 0.0,
        "stop_reasons": dict(sorted(reasons.items())),
        "latency_ms": {
            "app_p50": percentile(app_latency, 50),
            "app_p95": percentile(app_latency, 95),
            "app_max": max(app_latency) if app_latency else None,
        },
        "tokens": tokens,
        "duration_ms": round(sum(r["meta_data"].get("duration_ms", 0) for r in results), 3),
    }


def summarize(
    results: Iterable[dict[str, Any]],
    run: dict[str, Any] | None = None,
    order: list[str] | None = None,
    gate: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Totals, verdicts and the gate for the run and each simulation (by `meta_data.simulation`)."""
    results = list(results)
    grouped: dict[str, list[dict[str, Any]]] = {name: [] for name in order or []}
    for result in results:
        name = result["meta_data"].get("simulation") or result["meta_data"]["persona"]["name"]
        grouped.setdefault(name, []).append(result)
    simulations = {}
    for name, group in grouped.items():
        if not group:
            continue
        first = group[0]["meta_data"]
        simulations[name] = {
            "persona": first["persona"]["name"],
            "task": first["task"],
            "tags": first.get("tags", []),
            **_totals(group),
            "verdict": simulation_verdict(group),
        }
    verdicts = {name: sim["verdict"] for name, sim in simulations.items()}
    return {
        "run": run or {},
        "gate": decide_gate(verdicts, gate),
        "totals": _totals(results),
        "simulations": simulations,
    }
