"""When a run is done with a simulation, so its summary can leave memory (`SummaryBuilder.close`).

A plan plays its simulations in order, each one's repeats together (a shard takes every n-th job,
in the same order). Once a job of a later simulation is drawn, an earlier one gets no new
conversation: it is done when the last of its conversations in flight ends. A resumed run's kept
results may belong to simulations it never draws again; they are passed all the same.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence

from .plan import Job

__all__ = ["Completion"]


class Completion:
    """Follows the jobs drawn and ended, and calls `close(name)` once for each simulation passed."""

    def __init__(self, order: Sequence[str], close: Callable[[str], None]) -> None:
        self._order = order
        self._next = 0  # the first simulation of `order` not passed yet
        self._close = close
        self._in_flight: Counter[str] = Counter()
        self._waiting: set[str] = set()  # passed, with conversations still in flight

    def drawing(self, jobs: Iterator[Job]) -> Iterator[Job]:
        """`jobs`, each counted as in flight as it is drawn."""
        for job in jobs:
            self.drawn(job.simulation.name)
            yield job

    def drawn(self, name: str) -> None:
        self._in_flight[name] += 1
        order, start = self._order, self._next
        try:
            at = order.index(name, start)
        except ValueError:  # the current simulation again, or one the order does not know
            return
        for index in range(start, at):
            self._pass(order[index])
        self._next = at

    def ended(self, name: str) -> None:
        """A conversation of `name` ended (written, failed or cancelled)."""
        self._in_flight[name] -= 1
        if self._in_flight[name] > 0:
            return
        del self._in_flight[name]
        if name in self._waiting:
            self._waiting.discard(name)
            self._close(name)

    def _pass(self, name: str) -> None:
        if self._in_flight.get(name):
            self._waiting.add(name)
        else:
            self._close(name)
