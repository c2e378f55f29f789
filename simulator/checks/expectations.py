"""A value at a path in a JSON document, and what it must be.

Outcome checks (the app's state after a conversation) and `reply_json` (the app's raw replies) say
the same thing the same way: `path` (dotted keys, list indexes, `[*]` for every item; see
`targets/json_path.py`) and one or more expectations:

- `equals`: the value, as JSON compares (1 equals 1.0, true does not equal 1);
- `contains`: text containing a piece, a list with an item equal to the value, an object with the key;
- `matches`: a regular expression found in the text (in any text item of a list);
- `exists`: true, the path is there; false, it is not;
- `min` / `max`: a number within the bounds;
- `schema`: a JSON Schema the value matches.

Without `path` the whole document is checked. A path that is missing fails every expectation but
`exists: false`, and the evidence says what was there instead.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, FieldError
from ..parsing.json_path import PathError, Segment, extract, parse_path
from ..parsing.schema_fast import json_equal
from ..text.clip import clip

if TYPE_CHECKING:
    import jsonschema

EXPECTATIONS = ("equals", "contains", "matches", "exists", "min", "max", "schema")
#: what a value found is shown as in evidence at most (a longer one is cut)
SHOWN_CHARS = 300


class _Missing:
    def __repr__(self) -> str:
        return "(missing)"


MISSING: Any = _Missing()


def shown(value: Any, limit: int = SHOWN_CHARS) -> Any:
    """`value` as evidence keeps it: as it is when short, else the start of its JSON text."""
    if value is MISSING:
        return None
    text = json.dumps(value, ensure_ascii=False, default=str)
    return value if len(text) <= limit else text[: limit - 1] + "…"


def _short(value: Any) -> str:
    if value is MISSING:
        return "missing"
    text = json.dumps(value, ensure_ascii=False, default=str)
    return clip(text, 80)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass
class Verdict:
    """Whether the document met every expectation, the value found and, if not, what was wrong."""

    ok: bool
    found: Any
    problem: str = ""
    #: why the path is missing (the segment and what was there instead)
    missing: str = ""


@dataclass
class PathExpectation:
    """`path` and what the value there must be; built from a manifest mapping with `from_config`."""

    path: list[Segment] | None
    path_text: str
    expected: dict[str, Any]
    pattern: re.Pattern[str] | None = None
    validator: jsonschema.Draft202012Validator | None = field(default=None, repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str, others: Collection[str] = ()) -> PathExpectation:
        """Read `path` and the expectations; `others` are the keys the caller reads itself.

        Raises `FieldError` naming the field: a bad path, no expectation, an unknown key, a bad
        regular expression or schema, min above max, `exists: false` with another expectation.
        """
        unknown = sorted(str(k) for k in config if k not in (*EXPECTATIONS, "path", *others))
        if unknown:
            known = ", ".join(["path", *EXPECTATIONS, *others])
            raise FieldError((unknown[0],), f"{source}.{unknown[0]}: unknown field; known: {known}")
        path, path_text = None, "(the whole answer)"
        if "path" in config:
            try:
                path, path_text = parse_path(config["path"]), str(config["path"]).strip()
            except ConfigError as exc:
                raise FieldError(("path",), f"{source}.path: {exc}") from None
        expected = {key: config[key] for key in EXPECTATIONS if key in config}
        if not expected:
            raise FieldError((), f"{source}: no expectation; add one of {', '.join(EXPECTATIONS)}")
        _check_values(expected, source)
        pattern = validator = None
        if "matches" in expected:
            try:
                pattern = re.compile(expected["matches"])
            except re.error as exc:
                raise FieldError(("matches",), f"{source}.matches: invalid regular expression: {exc}") from None
        if "schema" in expected:
            import jsonschema  # only where a schema is expected: the import costs a run's start-up 25 ms

            try:
                jsonschema.Draft202012Validator.check_schema(expected["schema"])
            except jsonschema.SchemaError as exc:
                raise FieldError(("schema",), f"{source}.schema: not a valid JSON Schema: {exc.message}") from None
            validator = jsonschema.Draft202012Validator(expected["schema"])
        return cls(path, path_text, expected, pattern, validator)

    def describe(self) -> str:
        """`status equals "refund_issued"`, for check names and messages."""
        parts = []
        for key, value in self.expected.items():
            if key == "exists":
                parts.append("exists" if value else "is absent")
            elif key == "schema":
                parts.append("matches the schema")
            else:
                parts.append(f"{key} {_short(value)}")
        return f"{self.path_text} " + " and ".join(parts)

    def judge(self, document: Any) -> Verdict:
        """The value at the path in `document` against every expectation, the first unmet one named."""
        missing = ""
        try:
            found = document if self.path is None else extract(document, self.path)
        except PathError as exc:
            found, missing = MISSING, str(exc)
        for key, argument in self.expected.items():
            problem = self._problem(key, argument, found)
            if problem:
                return Verdict(False, found, f"{self.path_text} {problem}", missing)
        return Verdict(True, found, "", missing)

    def _problem(self, key: str, argument: Any, found: Any) -> str:
        """What is wrong with `found` for one expectation ("" when it holds)."""
        if key == "exists":
            if argument and found is MISSING:
                return "is missing"
            return f"exists ({_short(found)}), expected it absent" if not argument and found is not MISSING else ""
        if found is MISSING:
            return f"is missing, expected it to {key} {_short(argument) if key != 'schema' else 'match the schema'}"
        if key == "equals":
            return "" if json_equal(found, argument) else f"is {_short(found)}, expected {_short(argument)}"
        if key == "contains":
            wanted = f"expected it to contain {_short(argument)}"
            return "" if _contains(found, argument) else f"is {_short(found)}, {wanted}"
        if key == "matches":
            return self._matches(found)
        if key in ("min", "max"):
            if not _is_number(found):
                return f"is {_short(found)}, not a number (expected {key} {argument})"
            below = found < argument if key == "min" else found > argument
            return f"is {found}, {'below the min' if key == 'min' else 'above the max'} {argument}" if below else ""
        assert self.validator is not None
        import jsonschema

        error = jsonschema.exceptions.best_match(self.validator.iter_errors(found))
        if error is None:
            return ""
        where = "/".join(str(p) for p in error.absolute_path)
        return f"does not match the schema{' at ' + where if where else ''}: {error.message}"

    def _matches(self, found: Any) -> str:
        assert self.pattern is not None
        if isinstance(found, str):
            texts = [found]
        else:
            texts = [t for t in found if isinstance(t, str)] if isinstance(found, list) else []
        if not texts:
            return f"is {_short(found)}, not text to match '{self.pattern.pattern}'"
        if any(self.pattern.search(text) for text in texts):
            return ""
        return f"is {_short(found)}, which does not match '{self.pattern.pattern}'"


def _contains(found: Any, part: Any) -> bool:
    if isinstance(found, str):
        return isinstance(part, str) and part in found
    if isinstance(found, list):
        return any(json_equal(item, part) for item in found)
    if isinstance(found, dict):
        return isinstance(part, str) and part in found
    return False


def _check_values(expected: Mapping[str, Any], source: str) -> None:
    """The types of the expectations' arguments, and bounds that can be met."""
    for key in ("min", "max"):
        if key in expected and not _is_number(expected[key]):
            raise FieldError((key,), f"{source}.{key}: must be a number, got {_short(expected[key])}")
    if "min" in expected and "max" in expected and expected["min"] > expected["max"]:
        raise FieldError(("min",), f"{source}.min: {expected['min']} is greater than max ({expected['max']})")
    if "matches" in expected and not isinstance(expected["matches"], str):
        raise FieldError(("matches",), f"{source}.matches: must be a regular expression (text)")
    if "exists" in expected and not isinstance(expected["exists"], bool):
        raise FieldError(("exists",), f"{source}.exists: must be true or false")
    if "schema" in expected and not isinstance(expected["schema"], (dict, bool)):
        raise FieldError(("schema",), f"{source}.schema: must be a JSON Schema (a mapping)")
    if expected.get("exists") is False and len(expected) > 1:
        others = ", ".join(k for k in expected if k != "exists")
        raise FieldError(("exists",), f"{source}: exists: false cannot hold together with {others}")
