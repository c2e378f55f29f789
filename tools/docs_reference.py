"""The documentation site's reference pages, generated from what they describe, so they cannot drift:

- `docs/reference/manifest.md` from the manifest's JSON Schema (`simulator/schemas/manifest.schema.json`):
  every key at every level with its type, default, description and examples;
- `docs/reference/cli.md` from the `simulator` command's argparse parser (`simulator.cli_parser.build_parser`);
- `docs/reference/action.md` from the GitHub Action's `action.yml`.

    python tools/docs_reference.py           # write the pages
    python tools/docs_reference.py --check   # exit 1, naming the stale pages, when one differs

`tests/test_docs.py` renders them in memory and fails when a committed page differs.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
COMMAND = "python tools/docs_reference.py"
SCHEMA = REPO / "simulator" / "schemas" / "manifest.schema.json"
PERSONA_SCHEMA = REPO / "simulator" / "schemas" / "persona.schema.json"
ACTION = REPO / "action.yml"


def banner(source: str) -> str:
    """The first line of a generated page: a reader (and a reviewer of a diff) sees not to edit it."""
    return f"<!-- generated from {source} by `{COMMAND}`: do not edit by hand -->\n"


def text(value: str) -> str:
    """Prose from a schema, a parser or action.yml as Markdown text: what Markdown would read as an
    HTML tag, emphasis or a table cell's end is escaped, and line breaks are spaces."""
    value = " ".join(value.split())
    for raw, escaped in (("\\", "\\\\"), ("<", "&lt;"), (">", "&gt;"), ("*", "\\*"), ("|", "\\|")):
        value = value.replace(raw, escaped)
    return value


def code(value: str) -> str:
    """`value` as inline code, in a table cell too (a backtick inside gets a longer fence)."""
    value = value.replace("|", "\\|")
    fence = "``" if "`" in value else "`"
    return f"{fence}{value}{fence}" if fence == "`" else f"{fence} {value} {fence}"


def flow(value: Any) -> str:
    """A value as YAML writes it inline: `6`, `1.0`, `[]`, `{read: json:session_id}`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str) and _plain(value):
        return value
    dumped: str = yaml.safe_dump(value, default_flow_style=True, width=10_000, allow_unicode=True, sort_keys=False)
    return dumped.strip().removesuffix("\n...").removesuffix("...").strip()


def _plain(value: str) -> bool:
    """Whether YAML reads `value` back as this very string when it is written unquoted."""
    try:
        return bool(value) and yaml.safe_load(value) == value and ": " not in value and " #" not in value
    except yaml.YAMLError:
        return False


def block(value: Any) -> str:
    """A mapping as a YAML block, as a manifest would hold it."""
    dumped: str = yaml.safe_dump(value, default_flow_style=False, width=100, allow_unicode=True, sort_keys=False)
    return dumped


def table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cell or " " for cell in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# --- the manifest ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A part of the manifest reference: the keys of one object of the schema."""

    title: str
    anchor: str
    pointer: str  # where its object is in the schema
    path: str  # how a key of it is written in full: `target.` + key
    key: str  # the manifest key its examples are shown under
    intro: str = ""


SECTIONS = [
    Section("Top level", "top-level", "", "", ""),
    Section(
        "target",
        "target",
        "/$defs/target",
        "target.",
        "target",
        "The top-level `target` is the app every simulation talks to; a simulation's own `target` is merged "
        "into it key by key, at every depth (`key: null` removes a key). It is a URL target or a callback target.",
    ),
    Section("target: a URL", "url-target", "/$defs/url_target", "target.", "target"),
    Section("target: a Python callback", "callback-target", "/$defs/callback_target", "target.", "target"),
    Section(
        "user and judge",
        "user",
        "/$defs/user",
        "user.",
        "user",
        "`user` is the LLM that plays the personas; `judge`, with the same keys, is the LLM that judges "
        "`goal_completed` and `rubric` checks. With `api_version` the endpoint is Azure OpenAI (the key from "
        "`AZURE_OPENAI_API_KEY`); without, any OpenAI-compatible server (the key from `OPENAI_API_KEY`, or "
        "none for a local server).",
    ),
    Section("defaults", "defaults", "/properties/defaults", "defaults.", "defaults"),
    Section("simulations[]", "simulations", "/$defs/simulation", "simulations[].", "simulation"),
    Section(
        "simulations_from",
        "simulations_from",
        "/$defs/dataset",
        "simulations_from.",
        "simulations_from",
        "One dataset, or a list of them. A column named like a simulation field sets it unless the template "
        "does: `persona`, `task`, `name` (else `<file stem>-<line>`), `tags` (comma-separated), `max_turns`, "
        "`repeat`, `min_passes`, `turn_timeout` and `required`.",
    ),
    Section("expect", "expect", "/$defs/expect", "expect.", "expect"),
    Section(
        "Text checks",
        "text-checks",
        "/$defs/text_check/oneOf/2",
        "expect.contains.",
        "contains",
        "`contains`, `not_contains`, `regex` and `not_regex` take a text, a list of texts (every one must "
        "hold) or this long form, shown here for `contains`. Their values add to those of `defaults.expect`, "
        "unless `replace: true`.",
    ),
    Section(
        "Rubrics",
        "rubrics",
        "/$defs/expect/properties/rubric/oneOf/0/oneOf/1",
        "expect.rubric.",
        "rubric",
        "`rubric` takes a criterion's text, this long form, or a list of either.",
    ),
    Section(
        "expect.outcome",
        "outcome",
        "/$defs/outcome_check_fields",
        "expect.outcome.",
        "outcome",
        "One request, or a list of them, sent after the conversation; every expectation given must hold "
        "for the value at `path` in the JSON answer.",
    ),
    Section(
        "expect.reply_json",
        "reply_json",
        "/$defs/reply_json_check_fields",
        "expect.reply_json.",
        "reply_json",
        "One expectation, or a list of them, on the app's raw JSON replies (an HTTP target's JSON answer, "
        "a callback's dict).",
    ),
    Section(
        "setup and teardown",
        "setup-and-teardown",
        "/$defs/state_request_fields",
        "setup.",
        "setup",
        "`setup` and `teardown`, in `defaults` or in a simulation (which replaces the defaults'), take one "
        "request or a list of them: `setup` runs before each conversation, in order; `teardown` after the "
        "conversation and its checks, also when they failed.",
    ),
    Section("gate", "gate", "/properties/gate", "gate.", "gate"),
]
#: where a key whose value is one of these objects links to, instead of listing its keys again
LINKS = {
    "#/$defs/target": ("target", "#target"),
    "#/$defs/url_target": ("URL target", "#url-target"),
    "#/$defs/callback_target": ("callback target", "#callback-target"),
    "#/$defs/user": ("model", "#user"),
    "#/$defs/simulation": ("simulation", "#simulations"),
    "#/$defs/dataset": ("dataset", "#simulations_from"),
    "#/$defs/expect": ("expect", "#expect"),
    "#/$defs/text_check": ("text check", "#text-checks"),
    "#/$defs/stop_reason": ("stop reason", "#stop-reasons"),
    "#/$defs/state_requests": ("request", "#setup-and-teardown"),
    "#/$defs/state_request": ("request", "#setup-and-teardown"),
    "#/$defs/outcome_check_fields": ("outcome check", "#outcome"),
    "#/$defs/reply_json_check_fields": ("reply_json check", "#reply_json"),
    "#/properties/defaults": ("defaults", "#defaults"),
    "#/properties/gate": ("gate", "#gate"),
}
#: what is said about a key beside its schema, where its object is shown in a section of its own
OWN_SECTION = {"/properties/defaults": "#/properties/defaults", "/properties/gate": "#/properties/gate"}


class Schema:
    """The manifest's JSON Schema, read for a reader: types in words, `$ref`s followed."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def at(self, pointer: str) -> Any:
        node: Any = self.document
        for part in [p for p in pointer.split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            node = node[int(part)] if isinstance(node, list) else node[part]
        return node

    def resolved(self, node: dict[str, Any]) -> dict[str, Any]:
        """`node` with what its `$ref` chain says, its own words winning."""
        merged = dict(node)
        while "$ref" in merged:
            target = self.at(merged.pop("$ref").removeprefix("#"))
            merged = {**target, **merged}
        return merged

    def annotation(self, node: dict[str, Any], key: str) -> Any:
        """`description`, `default` or `examples` of `node` or, failing that, of what it refers to."""
        seen = node
        while True:
            if key in seen:
                return seen[key]
            if "$ref" not in seen:
                return None
            seen = self.at(seen["$ref"].removeprefix("#"))

    def type_of(self, node: Any) -> str:
        """A schema in words: `integer, 1 to 200`, `` `full` or `latest` ``, `list of string`."""
        if not isinstance(node, dict) or not node:
            return "any"
        ref = node.get("$ref")
        kinds = node.get("type")
        if ref in LINKS:
            name, anchor = LINKS[ref]
            link = f"[{name}]({anchor})"
            kinds = kinds or self.at(ref.removeprefix("#")).get("type")
            if isinstance(kinds, list) and "array" in kinds:
                return f"{link} or a list of them"
            return link
        if ref:
            return self.type_of(self.resolved(node))
        if "const" in node:
            return code(flow(node["const"]))
        if "enum" in node:
            return _either([code(flow(v)) for v in node["enum"]])
        for combinator in ("oneOf", "anyOf"):
            if combinator in node:
                return _either(list(dict.fromkeys(self.type_of(branch) for branch in node[combinator])))
        if isinstance(kinds, list):
            return _either([self.type_of({**node, "type": kind}) for kind in kinds])
        if kinds == "array":
            items = node.get("items")
            return f"list of {self.type_of(items)}" if items else "list"
        if kinds == "object":
            values = node.get("additionalProperties")
            return f"mapping of {self.type_of(values)}" if isinstance(values, dict) else "mapping"
        if kinds in ("integer", "number"):
            return kinds + _bounds(node)
        if kinds == "string":
            return f"string: {text(node['x-expected'])}" if "x-expected" in node else "string"
        return str(kinds or "any")

    def rows(self, pointer: str, path: str, flatten: bool) -> Iterator[tuple[str, dict[str, Any], bool]]:
        """(full key, schema, required) of every key of the object at `pointer`, nested objects' keys
        after theirs."""
        node = self.resolved(self.at(pointer))
        required = set(node.get("required", ()))
        for key, prop in node.get("properties", {}).items():
            where = f"{pointer}/properties/{key}"
            if where in OWN_SECTION:
                yield path + key, {**prop, "$ref": OWN_SECTION[where]}, key in required
                continue
            yield path + key, prop, key in required
            if flatten and "$ref" not in prop and "properties" in prop:
                yield from self.rows(where, f"{path}{key}.", flatten)


def _either(options: list[str]) -> str:
    return options[0] if len(options) == 1 else ", ".join(options[:-1]) + " or " + options[-1]


def _bounds(node: dict[str, Any]) -> str:
    low = node.get("minimum")
    high = node.get("maximum")
    if "exclusiveMinimum" in node:
        return f" > {flow(node['exclusiveMinimum'])}" + (f", at most {flow(high)}" if high is not None else "")
    if low is not None and high is not None:
        return f", {flow(low)} to {flow(high)}"
    if low is not None:
        return f" ≥ {flow(low)}"
    if high is not None:
        return f" ≤ {flow(high)}"
    return ""


def _scalar(value: Any) -> bool:
    return isinstance(value, (str, int, float, bool))


def _section(schema: Schema, section: Section, top: bool = False) -> str:
    """A section's table; `top`: the document's own keys, each object shown in its own section."""
    node = schema.at(section.pointer)
    out = [f"## {section.title} {{#{section.anchor}}}\n"]
    said = [section.intro] if section.intro else []
    description = None if top else schema.annotation(node, "description")
    if description:
        said.insert(0, text(description))
    if said:
        out.append(" ".join(said) + "\n")
    for example in [] if top else schema.annotation(node, "examples") or []:
        out.append(f"```yaml\n{block({section.key: example})}```\n")
    if "oneOf" in node and "properties" not in node:  # target: the kinds, each in a section below
        kinds = [schema.type_of(branch) for branch in node["oneOf"]]
        out.append(f"A `{section.key}` is a {_either(kinds)}.\n")
        return "\n".join(out)
    rows, blocks = [], []
    for key, prop, required in schema.rows(section.pointer, section.path, flatten=not top):
        linked = prop.get("$ref") in LINKS  # its own annotations only: the linked section shows the rest
        default = prop.get("default") if linked else schema.annotation(prop, "default")
        examples = prop.get("examples") if linked else schema.annotation(prop, "examples")
        if prop.get("$ref") in OWN_SECTION.values():
            examples = None  # its section shows them
        inline = [code(flow(e)) for e in examples or [] if _scalar(e)]
        blocks += [(key, e) for e in examples or [] if not _scalar(e)]
        described = text(schema.annotation(prop, "description") or "")
        if inline:
            described += f" Example{'s' if len(inline) > 1 else ''}: {', '.join(inline)}."
        kind = schema.type_of(prop) + (" (required)" if required else "")
        rows.append([code(key), kind, code(flow(default)) if default is not None else "", described])
    out.append(table(["Key", "Type", "Default", "Description"], rows))
    for key, example in blocks:
        leaf = key.rsplit(".", 1)[-1].removesuffix("[]")
        out.append(f"```yaml\n# {key}\n{block({leaf: example})}```\n")
    return "\n".join(out)


def manifest_reference(document: dict[str, Any] | None = None) -> str:
    """docs/reference/manifest.md: every key of the manifest, from its JSON Schema."""
    schema = Schema(document if document is not None else json.loads(SCHEMA.read_text(encoding="utf-8")))
    stop_reasons = schema.at("/$defs/stop_reason")
    parts = [
        banner("simulator/schemas/manifest.schema.json"),
        "# Manifest reference\n",
        text(schema.document["description"])
        + " Point your editor at the schema for completion: "
        + "`# yaml-language-server: $schema=<path to simulator/schemas/manifest.schema.json>` "
        + "as the manifest's first line. `simulator validate` checks a manifest against it, and more. "
        + "Every key of every level is listed below with its type (and whether it is required), its default "
        + "(the value that applies when the key is left out), what it does, and examples.\n",
        *(_section(schema, section, top=not section.pointer) for section in SECTIONS),
        "## Stop reasons {#stop-reasons}\n",
        text(stop_reasons["description"]) + "\n",
        ", ".join(code(v) for v in stop_reasons["enum"]) + "\n",
        _personas(),
    ]
    return "\n".join(parts)


def _personas() -> str:
    """The persona's keys (simulator/schemas/persona.schema.json) and the predefined personas."""
    from simulator import Persona, predefined_personas

    schema = Schema(json.loads(PERSONA_SCHEMA.read_text(encoding="utf-8")))
    intro = (
        "A simulation's `persona` is a predefined persona's name, a persona file (YAML, relative to the "
        "manifest) or an inline mapping; a file and a mapping have these keys "
        "(`simulator/schemas/persona.schema.json`)."
    )
    section = Section("Personas", "personas", "", "", "persona", intro)
    rows = []
    for name in predefined_personas():
        persona = Persona.load(name)
        first = persona.profile.split(". ")[0].rstrip(".") + "."
        rows.append([code(name), text(persona.name), text(first), text(persona.tone or "")])
    return "\n".join(
        [
            _section(schema, section),
            "The predefined personas (`simulator personas show NAME` prints one whole):\n",
            table(["persona", "Name", "Profile (its first sentence)", "Tone"], rows),
        ]
    )


# --- the command line -----------------------------------------------------------------------------


def _metavar(action: argparse.Action) -> str:
    if action.metavar is not None:
        return str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def _value(action: argparse.Action) -> str:
    """How the argument's values are written: `NAME`, `[NAME]`, `NAME [NAME ...]`."""
    name = _metavar(action)
    if isinstance(action.nargs, int):
        return " ".join([name] * action.nargs)
    forms = {"?": f"[{name}]", "*": f"[{name} ...]", "+": f"{name} [{name} ...]", argparse.REMAINDER: "..."}
    return forms.get(str(action.nargs), name)


def _invocation(action: argparse.Action) -> str:
    if not action.option_strings:
        return _value(action)
    if action.nargs == 0:
        return ", ".join(action.option_strings)
    return ", ".join(f"{option} {_value(action)}" for option in action.option_strings)


def _usage(parser: argparse.ArgumentParser) -> str:
    """The usage line, written the same way on every Python version."""
    parts = [parser.prog]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction) or action.help == argparse.SUPPRESS:
            continue
        if isinstance(action, argparse._SubParsersAction):
            parts.append("{" + ",".join(action.choices) + "} ...")
            continue
        shown = _invocation(action).split(", ")[-1] if action.option_strings else _value(action)
        parts.append(shown if action.required or not action.option_strings else f"[{shown}]")
    return " ".join(parts)


def _help(action: argparse.Action, prog: str) -> str:
    help_text = action.help or ""
    if "%(" in help_text:
        help_text = help_text % {**vars(action), "prog": prog}
    return help_text


def _takes(action: argparse.Action) -> str:
    if action.nargs == 0:
        return "flag"
    many = " (repeatable)" if isinstance(action, argparse._AppendAction) else ""
    if action.choices is not None:
        return _either([code(str(c)) for c in action.choices]) + many
    return {"?": "optional value", "*": "any number of values", "+": "one or more values"}.get(
        str(action.nargs), "a value"
    ) + many


def _default(action: argparse.Action) -> str:
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    return code(str(action.default))


def _commands(parser: argparse.ArgumentParser) -> Iterator[tuple[argparse.ArgumentParser, str]]:
    """Every subcommand of `parser`, depth first, with its one-line help."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                yield sub, helps.get(name, "")
                yield from _commands(sub)


def _arguments(parser: argparse.ArgumentParser) -> str:
    out = []
    for group in parser._action_groups:
        actions = [
            a
            for a in group._group_actions
            if not isinstance(a, (argparse._HelpAction, argparse._SubParsersAction)) and a.help != argparse.SUPPRESS
        ]
        if not actions:
            continue
        title = {"positional arguments": "Arguments", "options": "Options", "optional arguments": "Options"}.get(
            group.title or "", group.title or "Options"
        )
        out.append(f"**{text(title)}**" + (f": {text(group.description)}" if group.description else "") + "\n")
        rows = [[code(_invocation(a)), _takes(a), _default(a), text(_help(a, parser.prog))] for a in actions]
        out.append(table(["Argument", "Takes", "Default", "Description"], rows))
    return "\n".join(out)


def _paragraphs(value: str, prog: str = "simulator") -> str:
    """Help text as Markdown: its paragraphs; an indented one (an example) as a code block, a shell
    block when every line is a command of `prog`."""
    out = []
    for paragraph in value.strip("\n").split("\n\n"):
        lines = paragraph.splitlines()
        if lines and all(line.startswith(" ") for line in lines):
            lines = [line.strip() for line in lines]
            lang = "bash" if all(line.startswith(prog + " ") for line in lines) else "text"
            out.append(f"```{lang}\n" + "\n".join(lines) + "\n```")
        else:
            out.append(text(paragraph))
    return "\n\n".join(out) + "\n"


def cli_reference(parser: argparse.ArgumentParser | None = None) -> str:
    """docs/reference/cli.md: every command, argument, choice, default and help of `simulator`."""
    if parser is None:
        from simulator.cli_parser import build_parser

        parser = build_parser()
    commands = list(_commands(parser))
    index = [[f"[{code(sub.prog)}](#{sub.prog.replace(' ', '-')})", text(help_text)] for sub, help_text in commands]
    parts = [
        banner("the `simulator` command's parser (simulator/cli_parser.py)"),
        "# Command line reference\n",
        _paragraphs(parser.description or ""),
        f"```text\n{_usage(parser)}\n```\n",
        table(["Command", "What it does"], index),
    ]
    if parser.epilog:
        parts.append(_paragraphs(parser.epilog))
    for sub, help_text in commands:
        parts.append(f"## {sub.prog} {{#{sub.prog.replace(' ', '-')}}}\n")
        said = sub.description or help_text
        if said:
            parts.append(_paragraphs(said[0].upper() + said[1:] + ("" if said.rstrip().endswith(".") else ".")))
        parts.append(f"```text\n{_usage(sub)}\n```\n")
        if any(not isinstance(a, argparse._HelpAction) for a in sub._actions):
            parts.append(_arguments(sub))
        if sub.epilog:
            parts.append(_paragraphs(sub.epilog))
    return "\n".join(parts)


# --- the action -----------------------------------------------------------------------------------


def action_reference(action: dict[str, Any] | None = None) -> str:
    """docs/reference/action.md: the action's inputs and outputs, from action.yml."""
    if action is None:
        action = yaml.safe_load(ACTION.read_text(encoding="utf-8"))
    inputs = [
        [
            code(name),
            "yes" if spec.get("required") else "no",
            code(str(spec["default"])) if str(spec.get("default", "")) != "" else "",
            text(str(spec.get("description", ""))),
        ]
        for name, spec in (action.get("inputs") or {}).items()
    ]
    outputs = [
        [code(name), text(str(spec.get("description", "")))] for name, spec in (action.get("outputs") or {}).items()
    ]
    runs = action.get("runs") or {}
    how = f"a container ({code(str(runs.get('using')))}, image {code(str(runs.get('image')))})"
    parts = [
        banner("action.yml"),
        "# GitHub Action reference\n",
        f"**{text(str(action.get('name', '')))}**: {text(str(action.get('description', '')))} "
        f"It runs as {how}; the [gating guide](../guides/gating.md) shows it in a workflow.\n",
        "## Inputs {#inputs}\n",
        "Every input is optional unless marked required; an empty default means not set.\n",
        table(["Input", "Required", "Default", "Description"], inputs),
        "## Outputs {#outputs}\n",
        "Read them as `steps.<id>.outputs.<name>` in later steps.\n",
        table(["Output", "Description"], outputs),
    ]
    return "\n".join(parts)


#: each generated page and how it is made
PAGES: dict[str, Callable[[], str]] = {
    "docs/reference/manifest.md": manifest_reference,
    "docs/reference/cli.md": cli_reference,
    "docs/reference/action.md": action_reference,
}


def render_all() -> dict[str, str]:
    """Every generated page's text, by its path relative to the repository."""
    return {path: make() for path, make in PAGES.items()}


def stale(repo: Path = REPO) -> list[str]:
    """The generated pages whose committed text differs from what they would be now."""
    return [
        path
        for path, page in render_all().items()
        if not (repo / path).is_file() or (repo / path).read_text(encoding="utf-8") != page
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a page is out of date")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for path in old:
            print(f"{path} is out of date: run `{COMMAND}`", file=sys.stderr)
        return 1 if old else 0
    for path, page in render_all().items():
        (REPO / path).parent.mkdir(parents=True, exist_ok=True)
        (REPO / path).write_text(page, encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    if str(REPO) not in sys.path:  # the package of this checkout, also when it is not installed
        sys.path.insert(0, str(REPO))
    sys.exit(main())
