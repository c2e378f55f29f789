"""report.html: one self-contained file (styles, script and data inline; no network).

The data is embedded as JSON and the page builds itself with `textContent` only, so app and LLM
text is always shown as text. Turn requests and raw replies are left out: they are in the JSONL,
and leaving them out keeps a 1,000-conversation report small and quick to open. Known
credentials are scrubbed from the data before it is embedded.
"""

from __future__ import annotations

import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from ..known_secrets import scrub

MARKER = "/*__DATA__*/"


def _conversation(result: dict[str, Any]) -> dict[str, Any]:
    meta = result["meta_data"]
    evaluation = result.get("evaluation") or {}
    return {
        "conversation_id": result["conversation_id"],
        "simulation": meta.get("simulation") or meta["persona"]["name"],
        "repeat": meta.get("repeat", 1),
        "persona": meta.get("persona", {}),
        "task": meta.get("task", ""),
        "stop_reason": meta.get("stop_reason"),
        "stop_detail": meta.get("stop_detail"),
        "status": evaluation.get("status", "error"),
        "checks": evaluation.get("checks", []),
        "errors": evaluation.get("errors", []),
        "turns": [
            {
                "turn_number": t["turn_number"],
                "actor": t["actor"],
                "response": t["response"],
                "latency_ms": t.get("latency_ms"),
                "error": t.get("error") and {"reason": t["error"].get("reason"), "message": t["error"].get("message")},
            }
            for t in result["conversation"]
        ],
    }


def _embed(data: dict[str, Any]) -> str:
    """JSON that cannot end the <script> element or open a comment inside it."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(
    summary: dict[str, Any],
    results: list[dict[str, Any]],
    baseline: dict[str, dict[str, Any]] | None = None,
    baseline_label: str | None = None,
) -> str:
    """The report page for `summary` and its conversations (and changes since a baseline)."""
    template = resources.files("simulator.report").joinpath("template.html").read_text("utf-8")
    data = scrub(
        {
            "summary": summary,
            "conversations": [_conversation(r) for r in results],
            "baseline": baseline or {},
            "baseline_label": baseline_label,
        }
    )
    return template.replace(MARKER, _embed(data), 1)


def write_html(path: str | Path, html: str) -> Path:
    path = Path(path)
    path.write_text(html, encoding="utf-8")
    os.chmod(path, 0o644)
    return path
