"""`{{name}}` placeholders: the one template syntax used for prompts and request bodies."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping

from ..errors import TemplateError

PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def placeholders(text: str) -> list[str]:
    """Names used in `text`, in order of first use."""
    seen: dict[str, None] = {}
    for match in PLACEHOLDER.finditer(text):
        seen.setdefault(match.group(1), None)
    return list(seen)


def check_placeholders(text: str, known: Collection[str], source: str) -> None:
    """Fail early, naming every placeholder nobody will provide, instead of rendering a blank."""
    unknown = [name for name in placeholders(text) if name not in known]
    if unknown:
        names = ", ".join("{{" + n + "}}" for n in unknown)
        available = ", ".join(sorted(known))
        raise TemplateError(
            f"{source}: unknown placeholder {names}; available: {available}. "
            "Pass extra values with template_vars, or fix the spelling."
        )


def render(text: str, values: Mapping[str, object], source: str, keep: Collection[str] = ()) -> str:
    """Replace every placeholder; names in `keep` are left as they are for a later render."""
    check_placeholders(text, set(values) | set(keep), source)

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in keep:
            return match.group(0)
        value = values[name]
        return "" if value is None else str(value)

    return PLACEHOLDER.sub(substitute, text)
