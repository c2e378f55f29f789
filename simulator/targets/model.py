"""An LLM deployment as the app under test, e.g. to try a system prompt before building the app."""

from __future__ import annotations

from typing import Any

from ..errors import TurnError
from ..llm.models import OpenAIChatCompletionsModel
from ..llm.thinking import only_thinking
from .base import AppReply, Target


class ModelTarget(Target):
    """Answers with a chat model, optionally steered by `system_prompt`.

    A reasoning model's thinking is not part of the reply: the user sees the answer after it, and
    the turn records the thinking as `reasoning`. Thinking with no answer is the app failing.
    """

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
        if reply.only_thinking:
            limit = self.model.max_completion_tokens or self.model.max_tokens
            raise TurnError(
                "app_error",
                only_thinking(f"the app model {self.model.name}", "answer", limit, reply.thinking_cut_off),
                detail={
                    "response": reply.raw,
                    "request": reply.request,
                    "usage": reply.usage,
                    "reasoning": reply.reasoning,
                },
            )
        return AppReply(
            text=reply.content, raw=reply.raw, request=reply.request, usage=reply.usage, reasoning=reply.reasoning
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": "model", **self.model.describe()}

    async def aclose(self) -> None:
        await self.model.aclose()
