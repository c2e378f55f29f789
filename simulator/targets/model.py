"""An LLM deployment as the app under test, e.g. to try a system prompt before building the app."""

from __future__ import annotations

from typing import Any

from ..models import OpenAIChatCompletionsModel
from .base import AppReply, Target


class ModelTarget(Target):
    """Answers with a chat model, optionally steered by `system_prompt`."""

    def __init__(self, model: OpenAIChatCompletionsModel, system_prompt: str | None = None) -> None:
        self.model = model
        self.system_prompt = system_prompt

    async def respond(self, question: str, history: list[dict[str, str]], meta_data: dict[str, Any]) -> AppReply:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.extend({"role": m["role"], "content": m["content"]} for m in history)
        messages.append({"role": "user", "content": question})
        reply = await self.model.complete(messages)
        return AppReply(text=reply.content, raw=reply.raw, request=reply.request, usage=reply.usage)

    def describe(self) -> dict[str, Any]:
        return {"kind": "model", **self.model.describe()}

    async def aclose(self) -> None:
        await self.model.aclose()
