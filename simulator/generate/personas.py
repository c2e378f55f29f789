"""Personas varied along stated axes (expertise, patience, language, tone), never two alike.

Each generated task is given its own combination of the axes' values before the model is asked,
drawn from every combination in an order `--seed` fixes, so no two personas share one until all
are used; the model writes a persona that fits it. A name the model gives twice is replaced by one
from a fixed list, so no two personas in a file share a name either.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator

from ..errors import ConfigError

DEFAULT_AXES: dict[str, tuple[str, ...]] = {
    "expertise": ("novice", "knows the basics", "expert"),
    "patience": ("patient", "impatient"),
    "language": ("native English speaker", "non-native English speaker"),
    "tone": ("friendly", "terse", "frustrated", "anxious"),
}
#: names given to a persona whose name another one already has
SPARE_NAMES = (
    "Amara Okafor", "Bruno Silva", "Chen Wei", "Dara Murphy", "Elif Yilmaz", "Farid Haddad", "Greta Lindqvist",
    "Hiro Tanaka", "Ines Moreau", "Jonas Becker", "Kavya Rao", "Liam O'Brien", "Mei Lin", "Nadia Petrova",
    "Omar Aziz", "Paula Gomez", "Quentin Roux", "Rosa Alvarez", "Sami Korhonen", "Tariq Malik", "Uma Iyer",
    "Viktor Novak", "Wen Zhou", "Ximena Cruz", "Yusuf Demir", "Zoe Adams",
)  # fmt: skip


def parse_axes(values: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """The default axes changed by `--axis NAME=V1,V2,...` (a new name adds an axis; `NAME=` drops one)."""
    axes = dict(DEFAULT_AXES)
    for value in values:
        name, equals, options = value.partition("=")
        name = name.strip()
        if not equals or not name:
            raise ConfigError(f"--axis {value!r}: write NAME=VALUE1,VALUE2 (e.g. --axis language=English,Spanish)")
        chosen = tuple(dict.fromkeys(o.strip() for o in options.split(",") if o.strip()))
        if chosen:
            axes[name] = chosen
        else:
            axes.pop(name, None)
    return axes


def people(axes: dict[str, tuple[str, ...]], seed: int) -> Iterator[dict[str, str]]:
    """Places on the axes, one per persona, all different while there are enough: every combination
    of the axes' values in an order the seed fixes, then again from the start."""
    names = list(axes)
    combinations = list(itertools.product(*(axes[n] for n in names))) if names else [()]
    random.Random(f"personas:{seed}").shuffle(combinations)
    for combination in itertools.cycle(combinations):
        yield dict(zip(names, combination, strict=True))


def describe(axes: dict[str, str]) -> str:
    """`expertise: novice; tone: terse`: how the prompt and the comment name a persona's place."""
    return "; ".join(f"{name}: {value}" for name, value in axes.items())


class NameBook:
    """The personas' names so far: a repeated one is replaced from `SPARE_NAMES`."""

    def __init__(self, taken: Iterable[str] = ()) -> None:
        self.used = {n.casefold() for n in taken}

    def unique(self, name: str) -> str:
        """`name`, or a spare name when another persona already has it."""
        name = " ".join(name.split()) or "Sam Taylor"
        if name.casefold() not in self.used:
            self.used.add(name.casefold())
            return name
        for spare in SPARE_NAMES:
            if spare.casefold() not in self.used:
                self.used.add(spare.casefold())
                return spare
        number = 2
        while f"{name} {number}".casefold() in self.used:
            number += 1
        self.used.add(f"{name} {number}".casefold())
        return f"{name} {number}"
