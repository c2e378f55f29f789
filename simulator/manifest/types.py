"""What loading a manifest gives: typed simulations and the manifest, or every problem at once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError
from ..persona import Persona
from ..records import GateConfig
from ..state.requests import StateRequest
from .row_counts import RowCounts

DEFAULT_MANIFEST = ".github/simulations.yml"
DEFAULT_MAX_TURNS = 6
DEFAULT_REPEAT = 1


#: why code and files are refused in an untrusted manifest, when the caller gives no reason of its own
UNTRUSTED_NOTE = "refused: the manifest was loaded with trusted=False"


class ManifestError(ConfigError):
    """A manifest with one or more problems; `problems` lists them, one line each."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"{source}: {count}:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass
class Simulation:
    """One persona pursuing one task, with everything resolved."""

    name: str
    persona: Persona
    task: str
    max_turns: int
    repeat: int
    tags: list[str]
    target: dict[str, Any]
    user: dict[str, Any] | None
    turns: list[str] | None = None
    turn_timeout: float | None = None
    line: int | None = None
    index: int = 0
    expect: dict[str, Any] = field(default_factory=dict)
    checks: list[Any] = field(default_factory=list, repr=False)
    min_passes: int | None = None
    required: bool = False
    #: requests made before each conversation (seeding the app's test data) and after it (cleaning up)
    setup: list[StateRequest] = field(default_factory=list, repr=False)
    teardown: list[StateRequest] = field(default_factory=list, repr=False)
    #: what happened to its text on the way in (lone surrogates replaced); each conversation notes it
    notes: list[str] = field(default_factory=list, repr=False)
    #: the dataset row it comes from (`tasks.csv:42`), for one of `simulations_from`
    row: str | None = None

    @property
    def where(self) -> str:
        """Where it is written, as messages name it: `simulations[3]` or `tasks.csv:42`."""
        return self.row or f"simulations[{self.index}]"

    @property
    def needs_llm(self) -> bool:
        """Scripted simulations need no model and no key."""
        return self.turns is None


class Rows(Protocol):
    """The simulations of a manifest's datasets (`rows.DatasetSimulations`): counted, and streamed."""

    counts: RowCounts

    def __iter__(self) -> Iterator[Simulation]: ...

    def warnings(self) -> list[str]: ...


@dataclass
class Manifest:
    """A validated manifest."""

    path: Path
    simulations: list[Simulation]
    target: dict[str, Any] | None
    user: dict[str, Any] | None
    data: dict[str, Any] = field(repr=False, default_factory=dict)
    judge: dict[str, Any] | None = None
    gate: GateConfig | None = None
    #: environment variables the manifest read, with the field paths that used them
    variables: dict[str, list[str]] = field(default_factory=dict)
    #: persona files and callback files lie inside this folder (see `resolve_root`)
    root: Path | None = None
    #: unset variables in sections the loading command did not need, one `file:line: field: ...` each
    warnings: list[str] = field(default_factory=list)
    #: the simulations of `simulations_from`'s datasets, streamed (None without datasets)
    rows: Rows | None = field(default=None, repr=False)
    _by_name: dict[str, Simulation] | None = field(default=None, init=False, repr=False, compare=False)

    def all_simulations(self) -> Iterator[Simulation]:
        """The manifest's own simulations, then its datasets' rows, each built when it is reached."""
        yield from self.simulations
        if self.rows is not None:
            yield from self.rows

    @property
    def count(self) -> int:
        """How many simulations `all_simulations` yields, known without building them."""
        return len(self.simulations) + (self.rows.counts.simulations if self.rows is not None else 0)

    def simulation(self, name: str) -> Simulation | None:
        """The simulation named `name` (its dataset rows are built once, on the first call)."""
        if self.rows is None:
            return next((s for s in self.simulations if s.name == name), None)
        if self._by_name is None:
            self._by_name = {s.name: s for s in self.all_simulations()}
        return self._by_name.get(name)

    @property
    def folder(self) -> Path:
        return self.path.parent
