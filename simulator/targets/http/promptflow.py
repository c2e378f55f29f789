"""Prompt flow's chat endpoint: the user's message and the earlier turns in, the reply out, each
under the flow's own name.

A chat flow names its chat input, chat history and chat output itself: `question`, `chat_history`
and `answer` in Prompt flow's own template, `chat_input`, `chat_history` and `chat_output` in many
others. A turn sends `{<input>: <message>, <history>: [<pair>, ...]}`, each earlier exchange as
the pair `{"inputs": {<input>: <user>}, "outputs": {<output>: <reply>}}` (the flow reads its
history by these names), and reads the reply at `<output>`.

The manifest may give the names (`promptflow: {input, history, output}`). Those it does not give
are read once per target, before the first request, from the `/swagger.json` the flow's serving
app publishes beside `/score` (`promptflow_swagger`). Where that document is missing or does not
mark a name, Prompt flow's defaults are used (a warning says what to set, unless the endpoint
publishes no swagger at all, or the flow lists the default name itself); a flow whose only input is
its chat input (a standard question/answer flow) gets the message alone, no history. If the app then
refuses the request for an input it misses, the turn's error names the setting.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...aio.event_loops import PerLoop
from ...records.history_refs import PROMPTFLOW_INPUT, PROMPTFLOW_OUTPUT, promptflow_pairs
from ...text import known_secrets
from .format import HttpFormat, PrepareSettings
from .problems import Problems
from .promptflow_swagger import MARKS, FlowNames, SwaggerUnreadable, fetch_flow_names, swagger_url

if TYPE_CHECKING:
    import aiohttp

log = known_secrets.scrub_logs(logging.getLogger("simulator.targets.http.promptflow"))

#: the names used when neither the manifest nor the flow's swagger gives them
DEFAULT_NAMES = {"input": PROMPTFLOW_INPUT, "history": "chat_history", "output": PROMPTFLOW_OUTPUT}
#: what each name is, for messages
ROLES = {
    "input": "the flow input that takes the user's message",
    "history": "the flow input that takes the earlier turns",
    "output": "the flow output that holds the reply",
}
#: Prompt flow's answer when a required flow input is not in the request (HTTP 400, error.message)
MISSING_INPUTS = re.compile(r"Required input fields \[([^\]]*)\] are missing")


class PromptflowFormat(HttpFormat):
    """The history goes as Prompt flow's pairs, under the flow's names: configured, read from its
    swagger, or Prompt flow's defaults."""

    name = "promptflow"
    keys = ("promptflow",)
    default_response = stream_response = PROMPTFLOW_OUTPUT

    def __init__(self, names: Mapping[str, str] | None = None, source: str = "target") -> None:
        #: the names the manifest gives; the others are looked up before the first request
        self.configured = dict(names or {})
        self.source = source
        self.names = {**DEFAULT_NAMES, **self.configured}
        #: where each name came from: "manifest", "swagger" or "default"
        self.origins = {role: "manifest" if role in self.configured else "default" for role in DEFAULT_NAMES}
        # the reply is at the chat output, whole in a JSON answer and piece by piece in each event of a
        # stream (Prompt flow's streaming mode sends `data: {"<output>": "<piece>"}`)
        self.default_response = self.stream_response = self.names["output"]
        #: False for a flow with no chat history input (a standard question/answer flow): the message goes alone
        self.sends_history = True
        self._ready = len(self.configured) == len(DEFAULT_NAMES)
        self._locks: PerLoop[asyncio.Lock] = PerLoop(asyncio.Lock)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str, problems: Problems) -> HttpFormat | None:
        where = f"{source}.promptflow"
        given = config.get("promptflow")
        if given is None:
            return cls(source=source)
        if not isinstance(given, Mapping):
            problems.add(
                ("promptflow",),
                f"{where}: must be a mapping of the flow's names, e.g. "
                "{input: chat_input, history: chat_history, output: chat_output}",
            )
            return None
        found = len(problems)
        unknown = sorted(str(key) for key in set(given) - set(DEFAULT_NAMES))
        if unknown:
            problems.add(
                ("promptflow", unknown[0]),
                f"{where}: unknown field(s) {', '.join(unknown)}; use input, history, output",
            )
        names: dict[str, str] = {}
        for role in DEFAULT_NAMES:
            value = given.get(role)
            if value is None:
                continue
            if not isinstance(value, str) or not value.strip() or value != value.strip():
                problems.add(
                    ("promptflow", role),
                    f"{where}.{role}: must be the name of {ROLES[role]} (a non-empty string without "
                    f"surrounding spaces), e.g. {DEFAULT_NAMES[role]}; got {value!r}",
                )
                continue
            names[role] = value
        if "input" in names and names.get("history") == names["input"]:
            problems.add(
                ("promptflow", "history"),
                f"{where}.history: must differ from {where}.input (both {names['input']!r}): the message and "
                "the earlier turns are two inputs of the flow",
            )
        if len(problems) > found:
            return None
        return cls(names, source)

    def body(self, question: str, history: list[dict[str, str]], values: Mapping[str, Any], session: bool) -> Any:
        names = self.names
        if not self.sends_history:
            return {names["input"]: question}
        return {names["input"]: question, names["history"]: promptflow_pairs(history, names["input"], names["output"])}

    # --- the flow's names, read once per target before its first request ------------------------

    async def prepare(self, session: aiohttp.ClientSession, settings: PrepareSettings) -> None:
        if self._ready:
            return
        async with self._locks.get():
            if self._ready:  # another conversation read them while this one waited
                return
            try:
                found = await fetch_flow_names(
                    session, settings.url, settings.headers, settings.timeout, settings.retry
                )
            except SwaggerUnreadable as exc:
                self._fall_back(str(exc), exc.absent)
            else:
                self._adopt(found, settings.url)
            self._ready = True

    def _missing(self) -> list[str]:
        return [role for role in DEFAULT_NAMES if role not in self.configured]

    def _setting(self, roles: list[str]) -> str:
        """Which fields to set for the names `roles`, each with what it is."""
        return ", ".join(f"{self.source}.promptflow.{role} ({ROLES[role]})" for role in roles)

    def _fall_back(self, why: str, absent: bool) -> None:
        """No swagger to read: Prompt flow's defaults for every name not configured.

        A warning when the swagger failed; only a note when the endpoint publishes none (an app of its
        own in Prompt flow's shape): a flow that names its fields otherwise refuses the first request,
        and that error says which names to set."""
        roles = self._missing()
        used = ", ".join(f"{role} {self.names[role]!r}" for role in roles)
        (log.info if absent else log.warning)(
            "%s: the flow's names could not be read (%s); using Prompt flow's defaults (%s): if the flow names "
            "them otherwise, set %s",
            self.source,
            why,
            used,
            self._setting(roles),
        )

    def _adopt(self, found: FlowNames, url: str) -> None:
        """The swagger's names for every name not configured; a warning for each it does not mark, and for
        a configured name the flow does not have.

        An unmarked name whose default the flow lists (a standard flow's `question` and `answer`) is the
        flow's own. A flow whose only input is its chat input has no chat history: the message goes alone,
        without a word."""
        shown = swagger_url(url)
        unmarked = []
        for role in DEFAULT_NAMES:
            kind = "outputs" if role == "output" else "inputs"
            listed = found.outputs if role == "output" else found.inputs
            if role in self.configured:
                given = self.configured[role]
                if listed and given not in listed:
                    log.warning(
                        "%s.promptflow.%s: %r is not one of the flow's %s (%s lists %s); the flow %s",
                        self.source,
                        role,
                        given,
                        kind,
                        shown,
                        ", ".join(listed),
                        "answers without it" if role == "output" else "ignores it",
                    )
                continue
            name = found.get(role)
            if name is None and self.names[role] in listed:
                name = self.names[role]  # unmarked, but the default is the flow's own
            if name is not None:
                self.names[role] = name
                self.origins[role] = "swagger"
            else:
                unmarked.append(role)
        if "history" in unmarked and found.inputs and set(found.inputs) == {self.names["input"]}:
            unmarked.remove("history")
            self.sends_history = False
        if unmarked:
            log.warning(
                "%s: %s names no %s (no %s: no flow field has %s); the flow's inputs: %s; its outputs: %s; using %s: "
                "if the flow names them otherwise, set %s",
                self.source,
                shown,
                ", ".join(f"chat {role}" for role in unmarked),
                ", ".join(MARKS[role][0] for role in unmarked),
                ", ".join(f"{MARKS[role][1]}: true" for role in unmarked),
                ", ".join(found.inputs) or "none listed",
                ", ".join(found.outputs) or "none listed",
                ", ".join(f"{role} {self.names[role]!r}" for role in unmarked),
                self._setting(unmarked),
            )
        log.info("%s: the flow's names: %s", self.source, ", ".join(map(self._named, DEFAULT_NAMES)))
        # the reply is at the chat output, whole in a JSON answer and piece by piece in each event of a
        # stream (Prompt flow's streaming mode sends `data: {"<output>": "<piece>"}`)
        self.default_response = self.stream_response = self.names["output"]

    def _named(self, role: str) -> str:
        if role == "history" and not self.sends_history:
            return "history none (the flow has no chat history input: each turn sends the message alone)"
        return f"{role} {self.names[role]!r} ({self.origins[role]})"

    # --- what the app's errors mean ---------------------------------------------------------------

    def missing_reply(self, source: str) -> str:
        return f"; set {source}.promptflow.output to {ROLES['output']}"

    def rejection(self, status: int, text: str) -> str | None:
        """Prompt flow's 400 for a required input the request did not carry: the input names are wrong."""
        match = MISSING_INPUTS.search(text) if status == 400 else None
        if match is None:
            return None
        missing = re.findall(r"'([^']*)'", match.group(1)) or [match.group(1)]
        names = self.names
        return (
            f"the flow requires the input(s) {', '.join(missing)}, but the message went as {names['input']!r} and "
            f"the history as {names['history']!r}: set {self.source}.promptflow.input to {ROLES['input']} "
            f"(probably {missing[0]}), and {self.source}.promptflow.history and .output if the flow's chat history "
            f"and chat output are not {names['history']!r} and {names['output']!r} either (its /swagger.json "
            "names them as x-chat-input, x-chat-history and x-chat-output)"
        )
