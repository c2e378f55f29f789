"""What a check is and what it reports: pass, fail (the app misbehaved) or error (no verdict)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

from ..records import CheckOutcome, ConversationResult, Turn

PASS = "pass"
FAIL = "fail"
ERROR = "error"


@dataclass
class CheckResult:
    """One check's verdict on one conversation, with the evidence a reviewer needs."""

    check: str
    name: str
    status: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> CheckOutcome:
        return {
            "check": self.check,
            "name": self.name,
            "status": self.status,
            "message": self.message,
            "evidence": self.evidence,
        }


class Check(ABC):
    """A rule about a finished conversation.

    Adding a kind = one class, one `CHECK_KINDS` line (checks/evaluate.py) and its `expect` entry in
    the manifest schema (a test fails until the schema and the registry agree).
    """

    kind: str = ""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    async def evaluate(self, result: ConversationResult, context: Any) -> CheckResult:
        """Judge `result` (a conversation_result); `context` carries the judge model, if any."""

    def verdict(self, status: str, message: str, **evidence: Any) -> CheckResult:
        return CheckResult(self.kind, self.name, status, message, evidence)

    @property
    def needs_judge(self) -> bool:
        return False


def app_turns(result: ConversationResult) -> list[Turn]:
    """The app's replies that arrived (failed turns left out)."""
    return [t for t in result["conversation"] if t["actor"] == "assistant" and not t.get("error")]


def snippet(text: str, start: int = 0, end: int | None = None, width: int = 60) -> str:
    """A short excerpt of `text` around [start, end), for evidence."""
    end = start if end is None else end
    left = max(0, start - width)
    right = min(len(text), end + width)
    return ("…" if left else "") + text[left:right] + ("…" if right < len(text) else "")
