"""Step 3 of loading: each simulation's parts resolved from its entry and the defaults.

Takes the manifest's data with `${VAR}` filled in; gives one `Resolved` per simulation: its persona,
its checks (the defaults' ones built once and shared), its target and user with the top level's
settings merged in, its `setup` and `teardown` requests and its limits. Problems go to the one
list; nothing here checks how the parts fit together (that is `build`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..checks import build_checks
from ..errors import ConfigError, field_errors
from ..parsing.yaml_source import YamlDocument, copy_plain, format_path
from ..persona import Persona
from ..state.requests import PLACEHOLDERS, SETUP_PLACEHOLDERS, StateRequest, request_list
from .files import FileAccess
from .personas import PersonaResolver, resolve_personas
from .types import DEFAULT_MAX_TURNS, DEFAULT_REPEAT


@dataclass
class Resolved:
    """One simulation's entry with its parts resolved, not yet checked as the run will use them."""

    #: where the entry is written: `("simulations", i)` in the manifest, `()` in a dataset's row
    at: tuple
    #: its place in the manifest's `simulations` (-1 for a dataset's row)
    index: int
    #: the document its positions are read from (the manifest, or the dataset's row)
    doc: YamlDocument
    entry: dict[str, Any]
    name: str
    line: int | None
    persona: Persona | None
    #: `expect` as written, the defaults' keys under the simulation's own
    expect: dict[str, Any]
    checks: list[Any]
    repeat: int
    target: dict[str, Any]
    user: dict[str, Any] | None
    setup: list[StateRequest]
    teardown: list[StateRequest]
    #: max_turns, tags and turn_timeout
    settings: dict[str, Any]


def written_entries(data: dict[str, Any]) -> list[tuple[tuple, int, dict[str, Any]]]:
    """The manifest's own simulations as entries to resolve: where each is written, its index, itself."""
    return [(("simulations", index), index, entry) for index, entry in enumerate(data.get("simulations") or [])]


class Resolver:
    """Entries resolved against one manifest's top level and defaults.

    What many simulations share is read once per load (each persona name or file, the defaults'
    checks and requests), and names stay unique across every entry it resolves: the manifest's own
    simulations and the rows of its datasets alike.
    """

    def __init__(self, data: dict[str, Any], doc: YamlDocument, access: FileAccess, problems: list[str]) -> None:
        self.data = data
        self.doc = doc
        self.defaults = data.get("defaults") or {}
        self.problems = problems
        self.personas = PersonaResolver(access)
        self.checks_of = CheckBuilder(doc, problems)
        self.around_of = StateRequestBuilder(self.defaults, doc, problems)
        #: each name resolved so far, with where it was first used
        self.seen: dict[str, str] = {}

    def report_to(self, problems: list[str]) -> None:
        """Add the problems found from here on to `problems` (a dataset's rows, one list each)."""
        self.problems = self.checks_of.problems = self.around_of.problems = problems

    def resolve(self, doc: YamlDocument, entries: list[tuple[tuple, int, dict[str, Any]]]) -> list[Resolved]:
        """Each entry (where it is written, its index, the entry) of `doc` resolved."""
        distinct = []
        for at, index, entry in entries:
            name = entry["name"]
            line = doc.line_of(at + ("name",))
            if name in self.seen:
                self.problems.append(
                    f"{doc.where(at + ('name',))}: {format_path(at + ('name',))}: duplicate simulation name "
                    f"'{name}' (first used at {self.seen[name]})"
                )
                continue
            self.seen[name] = f"line {line or 0}" if doc is self.doc else doc.where(at)
            distinct.append((at, index, entry, name, line))
        personas = [(at + ("persona",), entry["persona"]) for at, _, entry, _, _ in distinct]
        found = resolve_personas(personas, doc, self.personas, self.problems)
        return [
            self._resolved(doc, at, index, entry, name, line, found[at + ("persona",)])
            for at, index, entry, name, line in distinct
        ]

    def _resolved(
        self,
        doc: YamlDocument,
        at: tuple,
        index: int,
        entry: dict[str, Any],
        name: str,
        line: int | None,
        persona: Persona | None,
    ) -> Resolved:
        defaults, data = self.defaults, self.data
        around = self.around_of.build(entry, at, doc)
        return Resolved(
            at=at,
            index=index,
            doc=doc,
            entry=entry,
            name=name,
            line=line,
            persona=persona,
            expect={**(defaults.get("expect") or {}), **(entry.get("expect") or {})},  # checks add up
            checks=self.checks_of.build(defaults.get("expect") or {}, entry.get("expect") or {}, at, doc),
            repeat=entry.get("repeat", defaults.get("repeat", DEFAULT_REPEAT)),
            target=deep_merge(data.get("target"), entry.get("target")),
            user=deep_merge(data.get("user"), entry.get("user")) if (data.get("user") or entry.get("user")) else None,
            setup=around["setup"],
            teardown=around["teardown"],
            settings=settings(entry, defaults),
        )


def deep_merge(base: dict[str, Any] | None, override: dict[str, Any] | None) -> dict[str, Any]:
    """`override` on top of a copy of `base`, key by key at every depth: a mapping merges into the
    mapping it overrides, `None` (`key: null`) removes the key, anything else (a list, a string, a
    number) replaces the value."""
    merged = copy_plain(base or {})
    for key, value in (override or {}).items():
        if value is None:
            merged.pop(key, None)
        elif isinstance(value, dict):
            below = merged.get(key)
            merged[key] = deep_merge(below if isinstance(below, dict) else None, value)
        else:
            merged[key] = copy_plain(value)
    return merged


def settings(entry: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A simulation's limits and tags: its own, else the defaults', else the built-in ones."""
    return {
        "max_turns": entry.get("max_turns", defaults.get("max_turns", DEFAULT_MAX_TURNS)),
        "tags": sorted(set(defaults.get("tags", [])) | set(entry.get("tags", []))),
        "turn_timeout": entry.get("turn_timeout", defaults.get("turn_timeout")),
    }


def add_problems(exc: ConfigError, where: tuple, doc: YamlDocument, problems: list[str]) -> None:
    """Each problem of `exc` at the line of its field (a `FieldError`'s, inside the value at `where`)."""
    for field, message in field_errors(exc):
        line = f"{doc.where(where + tuple(field))}: {message}"
        if line not in problems:
            problems.append(line)


#: `expect` keys whose simulation values add to the defaults' instead of replacing them
ADDED_TO_DEFAULTS = frozenset({"contains", "not_contains", "regex", "not_regex"})


class CheckBuilder:
    """Each simulation's checks; each kind is built on its own, so one bad check hides no other."""

    def __init__(self, doc: YamlDocument, problems: list[str]) -> None:
        self.doc = doc
        self.problems = problems
        self._from_defaults: dict[str, list[Any]] = {}

    def build(
        self, defaults: dict[str, Any], own: dict[str, Any], at: tuple, doc: YamlDocument | None = None
    ) -> list[Any]:
        """The checks of the defaults' `expect` and the simulation's own at `at`.

        A simulation's value of a key replaces the defaults' one, except for the text checks in
        `ADDED_TO_DEFAULTS`: their values add to the defaults' (a safety `not_contains` set as a
        default never vanishes), unless the simulation's long form says `replace: true`.
        """
        checks: list[Any] = []
        for key in dict.fromkeys([*defaults, *own]):
            config = own.get(key)
            keeps_default = key in defaults and (
                key not in own
                or (key in ADDED_TO_DEFAULTS and not (isinstance(config, dict) and config.get("replace")))
            )
            if keeps_default:
                checks.extend(self._default(key, defaults[key]))
            if key in own:
                checks.extend(self._built(key, config, at + ("expect", key), doc or self.doc))
        return checks

    def _default(self, key: str, config: Any) -> list[Any]:
        if key not in self._from_defaults:
            self._from_defaults[key] = self._built(key, config, ("defaults", "expect", key), self.doc)
        return self._from_defaults[key]

    def _built(self, key: str, config: Any, where: tuple, doc: YamlDocument) -> list[Any]:
        try:
            return build_checks({key: config}, source=format_path(where[:-1]))
        except ConfigError as exc:
            add_problems(exc, where, doc, self.problems)
            return []


class StateRequestBuilder:
    """Each simulation's `setup` and `teardown` requests: its own, else the defaults' (read once)."""

    KINDS = (("setup", SETUP_PLACEHOLDERS), ("teardown", PLACEHOLDERS))

    def __init__(self, defaults: dict[str, Any], doc: YamlDocument, problems: list[str]) -> None:
        self.doc = doc
        self.problems = problems
        self._defaults = {
            key: self._read(defaults.get(key), ("defaults", key), known, doc) for key, known in self.KINDS
        }

    def build(self, entry: dict[str, Any], at: tuple, doc: YamlDocument | None = None) -> dict[str, list[StateRequest]]:
        """`setup` and `teardown` of the simulation at `at` (in `doc`, by default the manifest)."""
        return {
            key: self._read(entry[key], at + (key,), known, doc or self.doc) if key in entry else self._defaults[key]
            for key, known in self.KINDS
        }

    def _read(self, config: Any, where: tuple, known: tuple[str, ...], doc: YamlDocument) -> list[StateRequest]:
        if config is None:
            return []
        try:
            return [request for request, _ in request_list(config, format_path(where), known)]
        except ConfigError as exc:
            add_problems(exc, where, doc, self.problems)
            return []
