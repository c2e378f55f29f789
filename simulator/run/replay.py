"""Paired replays: the same users on both sides of a comparison.

An LLM-played user samples differently every run, so two runs differ even when the app did not
change. Replaying a baseline run's user messages removes that noise: each conversation plays the
baseline's user messages (same simulation, same repeat index) for as long as the app's replies
are the same as in the baseline; at the first different reply the live user side (the LLM) takes
over from that history. A replay of an unchanged app costs no LLM call and ends the way the
baseline did.

Each result records `meta_data.replay`: whether the conversation was `identical` to the
baseline's, where it diverged (`diverged_at_turn`, the first app turn whose reply differed, and
why), and the user messages replayed (`llm_calls_saved`) and played live (`llm_calls_made`).

An identical conversation is the base conversation again, so the judge need not see it again: its
judge checks whose configuration is unchanged take the base run's verdicts (`base_verdicts`,
decided check by check in `simulator.checks.reuse`), and an unchanged app and manifest cost no LLM
call at all.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..checks.reuse import BaseVerdicts
from ..conversation.users import ScriptedUser, UserMessage, UserSide, split_signal
from ..errors import ConfigError
from ..persona import Persona
from ..records import ConversationResult
from ..results.reading import iter_results

MATCHES = ("exact", "whitespace")
#: why a conversation played live from its start: its simulation's persona or task changed
OTHER_USER = "the persona or task differs from the baseline's"


@dataclass(frozen=True)
class ReplyMatcher:
    """When two app replies count as the same: exactly, or up to whitespace and case, with parts
    matching `ignore` (ids, dates, timestamps the app makes afresh) masked on both sides."""

    match: str = "exact"
    ignore: tuple[str, ...] = ()
    _patterns: tuple[re.Pattern[str], ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.match not in MATCHES:
            raise ConfigError(f"replay match: {self.match!r} is not one of {', '.join(MATCHES)}")
        patterns = []
        for pattern in self.ignore:
            try:
                patterns.append(re.compile(pattern))
            except re.error as exc:
                raise ConfigError(f"replay ignore: {pattern!r} is not a valid regular expression: {exc}") from None
        object.__setattr__(self, "_patterns", tuple(patterns))

    def key(self, text: str) -> str:
        for pattern in self._patterns:
            text = pattern.sub("\x00", text)
        return " ".join(text.split()).casefold() if self.match == "whitespace" else text

    def same(self, new: str, old: str) -> bool:
        return new == old or self.key(new) == self.key(old)


def _filled(fields: Mapping[str, Any]) -> dict[str, Any]:
    """A persona's fields without the empty ones (None, "", {}, [])."""
    return {key: value for key, value in fields.items() if value not in (None, "", {}, [])}


@dataclass(frozen=True)
class ReplayScript:
    """One baseline conversation as a replay needs it: its user messages (stop markers restored)
    and the app's reply to each."""

    user_messages: tuple[str, ...]
    app_replies: tuple[str, ...]
    stop_reason: str
    #: the persona (as `Persona.to_dict`) and task the baseline's user played; None when not recorded
    persona: Any = None
    task: str | None = None
    #: the baseline's check results that carry a fingerprint (`config_sha`): what a replay may reuse
    verdicts: tuple[Mapping[str, Any], ...] = ()

    def plays(self, persona: Persona, task: str) -> bool:
        """Whether these messages were a user with this persona and task: a user of another one
        would say other things, so its messages say nothing about how the app answers this one.
        Empty fields do not count (a base run recorded by another version may leave them out)."""
        if self.task is not None and self.task != task:
            return False
        now = json.loads(json.dumps(persona.to_dict(), default=str))
        return self.persona is None or _filled(self.persona) == _filled(now)

    @classmethod
    def from_result(cls, result: Mapping[str, Any]) -> ReplayScript | None:
        """None for a baseline conversation with no user message to replay."""
        try:
            messages = ScriptedUser.from_result(result).turns
        except ConfigError:
            return None
        replies = tuple(
            str(turn.get("response", ""))
            for turn in result["conversation"]
            if isinstance(turn, Mapping) and turn.get("actor") == "assistant" and not turn.get("error")
        )
        meta = result.get("meta_data") or {}
        task = meta.get("task")
        evaluation = result.get("evaluation")
        checks = evaluation.get("checks") if isinstance(evaluation, Mapping) else None
        return cls(
            tuple(messages),
            replies,
            str(meta.get("stop_reason", "")),
            persona=meta.get("persona") if isinstance(meta.get("persona"), Mapping) else None,
            task=task if isinstance(task, str) else None,
            verdicts=tuple(
                check
                for check in (checks if isinstance(checks, list) else [])
                if isinstance(check, Mapping) and isinstance(check.get("config_sha"), str)
            ),
        )


class ReplayBook:
    """The baseline run's conversations by (simulation, repeat index), read once from its folder."""

    def __init__(self, scripts: Mapping[tuple[str, int], ReplayScript], source: str, matcher: ReplyMatcher) -> None:
        self.scripts = dict(scripts)
        self.source = source
        self.matcher = matcher

    @classmethod
    def load(cls, folder: str | Path, matcher: ReplyMatcher | None = None) -> ReplayBook:
        """Read `folder`'s conversations.jsonl (a results folder, e.g. a downloaded artifact)."""
        path = Path(folder)
        results = path / "conversations.jsonl" if path.is_dir() else path
        if not results.is_file():
            raise ConfigError(f"--replay {folder}: no conversations.jsonl there; give a results folder of a run")
        return cls.from_results(iter_results(results), str(folder), matcher or ReplyMatcher())

    @classmethod
    def from_results(
        cls, results: Iterable[ConversationResult], source: str, matcher: ReplyMatcher | None = None
    ) -> ReplayBook:
        scripts: dict[tuple[str, int], ReplayScript] = {}
        for result in results:
            meta = result.get("meta_data") or {}
            simulation, repeat = meta.get("simulation"), meta.get("repeat")
            script = ReplayScript.from_result(result)
            if isinstance(simulation, str) and isinstance(repeat, int) and script is not None:
                scripts[(simulation, repeat)] = script
        return cls(scripts, source, matcher or ReplyMatcher())

    def user_for(self, simulation: str, repeat: int, live: UserSide) -> UserSide:
        """The user side of one conversation: a replay when the baseline has it, else `live` as is."""
        script = self.scripts.get((simulation, repeat))
        return live if script is None else PairedUser(script, live, self.matcher, self.source)


class PairedUser(UserSide):
    """Replays one baseline conversation's user messages while the app answers as it did, then hands
    over to the live user side. One per conversation: it keeps where that conversation stands."""

    def __init__(self, script: ReplayScript, live: UserSide, matcher: ReplyMatcher, source: str) -> None:
        self.script = script
        self.live = live
        self.matcher = matcher
        self.source = source
        self.replayed = 0
        self.played_live = 0
        self.took_over: tuple[int, str] | None = None  # (turn number, why) where the live side took over

    async def next_message(self, persona: Persona, task: str, history: list[dict[str, str]]) -> UserMessage:
        if self.took_over is None and not self.replayed and not self.script.plays(persona, task):
            self.took_over = (len(history), OTHER_USER)
        if self.took_over is None:
            self.took_over = self._why_not_replay(history)
        if self.took_over is not None:
            self.played_live += 1
            return await self.live.next_message(persona, task, history)
        index = sum(1 for message in history if message["role"] == "user")
        text, signal = split_signal(self.script.user_messages[index])
        self.replayed += 1
        return UserMessage(
            text=text,
            signal=signal,
            raw={"replayed": True, "index": index, "from": self.source},
            request={"replayed_turn": index},
        )

    def _why_not_replay(self, history: Sequence[Mapping[str, str]]) -> tuple[int, str] | None:
        index = sum(1 for message in history if message["role"] == "user")
        if index and history[-1]["role"] == "assistant":
            replies = self.script.app_replies
            if index > len(replies) or not self.matcher.same(history[-1]["content"], replies[index - 1]):
                return len(history) - 1, "the app's reply differs from the baseline's"
        if index >= len(self.script.user_messages):
            return len(history), "the baseline conversation had ended here"
        return None

    def record(self, result: ConversationResult) -> None:
        """Write `meta_data.replay` into the finished conversation."""
        result["meta_data"]["replay"] = self.summary(result)

    def base_verdicts(self, result: ConversationResult) -> BaseVerdicts | None:
        """The baseline's verdicts its checks may take over: only for a conversation `record` found
        identical to the baseline's (the same user messages, the same app replies, the same end)."""
        replay = result["meta_data"].get("replay")
        if not isinstance(replay, Mapping) or replay.get("identical") is not True:
            return None
        return BaseVerdicts(self.script.verdicts) or None

    def summary(self, result: ConversationResult) -> dict[str, Any]:
        """What `meta_data.replay` records for the finished conversation."""
        replies = [
            (turn["turn_number"], turn["response"])
            for turn in result["conversation"]
            if turn["actor"] == "assistant" and not turn.get("error")
        ]
        # a user with another persona or task played from the start: the replies are not comparable
        diverged = self.took_over if self.took_over is not None and self.took_over[1] == OTHER_USER else None
        for (turn_number, new), old in zip(replies, self.script.app_replies, strict=False):
            if diverged is None and not self.matcher.same(new, old):
                diverged = (turn_number, "the app's reply differs from the baseline's")
        stop_reason = result["meta_data"]["stop_reason"]
        if diverged is None and (
            len(replies) != len(self.script.app_replies) or stop_reason != self.script.stop_reason
        ):
            diverged = self.took_over or (len(result["conversation"]), "the conversation ended differently")
        record: dict[str, Any] = {
            "from": self.source,
            "identical": diverged is None,
            "llm_calls_saved": self.replayed,
            "llm_calls_made": 0 if isinstance(self.live, ScriptedUser) else self.played_live,
        }
        if diverged is not None:
            record["diverged_at_turn"], record["diverged_because"] = diverged
        return record

    def describe(self) -> dict[str, Any]:
        return self.live.describe()

    async def aclose(self) -> None:
        return None  # the live side is shared by every conversation of its simulation: the run closes it


class ReplayTally:
    """The run's replay totals, for `run.replay` in summary.json: the replayed conversations, the
    user messages they replayed and played live, the judge verdicts they reused (`judge_calls_saved`),
    and what the whole run asked of the judge (`judge_calls_made`) and of any model (`llm_calls_total`,
    conversations the baseline lacks included), set by `calls` when the run ends."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.counts = {
            "conversations": 0,
            "identical": 0,
            "diverged": 0,
            "llm_calls_saved": 0,
            "llm_calls_made": 0,
            "judge_calls_saved": 0,
            "judge_calls_made": 0,
            "llm_calls_total": 0,
        }

    def add(self, result: ConversationResult) -> None:
        """Count a replayed conversation, once it is judged."""
        replay = result["meta_data"].get("replay")
        if not isinstance(replay, Mapping):
            return
        self.counts["conversations"] += 1
        self.counts["identical" if replay.get("identical") else "diverged"] += 1
        self.counts["llm_calls_saved"] += int(replay.get("llm_calls_saved", 0))
        self.counts["llm_calls_made"] += int(replay.get("llm_calls_made", 0))
        checks = (result.get("evaluation") or {}).get("checks") or []
        self.counts["judge_calls_saved"] += sum(1 for check in checks if check.get("reused_from_baseline") is True)

    def calls(self, user: int, judge: int) -> None:
        """The completions the run asked of the user models and of the judge."""
        self.counts["judge_calls_made"] = judge
        self.counts["llm_calls_total"] = user + judge

    @property
    def totals(self) -> dict[str, Any]:
        return {"from": self.source, **self.counts}
