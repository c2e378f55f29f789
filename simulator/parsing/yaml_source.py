"""YAML loading that remembers where each value came from, so errors can name the line.

Only plain data comes out: mappings with text keys, lists, text, whole and finite numbers,
true/false and null (dates become ISO text). The loader is `yaml.safe_load`-equivalent (no Python
tags, nothing runs) and bounded: a file larger than `MAX_YAML_CHARS`, nesting deeper than
`MAX_DEPTH`, or aliases whose copies would add more than `MAX_NODES` values ("billion laughs") is
refused with a `ConfigError` naming the file and line, never an exception from inside the parser.
A large document without aliases is bounded by its size alone.

libyaml, when PyYAML has it, reads the events (the same documents, many times faster): a plain
document straight into data (`yaml_plain`), any other into nodes composed by `yaml_bounds`, so the nesting
bound holds before anything deep is built. What libyaml refuses, the pure Python parser decides.
"""

from __future__ import annotations

import datetime
import gc
import math
import stat
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError
from .yaml_bounds import LIBYAML, MAX_DEPTH, MAX_NODES, check_graph, excerpt  # noqa: F401 - the bounds, importable from here too
from .yaml_bounds import LOADER as _LOADER
from .yaml_bounds import LineLoader as _LineLoader
from .yaml_plain import read_plain

#: largest YAML text read, in characters: a suite of 150,000 simulations is about 27 MB; what is
#: dangerous in less (aliases that expand, deep nesting) is bounded by `yaml_bounds`
MAX_YAML_CHARS = 64 * 1024 * 1024
#: problems listed in one error before "... and N more"
MAX_LISTED = 20
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"


@contextmanager
def paused_gc() -> Iterator[None]:
    """Without collections while a large document's many objects are built (they hold no cycles)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _index_lines(node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode):
                child = path + (key_node.value,)
                lines.setdefault(child, key_node.start_mark.line + 1)
                _index_lines(value_node, child, lines)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            child = path + (index,)
            lines.setdefault(child, item.start_mark.line + 1)
            _index_lines(item, child, lines)


def _key_problems(node: yaml.Node, path: tuple, source: str, problems: list[str]) -> None:
    """Mapping keys that YAML reads as something other than text (`1:`, `~:`, `yes:`), and keys given
    twice in one mapping (which value is meant cannot be known; PyYAML keeps the last), at their line."""
    if isinstance(node, yaml.MappingNode):
        first_at: dict[str, int] = {}
        for key_node, value_node in node.value:
            tag = str(key_node.tag)
            if isinstance(key_node, yaml.ScalarNode) and tag == _STR_TAG:
                line = key_node.start_mark.line + 1
                if key_node.value in first_at:
                    problems.append(
                        f"{source}:{line}: {format_path(path + (key_node.value,))}: the key is given twice "
                        f"(first at line {first_at[key_node.value]}); which value is meant cannot be known: "
                        "keep one"
                    )
                first_at.setdefault(key_node.value, line)
            if isinstance(key_node, yaml.ScalarNode) and tag not in (_STR_TAG, _MERGE_TAG):
                kind = tag.rsplit(":", 1)[-1]
                problems.append(
                    f"{source}:{key_node.start_mark.line + 1}: {format_path(path)}: key {excerpt(key_node)} "
                    f"must be text, not {kind} (put it in quotes)"
                )
            _key_problems(value_node, path + (getattr(key_node, "value", "?"),), source, problems)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _key_problems(item, path + (index,), source, problems)


class YamlDocument:
    """A parsed YAML document plus the line number of each field path."""

    def __init__(self, data: Any, lines: dict[tuple, int], source: str) -> None:
        self.data = data
        self.lines = lines
        self.source = source

    def line_of(self, path: tuple | list) -> int | None:
        """Line of the deepest known prefix of `path` (1-based), or None."""
        path = tuple(path)
        while path:
            try:
                if path in self.lines:
                    return self.lines[path]
            except TypeError:  # an unhashable part: no line is known for it
                pass
            path = path[:-1]
        return self.lines.get(())

    def where(self, path: tuple | list) -> str:
        line = self.line_of(path)
        return f"{self.source}:{line}" if line else self.source


def _type_name(value: Any) -> str:
    names: dict[type, str] = {bytes: "binary data (!!binary)", set: "a set (!!set)"}
    return names.get(type(value), type(value).__name__)


def plain_data(
    data: Any, doc: YamlDocument | None = None, source: str = "", prefix: tuple = ()
) -> tuple[Any, list[str]]:
    """`data` as plain JSON-like values, and a problem line for each value that is not.

    Mapping keys must be text; values must be text, numbers (finite), true/false, null, lists or
    mappings, nested at most `MAX_DEPTH` deep and never containing themselves. Dates and times
    become ISO text, tuples become lists. Each problem reads `where: field: what is wrong`.
    """
    problems: list[str] = []
    open_containers: set[int] = set()

    def problem(path: tuple, message: str) -> None:
        where = doc.where(prefix + path) if doc is not None else source
        problems.append(f"{where}: {format_path(prefix + path)}: {message}")

    def walk(value: Any, path: tuple) -> Any:
        if value is None or isinstance(value, (str, bool, int)):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                problem(path, f"{value} is not a finite number")
            return value
        if isinstance(value, (datetime.date, datetime.time)):
            return value.isoformat()
        if isinstance(value, (dict, list, tuple)):
            if len(path) >= MAX_DEPTH:
                problem(path, f"nested more than {MAX_DEPTH} levels deep")
                return None
            if id(value) in open_containers:
                problem(path, "contains itself")
                return None
            open_containers.add(id(value))
            try:
                if isinstance(value, dict):
                    out = {}
                    for key, item in value.items():
                        if not isinstance(key, str):
                            kind = "null" if key is None else _type_name(key)
                            problem(path, f"key {_key_text(key)} must be text, not {kind} (put it in quotes)")
                            continue
                        out[key] = walk(item, path + (key,))
                    return out
                return [walk(item, path + (index,)) for index, item in enumerate(value)]
            finally:
                open_containers.discard(id(value))
        if isinstance(value, Mapping):
            return walk(dict(value), path)
        problem(path, f"{_type_name(value)} is not supported here; use text, a number, a list or a mapping")
        return None

    result = walk(data, ())
    return result, problems


def copy_plain(value: Any) -> Any:
    """A copy of plain data: mappings and lists are new, text and numbers shared (quicker than deepcopy)."""
    if isinstance(value, dict):
        return {key: copy_plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [copy_plain(item) for item in value]
    return value


def _key_text(key: Any) -> str:
    try:
        text = repr(key)
    except Exception:  # a hostile __repr__
        text = f"<{type(key).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def problems_message(problems: list[str]) -> str:
    """Problem lines joined, the first `MAX_LISTED` of them."""
    shown = problems[:MAX_LISTED]
    more = len(problems) - len(shown)
    return "\n".join(shown + ([f"... and {more} more"] if more else []))


def parse_yaml(text: str, source: str, error: type[ConfigError] = ConfigError) -> YamlDocument:
    """Parse one YAML document safely; any problem becomes a ConfigError naming file and line."""
    if len(text) > MAX_YAML_CHARS:
        raise error(f"{source}: too large ({len(text):,} characters; at most {MAX_YAML_CHARS:,})")
    with paused_gc():
        plain = read_plain(text, MAX_DEPTH)
        if plain is not None:
            return YamlDocument(plain[0], plain[1], source)
        return _parse_nodes(text, source, error)


def _compose(text: str, loader_class: type) -> tuple[yaml.Node | None, Any]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, None
        check_graph(node)
        return node, loader.construct_document(node)
    finally:
        loader.dispose()


def _parse_nodes(text: str, source: str, error: type[ConfigError]) -> YamlDocument:
    """Any YAML, through PyYAML's node graph: aliases bounded, keys and values checked, lines indexed.

    What libyaml refuses, the pure Python parser reads again and decides: it is what
    `yaml.safe_load` is, and it reads a few texts libyaml does not (a `"\\ud800"` escape).
    """
    try:
        try:
            node, data = _compose(text, _LOADER)
        except Exception:
            if _LOADER is _LineLoader:
                raise
            node, data = _compose(text, _LineLoader)
        if node is None:
            return YamlDocument(None, {}, source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        if exc.context_mark is not None and mark is not None and mark.line >= len(text.splitlines()):
            mark = exc.context_mark  # "unexpected end of file": point at what was left open
        line = f":{mark.line + 1}" if mark else ""
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and problem.startswith("but "):  # "expected a single document ... but found another"
            problem = f"{exc.context} {problem}"
        raise error(f"{source}{line}: invalid YAML: {problem}") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}: invalid YAML: {exc}") from None
    except (RecursionError, MemoryError):
        raise error(f"{source}: invalid YAML: too deeply nested or too large") from None
    except Exception as exc:  # the parser failing in a way it does not mark: still no traceback
        raise error(f"{source}: invalid YAML: {type(exc).__name__}: {exc}") from None
    problems: list[str] = []
    _key_problems(node, (), source, problems)
    if problems:
        raise error(problems_message(list(dict.fromkeys(problems))))
    lines: dict[tuple, int] = {}
    _index_lines(node, (), lines)
    doc = YamlDocument(data, lines, source)
    doc.data, problems = plain_data(data, doc)
    if problems:
        raise error(problems_message(problems))
    return doc


def load_yaml_file(path: str | Path, what: str = "file", error: type[ConfigError] = ConfigError) -> YamlDocument:
    """Read and parse a YAML file; unreadable files get a ConfigError that says what was expected."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):  # a FIFO or a device would block or never end
            raise error(f"{path}: not a regular file, expected a YAML {what}")
        with path.open("rb") as handle:
            raw = handle.read(MAX_YAML_CHARS * 4 + 1)  # a character is at most 4 bytes
    except ConfigError:
        raise
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, expected a YAML {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. a NUL character in the path
        raise error(f"{path!r}: cannot read {what}: {exc}") from None
    if len(raw) > MAX_YAML_CHARS * 4:
        raise error(f"{path}: too large (more than {MAX_YAML_CHARS * 4:,} bytes)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return parse_yaml(text.replace("\r\n", "\n").replace("\r", "\n"), str(path), error)


def format_path(path: tuple | list) -> str:
    """Render a field path like `simulations[2].persona`."""
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"
