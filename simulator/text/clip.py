"""Cutting a text shown in a message to a length, with a mark where it was cut."""

from __future__ import annotations


def clip(text: str, limit: int, mark: str = "…") -> str:
    """`text`, or its first characters and `mark`, `limit` characters in all."""
    return text if len(text) <= limit else text[: max(0, limit - len(mark))] + mark
