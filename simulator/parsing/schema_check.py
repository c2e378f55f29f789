"""JSON Schema validation that reports each problem as `file:line: field: what is wrong`.

A shipped schema is compiled once into a quick predicate (`schema_fast`); jsonschema runs only on
what the predicate does not accept, to find and describe the problems.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..text.clip import clip
from .schema_fast import Predicate, compile_schema
from .yaml_source import YamlDocument, format_path

if TYPE_CHECKING:  # imported where used: jsonschema costs start-up time most commands never need
    import jsonschema


@cache
def load_schema(name: str) -> dict:
    """A schema shipped in `simulator/schemas` by file stem, e.g. `persona`."""
    text = resources.files("simulator.schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


def _definition(name: str, definition: str | None) -> dict:
    schema = load_schema(name)
    return schema if definition is None else {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}


@cache
def _validator(name: str, definition: str | None) -> jsonschema.Draft202012Validator:
    import jsonschema

    return jsonschema.Draft202012Validator(_definition(name, definition))


@cache
def _predicate(name: str, definition: str | None) -> Predicate | None:
    return compile_schema(_definition(name, definition))


def schema_path(name: str) -> str:
    """File system path of a shipped schema (for `# yaml-language-server: $schema=`)."""
    return str(resources.files("simulator.schemas").joinpath(f"{name}.schema.json"))


def _describe(error: jsonschema.ValidationError) -> tuple[list, str]:
    path = list(error.absolute_path)
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else error.message
        return path + [missing], "required field is missing"
    if error.validator == "additionalProperties":
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        allowed = sorted((schema.get("properties") or {}).keys())
        extras = [key for key in error.instance if key not in allowed] if isinstance(error.instance, dict) else []
        if extras:
            hint = difflib.get_close_matches(str(extras[0]), allowed, n=1)
            tip = f" (did you mean '{hint[0]}'?)" if hint else f" (allowed: {', '.join(allowed)})"
            return path + [extras[0]], f"unknown field{tip}"
    if error.validator in ("oneOf", "anyOf") and error.context:
        # pick the alternative the user evidently meant: of the instance's type, its required fields present
        branches: dict[Any, list[jsonschema.ValidationError]] = {}
        for sub_error in error.context:
            branches.setdefault(sub_error.schema_path[0], []).append(sub_error)
        meant = [  # not a branch for another type, nor one missing a field it requires
            errors
            for errors in branches.values()
            if not any(e.validator in ("required", "type") and not e.relative_path for e in errors)
        ]
        pool = meant[0] if len(meant) == 1 else error.context
        import jsonschema.exceptions

        try:
            best = jsonschema.exceptions.best_match(pool)
        except TypeError:  # paths that mix text and number keys cannot be ranked
            best = pool[0]
        return _describe(best)
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return path, f"expected {expected}, got {type(error.instance).__name__} {_short(error.instance)}"
    if error.validator == "pattern":
        # a shipped pattern says in words what it wants: a regular expression is no help to the reader
        schema = error.schema if isinstance(error.schema, Mapping) else {}
        if schema.get("x-expected"):
            return path, f"{_short(error.instance)} is not {schema['x-expected']}"
    if error.validator == "minLength" and error.instance == "":
        return path, "must not be empty"
    return path, error.message


def _short(value: Any) -> str:
    try:
        text = json.dumps(value, default=str) if not isinstance(value, str) else repr(value)
    except (TypeError, ValueError, RecursionError):  # keys that are not text, a value containing itself
        text = f"<{type(value).__name__}>"
    return clip(text, 40, "...")


def schema_errors(
    data: Any,
    schema_name: str,
    doc: YamlDocument | None = None,
    source: str = "",
    *,
    definition: str | None = None,
    prefix: tuple = (),
    schema: dict | None = None,
) -> list[str]:
    """Every problem in `data`, one line each, sorted by position in the file.

    `definition` validates against one `$defs` entry of the schema; `prefix` is where `data`
    sits in the document, for field names and line numbers; `schema` is used instead of the
    shipped schema `schema_name` when given.
    """
    if schema is None:
        quick = _predicate(schema_name, definition)
        if quick is not None and quick(data):
            return []
        validator = _validator(schema_name, definition)
    else:
        if definition is not None:
            schema = {"$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
        import jsonschema

        validator = jsonschema.Draft202012Validator(schema)
    found: list[tuple[int, str]] = []
    for error in validator.iter_errors(data):
        path, message = _describe(error)
        path = list(prefix) + path
        where = doc.where(path) if doc is not None else source
        line = (doc.line_of(path) if doc is not None else None) or 0
        found.append((line, f"{where}: {format_path(path)}: {message}"))
    found.sort(key=lambda item: item[0])
    return list(dict.fromkeys(message for _, message in found))
