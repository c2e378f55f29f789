"""OpenAI chat completions (and any compatible server): messages in, choices out, streamed or not."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .format import HttpFormat
from .problems import Problems

CONTENT_FILTER = "content_filter"
#: the route of chat completions under an OpenAI-compatible base URL (`http://host/v1`)
ROUTE = "/chat/completions"


class OpenAIFormat(HttpFormat):
    """`model`, `system_prompt` and `stream` are this format's own; usage and the content filter are
    read from the answer."""

    name = "openai"
    keys = ("model", "system_prompt", "stream")
    default_response = "choices.0.message.content"
    stream_response = "choices.0.delta.content"
    stream_response_fixed = True

    def __init__(self, model: str | None = None, system_prompt: str | None = None, stream: bool = False) -> None:
        self.model = model
        self.system_prompt = system_prompt
        self.stream = stream

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str, problems: Problems) -> HttpFormat | None:
        found = len(problems)
        for key in ("model", "system_prompt"):
            value = config.get(key)
            if value is not None and not isinstance(value, str):
                problems.add((key,), f"{source}.{key}: must be a string")
        stream = config.get("stream", False)
        if not isinstance(stream, bool):
            problems.add(("stream",), f"{source}.stream: must be true or false")
        if len(problems) > found:
            return None
        return cls(config.get("model"), config.get("system_prompt"), stream)

    def endpoint(self, url: str) -> str:
        """The URL itself when its path ends in /chat/completions; else a base URL (`http://host/v1`, as
        the OpenAI SDK takes one), to which the route is added, its query kept."""
        parts = urlsplit(url)
        path = parts.path.rstrip("/")
        if path.endswith(ROUTE):
            return url
        return urlunsplit(parts._replace(path=path + ROUTE))

    def body(self, question: str, history: list[dict[str, str]], values: Mapping[str, Any], session: bool) -> Any:
        messages: list[dict[str, Any]] = []
        if self.system_prompt:
            messages.append({"role": "system", "content": self.system_prompt})
        messages.extend({"role": m["role"], "content": m["content"]} for m in history)
        messages.append({"role": "user", "content": question})
        body: dict[str, Any] = {}
        if self.model:
            body["model"] = self.model
        body["messages"] = messages
        if self.stream:
            body["stream"] = True
        return body

    def default_headers(self) -> dict[str, str]:
        return {"Accept": "text/event-stream"} if self.stream else {}

    def usage(self, document: Any) -> dict[str, Any] | None:
        usage = document.get("usage") if isinstance(document, dict) else None
        return usage if isinstance(usage, dict) else None

    def withheld(self, document: Any) -> bool:
        choices = document.get("choices") if isinstance(document, dict) else None
        first = choices[0] if isinstance(choices, list) and choices else None
        return isinstance(first, dict) and first.get("finish_reason") == CONTENT_FILTER

    def refused(self, status: int, text: str) -> bool:
        return status == 400 and CONTENT_FILTER in text

    def stream_without_reply(self, events: list[Any], source: str) -> str | None:
        """Chat completion chunks with no content: cut short by the server, or a model that said nothing."""
        choices: list[list[Any]] = []
        for event in events:
            listed = event.get("choices") if isinstance(event, dict) else None
            if not isinstance(listed, list):
                return None  # events of another shape: the target names the path it read
            choices.append(listed)
        finished = [
            choice.get("finish_reason")
            for listed in choices
            for choice in listed
            if isinstance(choice, dict) and choice.get("finish_reason")
        ]
        if finished:
            return f"finished its stream (finish_reason {finished[0]!r}) with no content: the model answered nothing"
        shape = "a role chunk and [DONE]" if len(events) == 1 else f"{len(events)} chunks and [DONE]"
        return (
            f"sent an empty stream: {shape}, no content and no finish_reason. A server that serves one request "
            "at a time cuts a running stream short like this when another request arrives (llama-cpp-python "
            "does, with --interrupt_requests on by default): start the server with --interrupt_requests False, "
            "or run with --concurrency 1 so no other request reaches it meanwhile"
        )
