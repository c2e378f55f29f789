"""Which conversations a run plays: simulations × repeats, filtered, and split into shards."""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass

from .errors import ConfigError
from .manifest import Manifest, Simulation


@dataclass(frozen=True)
class Job:
    """One conversation to play: a simulation and which repeat this is (0-based)."""

    simulation: Simulation
    repeat_index: int

    @property
    def key(self) -> str:
        return f"{self.simulation.name}#{self.repeat_index + 1}"


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
    if patterns:
        name = simulation.name
        if not any(fnmatch.fnmatchcase(name, p) if any(c in p for c in "*?[") else p in name for p in patterns):
            return False
    return not tags or bool(set(tags) & set(simulation.tags))


def plan_jobs(
    manifest: Manifest,
    *,
    filters: list[str] | None = None,
    tags: list[str] | None = None,
    repeat: int | None = None,
    shard: tuple[int, int] | None = None,
) -> list[Job]:
    """The jobs of this run in manifest order; shard i of n takes every n-th job from i.

    The split depends only on the manifest and the options, so every shard of a matrix computes
    the same list and together the shards play each job exactly once.
    """
    if repeat is not None and repeat < 1:
        raise ConfigError("--repeat must be 1 or more")
    chosen = [s for s in manifest.simulations if _selected(s, filters or [], tags or [])]
    if not chosen:
        wanted = ", ".join([*(filters or []), *(f"tag:{t}" for t in tags or [])])
        names = ", ".join(s.name for s in manifest.simulations)
        raise ConfigError(f"no simulation matches {wanted}; the manifest has: {names}")
    jobs = [Job(s, i) for s in chosen for i in range(repeat or s.repeat)]
    if shard is not None:
        index, count = shard
        jobs = jobs[index - 1 :: count]
    return jobs
