"""Who plays the user: an LLM in persona, or a script of messages (offline, replays)."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, TurnError
from ..llm.models import OpenAIChatCompletionsModel
from ..llm.thinking import only_thinking
from ..persona import Persona

DONE = "done"
GAVE_UP = "gave_up"

_STOP = re.compile(r"#{2,}\s*STOP\s*#*", re.IGNORECASE)
_GIVE_UP = re.compile(r"#{2,}\s*GIVE[\s_-]*UP\s*#*", re.IGNORECASE)
_OTHER_ROLE_OPENING = re.compile(
    r"^\s*[\*\[]*\s*(assistant|agent|ai|bot|chatbot|system|support( agent)?|customer service)\s*[\*\]]*\s*:",
    re.IGNORECASE,
)
_ROLE_LINE = re.compile(
    r"\n\s*[\*\[]*\s*(assistant|agent|ai|bot|chatbot|system|support|user|customer)\s*[\*\]]*\s*:", re.IGNORECASE
)

#: the marker a scripted message carries for each signal (what `split_signal` reads back)
MARKERS = {DONE: "###STOP###", GAVE_UP: "###GIVE_UP###"}

KICKOFF = "[The chat window is open. Write your first message to the assistant.]"

ONLY_THINKING = "the reply was only thinking, with no message after it"
THINKING_CUT_OFF = " (max_tokens ran out while the model was still thinking)"


@dataclass
class UserMessage:
    """The user's next message, or a signal that the user is finished."""

    text: str
    signal: str | None = None  # None, DONE or GAVE_UP
    raw: Any = None
    request: Any = None
    usage: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    #: what a reasoning model thought before writing the message (never sent to the app)
    reasoning: str | None = None


def split_signal(text: str) -> tuple[str, str | None]:
    """Strip stop markers from a user message and say which one (if any) was there."""
    signal = None
    if _GIVE_UP.search(text):
        signal = GAVE_UP
    elif _STOP.search(text):
        signal = DONE
    cleaned = _STOP.sub("", _GIVE_UP.sub("", text)).strip()
    return cleaned, signal


def _strip_own_label(text: str, persona_name: str) -> str:
    labels = ["user", "customer", "me", re.escape(persona_name)]
    first_name = persona_name.split()[0] if persona_name.split() else persona_name
    labels.append(re.escape(first_name))
    pattern = re.compile(rf"^\s*[\*\[]*\s*({'|'.join(labels)})\s*[\*\]]*\s*:\s*", re.IGNORECASE)
    text = pattern.sub("", text, count=1).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def check_user_reply(text: str, persona_name: str, last_app_text: str | None) -> tuple[str, str | None, str | None]:
    """(cleaned text, signal, problem): a problem means the reply is not usable as the user's turn."""
    cleaned, signal = split_signal(text)
    cleaned = _strip_own_label(cleaned, persona_name)
    if not cleaned and signal is None:
        return cleaned, None, "the reply was empty"
    if _OTHER_ROLE_OPENING.match(cleaned):
        return cleaned, signal, "the reply spoke as the assistant (it opened with an assistant role label)"
    if _ROLE_LINE.search(cleaned):
        return cleaned, signal, "the reply wrote several speakers' lines instead of one user message"
    if last_app_text and cleaned and cleaned == last_app_text.strip():
        return cleaned, signal, "the reply repeated the assistant's last message"
    return cleaned, signal, None


class UserSide(ABC):
    """Produces the simulated user's messages."""

    @abstractmethod
    async def next_message(self, persona: Persona, task: str, history: list[dict[str, str]]) -> UserMessage:
        """The next user message; `history` holds the turns so far as `{role, content}` messages."""

    def describe(self) -> dict[str, Any]:
        return {"kind": type(self).__name__}

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most users hold nothing
        """Release connections held for the running event loop."""


class LLMUser(UserSide):
    """An LLM playing the persona, seeing the conversation from the user's side (roles swapped).

    Replies that are empty, only thinking, or speak as the assistant are asked for again
    (`invalid_reply_retries` times) with a note saying what was wrong, then fail the turn with
    reason `llm_error`. A reasoning model's thinking is never part of the message.
    """

    def __init__(self, model: OpenAIChatCompletionsModel, invalid_reply_retries: int = 2) -> None:
        self.model = model
        self.invalid_reply_retries = invalid_reply_retries

    def messages(self, persona: Persona, task: str, history: list[dict[str, str]]) -> list[dict[str, str]]:
        """The prompt: the persona's system prompt, then the conversation with roles swapped."""
        messages = [{"role": "system", "content": persona.render(task)}, {"role": "user", "content": KICKOFF}]
        for message in history:
            role = "assistant" if message["role"] == "user" else "user"
            messages.append({"role": role, "content": message["content"]})
        return messages

    async def next_message(self, persona: Persona, task: str, history: list[dict[str, str]]) -> UserMessage:
        messages = self.messages(persona, task, history)
        last_app = next((m["content"] for m in reversed(history) if m["role"] == "assistant"), None)
        problems: list[str] = []
        usage: dict[str, Any] = {}
        for _ in range(self.invalid_reply_retries + 1):
            reply = await self.model.complete(messages)
            _add_usage(usage, reply.usage)
            text, signal, problem = check_user_reply(reply.content, persona.name, last_app)
            if reply.only_thinking:
                # the thoughts are no message, and markers in them ("not ###STOP### yet") no signal
                problem = ONLY_THINKING + (THINKING_CUT_OFF if reply.thinking_cut_off else "")
            if problem is None:
                return UserMessage(
                    text=text,
                    signal=signal,
                    raw=reply.raw,
                    request=reply.request,
                    usage=usage or None,
                    notes=problems,
                    reasoning=reply.reasoning,
                )
            problems.append(problem)
            messages = [
                *self.messages(persona, task, history),
                {
                    "role": "system",
                    "content": f"Your previous reply was not usable: {problem}. Write only {persona.name}'s next "
                    "message to the assistant, in character, as plain text.",
                },
            ]
        advice = ""
        if any(p.startswith(ONLY_THINKING) for p in problems):
            limit = self.model.max_completion_tokens or self.model.max_tokens
            advice = ". " + only_thinking("The model", "message", limit, reply.thinking_cut_off)
        raise TurnError(
            "llm_error",
            f"the user model {self.model.name} gave no usable message after {len(problems)} tries: "
            + "; ".join(problems)
            + advice,
            detail={
                "response": reply.raw,
                "request": reply.request,
                "usage": usage or None,
                "reasoning": reply.reasoning,
            },
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": "llm", **self.model.describe()}

    async def aclose(self) -> None:
        await self.model.aclose()


def _add_usage(total: dict[str, Any], usage: dict[str, Any] | None) -> None:
    """Every try's tokens count, those of the replies asked for again too."""
    for key in ("prompt_tokens", "completion_tokens", "total_tokens", "reasoning_tokens"):
        value = (usage or {}).get(key)
        if isinstance(value, int):
            total[key] = total.get(key, 0) + value
    if (usage or {}).get("reasoning_tokens_estimated"):
        total["reasoning_tokens_estimated"] = True


class ScriptedUser(UserSide):
    """Plays fixed messages in order, with no LLM; ends the conversation when they run out.

    Build it from a list of strings, or from a previous `conversation_result` to replay its user
    side against a new version of the app.
    """

    def __init__(self, turns: Sequence[str]) -> None:
        if isinstance(turns, str) or not isinstance(turns, Sequence):
            raise ConfigError("ScriptedUser takes a list of messages (strings)")
        bad = [i for i, t in enumerate(turns) if not isinstance(t, str) or not t.strip()]
        if bad:
            raise ConfigError(f"ScriptedUser: message {bad[0]} is empty or not a string")
        if not turns:
            raise ConfigError("ScriptedUser: no messages to play")
        self.turns = list(turns)

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> ScriptedUser:
        """The user side of a previous conversation_result, ending the way it ended.

        Turns that failed are left out. A message that carried a stop marker gets it back (it was
        recorded without it), and a user who stopped with a marker alone stops again, so the
        replayed app gets no extra turn: a `user_done` conversation replays as `user_done`.
        """
        if not isinstance(result, Mapping) or not isinstance(result.get("conversation"), list):
            raise ConfigError("ScriptedUser.from_result needs a conversation_result with a 'conversation' list")
        turns = []
        signalled = False
        for turn in result["conversation"]:
            if not isinstance(turn, Mapping) or turn.get("actor") != "user" or turn.get("error"):
                continue
            marker = MARKERS.get(turn.get("stop_signal") or "")
            if turn.get("response"):
                turns.append(f"{turn['response']} {marker}" if marker else turn["response"])
                signalled = signalled or bool(marker)
        ended = (result.get("meta_data") or {}).get("stop_reason")
        if not signalled and ended in ("user_done", "user_gave_up"):
            turns.append(MARKERS[DONE if ended == "user_done" else GAVE_UP])
        if not turns:
            raise ConfigError("ScriptedUser.from_result: the conversation has no user turns to replay")
        return cls(turns)

    async def next_message(self, persona: Persona, task: str, history: list[dict[str, str]]) -> UserMessage:
        index = sum(1 for m in history if m["role"] == "user")
        if index >= len(self.turns):
            return UserMessage(text="", signal=DONE, notes=["scripted messages finished"])
        text, signal = split_signal(self.turns[index])
        return UserMessage(
            text=text,
            signal=signal,
            raw={"scripted": True, "index": index, "content": self.turns[index]},
            request={"scripted_turn": index},
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": "scripted", "turns": len(self.turns)}

    def turns_needed(self) -> int:
        """How many turns the whole script takes (see `script_turns`)."""
        return script_turns(self.turns)


def script_turns(messages: Sequence[str]) -> int:
    """The turns a script plays to its end: each message and the app's reply to it, up to the first
    message with a stop marker (the app is not asked after it; a marker alone is no turn at all)."""
    for index, message in enumerate(messages):
        text, signal = split_signal(message)
        if signal:
            return 2 * index + (1 if text else 0)
    return 2 * len(messages)
