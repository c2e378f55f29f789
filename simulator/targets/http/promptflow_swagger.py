"""A Prompt flow endpoint's own names of its chat input, chat history and chat output, read from the
`/swagger.json` its serving app publishes beside `/score`.

Prompt flow's serving app (`pf flow serve`, a flow deployed to an Azure ML online endpoint) describes
the flow as OpenAPI 3.0. Its `info` marks the chat flow's fields: `x-chat-input`, `x-chat-history`
and `x-chat-output` name the flow's inputs and output flagged `is_chat_input`, `is_chat_history`
and `is_chat_output`; `paths./score.post` lists every input (request body schema) and output
(answer schema):

    {"openapi": "3.0.0",
     "info": {"title": "Promptflow[chat] API", "x-flow-name": "chat", "x-flow-type": "chat",
              "x-chat-input": "chat_input", "x-chat-history": "chat_history", "x-chat-output": "chat_output"},
     "paths": {"/score": {"post": {
        "requestBody": {"content": {"application/json": {"schema": {
            "properties": {"chat_input": {"type": "string"}, "chat_history": {"type": "array", ...}}}}}},
        "responses": {"200": {"content": {"application/json": {"schema": {
            "properties": {"chat_output": {"type": "string"}}}}}}}}}}}

A flow that flags none of them (a standard flow) has no `x-chat-*` keys; Prompt flow itself then
takes an input named `chat_history` as the chat history, and so does `flow_names`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from ...aio.http_sessions import TIMEOUT, ExchangeFailed, proxy_for, within
from ...errors import ConfigError
from ...parsing import strict_json
from ...parsing.template import PLACEHOLDER, render
from ..redaction import safe_url
from ..retry import RetryLater, RetryPolicy, retry_async
from .bounded import read_body
from .errors import describe_transport

if TYPE_CHECKING:
    import aiohttp

#: the most of a swagger document read; a flow's is a few KB
SWAGGER_BYTES = 1024 * 1024
#: what each `x-chat-*` mark is, for messages: (info key, the flow's flag)
MARKS = {
    "input": ("x-chat-input", "is_chat_input"),
    "history": ("x-chat-history", "is_chat_history"),
    "output": ("x-chat-output", "is_chat_output"),
}
#: the input Prompt flow takes as the chat history when none is flagged
CHAT_HISTORY = "chat_history"


@dataclass(frozen=True)
class FlowNames:
    """What a swagger document says of a flow: its chat fields (None: not marked) and all its fields."""

    input: str | None
    history: str | None
    output: str | None
    #: every input of the flow (the /score request's properties) and every output (the answer's)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    def get(self, role: str) -> str | None:
        """The name of `role` (input, history or output)."""
        value: str | None = getattr(self, role)
        return value


class SwaggerUnreadable(Exception):
    """The swagger document could not be had or is not a Prompt flow one; the message says why.

    `absent`: the endpoint publishes none (404, 405, 410): an app of its own in Prompt flow's shape,
    or a gateway that routes only the scoring path.
    """

    def __init__(self, message: str, absent: bool = False) -> None:
        super().__init__(message)
        self.absent = absent


def swagger_url(url: str) -> str:
    """Where the flow's swagger is: beside its scoring route (`.../score` -> `.../swagger.json`), the
    URL's query kept (it may carry the endpoint's key)."""
    parts = urlsplit(url)
    path = parts.path
    folder = path[: path.rfind("/") + 1] if "/" in path else "/"
    return urlunsplit((parts.scheme, parts.netloc, folder + "swagger.json", parts.query, ""))


def _names(node: Any) -> tuple[str, ...]:
    return tuple(str(name) for name in node) if isinstance(node, Mapping) else ()


def _schema(operation: Mapping[str, Any], *keys: str) -> Mapping[str, Any]:
    node: Any = operation
    for key in keys:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def flow_names(document: Any) -> FlowNames:
    """The chat fields and all fields of the flow a Prompt flow swagger document describes."""
    info = document.get("info") if isinstance(document, Mapping) else None
    paths = document.get("paths") if isinstance(document, Mapping) else None
    if not isinstance(info, Mapping) or not isinstance(paths, Mapping):
        raise SwaggerUnreadable("it is not an OpenAPI document (no info and paths)")
    score = _schema(paths, "/score", "post")
    inputs = _names(_schema(score, "requestBody", "content", "application/json", "schema").get("properties"))
    outputs = _names(_schema(score, "responses", "200", "content", "application/json", "schema").get("properties"))
    if not score and not any(key.startswith("x-chat-") for key in info):
        raise SwaggerUnreadable("it describes no Prompt flow (no /score operation, no x-chat-* names)")
    marked = {}
    for role, (key, _) in MARKS.items():
        value = info.get(key)
        marked[role] = value if isinstance(value, str) and value.strip() else None
    if marked["history"] is None and CHAT_HISTORY in inputs:
        marked["history"] = CHAT_HISTORY
    return FlowNames(marked["input"], marked["history"], marked["output"], inputs, outputs)


def _request_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The target's headers as they are before any turn (placeholders empty; an empty header left
    out), so an endpoint that wants a key for `/score` gets it for its swagger too."""
    empty = {match.group(1): "" for value in headers.values() for match in PLACEHOLDER.finditer(value)}
    sent = {}
    for name, template in headers.items():
        value = " ".join(render(template, empty, name).splitlines()).strip()
        if value and name.lower() != "content-type":
            sent[name] = value
    sent.setdefault("Accept", "application/json")
    return sent


async def fetch_flow_names(
    session: aiohttp.ClientSession, url: str, headers: Mapping[str, str], timeout: float, retry: RetryPolicy
) -> FlowNames:
    """Read the flow's names from the swagger beside `url`, retried as a turn is (429, 5xx, timeouts,
    dropped connections); `SwaggerUnreadable` says why there are none."""
    if PLACEHOLDER.search(url):
        raise SwaggerUnreadable("the URL has {{placeholders}}, only filled in per turn")
    address = swagger_url(url)
    shown = safe_url(address)
    try:
        sent = _request_headers(headers)
    except ConfigError as exc:  # a header the target's own checks already refused
        raise SwaggerUnreadable(str(exc)) from None

    async def attempt(retry_number: int) -> tuple[int, bytes, bool]:
        try:
            request = session.get(address, headers=sent, proxy=proxy_for(address), allow_redirects=False)
            response = await within(request, timeout)
            try:
                content, cut = await within(read_body(response, SWAGGER_BYTES), timeout)
            finally:
                response.release()
        except ExchangeFailed as failed:
            if failed.kind == TIMEOUT:
                raise RetryLater(SwaggerUnreadable(f"{shown} gave no answer within {timeout:g} s")) from None
            why = describe_transport(failed.cause)
            raise RetryLater(SwaggerUnreadable(f"{shown} could not be read: {why}")) from None
        status = response.status
        if status in (429, 503) or status >= 500:
            raise RetryLater(SwaggerUnreadable(f"{shown} answered HTTP {status}"))
        return status, content, cut

    status, content, cut = await retry_async(attempt, retry)
    if status != 200:
        raise SwaggerUnreadable(f"{shown} answered HTTP {status}", absent=status in (404, 405, 410))
    if cut:
        raise SwaggerUnreadable(f"{shown} is larger than {SWAGGER_BYTES:,} bytes")
    try:
        document = strict_json.loads(content)
    except strict_json.JSONError as exc:
        raise SwaggerUnreadable(f"{shown} is not usable JSON: {exc}") from None
    try:
        return flow_names(document)
    except SwaggerUnreadable as exc:
        raise SwaggerUnreadable(f"{shown}: {exc}") from None
