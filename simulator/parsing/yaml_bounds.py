"""The YAML loaders, bounded: nesting past `MAX_DEPTH` and aliases that expand past `MAX_NODES`.

A "billion laughs" document is a few lines whose aliases expand to billions of values; nesting a
few thousand levels deep exhausts the stack. Both are refused while composing, with a marked YAML
error at the line, before anything large or deep is built. libyaml, when PyYAML has it, reads the
events (`LOADER`); the pure Python `LineLoader` decides what libyaml refuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.resolver import Resolver

try:
    from yaml._yaml import CParser

    LIBYAML = True
except ImportError:  # PyYAML built without libyaml: the pure Python parser reads the same documents
    LIBYAML = False


#: deepest nesting of mappings and lists
MAX_DEPTH = 64


#: most values the aliases of a document may add once expanded (each alias counts its node's values)
MAX_NODES = 100_000


if TYPE_CHECKING:  # what _Bounded is mixed into
    _Loader = yaml.SafeLoader
else:
    _Loader = object


class _Bounded(_Loader):
    """Composition that bounds nesting, and constructors whose every failure is a marked YAML error."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep", mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:  # e.g. !!bool maybe, 2024-02-30, a 5000-digit number, !!float abc
            kind = str(node.tag).rsplit(":", 1)[-1]
            detail = f" ({str(exc).split(':')[0]})" if isinstance(exc, ValueError) and str(exc) else ""
            raise ConstructorError(
                None, None, f"cannot read {excerpt(node)} as {kind}{detail}", node.start_mark
            ) from None


class LineLoader(_Bounded, yaml.SafeLoader):
    """The pure Python SafeLoader, bounded."""


if LIBYAML:

    class _FastLineLoader(_Bounded, Composer, CParser, SafeConstructor, Resolver):
        """libyaml's events, composed and constructed as `yaml.SafeLoader` does, bounded."""

        def __init__(self, stream: str) -> None:
            CParser.__init__(self, stream)
            Composer.__init__(self)
            SafeConstructor.__init__(self)
            Resolver.__init__(self)

        def dispose(self) -> None:
            pass

    LOADER: type = _FastLineLoader
else:
    LOADER = LineLoader


def excerpt(node: yaml.Node) -> str:
    if isinstance(node, yaml.ScalarNode):
        text = node.value if len(node.value) <= 40 else node.value[:37] + "..."
        return repr(text)
    return f"tagged {node.tag}"


def check_graph(root: yaml.Node) -> None:
    """Refuse aliases that make a node contain itself, nest past `MAX_DEPTH` or add past `MAX_NODES` values.

    A node met again is an alias: it adds a copy of everything the node holds. The document's own
    values are not counted: its size bounds them already.
    """
    measured: dict[int, tuple[int, int]] = {}  # id -> (values once expanded, levels of nesting)
    open_nodes: set[int] = set()
    added = 0  # values the aliases add

    def too_deep(node: yaml.Node) -> ComposerError:
        return ComposerError(None, None, f"nested more than {MAX_DEPTH} levels deep (through aliases)", node.start_mark)

    def measure(node: yaml.Node, depth: int) -> tuple[int, int]:
        nonlocal added
        key = id(node)
        if key in measured:
            size, levels = measured[key]
            if depth + levels - 1 > MAX_DEPTH:
                raise too_deep(node)
            added += size
            if added > MAX_NODES:
                raise ComposerError(
                    None,
                    None,
                    f"expands to more than {MAX_NODES:,} values through aliases (a 'billion laughs' document?)",
                    node.start_mark,
                )
            return size, levels
        if key in open_nodes:
            raise ComposerError(None, None, "an alias refers to a node that contains it", node.start_mark)
        if depth > MAX_DEPTH:
            raise too_deep(node)
        if isinstance(node, yaml.ScalarNode):
            measured[key] = (1, 1)
            return 1, 1
        open_nodes.add(key)
        mapping = isinstance(node, yaml.MappingNode)
        children = [child for pair in node.value for child in pair] if mapping else node.value
        total, height = 1, 1
        for child in children:
            size, levels = measure(child, depth + 1)
            total, height = total + size, max(height, levels + 1)
        open_nodes.discard(key)
        measured[key] = (total, height)
        return total, height

    measure(root, 1)
