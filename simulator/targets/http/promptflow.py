"""Prompt flow's chat endpoint: `{question, chat_history}` in, `{answer}` out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...history_refs import promptflow_pairs
from .format import HttpFormat


class PromptflowFormat(HttpFormat):
    """The history goes as Prompt flow's `chat_history` pairs of question and answer."""

    name = "promptflow"
    default_response = "answer"

    def body(self, question: str, history: list[dict[str, str]], values: Mapping[str, Any], session: bool) -> Any:
        return {"question": question, "chat_history": promptflow_pairs(history)}
