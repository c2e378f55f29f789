"""The app side of a conversation: anything that answers the simulated user's messages."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AppReply:
    """What the app said, plus the raw answer and the request kept as evidence."""

    text: str
    raw: Any = None
    request: Any = None
    usage: dict[str, Any] | None = None
    #: what the turn should say about how the reply was read (e.g. an answer cut at a size limit)
    notes: list[str] = field(default_factory=list)
    #: the app's own time, from sending the request to the end of the answer, when the target can tell
    #: it apart from the client's (a connection opened, a request queued for a free connection)
    latency_ms: float | None = None
    #: the set-up of a new connection (TCP, TLS) this turn waited for, reported apart from the latency
    connect_ms: float | None = None
    #: a reasoning model's thinking before `text`, recorded with the turn but never shown to the user
    reasoning: str | None = None


class Target(ABC):
    """An app under test. One instance serves many conversations concurrently."""

    @abstractmethod
    async def respond(self, question: str, history: list[dict[str, str]], meta_data: dict[str, Any]) -> AppReply:
        """Answer `question`; `history` holds the earlier turns as `{role, content}` messages.

        Failures raise `TurnError` (reason `app_error`, `timeout` or `content_filter`).
        """

    def describe(self) -> dict[str, Any]:
        """What the results record about the app (never a credential)."""
        return {"kind": type(self).__name__}

    async def warm(self, concurrency: int = 1) -> None:  # noqa: B027 - optional hook, most build nothing lazily
        """Build what the first request would otherwise build inside its turn's clock, for a run of
        `concurrency` conversations at a time."""

    def conversation_state(self, conversation_id: str) -> Any:
        """What the app handed this conversation so far (a session id, cookies), while it is open;
        None when the target keeps nothing. Requests about the conversation's outcome send it along."""
        return None

    async def end_conversation(self, conversation_id: str) -> None:  # noqa: B027 - optional hook
        """Forget per-conversation state (session ids, cookies) once a conversation is over."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most targets hold nothing
        """Release connections held for the running event loop."""
