"""Every problem of a target's configuration at once, each tied to the field it is about.

Building a target and validating a manifest run the same checks: each check records what is wrong
in a `Problems` list instead of stopping at the first, so one pass names them all, and the field
of each lets a manifest point at its line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from ...errors import ConfigError

T = TypeVar("T")
#: a field inside a target's configuration, e.g. ("request", "body", "messages", 0)
Field = tuple[str | int, ...]


def where(source: str, field: Field) -> str:
    """`source` and `field` spelled as messages name a place: `target.request.body.items[0]`."""
    out = source
    for part in field:
        out += f"[{part}]" if isinstance(part, int) and not isinstance(part, bool) else f".{part}"
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong, as a message naming its place, and the field it is about."""

    field: Field
    message: str


class TargetConfigError(ConfigError):
    """A target that cannot be built; `problems` holds every message, one line each."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = [p.message for p in problems]
        super().__init__("\n".join(self.problems))


class Problems(list[Problem]):
    """The problems found so far; checks add to it and go on."""

    def add(self, field: Field, message: str) -> None:
        """Record `message` (which names its place) about `field`."""
        self.append(Problem(field, message))

    def call(self, field: Field, check: Callable[..., T], *args: Any) -> T | None:
        """`check(*args)`, or None with its `ConfigError` recorded about `field`."""
        try:
            return check(*args)
        except ConfigError as exc:
            self.add(field, str(exc))
            return None
