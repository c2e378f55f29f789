"""Simulator: the turn loop that plays one persona against one app and records everything."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from ..aio.deadlines import deadline
from ..aio.event_loops import run_sync
from ..errors import ConfigError, TurnError
from ..llm.models import OpenAIChatCompletionsModel
from ..persona import Persona
from ..records import ConversationResult, ErrorRecord, Turn
from ..records.history_refs import compact_request
from ..records.result import ASSISTANT, USER, ConversationRecorder
from ..targets import CallbackTarget, ModelTarget, Target
from ..targets.base import AppReply
from ..text.known_secrets import scrub, scrub_text
from ..text.unicode_safety import replace_lone_surrogates, surrogate_note
from .users import DONE, LLMUser, ScriptedUser, UserMessage, UserSide

T = TypeVar("T")
DEFAULT_TURN_TIMEOUT = 300.0
#: The longest app reply a result keeps. A reply of megabytes is an app bug to report, not text to
#: carry into every later request, the user model's prompt, conversations.jsonl and the reports: a
#: longer reply is cut to this many characters (its raw answer too), the conversation goes on with
#: the cut text, and the turn says so in `notes` and `reply_chars` (the full length). Not an error:
#: the checks judge what was kept.
MAX_REPLY_CHARS = 100_000


class ConversationCancelled(asyncio.CancelledError):
    """A conversation was cancelled (Ctrl-C, SIGTERM); it carries what was recorded up to then."""

    def __init__(self, partial_result: ConversationResult) -> None:
        super().__init__("the conversation was cancelled")
        self.partial_result = partial_result


def as_user_side(connection: Any, where: str = "userConnection") -> UserSide:
    """A model plays the persona; a ScriptedUser (or a list of messages) plays fixed turns."""
    if isinstance(connection, UserSide):
        return connection
    if isinstance(connection, OpenAIChatCompletionsModel):
        return LLMUser(connection)
    if isinstance(connection, (list, tuple)):
        return ScriptedUser(list(connection))
    raise ConfigError(
        f"{where} must be an OpenAIChatCompletionsModel or a ScriptedUser, got {type(connection).__name__}"
    )


def as_target(connection: Any, where: str = "systemConnection") -> Target:
    """A model, a connector or a callback plays the app."""
    if isinstance(connection, Target):
        return connection
    if isinstance(connection, OpenAIChatCompletionsModel):
        return ModelTarget(connection)
    if callable(connection):
        return CallbackTarget(connection)
    raise ConfigError(
        f"{where} must be an OpenAIChatCompletionsModel, an app connector or a callback, "
        f"got {type(connection).__name__}"
    )


def bounded_reply(text: str, raw: Any) -> tuple[str, Any, dict[str, Any]]:
    """The reply text and raw answer as a result keeps them, and the turn's note when they were cut."""
    if len(text) <= MAX_REPLY_CHARS:
        if (
            isinstance(raw, (dict, list))
            and len(json.dumps(raw, ensure_ascii=False, default=str)) > 2 * MAX_REPLY_CHARS
        ):
            # a short reply inside a huge answer (a debug dump, a long context): keep the reply, cut the rest
            return text, _bounded_raw(raw), {"notes": ["the app's raw answer was cut to keep the result small"]}
        return text, raw, {}
    note = f"the app's reply was {len(text):,} characters; it was cut to the first {MAX_REPLY_CHARS:,}"
    return text[:MAX_REPLY_CHARS], _bounded_raw(raw), {"notes": [note], "reply_chars": len(text)}


def _cut_strings(node: Any) -> Any:
    if isinstance(node, str):
        return node if len(node) <= MAX_REPLY_CHARS else node[:MAX_REPLY_CHARS] + "…"
    if isinstance(node, dict):
        return {key: _cut_strings(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_cut_strings(value) for value in node]
    return node


def _bounded_raw(raw: Any) -> Any:
    """Long strings cut, so the raw answer keeps its shape (reply_schema still checks it); a raw answer
    still too big (a stream of many small events) is replaced by its beginning."""
    cut = _cut_strings(raw)
    text = json.dumps(cut, ensure_ascii=False, default=str)
    if len(text) <= 2 * MAX_REPLY_CHARS:
        return cut
    kept = {"cut": f"the raw answer was {len(text):,} characters; its first {MAX_REPLY_CHARS:,} are kept"}
    if isinstance(raw, dict) and "status" in raw:
        kept["status"] = raw["status"]
    return {**kept, "head": text[:MAX_REPLY_CHARS]}


def _one_of(camel: str, camel_value: Any, snake: str, snake_value: Any) -> Any:
    if camel_value is not None and snake_value is not None:
        raise ConfigError(f"Simulator: give {camel} or {snake}, not both")
    return camel_value if camel_value is not None else snake_value


class Simulator:
    """Plays a persona (the user side) against an app (the system side).

    Accepted forms, as in the reference how-to:
      Simulator(systemConnection=app_model, userConnection=user_model)
      Simulator(simulate_callback=fn, userConnection=user_model)
      Simulator(systemConnection=user_model, simulate_callback=fn)   # the one model plays the user
    snake_case spellings (system_connection, user_connection) work too.
    """

    def __init__(
        self,
        systemConnection: Any = None,  # noqa: N803 - the reference API's spelling
        userConnection: Any = None,  # noqa: N803
        simulate_callback: Callable[..., Any] | None = None,
        *,
        system_connection: Any = None,
        user_connection: Any = None,
        app_system_prompt: str | None = None,
        turn_timeout: float | None = DEFAULT_TURN_TIMEOUT,
    ) -> None:
        system = _one_of("systemConnection", systemConnection, "system_connection", system_connection)
        user = _one_of("userConnection", userConnection, "user_connection", user_connection)
        if simulate_callback is not None:
            if not callable(simulate_callback):
                raise ConfigError(f"simulate_callback must be callable, got {type(simulate_callback).__name__}")
            if system is not None and user is not None:
                raise ConfigError(
                    "Simulator: systemConnection, userConnection and simulate_callback were all given, so it is "
                    "unclear what answers as the app. Pass simulate_callback with userConnection (the callback "
                    "is the app), or systemConnection with userConnection (the model is the app)."
                )
            user = user if user is not None else system
            self.app: Target = CallbackTarget(simulate_callback)
        else:
            if system is None:
                raise ConfigError(
                    "Simulator: nothing plays the app; pass systemConnection=<model> or simulate_callback=<function>"
                )
            self.app = as_target(system)
            if app_system_prompt and isinstance(self.app, ModelTarget):
                self.app.system_prompt = app_system_prompt
        if user is None:
            raise ConfigError(
                "Simulator: nothing plays the user; pass userConnection=<model> (or a ScriptedUser for fixed turns)"
            )
        self.user: UserSide = as_user_side(user)
        if turn_timeout is not None and turn_timeout <= 0:
            raise ConfigError("Simulator: turn_timeout must be positive seconds (or None for no limit)")
        self.turn_timeout = turn_timeout

    # --- public API ---------------------------------------------------------------------

    async def simulate_async(
        self,
        persona: Persona | str,
        task: str,
        max_conversation_turns: int = 6,
        *,
        conversation_id: str | None = None,
        meta_data: dict[str, Any] | None = None,
        keep_open: bool = False,
    ) -> ConversationResult:
        """Run one conversation; always returns a conversation_result, errors recorded in it.

        With `keep_open` the app side keeps what it learned (session id, cookies) for requests that
        follow the conversation (outcome checks, teardown); the caller then ends it with
        `self.app.end_conversation(conversation_id)`.
        """
        persona = persona if isinstance(persona, Persona) else Persona.load(persona)
        if not isinstance(task, str) or not task.strip():
            raise ConfigError("simulate: task must be a non-empty string saying what the persona wants")
        if (
            isinstance(max_conversation_turns, bool)
            or not isinstance(max_conversation_turns, int)
            or (max_conversation_turns < 1)
        ):
            raise ConfigError(
                f"simulate: max_conversation_turns must be a whole number >= 1, got {max_conversation_turns!r}"
            )
        task, replaced = replace_lone_surrogates(task)
        notes = [*persona.notes, *([surrogate_note(replaced, "the task")] if replaced else [])]
        if notes:  # after those the caller's meta_data brought (e.g. a manifest's)
            meta_data = {**(meta_data or {}), "notes": [*(meta_data or {}).get("notes", []), *notes]}
        recorder = ConversationRecorder(
            conversation_id=conversation_id or str(uuid.uuid4()),
            persona=persona.to_dict(),
            task=task,
            max_conversation_turns=max_conversation_turns,
            user=self.user.describe(),
            app=self.app.describe(),
            extra_meta=meta_data,
        )
        try:
            return await self._converse(recorder, persona, task, max_conversation_turns)
        except asyncio.CancelledError as exc:
            # the caller decides whether an interrupted conversation is kept; give it the record
            partial = recorder.finish("cancelled", "the run was interrupted before this conversation ended")
            raise ConversationCancelled(partial) from exc
        finally:
            if not keep_open:
                await self.app.end_conversation(recorder.conversation_id)

    def simulate(
        self,
        persona: Persona | str,
        task: str,
        max_conversation_turns: int = 6,
        **kwargs: Any,
    ) -> ConversationResult:
        """Blocking form of `simulate_async`; works inside a running event loop too (notebooks)."""

        async def run() -> ConversationResult:
            try:
                return await self.simulate_async(persona, task, max_conversation_turns, **kwargs)
            finally:
                await self.aclose()

        return run_sync(run)

    async def aclose(self) -> None:
        """Close connections opened for the running event loop."""
        await self.user.aclose()
        await self.app.aclose()

    # --- the loop -----------------------------------------------------------------------

    async def _timed(self, awaitable: Awaitable[T], actor: str) -> T:
        if self.turn_timeout is None:
            return await awaitable
        try:
            # the clock stops while the turn waits for a rate limit to lift (bounded by rate_limit_wait)
            return await deadline(awaitable, self.turn_timeout, pausable=True)
        except asyncio.TimeoutError:
            who = "the app" if actor == ASSISTANT else "the user model"
            raise TurnError("timeout", f"{who} gave no answer within {self.turn_timeout:g} s") from None

    async def _converse(
        self, recorder: ConversationRecorder, persona: Persona, task: str, max_turns: int
    ) -> ConversationResult:
        while len(recorder.turns) < max_turns:
            history = recorder.history()
            actor = USER if len(history) % 2 == 0 else ASSISTANT
            # the turns the request repeats: the user model sees them all, the app all but its question
            shown = recorder.history_turns()[: len(history) if actor == USER else len(history) - 1]
            started = time.monotonic()
            try:
                if actor == USER:
                    message = await self._timed(self.user.next_message(persona, task, history), USER)
                else:
                    meta = {
                        "conversation_id": recorder.conversation_id,
                        "turn_number": len(recorder.turns),
                        "persona": persona.name,
                        "task": task,
                        "persona_meta_data": persona.meta_data,
                    }
                    reply = await self._timed(self.app.respond(history[-1]["content"], history[:-1], meta), ASSISTANT)
            except TurnError as err:
                return self._fail(recorder, actor, err, started, shown)
            except Exception as exc:  # a bug in a connector must not lose the conversation
                failure = TurnError("app_error" if actor == ASSISTANT else "llm_error", f"{type(exc).__name__}: {exc}")
                return self._fail(recorder, actor, failure, started, shown)
            latency = (time.monotonic() - started) * 1000
            if actor == USER:
                ended = self._record_user(recorder, message, latency, shown)
                if ended is not None:
                    return ended
            else:
                if not reply.text.strip():
                    empty = TurnError("app_error", "the app's reply was empty", detail={"response": reply.raw})
                    return self._fail(recorder, actor, empty, started, shown, request=reply.request, usage=reply.usage)
                self._record_app(recorder, reply, latency, shown)
        detail = f"reached max_conversation_turns={max_turns}"
        if isinstance(self.user, ScriptedUser) and self.user.turns_needed() > max_turns:
            needed = self.user.turns_needed()
            detail += f"; script cut at turn {max_turns} of {needed} (max_turns: {needed} plays it all)"
        return recorder.finish("max_turns", detail)

    @staticmethod
    def _record_user(
        recorder: ConversationRecorder, message: UserMessage, latency: float, shown: list[Turn]
    ) -> ConversationResult | None:
        """Record the user's message; the finished result when it ended the conversation."""
        extra: dict[str, Any] = {}
        (message.text, message.raw, message.reasoning), replaced = replace_lone_surrogates(
            (message.text, message.raw, message.reasoning)
        )
        if replaced:
            message.notes = [*message.notes, surrogate_note(replaced, "the user model's message")]
        if message.signal:
            extra["stop_signal"] = message.signal
        if message.reasoning:
            extra["reasoning"] = scrub_text(message.reasoning)
        if message.notes:
            extra["notes"] = message.notes
        # the message goes to the app next: a credential in it (an LLM echoing its request's
        # headers, a custom user side quoting a key) must not reach the app
        text = scrub_text(message.text)
        if text:
            request = compact_request(message.request, shown)
            recorder.add_turn(USER, request, text, message.raw, latency, message.usage, **extra)
        if not message.signal:
            return None
        reason = "user_done" if message.signal == DONE else "user_gave_up"
        detail = "; ".join(message.notes) or f"the simulated user signalled {message.signal}"
        return recorder.finish(reason, detail)

    @staticmethod
    def _record_app(recorder: ConversationRecorder, reply: AppReply, latency: float, shown: list[Turn]) -> None:
        # scrubbed before the cut, and before the user model sees the reply in its prompt
        text, raw, extra = bounded_reply(scrub_text(reply.text), scrub(reply.raw))
        if reply.notes:
            extra["notes"] = [*reply.notes, *extra.get("notes", [])]
        reasoning = _cut_strings(scrub_text(reply.reasoning)) if reply.reasoning else None
        (text, raw, reasoning), replaced = replace_lone_surrogates((text, raw, reasoning))
        if replaced:
            extra["notes"] = [*extra.get("notes", []), surrogate_note(replaced, "the app's reply")]
        if reply.latency_ms is not None:  # the app's own time, told apart by the target
            latency = reply.latency_ms
        if reply.connect_ms is not None:
            extra["connect_ms"] = round(reply.connect_ms, 3)
        if reasoning:
            extra["reasoning"] = reasoning
        request = compact_request(reply.request, shown)
        recorder.add_turn(ASSISTANT, request, text, raw, latency, reply.usage, **extra)

    @staticmethod
    def _fail(
        recorder: ConversationRecorder,
        actor: str,
        err: TurnError,
        started: float,
        shown: list[Turn],
        request: Any = None,
        usage: dict[str, Any] | None = None,
    ) -> ConversationResult:
        reason = err.reason
        if actor == ASSISTANT and reason == "llm_error":
            reason = "app_error"  # the model behind the app failed: that is the app failing
        detail = dict(err.detail)
        raw = detail.pop("response", None)
        request = compact_request(detail.pop("request", request), shown)
        usage = detail.pop("usage", usage)
        reasoning = detail.pop("reasoning", None)
        error = cast(
            ErrorRecord,
            {
                "reason": reason,
                "message": str(err),
                "actor": actor,
                "turn_number": len(recorder.turns),
                "fatal": err.fatal,
                **detail,
            },
        )
        latency = (time.monotonic() - started) * 1000
        thoughts = {"reasoning": reasoning} if isinstance(reasoning, str) and reasoning else {}
        recorder.add_turn(actor, request, "", raw, latency, usage, error=error, **thoughts)
        return recorder.finish(reason, str(err), error=error)
