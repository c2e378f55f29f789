"""One generation: the sources read, the calls planned (and their cost said before any is made),
the calls made through the model's limiter, the answers turned into candidates, near-duplicates
merged, the count kept, in a stable order.

The count is shared among the sources (documents, prompt, logs) and, within the documents, by
size; each call is asked for a few more than its share, since near-duplicates are merged. What
is kept does not depend on which call answered first: every answer has its place, fixed before
any call is made.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..text.clip import clip
from .asking import Call, ask
from .canaries import each_attacks_canaries, prompt_fragments
from .candidates import Candidate, Job, spread
from .choices import DEFAULT_COUNT
from .clusters import cluster, cluster_jobs, intents, label_calls
from .dedup import merge
from .documents import Passage, words
from .personas import DEFAULT_AXES, NameBook, people
from .playbook import attack_jobs, choose
from .sources import Sources, SystemPrompt
from .tasks import document_jobs, prompt_jobs

if TYPE_CHECKING:
    from ..llm.models import OpenAIChatCompletionsModel

#: the order the output lists the origins in
ORIGINS = ("docs", "prompt", "logs", "attack")
#: words that mark a passage as one an attacker would lean on
POLICY_WORDS = re.compile(
    r"\b(refund|return|discount|price|account|card|payment|personal|privacy|policy|never|only|verify|password|"
    r"data|cancel|staff|employee)",
    re.IGNORECASE,
)
#: the most characters of the app's material an attack's call is shown
CONTEXT_CHARS = 6000


@dataclass
class Settings:
    """What to generate: how many, of which kind, how varied, where the canaries go."""

    kind: str = "tasks"
    count: int | None = None
    seed: int | None = None
    axes: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_AXES))
    attacks: list[str] | None = None
    seed_url: str = "{{base}}/test"
    state_url: str = "{{base}}"
    concurrency: int = 4

    @property
    def rng_seed(self) -> int:
        """The seed of everything drawn here (personas' places, canaries): `--seed`, else 0."""
        return self.seed if self.seed is not None else 0


@dataclass
class Generated:
    """What a generation gives: the simulations to write, and what happened on the way."""

    candidates: list[Candidate]
    merged: int
    covered: list[tuple[Candidate, str]]
    #: completions asked of the model, repairs included
    calls: int
    notes: list[str] = field(default_factory=list)

    def counts(self) -> Counter[str]:
        return Counter(c.origin for c in self.candidates)


def attack_context(prompt: SystemPrompt | None, passages: list[Passage]) -> str:
    """What an attack's call is shown of the app: the prompt, and the passages about policies."""
    parts = [f"System prompt ({prompt.source}):\n{clip(prompt.text, CONTEXT_CHARS // 2)}"] if prompt else []
    budget = CONTEXT_CHARS - sum(len(p) for p in parts)
    ranked = sorted(range(len(passages)), key=lambda i: (-len(POLICY_WORDS.findall(passages[i].text)), i))
    chosen = []
    for i in ranked:
        if len(passages[i].text) <= budget:
            chosen.append(i)
            budget -= len(passages[i].text)
    parts.extend(f"[{passages[i].citation}] {passages[i].text}" for i in sorted(chosen))
    return "\n\n".join(parts) or "(no material given)"


class Generation:
    """The calls for `sources` under `settings`, planned at once so their cost can be said first."""

    def __init__(self, sources: Sources, settings: Settings, existing: list[tuple[str, str]] | None = None) -> None:
        self.sources = sources
        self.settings = settings
        self.existing = existing or []
        self.notes: list[str] = []
        self.quotas: dict[str, int] = {}
        self.jobs: list[Job] = []
        self.label_calls: list[tuple[Call, Any]] = []
        self._people = people(settings.axes, settings.rng_seed)
        if settings.kind == "adversarial":
            self._plan_attacks()
        else:
            self._plan_tasks()

    def _plan_tasks(self) -> None:
        kinds = self.sources.kinds
        count = self.settings.count or DEFAULT_COUNT
        self.quotas = dict(zip(kinds, spread(count, [1] * len(kinds)), strict=True))
        state_url = self.settings.state_url
        if self.quotas.get("docs"):
            self.jobs += document_jobs(self.sources.passages, self.quotas["docs"], self._people, state_url)
        if self.quotas.get("prompt") and self.sources.prompt is not None:
            self.jobs += prompt_jobs(self.sources.prompt, self.quotas["prompt"], self._people, state_url)
        if self.quotas.get("logs"):
            for log in self.sources.logs:
                self.label_calls += label_calls(log)

    def _plan_attacks(self) -> None:
        attacks = choose(self.settings.attacks)
        count = self.settings.count or len(attacks)
        self.quotas = {"attack": count}
        if self.sources.logs:
            self.notes.append(
                "--kind adversarial grounds attacks in the documents and the prompt; the logs are not used"
            )
        if not self.sources.passages and self.sources.prompt is None:
            from ..errors import SourceError

            raise SourceError(
                "--kind adversarial: give the app's documents or system prompt with --from, so the attacks fit the app"
            )
        prompt = self.sources.prompt
        details = {
            "seed": self.settings.rng_seed,
            "seed_url": self.settings.seed_url,
            "state_url": self.settings.state_url,
            "prompt_fragments": prompt_fragments(prompt.lines) if prompt else [],
        }
        context = attack_context(prompt, self.sources.passages)
        self.jobs = attack_jobs(attacks, count, each_attacks_canaries(self.settings.rng_seed, count), context, details)

    # --- cost -----------------------------------------------------------------------------

    @property
    def first_calls(self) -> list[Call]:
        """The calls known before any answer, in the order they are listed."""
        return [job.call for job in self.jobs] + [call for call, _ in self.label_calls]

    def later_calls(self) -> int:
        """Calls made once the logs' intents are named: one per cluster, at most the logs' share."""
        return self.quotas.get("logs", 0) if self.label_calls else 0

    # --- running --------------------------------------------------------------------------

    async def run(self, model: OpenAIChatCompletionsModel, on_answer: Callable[[Call], None]) -> Generated:
        """Every call, `concurrency` at a time; then the candidates, deduplicated and counted out."""
        gate = asyncio.Semaphore(self.settings.concurrency)
        made_before = model.calls

        async def one(call: Call) -> None:
            async with gate:
                await ask(model, call)
            on_answer(call)

        await _all([one(call) for call in self.first_calls])
        jobs = list(self.jobs)
        if self.label_calls:
            logs_jobs = self._cluster_jobs()
            await _all([one(job.call) for job in logs_jobs])
            jobs += logs_jobs
        candidates: list[Candidate] = []
        for index, job in enumerate(jobs):
            assert job.call.answer is not None
            for candidate in job.build(job.call.answer):
                candidate.group = index
                candidates.append(candidate)
        return self._keep(candidates, model.calls - made_before)

    def _cluster_jobs(self) -> list[Job]:
        by_log: dict[str, list[tuple[Any, str]]] = {}
        for call, batch in self.label_calls:
            assert call.answer is not None
            by_log.setdefault(batch[0].source, []).extend(intents(call.answer, batch))
        grounding = " ".join(words(p.text) for p in self.sources.passages)
        if self.sources.prompt is not None:
            grounding += " " + words(self.sources.prompt.text)
        logs = {log.source: log for log in self.sources.logs}
        shares = spread(self.quotas["logs"], [len(logs[s].conversations) for s in by_log])
        jobs: list[Job] = []
        for (source, labelled), share in zip(by_log.items(), shares, strict=True):
            jobs += cluster_jobs(cluster(labelled), share, logs[source], self.settings.state_url, grounding)
        return jobs

    def _keep(self, candidates: list[Candidate], calls: int) -> Generated:
        """Near-duplicates merged (attacks only within their kind), then each origin's share, spread
        over the calls it came from (a share one falls short of taken from the others' spare ones),
        in the order planned."""
        plain = [c for c in candidates if c.origin != "attack"]
        kept, merged, covered = merge(plain, self.existing)
        for prefix in dict.fromkeys(c.prefix for c in candidates if c.origin == "attack"):
            same_kind = [c for c in candidates if c.origin == "attack" and c.prefix == prefix]
            more, count, _ = merge(same_kind)
            kept += more
            merged += count
        chosen: list[Candidate] = []
        for origin in ORIGINS:
            mine = [c for c in kept if c.origin == origin]
            chosen += _round_robin(mine, self.quotas.get(origin, 0))
        short = sum(self.quotas.values()) - len(chosen)
        if short > 0:  # a source that gave fewer than its share: the others' spare ones fill in
            taken = {id(c) for c in chosen}
            chosen += _round_robin([c for c in kept if id(c) not in taken], short)
        position = {id(c): i for i, c in enumerate(candidates)}
        chosen.sort(key=lambda c: (ORIGINS.index(c.origin), c.group, position[id(c)]))
        names = NameBook()
        for candidate in chosen:
            candidate.persona["name"] = names.unique(candidate.persona["name"])
        return Generated(chosen, merged, covered, calls, self.notes)


def _round_robin(candidates: list[Candidate], quota: int) -> list[Candidate]:
    """Up to `quota` of `candidates`, taking from each call in turn: every call's first, then seconds..."""
    groups: dict[int, list[Candidate]] = {}
    for candidate in candidates:
        groups.setdefault(candidate.group, []).append(candidate)
    chosen: list[Candidate] = []
    depth = 0
    while len(chosen) < quota and any(len(g) > depth for g in groups.values()):
        for group in groups.values():
            if depth < len(group) and len(chosen) < quota:
                chosen.append(group[depth])
        depth += 1
    return chosen


async def _all(calls: list[Any]) -> None:
    """Every call, and the first failure raised once the rest have stopped: none is left running."""
    tasks = [asyncio.ensure_future(call) for call in calls]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise
