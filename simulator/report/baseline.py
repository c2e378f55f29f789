"""What changed since a base-branch run: per simulation pass rate, new failures, latency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..records import Summary


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline's summary.json, given the results folder (e.g. a downloaded artifact) or the file."""
    path = Path(path)
    file = path / "summary.json" if path.is_dir() else path
    try:
        summary = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{file}: baseline summary not found (give the base run's results folder)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{file}: not a readable summary.json ({exc})") from None
    if not isinstance(summary, dict) or not isinstance(summary.get("simulations"), dict):
        raise ConfigError(f"{file}: not a summary.json written by this tool (no 'simulations')")
    return summary


def _change(value: float | None, before: float | None) -> float | None:
    return None if value is None or before is None else round(value - before, 4)


def compare(summary: Summary, baseline: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per simulation of `summary`: how it differs from the same-named simulation in `baseline`."""
    changes: dict[str, dict[str, Any]] = {}
    before_all = baseline.get("simulations", {})
    for name, sim in summary["simulations"].items():
        now = sim["verdict"]
        before = before_all.get(name)
        if before is None:
            changes[name] = {"change": "new", "pass_rate_delta": None, "new_failing_checks": []}
            continue
        was = before.get("verdict", {})
        status, old_status = now["status"], was.get("status")
        if status == "fail" and old_status == "pass":
            change = "new failure"
        elif status == "pass" and old_status == "fail":
            change = "fixed"
        elif status == old_status:
            change = "same"
        else:
            change = f"{old_status} → {status}"
        old_checks = set(was.get("failed_checks") or {})
        latency, old_latency = sim.get("latency_ms", {}), before.get("latency_ms", {})
        changes[name] = {
            "change": change,
            "status_before": old_status,
            "pass_rate_before": was.get("pass_rate"),
            "pass_rate_delta": _change(now.get("pass_rate"), was.get("pass_rate")),
            "new_failing_checks": sorted(set(now.get("failed_checks") or {}) - old_checks),
            "p50_delta_ms": _change(latency.get("app_p50"), old_latency.get("app_p50")),
            "p95_delta_ms": _change(latency.get("app_p95"), old_latency.get("app_p95")),
        }
    for name in before_all:
        if name not in summary["simulations"]:
            changes[name] = {"change": "removed", "pass_rate_delta": None, "new_failing_checks": []}
    return changes
