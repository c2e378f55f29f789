"""The rows of a manifest's datasets as simulations: checked in one streaming pass when the manifest
loads, and built again, one at a time, when a run plays them.

Each row goes the way a written simulation goes (filled from the template, checked against the
schema, resolved, built), with its problems at its own line. Nothing but counts and a few names is
kept between rows, so a dataset of any length loads and runs in the same memory.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..parsing.yaml_source import YamlDocument
from .build import build_each, script_cut
from .datasets import (
    MAX_ROWS_LISTED,
    Dataset,
    RowProblem,
    datasets_of,
    fill,
    read_rows,
    row_document,
    row_problems,
)
from .files import FileAccess
from .resolve import Resolver
from .row_counts import RowCounts
from .targets import check_top_target
from .types import Simulation


def dataset_simulations(
    data: dict[str, Any],
    doc: YamlDocument,
    access: FileAccess,
    resolver: Resolver,
    problems: list[str],
) -> DatasetSimulations | None:
    """Step 5 of loading: the manifest's datasets, every row checked once; None without any."""
    if not data.get("simulations_from"):
        return None
    rows = DatasetSimulations(datasets_of(data, doc, access, problems), data, doc, access)
    check_top_target(doc, data.get("target"), problems)
    rows.check(resolver, problems)
    return rows


class DatasetSimulations:
    """The simulations of every dataset of one manifest, in file order, as a stream."""

    def __init__(
        self,
        datasets: list[Dataset],
        data: dict[str, Any],
        doc: YamlDocument,
        access: FileAccess,
    ) -> None:
        self.datasets = datasets
        self.data = data
        self.doc = doc
        self.access = access
        self.counts = RowCounts()
        #: every name the gate requires (`gate.required` and rows' `required: true`), once checked
        self.required: frozenset[str] = frozenset()

    def check(self, resolver: Resolver, problems: list[str]) -> RowCounts:
        """Every row, once: its problems into `problems` (the first rows' of each dataset; the
        others counted) and the counts. `resolver` has seen the manifest's own simulations, so a
        row that repeats one of their names is a problem too."""
        gate_names = set((self.data.get("gate") or {}).get("required") or [])
        counts = self.counts = RowCounts()
        for dataset in self.datasets:
            bad_rows = 0
            for simulation, found in self._stream(dataset, resolver):
                if found:
                    bad_rows += 1
                    if bad_rows <= MAX_ROWS_LISTED:
                        problems.extend(found)
                if simulation is None:
                    continue
                counts.simulations += 1
                counts.add(simulation.name, simulation.repeat, simulation.tags)
                counts.conversations += simulation.repeat
                counts.played_by_llm += simulation.needs_llm
                if simulation.required:
                    counts.required.append(simulation.name)
                if simulation.name in gate_names:
                    counts.named.add(simulation.name)
                why = script_cut(simulation)
                if why is not None:
                    counts.cut_scripts += 1
                    counts.first_cut = counts.first_cut or (simulation.where, why)
                if counts.needs_judge is None and any(check.needs_judge for check in simulation.checks):
                    counts.needs_judge = simulation.where
            if bad_rows > MAX_ROWS_LISTED:
                problems.append(f"{dataset.source}: ... and {bad_rows - MAX_ROWS_LISTED:,} more rows with problems")
        return counts

    def warnings(self) -> list[str]:
        """What the rows' check found that does not stop a run: scripts `max_turns` cuts."""
        counts = self.counts
        if counts.first_cut is None:
            return []
        where, why = counts.first_cut
        others = f" (and {counts.cut_scripts - 1:,} more rows)" if counts.cut_scripts > 1 else ""
        return [f"{where}: turns: {why}{others}"]

    def __iter__(self) -> Iterator[Simulation]:
        """Each row's simulation, built anew (the load checked them all)."""
        resolver = Resolver(self.data, self.doc, self.access, [])
        for dataset in self.datasets:
            for simulation, _ in self._stream(dataset, resolver):
                if simulation is not None:
                    simulation.required = simulation.required or simulation.name in self.required
                    yield simulation

    def _stream(self, dataset: Dataset, resolver: Resolver) -> Iterator[tuple[Simulation | None, list[str]]]:
        """Each row's simulation (None when it has a problem) and its problems."""
        for line, row in read_rows(dataset):
            if isinstance(row, RowProblem):
                yield None, [f"{dataset.source}:{line}: {row}" if line else f"{dataset.source}: {row}"]
                continue
            entry, filling = fill(dataset, line, row)
            found = row_problems(dataset, line, entry, filling)
            if found:
                yield None, found
                continue
            doc = row_document(dataset, line, entry)
            found = []
            resolver.report_to(found)
            built = build_each(
                resolver.resolve(doc, [((), -1, entry)]),
                self.data,
                self.access,
                found,
                top_checked=True,
            )
            yield (built[0] if built and not found else None), found
