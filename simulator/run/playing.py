"""One run in progress: each conversation played, judged, written the moment it ends, and watched.

A conversation's result is written before the next is reported; a write the disk refuses costs that
conversation (listed, with the room it needed) and stops new ones, never the run's honesty. A
fatal error, or the same mistake at the app's first reply in the first conversations, stops new
conversations too: every other would fail the same way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ..checks import EvaluationContext, evaluate
from ..checks.evaluate import INTERRUPTED_EVALUATION
from ..checks.reuse import BaseVerdicts
from ..conversation.loop import DEFAULT_TURN_TIMEOUT, ConversationCancelled, Simulator, as_user_side
from ..manifest import Manifest
from ..records import ConversationResult, Evaluation
from ..results.folder import ResultWriter, StorageError
from ..results.summary import SummaryBuilder
from .completion import Completion
from .connections import Connections
from .plan import Job
from .replay import PairedUser, ReplayBook, ReplayTally
from .state_hooks import AroundConversation

log = logging.getLogger("simulator.run.runner")
#: this many conversations, the first of the run, that all fail at the app's first reply with the same
#: mistake (a 404, an HTML page, a reply path the answer lacks) stop the run: every other would too
SAME_MISTAKE_STOP = 3


class Run:
    """One run in progress: the writer, the summary being built, and what went wrong so far."""

    def __init__(self, manifest: Manifest, connections: Connections, writer: ResultWriter, builder: SummaryBuilder):
        self.manifest = manifest
        self.connections = connections
        self.writer = writer
        self.builder = builder
        self.on_result: Callable[[Job, ConversationResult], None] | None = None
        self.stop: str | None = None
        self.fatal: str | None = None
        self.storage_error: str | None = None
        self.lost: list[str] = []
        self.lost_bytes = 0
        self.internal_errors: list[str] = []
        self.finished: set[str] = set()
        self.callback_failed = False
        self.replays: ReplayBook | None = None
        self.replay_tally = ReplayTally("")
        #: the conversations so far, while every one failed at the app's first reply with the same mistake
        self.same_mistake: list[str] = []
        self.mistake: tuple[Any, ...] | None = None
        self.mistakes_differ = False  # a conversation did otherwise: no early stop for a mistake
        self.first_mistake = ""
        #: told when each conversation ends, so a simulation the run is done with leaves memory
        self.completion: Completion | None = None

    def internal(self, problem: str, exc: BaseException) -> None:
        self.internal_errors.append(problem)
        log.error("%s", problem, exc_info=(type(exc), exc, exc.__traceback__))

    def store(self, job: Job, result: ConversationResult) -> bool:
        """Write one result; a refused write costs this conversation (listed), never the run's honesty."""
        try:
            self.writer.write(result)
        except StorageError as exc:
            self.lost.append(job.key)
            self.lost_bytes += exc.needed
            if self.storage_error is None:
                self.storage_error = f"{exc.path}: {exc.reason}"
                self.stop = self.stop or f"cannot write results: {exc.reason}"
                log.error("%s: %s; no new conversation starts", exc.path, exc.reason)
            return False
        except Exception as exc:
            self.lost.append(job.key)
            self.internal(f"{job.key}: writing the result failed: {type(exc).__name__}: {exc}", exc)
            self.stop = self.stop or "the results writer failed"
            return False
        self.builder.add(result)
        self.finished.add(job.key)
        return True

    async def play(self, job: Job) -> None:
        sim = job.simulation
        target, user = self.connections.sides(sim)
        if self.replays is not None and sim.needs_llm:  # a script replays itself; only LLM users vary
            user = self.replays.user_for(sim.name, job.repeat_index + 1, as_user_side(user))
        simulator = Simulator(
            system_connection=target, user_connection=user, turn_timeout=sim.turn_timeout or DEFAULT_TURN_TIMEOUT
        )
        meta = {
            "simulation": sim.name,
            "repeat": job.repeat_index + 1,
            "tags": sim.tags,
            "min_passes": sim.min_passes,
            "required": sim.required,
            **({"notes": list(sim.notes)} if sim.notes else {}),
        }
        around = AroundConversation(self.connections.state, sim, target, str(uuid.uuid4()), meta)
        try:  # setup, the conversation, its checks and teardown (see state_hooks)
            result = await around.converse(simulator)
            baseline = None
            if isinstance(user, PairedUser):
                user.record(result)
                baseline = user.base_verdicts(result)  # an identical replay: the base's verdicts may stand
            context = around.context(self.connections.evaluation)
            result["evaluation"] = await self.evaluate(job, result, context, baseline)
            if isinstance(user, PairedUser):
                self.replay_tally.add(result)
            try:
                await around.finish(result)
            except asyncio.CancelledError:
                self.store(job, result)  # judged already: kept, its teardown cut short
                raise
        except ConversationCancelled as exc:
            exc.partial_result["evaluation"] = INTERRUPTED_EVALUATION
            self.store(job, exc.partial_result)
            raise
        finally:
            await around.end()
        if not self.store(job, result):
            return
        error: Mapping[str, Any] = result["meta_data"].get("error") or {}
        if error.get("fatal") and not self.fatal:
            self.fatal = f"{sim.name}: {error.get('message')}"
            self.stop = self.stop or self.fatal
        self.watch_mistakes(job, result, error)
        self.report(job, result)

    def watch_mistakes(self, job: Job, result: ConversationResult, error: Mapping[str, Any]) -> None:
        """Stop the run when its first conversations all failed at the app's first reply with the same
        mistake: the request or the settings are wrong, and every other conversation would fail alike.
        A conversation that got a reply, or failed otherwise, means it is not that."""
        if self.mistakes_differ or self.fatal:
            return
        answered = any(turn.get("actor") == "assistant" and not turn.get("error") for turn in result["conversation"])
        mistake = error.get("mistake") if error.get("actor") == "assistant" and not answered else None
        found = (error.get("reason"), mistake)
        if mistake is None or (self.mistake is not None and found != self.mistake):
            self.mistakes_differ = True
            return
        if self.mistake is None:
            self.mistake, self.first_mistake = found, str(error.get("message"))
        self.same_mistake.append(job.key)
        if len(self.same_mistake) >= SAME_MISTAKE_STOP:
            self.fatal = (
                f"{len(self.same_mistake)} conversations ({', '.join(self.same_mistake)}) failed at the app's first "
                f"reply the same way, as every other would: {self.first_mistake}"
            )
            self.stop = self.stop or self.fatal

    async def evaluate(
        self, job: Job, result: ConversationResult, context: EvaluationContext, baseline: BaseVerdicts | None = None
    ) -> Evaluation:
        try:
            return await evaluate(result, job.simulation.checks, context, baseline)
        except asyncio.CancelledError:
            result["evaluation"] = INTERRUPTED_EVALUATION
            self.store(job, result)
            raise
        except Exception as exc:  # a bug in a check: this conversation has no verdict, the run is an error
            self.internal(f"{job.key}: checking the conversation failed: {type(exc).__name__}: {exc}", exc)
            return {
                "status": "error",
                "checks": [],
                "failed": [],
                "errors": [f"internal error while checking: {type(exc).__name__}: {exc}"],
            }

    def report(self, job: Job, result: ConversationResult) -> None:
        if self.on_result is None:
            return
        try:
            self.on_result(job, result)
        except Exception as exc:  # progress output failing must not stop the run
            if not self.callback_failed:
                self.callback_failed = True
                log.warning("progress output failed: %s: %s", type(exc).__name__, exc)

    async def work(self, pending: Iterator[Job]) -> None:
        """One of `concurrency` workers: take the next planned conversation until none is left or a stop."""
        while self.stop is None:
            job = next(pending, None)
            if job is None:
                return
            try:
                await self.play(job)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # anything else is the runner's own failure
                self.internal(f"{job.key}: {type(exc).__name__}: {exc}", exc)
            finally:
                if self.completion is not None:
                    self.completion.ended(job.simulation.name)

    def close_simulation(self, name: str) -> None:
        """The run is done with simulation `name` (`Completion`): its summary is kept. A failure here
        is the runner's: named, and the run goes on (no worker, no job drawn, is lost to it)."""
        try:
            self.builder.close(name)
        except Exception as exc:
            self.internal(f"{name}: summarising the simulation failed: {type(exc).__name__}: {exc}", exc)
