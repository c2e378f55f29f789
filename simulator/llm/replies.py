"""What a completion answered: `ModelReply`, read from the server's JSON with the credentials scrubbed.

A body that is not JSON, has no choices, or was withheld by content filtering is a `TurnError`
naming the model and the endpoint; a reasoning model's thoughts are kept apart (`thinking`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import TurnError
from ..parsing import strict_json
from ..text.known_secrets import scrub, scrub_text
from .thinking import count_reasoning, split_thinking

if TYPE_CHECKING:
    import httpx2


@dataclass
class ModelReply:
    """One completion: the text, the whole JSON answer, and the request that produced it.

    `content` is the visible answer, without a reasoning model's thinking, which is in
    `reasoning` (see `simulator.llm.thinking`); `usage` then counts it as `reasoning_tokens`.
    """

    content: str
    raw: dict[str, Any]
    request: dict[str, Any]
    usage: dict[str, Any] | None
    finish_reason: str | None
    reasoning: str | None = None
    #: the thinking never ended: `max_tokens` ran out before any answer
    thinking_cut_off: bool = False

    @property
    def only_thinking(self) -> bool:
        """The model thought and said nothing: the caller has no answer to use."""
        return not self.content.strip() and (self.reasoning is not None or self.thinking_cut_off)


def read_reply(response: httpx2.Response, request: dict[str, Any], name: str, chat_url: str) -> ModelReply:
    """The reply in `response` to `request`, sent to model `name` at `chat_url` (for messages)."""
    try:
        raw = strict_json.loads(response.content, max_depth=strict_json.EMBEDDED_MAX_DEPTH)
    except strict_json.JSONError as exc:  # a repeated key too: which message or verdict is meant cannot be known
        what = (
            "something that is not JSON" if isinstance(exc, strict_json.NotJSON) else f"JSON that cannot be used: {exc}"
        )
        snippet = scrub_text(response.text)[:300]
        raise TurnError(
            "llm_error",
            f"{name} at {chat_url} answered with {what}: {snippet!r}",
            detail={"status": response.status_code, "response": snippet},
        ) from None
    choices = raw.get("choices") if isinstance(raw, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    if choice is None:
        raise TurnError("llm_error", f"{name}: the answer had no choices", detail={"response": raw})
    usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else None
    finish_reason = choice.get("finish_reason")
    if finish_reason == "content_filter":
        raise TurnError(
            "content_filter",
            f"{name}: the answer was withheld by content filtering",
            detail={"response": raw, "request": request, "usage": usage},
        )
    message = choice.get("message")
    thinking = split_thinking(message if isinstance(message, dict) else {})
    # the reply becomes the simulated user's message to the app, a verdict or the app's answer: a
    # credential the server quoted back (its own key, echoed request headers) must go no further
    return ModelReply(
        content=scrub_text(thinking.content),
        raw=scrub(raw),
        request=scrub(request),
        usage=count_reasoning(usage, thinking.reasoning),
        finish_reason=finish_reason,
        reasoning=scrub_text(thinking.reasoning) if thinking.reasoning else None,
        thinking_cut_off=thinking.cut_off,
    )
