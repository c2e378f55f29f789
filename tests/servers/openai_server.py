"""In-process fake of the OpenAI / Azure OpenAI chat-completions HTTP API.

Tests start a :class:`FakeOpenAIServer`, script the replies it gives, point a
real client (the ``openai`` SDK, ``requests``, ...) at it and then inspect the
requests it recorded::

    with FakeOpenAIServer() as srv:
        srv.script("Hello!", Reply.rate_limited(0.01), lambda req: req.model or "")
        client = OpenAI(base_url=srv.openai_base_url, api_key="k")
        ...
        assert srv.last_request.headers["authorization"] == "Bearer k"

Routes (``POST``):

* ``/v1/chat/completions`` and ``/chat/completions`` (OpenAI style);
* ``/openai/deployments/{deployment}/chat/completions?api-version=...`` (Azure).

Every request is recorded, whatever its outcome. Only chat requests that pass
routing, the Azure ``api-version`` check, the auth hook, JSON parsing, the rate
limit and the ``dialect`` (a real server's ``response_format`` refusals) consume a
scripted reply. Standard library only.

``srv.limit(requests_per_second=20)`` (``tests.servers.rate_limit``) answers chat
requests above it with 429 and ``Retry-After`` (``retry-after-ms``, ``x-ratelimit-*``
on request), counted in ``srv.refused``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from tests.servers.base import (
    ChatRecordedRequest,
    LocalHandler,
    ScriptedServer,
    chat_completion,
    chat_completion_chunks,
    count_words,
)
from tests.servers.rate_limit import LimitedServer

if TYPE_CHECKING:
    from tests.servers.structured_output import Dialect

__all__ = [
    "FakeOpenAIServer",
    "RecordedRequest",
    "Reply",
    "ReplyFactory",
    "ReplyLike",
    "default_reply",
]

_OPENAI_CHAT_PATHS = frozenset({"/v1/chat/completions", "/chat/completions"})
_AZURE_PREFIX = "/openai/deployments/"
_AZURE_SUFFIX = "/chat/completions"

CONTENT_FILTER_PROMPT_MESSAGE = (
    "The response was filtered due to the prompt triggering Azure OpenAI's content "
    "management policy. Please modify your prompt and retry. To learn more about our "
    "content filtering policies please read our documentation: "
    "https://go.microsoft.com/fwlink/?linkid=2198766"
)


@dataclass
class RecordedRequest(ChatRecordedRequest):
    """One HTTP request received by the fake server."""

    deployment: str | None = None
    """Azure deployment name taken from the URL, ``None`` for OpenAI-style paths."""

    @property
    def is_chat(self) -> bool:
        """True when the path is one of the chat-completions routes."""
        return _match_chat_path(self.path)[0]

    @property
    def model(self) -> str | None:
        """The ``model`` field of the JSON body, if any."""
        if isinstance(self.body, dict):
            model = self.body.get("model")
            return model if isinstance(model, str) else None
        return None


@dataclass
class Reply:
    """A scripted answer of the fake server.

    With ``status`` 2xx and no ``body`` a full ``chat.completion`` (or SSE stream)
    is generated from ``content``; with ``status`` >= 400 and no ``body`` an
    OpenAI-shaped error whose message is ``content`` is sent. ``body`` is a raw
    override sent as-is (a dict is JSON-encoded; the content type defaults to
    ``application/json`` unless ``headers`` set one).

    ``reasoning_content`` and ``reasoning`` put a reasoning model's thoughts beside
    ``content`` in the answer's message, the two fields servers use for them
    (llama.cpp and vLLM the first, Ollama the second); they count as completion
    tokens in the computed usage, as the servers count them. Thinking inline in
    ``content`` (``<think>...</think>``) is just content.
    """

    content: str | None = "ok"
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | str | bytes | None = None
    delay: float = 0.0
    finish_reason: str = "stop"
    usage: dict[str, Any] | None = None
    close_connection: bool = False
    reasoning_content: str | None = None
    reasoning: str | None = None

    @classmethod
    def error(
        cls,
        status: int,
        message: str,
        code: str | None = None,
        type: str | None = "invalid_request_error",  # noqa: A002 - mirrors the OpenAI field
        headers: dict[str, str] | None = None,
        param: str | None = None,
    ) -> Reply:
        """An error reply with an OpenAI-shaped ``{"error": {...}}`` body."""
        return cls(
            content=None,
            status=status,
            headers=dict(headers or {}),
            body=_error_body(message, type=type, code=code, param=param),
        )

    @classmethod
    def validation_error(
        cls,
        status: int,
        loc: list[str | int],
        msg: str,
        *,
        type: str = "literal_error",  # noqa: A002 - mirrors the pydantic field
        input: Any = None,  # noqa: A002
        ctx: dict[str, Any] | None = None,
    ) -> Reply:
        """A FastAPI request-validation answer, ``{"detail": [{type, loc, msg, input, ctx}]}``.

        FastAPI sends it with 422; llama-cpp-python's server sends the same body with 500
        (e.g. ``loc=["body", "response_format", "type"]`` for a ``json_schema`` it cannot do).
        """
        item: dict[str, Any] = {"type": type, "loc": list(loc), "msg": msg, "input": input}
        if ctx is not None:
            item["ctx"] = dict(ctx)
        return cls(content=None, status=status, body={"detail": [item]})

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1) -> Reply:
        """A 429 reply, with a ``Retry-After`` header (seconds) unless ``retry_after`` is None."""
        headers = {} if retry_after is None else {"Retry-After": _format_seconds(retry_after)}
        return cls.error(
            429,
            "Rate limit reached for requests. Please try again later.",
            code="rate_limit_exceeded",
            type="requests",
            headers=headers,
        )

    @classmethod
    def content_filter_prompt(cls) -> Reply:
        """Azure's 400 answer when the *prompt* trips the content filter."""
        not_filtered = {"filtered": False, "severity": "safe"}
        body = {
            "error": {
                "message": CONTENT_FILTER_PROMPT_MESSAGE,
                "type": None,
                "param": "prompt",
                "code": "content_filter",
                "status": 400,
                "innererror": {
                    "code": "ResponsibleAIPolicyViolation",
                    "content_filter_result": {
                        "hate": dict(not_filtered),
                        "self_harm": dict(not_filtered),
                        "sexual": dict(not_filtered),
                        "violence": {"filtered": True, "severity": "medium"},
                    },
                },
            }
        }
        return cls(content=None, status=400, body=body)

    @classmethod
    def content_filter_completion(cls) -> Reply:
        """A 200 completion whose output was filtered (``content: null``)."""
        return cls(content=None, finish_reason="content_filter")


ReplyFactory = Callable[[RecordedRequest], str | Reply]
"""A callable producing a reply for a request."""
ReplyLike = str | Reply | ReplyFactory
"""Anything :meth:`FakeOpenAIServer.script` accepts."""


def default_reply(request: RecordedRequest) -> Reply:
    """The built-in fallback used when the script queue is empty: content ``"ok"``."""
    return Reply(content="ok")


class FakeOpenAIServer(LimitedServer, ScriptedServer[RecordedRequest, Reply]):
    """OpenAI-compatible chat-completions server running in a daemon thread.

    Use as a context manager or call :meth:`start` / :meth:`close`. :meth:`script`
    takes replies as str, :class:`Reply` or callable (see :data:`ReplyLike`); the
    :attr:`default` reply factory starts as :func:`default_reply`.
    """

    reply_type = Reply

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Prepare the server; nothing is bound until :meth:`start`."""
        super().__init__(host, port, _Handler, default_reply)
        self.require_auth: Callable[[dict[str, str]], bool] | None = None
        """Optional auth hook given the lower-cased headers; False -> 401."""
        self.dialect: Dialect | None = None
        """A real server's structured output (``tests.servers.structured_output``): a
        ``response_format`` it does not take gets its refusal, before any scripted reply is used."""

    # -- addresses ---------------------------------------------------------

    @property
    def openai_base_url(self) -> str:
        """``base_url`` for ``openai.OpenAI`` (``url + "/v1"``)."""
        return self.url + "/v1"

    @property
    def azure_endpoint(self) -> str:
        """``azure_endpoint`` for ``openai.AzureOpenAI`` (same as :attr:`url`)."""
        return self.url

    # -- inspection --------------------------------------------------------

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded requests sent to a chat-completions route."""
        with self._lock:
            return [r for r in self.requests if r.is_chat]


# --------------------------------------------------------------------------
# HTTP plumbing
# --------------------------------------------------------------------------


class _Handler(LocalHandler):
    server_version = "FakeOpenAI/1.0"

    # -- request handling ----------------------------------------------------

    def _handle(self) -> None:
        fake: FakeOpenAIServer = self.server.fake
        incoming = self._read_request()
        path, query, headers, body = incoming.path, incoming.query, incoming.headers, incoming.body
        json_ok = bool(incoming.raw_body) and incoming.json_ok  # an empty body is not JSON here
        is_chat, deployment = _match_chat_path(path)
        request = incoming.record(RecordedRequest, deployment=deployment)
        fake._record(request)

        if not is_chat:
            self._send_json(404, _error_body(f"Invalid URL ({self.command} {path})", code=None))
            return
        if self.command != "POST":
            self._send_json(405, _error_body(f"Method {self.command} not allowed for {path}", code=None))
            return
        if deployment is not None and "api-version" not in query:
            message = "The api-version query parameter (?api-version=) is required for all requests."
            self._send_json(
                400,
                _error_body(message, code="MissingApiVersionParameter", param="api-version"),
            )
            return
        if fake.require_auth is not None and not fake.require_auth(headers):
            self._send_json(401, _error_body("Incorrect API key provided", code="invalid_api_key"))
            return
        if not json_ok or not isinstance(body, dict):
            message = (
                "We could not parse the JSON body of your request. The OpenAI API expects "
                "a JSON object payload, but what was sent was not valid JSON."
            )
            self._send_json(400, _error_body(message, code=None))
            return

        limited = fake._admit(body)  # the rate limit, if any (tests.servers.rate_limit)
        if not limited.admitted:
            self._send_reply(request, replace(Reply.rate_limited(None), headers=limited.headers))
            return

        refusal = fake.dialect.refusal(body) if fake.dialect is not None else None
        if refusal is not None:
            self._send_reply(request, refusal)
            return

        try:
            reply = fake._next_reply(request)
        except Exception as exc:  # a reply callable blew up: report it as a 500
            fake._record_error(exc)
            self._send_json(500, _error_body(f"fake server reply failed: {exc!r}", type="server_error"))
            return
        if limited.headers:
            reply = replace(reply, headers={**limited.headers, **reply.headers})
        self._send_reply(request, reply)

    # -- response writing ----------------------------------------------------

    def _send_reply(self, request: RecordedRequest, reply: Reply) -> None:
        if reply.delay > 0:
            time.sleep(reply.delay)
        if reply.close_connection:
            self._reset_connection()
            return
        if reply.body is not None:
            payload = reply.body
            data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
            if isinstance(data, str):
                data = data.encode()
            self._send(reply.status, data, "application/json", reply.headers)
            return
        if reply.status >= 400:
            message = reply.content or HTTPStatus(reply.status).phrase
            err_type = "server_error" if reply.status >= 500 else "invalid_request_error"
            self._send_json(reply.status, _error_body(message, type=err_type), reply.headers)
            return
        model = request.deployment or request.model or "gpt-fake"
        thoughts = " ".join(t for t in (reply.reasoning_content, reply.reasoning) if t)
        usage = reply.usage if reply.usage is not None else _compute_usage(request, reply.content, thoughts)
        completion_id = self.server.fake._next_completion_id()
        if request.stream:
            include_usage = bool(
                isinstance(request.body.get("stream_options"), dict)
                and request.body["stream_options"].get("include_usage")
            )
            first_delta = {"role": "assistant", "content": None if reply.content is None else "", "refusal": None}
            events = chat_completion_chunks(
                completion_id,
                model,
                first_delta,
                reply.content or "",
                reply.finish_reason,
                usage if include_usage else None,
            )
            self._send(reply.status, b"".join(events), "text/event-stream; charset=utf-8", reply.headers)
            return
        completion = chat_completion(completion_id, model, reply.content, reply.finish_reason, usage)
        message = completion["choices"][0]["message"]
        for key in ("reasoning_content", "reasoning"):
            if getattr(reply, key) is not None:
                message[key] = getattr(reply, key)
        self._send_json(reply.status, completion, reply.headers)


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def _match_chat_path(path: str) -> tuple[bool, str | None]:
    """Return ``(is_chat_route, azure_deployment_or_None)``."""
    if path in _OPENAI_CHAT_PATHS:
        return True, None
    if path.startswith(_AZURE_PREFIX) and path.endswith(_AZURE_SUFFIX):
        deployment = path[len(_AZURE_PREFIX) : -len(_AZURE_SUFFIX)]
        if deployment and "/" not in deployment:
            return True, unquote(deployment)
    return False, None


def _error_body(
    message: str,
    *,
    type: str | None = "invalid_request_error",  # noqa: A002
    code: str | None = None,
    param: str | None = None,
) -> dict[str, Any]:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _format_seconds(seconds: float) -> str:
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _compute_usage(request: RecordedRequest, content: str | None, thoughts: str = "") -> dict[str, int]:
    prompt_tokens = 0
    for message in request.messages:
        if not isinstance(message, dict):
            continue
        msg_content = message.get("content")
        if isinstance(msg_content, str):
            prompt_tokens += count_words(msg_content)
        elif isinstance(msg_content, list):  # content parts: count the text ones
            for part in msg_content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    prompt_tokens += count_words(part["text"])
    completion_tokens = count_words(content) + count_words(thoughts)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
