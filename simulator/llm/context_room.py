"""Fitting an answer into what the model's context leaves: vLLM and OpenAI refuse a request whose
messages fit the context but whose `max_tokens` does not (`4000 in the messages, 300 in the
completion`), and a user's next line needs far fewer tokens than a `max_tokens` set for any turn."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import context_overflow

if TYPE_CHECKING:
    import openai

#: the fewest tokens an answer is held to when the messages leave no room for `max_tokens`: fewer
#: than a user's line, and the conversation ends saying it outgrew the context instead
MIN_ANSWER_ROOM = 32


def _answer_limit(params: dict[str, Any]) -> tuple[str, int] | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return key, value
    return None


def answer_room(exc: openai.APIStatusError | openai.APIConnectionError, params: dict[str, Any]) -> int | None:
    """The answer's tokens that still fit when a refusal says the messages fit the context and only
    the `max_tokens` asked for does not (vLLM, OpenAI): a user's next line needs far fewer."""
    overflow = context_overflow(exc)
    room = overflow.room if overflow is not None else None
    limit = _answer_limit(params)
    if room is None or limit is None or not MIN_ANSWER_ROOM <= room < limit[1]:
        return None
    return room


def held_to(params: dict[str, Any], room: int | None) -> dict[str, Any]:
    """`params` with the answer's limit no more than `room` (None: as they are)."""
    limit = _answer_limit(params)
    if room is not None and limit is not None and limit[1] > room:
        params[limit[0]] = room
    return params
