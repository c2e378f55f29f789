"""A JSON Schema compiled into one Python predicate, to tell quickly that a document is valid.

jsonschema spends tens of microseconds on each object it descends into, most of a second for a
manifest of 10,000 simulations; the compiled predicate needs a fraction of that. It knows the
keywords the shipped schemas use, with jsonschema's meaning (Draft 2020-12, formats not
asserted); a schema with any other keyword does not compile (`compile_schema` gives None). Only a
True is trusted: on False, jsonschema finds and describes the problems.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

Predicate = Callable[[Any], bool]

#: keywords that never make a document invalid
_ANNOTATIONS = frozenset(
    {
        "$schema",
        "$id",
        "$comment",
        "$defs",
        "title",
        "description",
        "default",
        "examples",
        "format",
        "deprecated",
        "x-expected",  # the form a `pattern` wants, in words, for error messages
    }
)


class _Unsupported(Exception):
    """A keyword this compiler does not know: jsonschema alone decides."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, float) and value.is_integer())


_TYPES: dict[str, Predicate] = {
    "object": lambda value: isinstance(value, dict),
    "array": lambda value: isinstance(value, list),
    "string": lambda value: isinstance(value, str),
    "boolean": lambda value: isinstance(value, bool),
    "null": lambda value: value is None,
    "number": _is_number,
    "integer": _is_integer,
}


def json_equal(one: Any, two: Any) -> bool:
    """Equality as JSON Schema means it: true is not 1, 1 is 1.0."""
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(json_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(json_equal(one[key], two[key]) for key in one)
    if isinstance(one, (list, dict)) or isinstance(two, (list, dict)):
        return False
    return one == two


def _all(checks: list[Predicate]) -> Predicate:
    if len(checks) == 1:
        return checks[0]

    def every(value: Any) -> bool:
        return all(check(value) for check in checks)

    return every


class _Compiler:
    def __init__(self, root: dict[str, Any]) -> None:
        self.root = root
        self.refs: dict[str, list[Predicate]] = {}

    def compile(self, schema: Any) -> Predicate:
        if schema is True:
            return lambda value: True
        if schema is False:
            return lambda value: False
        if not isinstance(schema, dict):
            raise _Unsupported(repr(schema))
        checks = []
        if "properties" in schema or "additionalProperties" in schema:
            checks.append(self._properties(schema.get("properties", {}), schema.get("additionalProperties", True)))
        for keyword, argument in schema.items():
            if keyword in _ANNOTATIONS or keyword in ("properties", "additionalProperties"):
                continue
            build = getattr(self, "_" + keyword.lstrip("$"), None)
            if build is None:
                raise _Unsupported(keyword)
            checks.append(build(argument))
        return _all(checks) if checks else (lambda value: True)

    def _ref(self, ref: str) -> Predicate:
        if not ref.startswith("#/"):
            raise _Unsupported(ref)
        if ref not in self.refs:
            cell: list[Predicate] = []
            self.refs[ref] = cell  # a schema that refers to itself finds the cell filled when it runs
            target: Any = self.root
            for part in ref[2:].split("/"):
                part = part.replace("~1", "/").replace("~0", "~")
                if not isinstance(target, dict) or part not in target:
                    raise _Unsupported(ref)
                target = target[part]
            cell.append(self.compile(target))
        cell = self.refs[ref]
        return lambda value: cell[0](value)

    def _type(self, names: str | list[str]) -> Predicate:
        checks = [_TYPES[name] for name in ([names] if isinstance(names, str) else names)]
        return checks[0] if len(checks) == 1 else (lambda value: any(check(value) for check in checks))

    def _properties(self, properties: dict[str, Any], additional: Any) -> Predicate:
        named = {key: self.compile(sub) for key, sub in properties.items()}
        other = None if additional is True else self.compile(additional)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            for key, item in value.items():
                sub = named.get(key, other)
                if sub is not None and not sub(item):
                    return False
            return True

        return check

    def _required(self, keys: list[str]) -> Predicate:
        return lambda value: not isinstance(value, dict) or all(key in value for key in keys)

    def _minProperties(self, count: int) -> Predicate:
        return lambda value: not isinstance(value, dict) or len(value) >= count

    def _maxProperties(self, count: int) -> Predicate:
        return lambda value: not isinstance(value, dict) or len(value) <= count

    def _items(self, schema: Any) -> Predicate:
        check = self.compile(schema)
        return lambda value: not isinstance(value, list) or all(check(item) for item in value)

    def _minItems(self, count: int) -> Predicate:
        return lambda value: not isinstance(value, list) or len(value) >= count

    def _maxItems(self, count: int) -> Predicate:
        return lambda value: not isinstance(value, list) or len(value) <= count

    def _minLength(self, count: int) -> Predicate:
        return lambda value: not isinstance(value, str) or len(value) >= count

    def _maxLength(self, count: int) -> Predicate:
        return lambda value: not isinstance(value, str) or len(value) <= count

    def _pattern(self, pattern: str) -> Predicate:
        compiled = re.compile(pattern)
        return lambda value: not isinstance(value, str) or compiled.search(value) is not None

    def _minimum(self, limit: float) -> Predicate:
        return lambda value: not _is_number(value) or value >= limit

    def _maximum(self, limit: float) -> Predicate:
        return lambda value: not _is_number(value) or value <= limit

    def _exclusiveMinimum(self, limit: float) -> Predicate:
        return lambda value: not _is_number(value) or value > limit

    def _exclusiveMaximum(self, limit: float) -> Predicate:
        return lambda value: not _is_number(value) or value < limit

    def _const(self, expected: Any) -> Predicate:
        return lambda value: json_equal(value, expected)

    def _enum(self, options: list[Any]) -> Predicate:
        return lambda value: any(json_equal(value, option) for option in options)

    def _oneOf(self, schemas: list[Any]) -> Predicate:
        checks = [self.compile(sub) for sub in schemas]
        return lambda value: sum(1 for check in checks if check(value)) == 1

    def _anyOf(self, schemas: list[Any]) -> Predicate:
        checks = [self.compile(sub) for sub in schemas]
        return lambda value: any(check(value) for check in checks)

    def _allOf(self, schemas: list[Any]) -> Predicate:
        return _all([self.compile(sub) for sub in schemas])

    def _not(self, schema: Any) -> Predicate:
        check = self.compile(schema)
        return lambda value: not check(value)


def compile_schema(schema: dict[str, Any], root: dict[str, Any] | None = None) -> Predicate | None:
    """A predicate that is True only for documents `schema` accepts; None when it uses other keywords.

    `root` is the document `$ref`s point into (default: `schema` itself).
    """
    try:
        return _Compiler(root if root is not None else schema).compile(schema)
    except (_Unsupported, KeyError, TypeError, re.error):
        return None
