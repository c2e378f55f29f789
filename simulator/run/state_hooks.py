"""Setup before a conversation, the outcome checks' requests after it, teardown last.

The runner plays each conversation of a simulation as:

1. `setup`, each request in order; the first that fails skips the conversation, whose result then
   ends with `setup_error` (an error verdict: the app was never asked anything);
2. the conversation, the app side keeping its session open;
3. the checks; an outcome check's request is sent once per conversation, however many checks read
   its answer (`LiveOutcomes`);
4. `teardown`, every request, also after a failed conversation or setup; a failing one is an error
   in the verdict (a passing conversation becomes an error, a failure stays a failure);
5. the app side forgets the conversation.

What was sent and answered is in the result's `state_requests` (no credential in it).
`RecordedOutcomes` answers outcome checks from those records when `simulator check` does not ask
the app again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from ..checks import ERROR, PASS, EvaluationContext
from ..checks.outcome import OutcomeCheck
from ..conversation.loop import ConversationCancelled, Simulator
from ..records import ConversationResult, ErrorRecord, StateRecord
from ..records.result import ConversationRecorder
from ..state.client import Call, Exchange, StateClient
from ..state.requests import StateRequest
from ..targets import Target


class LiveOutcomes:
    """The app's answers to one conversation's outcome requests, each distinct request sent once."""

    def __init__(self, client: StateClient, call: Call) -> None:
        self.client = client
        self.call = call
        self._sent: dict[str, asyncio.Task[Exchange]] = {}

    async def fetch(self, request: StateRequest) -> Exchange:
        if request.key not in self._sent:
            self._sent[request.key] = asyncio.ensure_future(self.client.send(request, self.call, json_answer=True))
        return await self._sent[request.key]

    @property
    def records(self) -> list[StateRecord]:
        """What was sent and answered, in the order the requests were first made."""
        return [task.result().record for task in self._sent.values() if task.done() and not task.cancelled()]


class RecordedOutcomes:
    """Outcome checks answered from the records of the run, without asking the app again."""

    def __init__(self, records: list[StateRecord]) -> None:
        self._by_key = {record.get("key"): record for record in records}

    async def fetch(self, request: StateRequest) -> Exchange:
        record = self._by_key.get(request.key)
        again = "run `simulator check --requery` to ask the app again"
        if record is None:
            error = f"the run recorded no answer to {request.label} (the check is new or its request changed); {again}"
            return Exchange({"name": request.label, "method": request.method, "url": None}, None, error)
        if record.get("error"):
            return Exchange(record, None, record["error"])
        if "answer" not in record:
            why = record.get("answer_cut") or "the answer was not kept"
            return Exchange(record, None, f"{request.method} {record.get('url')}: {why}; {again}")
        return Exchange(record, record["answer"])


class AroundConversation:
    """One conversation of a simulation with its setup, outcome requests and teardown."""

    def __init__(
        self, client: StateClient, simulation: Any, target: Target, conversation_id: str, meta: dict[str, Any]
    ) -> None:
        self.client = client
        self.sim = simulation
        self.target = target
        self.conversation_id = conversation_id
        self.meta = meta
        self.outcomes: LiveOutcomes | None = None
        self._setup: list[StateRecord] = []

    def _call(self) -> Call:
        details = {**self.meta, "persona": self.sim.persona.name, "task": self.sim.task}
        state = self.target.conversation_state(self.conversation_id)
        return Call.of(self.target, self.conversation_id, details, state)

    async def converse(self, simulator: Simulator) -> ConversationResult:
        """Setup, then the conversation (left open for the requests after it), or a `setup_error` result.

        Interrupted (Ctrl-C, SIGTERM), it raises `ConversationCancelled` with what was recorded."""
        try:
            for request in self.sim.setup:
                exchange = await self.client.send(request, self._call())
                self._setup.append(exchange.record)
                if exchange.error is not None:
                    message = f"setup failed, so the conversation was not played: {exchange.error}"
                    error: ErrorRecord = {"reason": "setup_error", "message": message, "fatal": False}
                    return self._unplayed(simulator, "setup_error", message, error)
        except asyncio.CancelledError as exc:
            raise ConversationCancelled(
                self._unplayed(simulator, "cancelled", "the run was interrupted during this conversation's setup")
            ) from exc
        sim = self.sim
        try:
            result = await simulator.simulate_async(
                sim.persona,
                sim.task,
                sim.max_turns,
                conversation_id=self.conversation_id,
                meta_data=self.meta,
                keep_open=True,
            )
        except ConversationCancelled as exc:
            self._keep_setup(exc.partial_result)
            raise
        return self._keep_setup(result)

    def _keep_setup(self, result: ConversationResult) -> ConversationResult:
        if self._setup:
            result.setdefault("state_requests", {})["setup"] = self._setup
        return result

    def _unplayed(
        self, simulator: Simulator, reason: str, message: str, error: ErrorRecord | None = None
    ) -> ConversationResult:
        """The result of a conversation that never started, and why."""
        recorder = ConversationRecorder(
            conversation_id=self.conversation_id,
            persona=self.sim.persona.to_dict(),
            task=self.sim.task,
            max_conversation_turns=self.sim.max_turns,
            user=simulator.user.describe(),
            app=simulator.app.describe(),
            extra_meta=self.meta,
        )
        return self._keep_setup(recorder.finish(reason, message, error=error))

    def context(self, base: EvaluationContext) -> EvaluationContext:
        """The checks' context for this conversation: `base`, and the app's answers to outcome requests."""
        if not any(isinstance(check, OutcomeCheck) for check in self.sim.checks):
            return base
        self.outcomes = LiveOutcomes(self.client, self._call())
        return replace(base, state=self.outcomes)

    async def finish(self, result: ConversationResult) -> None:
        """Keep the outcome requests' records, run the teardown and put its failures in the verdict
        (also when the run is interrupted during it: then the caller still keeps the result)."""
        if self.outcomes is not None and self.outcomes.records:
            result.setdefault("state_requests", {})["outcome"] = self.outcomes.records
        if not self.sim.teardown:
            return
        records: list[StateRecord] = []
        errors: list[str] = []
        try:
            for request in self.sim.teardown:
                exchange = await self.client.send(request, self._call())
                records.append(exchange.record)
                if exchange.error is not None:
                    errors.append(f"teardown failed: {exchange.error}")
        except asyncio.CancelledError:
            errors.append("teardown was interrupted with the run")
            raise
        finally:
            result.setdefault("state_requests", {})["teardown"] = records
            _add_errors(result, errors)

    async def end(self) -> None:
        """The app side forgets the conversation (its session id and cookies)."""
        await self.target.end_conversation(self.conversation_id)


def _add_errors(result: ConversationResult, errors: list[str]) -> None:
    """Teardown's failures in the verdict: a pass becomes an error, a failure stays a failure."""
    evaluation = result.get("evaluation")
    if errors and evaluation is not None:
        evaluation["errors"] = [*evaluation.get("errors", []), *errors]
        if evaluation.get("status") == PASS:
            evaluation["status"] = ERROR


class Requery:
    """`simulator check --requery`: outcome requests sent again, to the app the manifest names now.

    The app's state may have moved on since the run, so this is asked for, never the default; the
    session id is not in the results, so a request that needs `{{session_id}}` is a check error.
    """

    def __init__(self, build: Callable[[Any], Target]) -> None:
        self.client = StateClient()
        self._build = build
        self._targets: dict[str, Target] = {}

    def outcomes(self, result: ConversationResult, simulation: Any) -> LiveOutcomes:
        """A source that asks the app again about `result`'s conversation."""
        if simulation.name not in self._targets:
            self._targets[simulation.name] = self._build(simulation)
        call = Call.of(self._targets[simulation.name], result["conversation_id"], result["meta_data"])
        call.session_note = "the results do not keep the app's session id, so a re-query cannot fill it"
        return LiveOutcomes(self.client, call)

    async def aclose(self) -> None:
        await self.client.aclose()
        for target in self._targets.values():
            await target.aclose()


def recheck_context(
    base: EvaluationContext, result: ConversationResult, simulation: Any, requery: Requery | None
) -> tuple[EvaluationContext, LiveOutcomes | None]:
    """The checks' context for re-checking `result`: the recorded outcome answers, or (with
    `requery`) new ones, which the caller keeps with `keep_outcomes`."""
    if not any(isinstance(check, OutcomeCheck) for check in simulation.checks):
        return base, None
    if requery is None:
        recorded = (result.get("state_requests") or {}).get("outcome") or []
        return replace(base, state=RecordedOutcomes(recorded)), None
    live = requery.outcomes(result, simulation)
    return replace(base, state=live), live


def keep_outcomes(result: ConversationResult, live: LiveOutcomes | None, when: str) -> None:
    """The answers of a re-query replace the recorded ones."""
    if live is not None and live.records:
        state = result.setdefault("state_requests", {})
        state["outcome"] = live.records
        state["outcome_at"] = when
