"""Persona: who the simulated user is, and the prompt that makes an LLM play them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError, PersonaError
from .parsing.schema_check import schema_errors
from .parsing.template import check_placeholders, render
from .parsing.yaml_source import YamlDocument, copy_plain, load_yaml_file, parse_yaml, plain_data, problems_message
from .text.clip import clip
from .text.unicode_safety import replace_lone_surrogates, surrogate_note

STOP_MARKER = "###STOP###"
GIVE_UP_MARKER = "###GIVE_UP###"
BUILTIN_VARIABLES = ("name", "profile", "tone", "meta_data", "task", "stop_marker", "give_up_marker")
DEFAULT_TONE = "Natural and conversational, like an ordinary customer."


def default_template() -> str:
    """The built-in user prompt (see `simulator/templates/user_persona.txt`)."""
    return resources.files("simulator.templates").joinpath("user_persona.txt").read_text("utf-8")


def _personas_folder() -> Any:
    """Installed: the `simulator.personas` package data; source checkout: the repo's `personas/`."""
    try:
        return resources.files("simulator.personas")
    except ModuleNotFoundError:
        return Path(__file__).resolve().parent.parent / "personas"


def predefined_personas() -> list[str]:
    """Names accepted by `Persona.load(name)`."""
    return sorted(p.name[: -len(".yaml")] for p in _personas_folder().iterdir() if p.name.endswith(".yaml"))


def _shorten(text: str, limit: int = 200) -> str:
    return clip(text, limit, "...")


def _format_meta_data(meta_data: dict | str | None) -> str:
    if meta_data is None or meta_data == {} or meta_data == "":
        return "(none given)"
    if isinstance(meta_data, str):
        return meta_data.strip()
    return yaml.safe_dump(meta_data, sort_keys=False, allow_unicode=True, width=100).strip()


@dataclass
class Persona:
    """A simulated user. `name` and `profile` are required; everything else is optional.

    `prompt_template` (text) or `prompt_template_file` (path) replaces the built-in prompt;
    `template_vars` supplies values for extra `{{placeholders}}` in it.
    """

    name: str
    profile: str
    tone: str | None = None
    meta_data: dict[str, Any] | str | None = None
    prompt_template: str | None = None
    template_vars: dict[str, Any] = field(default_factory=dict)
    prompt_template_file: dataclasses.InitVar[str | Path | None] = None
    source: str | None = field(default=None, compare=False, repr=False)
    #: what happened to the fields on the way in (text UTF-8 cannot hold, replaced); a conversation notes it
    notes: list[str] = field(default_factory=list, init=False, compare=False, repr=False)
    _rendered: dict[str, str] = field(default_factory=dict, init=False, compare=False, repr=False)

    def __post_init__(self, prompt_template_file: str | Path | None) -> None:
        where = self.source or "Persona"
        if prompt_template_file is not None:
            if self.prompt_template is not None:
                raise PersonaError(f"{where}: give prompt_template or prompt_template_file, not both")
            try:
                self.prompt_template = Path(prompt_template_file).read_text(encoding="utf-8")
            except OSError as exc:
                raise PersonaError(
                    f"{prompt_template_file}: cannot read prompt template: {exc.strerror or exc}"
                ) from None
        data, problems = plain_data(self._fields(), source=where)
        if problems:
            raise PersonaError(problems_message(problems))
        problems = schema_errors(data, "persona", source=where)
        if problems:
            raise PersonaError(problems_message(problems))
        # lone surrogates (a `"\\ud800"` escape) become U+FFFD here, where every persona enters: no request,
        # prompt or results file meets text UTF-8 cannot hold
        data, replaced = replace_lone_surrogates(data)
        if replaced:
            self.name, self.profile, self.tone = data["name"], data["profile"], data["tone"]
            self.prompt_template = data.get("prompt_template", self.prompt_template)
            self.template_vars = data.get("template_vars", self.template_vars)
            self.notes = [surrogate_note(replaced, f"the persona {self.name!r}")]
        self.meta_data = data["meta_data"]  # dates in the facts become ISO text, so results stay JSON
        self.template_vars = dict(self.template_vars or {})
        clash = sorted(set(self.template_vars) & set(BUILTIN_VARIABLES))
        if clash:
            raise PersonaError(f"{where}: template_vars may not redefine built-in placeholder(s): {', '.join(clash)}")
        template_source = f"{where}: prompt_template" if self.prompt_template else "built-in prompt template"
        check_placeholders(self.template_text, set(BUILTIN_VARIABLES) | set(self.template_vars), template_source)

    # --- loading and saving -------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Persona:
        """Load a persona YAML file, or a predefined persona by name (`Persona.load("jane")`)."""
        if not isinstance(path, (str, Path)):
            raise PersonaError(f"persona: expected a file path or a predefined name, got {type(path).__name__}")
        candidate = Path(path)
        try:
            is_file, exists = candidate.is_file(), candidate.exists()
        except (OSError, ValueError) as exc:  # e.g. a name too long for the file system
            raise PersonaError(f"{_shorten(str(path))}: not a usable persona path ({exc})") from None
        if is_file:
            return cls._from_document(load_yaml_file(candidate, "persona file", PersonaError))
        text = str(path)
        looks_like_name = "/" not in text and "\\" not in text and candidate.suffix.lower() not in (".yaml", ".yml")
        if looks_like_name:
            return cls.predefined(text)
        if exists:
            raise PersonaError(f"{candidate}: is not a file, expected a persona YAML file")
        try:
            cwd = str(Path.cwd())
        except OSError:
            cwd = "the current directory"
        raise PersonaError(f"{_shorten(str(candidate))}: persona file not found (paths are relative to {cwd})")

    @classmethod
    def predefined(cls, name: str) -> Persona:
        """A predefined persona by name (`jane`, `marcus`, ...); never reads a file of the caller's."""
        names = predefined_personas()
        text = str(name)
        match = next((n for n in names if n.lower() == text.lower()), None)
        if match is None:
            raise PersonaError(
                f"{_shorten(text)!r} is neither a persona file nor a predefined persona; "
                f"predefined personas: {', '.join(names)}"
            )
        resource = _personas_folder().joinpath(f"{match}.yaml")
        return cls._from_document(
            parse_yaml(resource.read_text("utf-8"), f"predefined persona '{match}'", PersonaError)
        )

    @classmethod
    def from_dict(cls, data: Any, source: str = "persona") -> Persona:
        """Build from a mapping such as one read from YAML or a manifest."""
        return cls._from_document(YamlDocument(data, {}, source))

    @classmethod
    def _from_document(cls, doc: YamlDocument) -> Persona:
        if not isinstance(doc.data, dict):
            kind = "empty" if doc.data is None else f"a {type(doc.data).__name__}"
            raise PersonaError(f"{doc.source}: expected a mapping with 'name' and 'profile', got {kind}")
        data, problems = plain_data(doc.data, doc)  # keys are text, values JSON-like, no cycles
        if problems:
            raise PersonaError(problems_message(problems))
        problems = schema_errors(data, "persona", doc=doc)
        if problems:
            raise PersonaError(problems_message(problems))
        return cls(**data, source=doc.source)

    def copy(self) -> Persona:
        """An equal persona that changes on its own; what is valid already is not validated again."""
        clone = object.__new__(Persona)
        clone.__dict__.update(self.__dict__)
        clone.meta_data = copy_plain(self.meta_data)
        clone.template_vars = copy_plain(self.template_vars)
        clone.notes = list(self.notes)
        clone._rendered = {}
        return clone

    def to_dict(self) -> dict[str, Any]:
        """The persona's fields, as written by `export` (custom template included); an empty
        `meta_data` is kept, so the file loads back equal."""
        return {k: v for k, v in self._fields().items() if v is not None}

    def export(self, path: str | Path) -> None:
        """Write YAML that `Persona.load` reads back equal."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True, width=100)
        try:
            Path(path).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write persona: {exc.strerror or exc}") from None

    # --- the prompt ---------------------------------------------------------------------

    @property
    def template_text(self) -> str:
        """The raw template with its placeholders."""
        return self.prompt_template or default_template()

    @property
    def template(self) -> str:
        """The system prompt for this persona; `{{task}}` stays in until a task is given."""
        return render(self.template_text, self._values(task=None), self._template_source, keep=("task",))

    def render(self, task: str, **extra: Any) -> str:
        """The full system prompt that makes the user-LLM play this persona pursuing `task`.

        The prompt is asked for on every user turn; it is cached per field values and task.
        """
        key = repr((self._fields(), task, sorted(extra.items())))
        cached = self._rendered.get(key)
        if cached is None:
            cached = render(self.template_text, {**self._values(task), **extra}, self._template_source)
            if len(self._rendered) > 64:
                self._rendered.clear()
            self._rendered[key] = cached
        return cached

    def with_template(
        self, text: str | None = None, *, path: str | Path | None = None, **template_vars: Any
    ) -> Persona:
        """A copy that uses another prompt template (text or file) and extra variables."""
        changed = Persona(
            name=self.name,
            profile=self.profile,
            tone=self.tone,
            meta_data=self.meta_data,
            prompt_template=text,
            prompt_template_file=path,
            template_vars={**self.template_vars, **template_vars},
            source=self.source,
        )
        changed.notes = [*self.notes, *changed.notes]
        return changed

    @property
    def _template_source(self) -> str:
        return f"{self.source or 'Persona'}: prompt_template" if self.prompt_template else "built-in template"

    def _values(self, task: str | None) -> dict[str, Any]:
        return {
            **self.template_vars,
            "name": self.name,
            "profile": self.profile.strip(),
            "tone": (self.tone or DEFAULT_TONE).strip(),
            "meta_data": _format_meta_data(self.meta_data),
            "task": task,
            "stop_marker": STOP_MARKER,
            "give_up_marker": GIVE_UP_MARKER,
        }

    def _fields(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "profile": self.profile,
            "tone": self.tone,
            "meta_data": self.meta_data,
            **({"prompt_template": self.prompt_template} if self.prompt_template is not None else {}),
            **({"template_vars": self.template_vars} if self.template_vars else {}),
        }
