"""Which conversations a run plays: simulations × repeats, filtered, and split into shards.

A plan is lazy: it knows how many conversations it holds and yields them one at a time, so a
run of a million conversations costs no memory before they start. Its `record()` is what the
results folder keeps in `plan.json`, so every later command can tell planned from finished.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, cast

from ..errors import ConfigError
from ..manifest import Manifest, Simulation
from ..results.reading import job_key, keys_of_record  # noqa: F401 - a plan's keys, importable from here too

#: the most repeats of one simulation a run may ask for (the manifest's `repeat` has the same cap)
MAX_REPEAT = 1000


@dataclass(frozen=True)
class Job:
    """One conversation to play: a simulation and which repeat this is (0-based)."""

    simulation: Simulation
    repeat_index: int

    @property
    def key(self) -> str:
        return job_key(self.simulation.name, self.repeat_index + 1)


def parse_shard(text: str) -> tuple[int, int]:
    """`"2/4"` → (2, 4): the second of four shards (1-based, as in a job matrix)."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text or "")
    if not match:
        raise ConfigError(f"--shard must look like 1/4 (this shard / number of shards), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or not 1 <= index <= count:
        raise ConfigError(f"--shard {text}: the shard number must be between 1 and {max(count, 1)}")
    return index, count


def _selected(simulation: Simulation, patterns: list[str], tags: list[str]) -> bool:
    return _selected_name(simulation.name, simulation.tags, patterns, tags)


def _selected_name(name: str, own_tags: Iterable[str], patterns: list[str], tags: list[str]) -> bool:
    if patterns and not any(
        fnmatch.fnmatchcase(name, p) if any(c in p for c in "*?[") else p in name for p in patterns
    ):
        return False
    return not tags or bool(set(tags) & set(own_tags))


class Plan:
    """The conversations of one run, in manifest order; shard i of n takes every n-th from i.

    Iterating yields `Job`s lazily; `len()` is known up front; `keys()` yields the job keys
    without building jobs. The split depends only on the manifest and the options, so every
    shard of a matrix computes the same list and together the shards play each job once.

    `entries` are the simulations with their repeats; when `source` is given instead (a
    manifest's datasets), `entries` is only their names and each simulation is built from
    `source` when its turn comes, so a plan of any size holds names, not simulations.
    """

    def __init__(
        self,
        entries: list[tuple[Simulation, int]] | list[tuple[str, int]],
        shard: tuple[int, int] | None = None,
        options: dict[str, Any] | None = None,
        only: frozenset[str] | None = None,
        source: Callable[[], Iterable[Simulation]] | None = None,
    ) -> None:
        self.entries = entries
        self.shard = shard
        self.options = options or {}
        #: when set, only these keys (a resumed run plays what is missing)
        self.only = only
        self.source = source
        self.total = sum(repeats for _, repeats in entries)  # before sharding

    def _simulations(self) -> Iterator[tuple[Simulation, int]]:
        if self.source is None:
            yield from cast("list[tuple[Simulation, int]]", self.entries)
            return
        repeats = dict(cast("list[tuple[str, int]]", self.entries))
        for simulation in self.source():
            if simulation.name in repeats:
                yield simulation, repeats[simulation.name]

    def _positions(self) -> Iterator[tuple[Simulation, int]]:
        position = 0
        index, count = self.shard or (1, 1)
        for simulation, repeats in self._simulations():
            for repeat_index in range(repeats):
                if position % count == index - 1:
                    yield simulation, repeat_index
                position += 1

    def __iter__(self) -> Iterator[Job]:
        for simulation, repeat_index in self._positions():
            if self.only is None or job_key(simulation.name, repeat_index + 1) in self.only:
                yield Job(simulation, repeat_index)

    def keys(self) -> Iterator[str]:
        position = 0
        index, count = self.shard or (1, 1)
        for name, repeats in self._names():
            for repeat_index in range(repeats):
                key = job_key(name, repeat_index + 1)
                if position % count == index - 1 and (self.only is None or key in self.only):
                    yield key
                position += 1

    def __len__(self) -> int:
        if self.only is not None:
            return sum(1 for _ in self.keys())
        index, count = self.shard or (1, 1)
        return len(range(index - 1, self.total, count))

    def __bool__(self) -> bool:
        return next(self.keys(), None) is not None

    def _names(self) -> Iterator[tuple[str, int]]:
        for entry, repeats in self.entries:
            yield (entry if isinstance(entry, str) else entry.name), repeats

    @property
    def simulation_names(self) -> list[str]:
        return [name for name, _ in self._names()]

    def simulations(self) -> Iterator[Simulation]:
        """Each simulation of the plan once, in order, built as it is reached."""
        for simulation, _ in self._simulations():
            yield simulation

    def without(self, names: Iterable[str]) -> Plan:
        """The same plan less some simulations (e.g. those whose LLM key is missing)."""
        drop = set(names)
        kept = [(e, n) for e, n in self.entries if (e if isinstance(e, str) else e.name) not in drop]
        return Plan(kept, self.shard, self.options, self.only, self.source)  # type: ignore[arg-type]

    def restricted_to(self, keys: Iterable[str]) -> Plan:
        """The same plan playing only `keys` (what a resumed run still has to play)."""
        return Plan(self.entries, self.shard, self.options, frozenset(keys), self.source)

    def record(self) -> dict[str, Any]:
        """What `plan.json` keeps: enough to list the planned keys again without the manifest."""
        return {
            # a dataset's plan holds (name, repeats) pairs already: the record shares them, not copies
            "simulations": [e if isinstance(e[0], str) else (e[0].name, e[1]) for e in self.entries],
            "shard": list(self.shard) if self.shard else None,
            "options": self.options,
            "planned": len(self),
            "planned_total": self.total,
        }


def plan_jobs(
    manifest: Manifest,
    *,
    filters: list[str] | None = None,
    tags: list[str] | None = None,
    repeat: int | None = None,
    shard: tuple[int, int] | None = None,
) -> Plan:
    """The jobs of this run in manifest order (see `Plan`)."""
    if repeat is not None and not 1 <= repeat <= MAX_REPEAT:
        raise ConfigError(f"--repeat must be between 1 and {MAX_REPEAT}, got {repeat}")
    chosen = [s for s in manifest.simulations if _selected(s, filters or [], tags or [])]
    options = {"filters": filters or [], "tags": tags or [], "repeat": repeat}
    if manifest.rows is not None:  # names only: each simulation is built when the run reaches it
        counts = manifest.rows.counts
        rows = counts.entries
        if filters or tags:
            rows = [
                row
                for row, own in zip(rows, counts.tags, strict=True)
                if _selected_name(row[0], own, filters or [], tags or [])
            ]
        if repeat is not None:
            rows = [(name, repeat) for name, _ in rows]
        if chosen or rows:  # the rows' own (name, repeats) pairs, shared, not copied
            names = [*((s.name, repeat or s.repeat) for s in chosen), *rows]
            return Plan(names, shard, options, source=manifest.all_simulations)
    if not chosen:
        wanted = ", ".join([*(filters or []), *(f"tag:{t}" for t in tags or [])])
        names_written = ", ".join(s.name for s in manifest.simulations) or "only rows of its datasets"
        raise ConfigError(f"no simulation matches {wanted}; the manifest has: {names_written}")
    return Plan([(s, repeat or s.repeat) for s in chosen], shard, options)


def distinct_simulations(jobs: Iterable[Job]) -> Iterator[Simulation]:
    """The simulations a plan plays, each once, as a stream (a `Plan` builds each as it is reached,
    without iterating its jobs)."""
    if isinstance(jobs, Plan):
        yield from jobs.simulations()
        return
    yield from {job.simulation.name: job.simulation for job in jobs}.values()
