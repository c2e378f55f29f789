"""What one pass over a manifest's dataset rows found: counts and the names the gate needs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RowCounts:
    """What one pass over the rows found, for `validate`, the plan and the gate."""

    simulations: int = 0
    conversations: int = 0
    played_by_llm: int = 0
    #: names of rows that say `required: true`
    required: list[str] = field(default_factory=list)
    #: the names `gate.required` lists that a row has
    named: set[str] = field(default_factory=set)
    #: a row with a check that needs a judge (its place), when there is no judge
    needs_judge: str | None = None
    #: rows whose script `max_turns` cuts, and why for the first of them (its place, the reason)
    cut_scripts: int = 0
    first_cut: tuple[str, str] | None = None
    #: each row's name and repeats, in order: what a plan selects and records (it shares these pairs)
    entries: list[tuple[str, int]] = field(default_factory=list)
    #: each row's tags, in the same order (one tuple for rows with the same tags)
    tags: list[tuple[str, ...]] = field(default_factory=list)
    _tag_sets: dict[tuple[str, ...], tuple[str, ...]] = field(default_factory=dict, repr=False)

    def add(self, name: str, repeat: int, tags: list[str]) -> None:
        """One row's entry; 100,000 rows of a few tags keep a few tag tuples, not 100,000."""
        found = tuple(tags)
        self.entries.append((name, repeat))
        self.tags.append(self._tag_sets.setdefault(found, found))
