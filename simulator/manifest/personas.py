"""A simulation's persona: an inline mapping, a predefined name or a persona file, each read once.

With a `refusal` (a manifest loaded with `trusted=False`) persona files are refused: they would
read what the manifest's own source chose. Predefined and inline personas still work.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..parsing.yaml_source import YamlDocument, format_path
from ..persona import Persona, predefined_personas
from .files import FileAccess, _is_file, is_inside


class PersonaResolver:
    """An inline mapping, a predefined name or a file; with a `refusal`, never a file.

    A name or path is read and validated once; each simulation gets its own copy.
    """

    def __init__(self, access: FileAccess) -> None:
        self.folder = access.folder
        self.root = access.root
        self.refusal = access.refusal
        self._named: dict[str, Persona | str] = {}

    def resolve(self, value: Any, doc: YamlDocument, at: tuple, problems: list[str]) -> Persona | None:
        """The persona `value` (at `at` in `doc`) describes, or None with the problem added."""
        where = doc.where(at)
        if isinstance(value, dict):
            try:
                return Persona.from_dict(value, source=f"{where}: {format_path(at)}")
            except ConfigError as exc:
                found: Persona | str = str(exc).replace("\n", "; ")
        else:
            if value not in self._named:
                self._named[value] = self._by_name(value)
            found = self._named[value]
        if isinstance(found, str):
            problems.append(f"{where}: {format_path(at)}: {found}")
            return None
        return found.copy()

    def _by_name(self, value: str) -> Persona | str:
        """The persona a name or path gives, or what is wrong with it."""
        candidate = self.folder / value
        looks_like_path = candidate.suffix.lower() in (".yaml", ".yml") or "/" in value or "\\" in value
        try:
            if self.refusal is not None:
                predefined = value.lower() in {name.lower() for name in predefined_personas()}
                if looks_like_path or (not predefined and _is_file(candidate)):
                    return (
                        f"{value!r} would read a persona file "
                        f"(a predefined persona or an inline mapping is fine); {self.refusal}"
                    )
                return Persona.predefined(value)
            if looks_like_path or _is_file(candidate):
                if not is_inside(candidate, self.root):
                    return f"{value!r} is outside {self.root}; persona files must lie inside it"
                return Persona.load(candidate)
            return Persona.predefined(value)
        except ConfigError as exc:
            return str(exc).replace("\n", "; ")


def resolve_personas(
    entries: list[tuple[tuple, Any]], doc: YamlDocument, personas: PersonaResolver, problems: list[str]
) -> dict[tuple, Persona | None]:
    """The persona of each simulation (where its `persona` is written, and the value), each name or
    file read once."""
    return {at: personas.resolve(value, doc, at, problems) for at, value in entries}


def persona_file_problems(doc: YamlDocument, personas: PersonaResolver) -> list[str]:
    """What is wrong with the persona names and files of a manifest that failed its schema check:
    a missing persona file is a problem of its own that a typo elsewhere must not hide."""
    problems: list[str] = []
    entries = doc.data.get("simulations")
    for index, entry in enumerate(entries if isinstance(entries, list) else []):
        value = entry.get("persona") if isinstance(entry, dict) else None
        if isinstance(value, str) and value.strip():  # an inline mapping's problems are the schema's
            personas.resolve(value, doc, ("simulations", index, "persona"), problems)
    return problems
