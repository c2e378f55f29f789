"""The conversation_result record: built turn by turn, checked against the shipped schema."""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from ..parsing.schema_check import load_schema
from ..text.known_secrets import scrub
from . import ConversationResult, ErrorRecord, Turn

if TYPE_CHECKING:  # imported where used: jsonschema costs start-up time most commands never need
    pass

USER = "user"
ASSISTANT = "assistant"

#: Why a conversation ended. Errors (the app or an LLM failing) are told apart from outcomes.
STOP_REASONS = (
    "user_done",
    "user_gave_up",
    "max_turns",
    "app_error",
    "llm_error",
    "content_filter",
    "timeout",
    "cancelled",
    "setup_error",
)
#: `setup_error`: a setup request failed, so the conversation was not played (see `simulator.run.state_hooks`)
ERROR_REASONS = frozenset({"app_error", "llm_error", "content_filter", "timeout", "cancelled", "setup_error"})


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _sum_usage(items: list[dict[str, Any] | None]) -> dict[str, int]:
    # reasoning_tokens are part of completion_tokens, summed apart to show what thinking cost
    total = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "reasoning_tokens": 0}
    for usage in items:
        for key in total:
            value = (usage or {}).get(key)
            if isinstance(value, int):
                total[key] += value
    return total


class ConversationRecorder:
    """Collects the turns of one conversation and produces its `conversation_result`."""

    def __init__(
        self,
        conversation_id: str,
        persona: dict[str, Any],
        task: str,
        max_conversation_turns: int,
        user: dict[str, Any],
        app: dict[str, Any],
        extra_meta: dict[str, Any] | None = None,
    ) -> None:
        self.conversation_id = conversation_id
        self.turns: list[Turn] = []
        self._meta = {
            "persona": persona,
            "task": task,
            "max_conversation_turns": max_conversation_turns,
            "user": user,
            "app": app,
            **(extra_meta or {}),
        }
        self._started = time.monotonic()
        self._started_at = _now()

    def history(self) -> list[dict[str, str]]:
        """Turns so far as chat messages (failed turns left out)."""
        return [{"role": t["actor"], "content": t["response"]} for t in self.history_turns()]

    def history_turns(self) -> list[Turn]:
        """The turns `history()` is made of, so a recorded request can refer to them."""
        return [t for t in self.turns if t["error"] is None]

    def add_turn(
        self,
        actor: str,
        request: Any,
        response: str,
        full_json_response: Any,
        latency_ms: float,
        usage: dict[str, Any] | None = None,
        error: ErrorRecord | None = None,
        **extra: Any,
    ) -> Turn:
        turn = cast(
            Turn,
            {
                "turn_number": len(self.turns),
                "response": response,
                "actor": actor,
                "request": request,
                "full_json_response": full_json_response,
                "latency_ms": round(latency_ms, 3),
                "usage": usage,
                "error": error,
                **extra,
            },
        )
        self.turns.append(turn)
        return turn

    def finish(
        self, stop_reason: str, detail: str | None = None, error: ErrorRecord | None = None
    ) -> ConversationResult:
        if stop_reason not in STOP_REASONS:
            raise ValueError(f"unknown stop reason {stop_reason!r}")
        latencies: dict[str, list[float]] = {USER: [], ASSISTANT: []}
        for turn in self.turns:
            latencies[turn["actor"]].append(turn["latency_ms"])
        app_latencies = latencies[ASSISTANT]
        meta = {
            **self._meta,
            "stop_reason": stop_reason,
            "stop_detail": detail,
            "is_error": stop_reason in ERROR_REASONS,
            "error": error,
            "turn_count": len(self.turns),
            "usage": {
                USER: _sum_usage([t["usage"] for t in self.turns if t["actor"] == USER]),
                ASSISTANT: _sum_usage([t["usage"] for t in self.turns if t["actor"] == ASSISTANT]),
                "total": _sum_usage([t["usage"] for t in self.turns]),
            },
            "latency_ms": {
                "per_turn": [t["latency_ms"] for t in self.turns],
                "app_mean": round(statistics.fmean(app_latencies), 3) if app_latencies else None,
                "app_max": max(app_latencies) if app_latencies else None,
                "user_total": round(sum(latencies[USER]), 3),
                "app_total": round(sum(app_latencies), 3),
            },
            "started_at": self._started_at,
            "finished_at": _now(),
            "duration_ms": round((time.monotonic() - self._started) * 1000, 3),
        }
        # a result is handed to callers who may store or print it: it never holds a known credential
        return scrub({"conversation_id": self.conversation_id, "conversation": self.turns, "meta_data": meta})


def validate_result(result: Any) -> None:
    """Raise `jsonschema.ValidationError` when `result` is not a conversation_result."""
    import jsonschema

    jsonschema.validate(result, load_schema("conversation_result"), cls=jsonschema.Draft202012Validator)
