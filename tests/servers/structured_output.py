"""How real OpenAI-compatible servers take `response_format`, and how each refuses what it cannot do.

Set one on the fake (``server.dialect = LLAMA_CPP_PYTHON``): a request whose ``response_format``
the dialect does not take gets that server's refusal, status and body as the server sends them,
before any scripted reply is used. :meth:`Dialect.constrains` says which schema the server would
hold the answer to, so a reply callable can answer as a small model does: schema-valid with a
grammar behind it, any JSON object without one.

Each dialect follows the server's own code (their docs and sources, 2026):

* llama.cpp's ``llama-server`` (``tools/server/server-common.cpp``, ``oaicompat_chat_params_parse``):
  ``json_object`` (its ``schema`` becomes a grammar) and ``json_schema`` (``json_schema.schema``);
  another type is ``std::invalid_argument`` -> HTTP 400, ``{"error": {"code", "message", "type"}}``.
  Builds from before ``json_schema`` was added (September 2024; ik_llama.cpp later still) threw
  ``std::runtime_error`` on it: HTTP 500, ``"type": "server_error"``.
* llama-cpp-python's server (``llama_cpp/server``): ``response_format.type`` is
  ``Literal["text", "json_object"]`` with an optional ``schema`` it builds a grammar from. Its
  ``RouteErrorHandler`` catches FastAPI's validation error and answers HTTP 500 with
  ``{"error": {"message": str(error), "type": "internal_server_error"}}``: FastAPI's 422 text,
  endpoint context (file and line) included.
* Ollama's ``/v1`` (``openai/openai.go``): ``json_schema`` becomes ``format: <schema>`` (0.5+);
  ``json_object`` becomes ``format: "json"``, any ``schema`` beside it ignored; any other type is
  ignored too. It refuses no ``response_format``.
* vLLM: ``Literal["text", "json_object", "json_schema", "structural_tag"]``; a field it does not
  know (``schema`` beside ``json_object``) is ignored with a log line. A validation error is HTTP
  400, ``{"error": {"message": "1 validation error: ...", "type": "Bad Request", "param": "body...",
  "code": 400}}``.
* OpenAI: ``json_schema`` and ``json_object``; another type is HTTP 400 naming ``response_format.type``.
* LiteLLM's proxy passes ``response_format`` to its backend and wraps the backend's refusal in its
  own error (500 for the backend's 5xx, else the backend's status), the backend's body inside its
  message. For a provider that takes no ``response_format`` it answers HTTP 400
  ``litellm.UnsupportedParamsError`` itself.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from tests.servers.openai_server import Reply

__all__ = [
    "DIALECTS",
    "LITELLM_NO_RESPONSE_FORMAT",
    "LLAMA_CPP_PYTHON",
    "LLAMA_SERVER",
    "LLAMA_SERVER_2024",
    "OLLAMA",
    "OPENAI",
    "VLLM",
    "Dialect",
    "behind_litellm",
    "step",
]

#: the ladder's steps, as a request shows them (`step`)
JSON_SCHEMA = "json_schema"
JSON_OBJECT_SCHEMA = "json_object+schema"
JSON_OBJECT = "json_object"


def step(body: Any) -> str | None:
    """Which structured output a request body asks for: `json_schema`, `json_object+schema`,
    `json_object`, another type as sent, or None without a `response_format`."""
    response_format = body.get("response_format") if isinstance(body, dict) else None
    if not isinstance(response_format, dict):
        return None
    kind = response_format.get("type")
    if kind == "json_object" and "schema" in response_format:
        return JSON_OBJECT_SCHEMA
    return kind if isinstance(kind, str) else repr(kind)


def _schema(body: dict[str, Any], where: str) -> dict[str, Any] | None:
    response_format = body.get("response_format") or {}
    found = response_format.get("schema") if where == JSON_OBJECT_SCHEMA else None
    if where == JSON_SCHEMA:
        inner = response_format.get("json_schema")
        found = inner.get("schema") if isinstance(inner, dict) else None
    return found if isinstance(found, dict) else None


@dataclass(frozen=True)
class Dialect:
    """One server's structured output: the steps it takes, those whose schema it enforces, and its
    refusal of the rest (a function of the `response_format` type it did not take)."""

    name: str
    takes: frozenset[str]
    enforces: frozenset[str]
    refuse: Callable[[str, dict[str, Any]], Reply]

    def refusal(self, body: Any) -> Reply | None:
        """The server's answer to a request it refuses; None when it takes the request."""
        asked = step(body)
        if asked is None or asked == "text" or asked in self.takes:
            return None
        kind = body["response_format"].get("type")
        return self.refuse(kind if isinstance(kind, str) else repr(kind), body)

    def constrains(self, body: Any) -> dict[str, Any] | None:
        """The schema this server's grammar would hold the answer to; None: the model writes freely."""
        asked = step(body)
        if asked not in self.enforces or not isinstance(body, dict):
            return None
        return _schema(body, asked)


def _fastapi_text(kind: str, expected: str) -> str:
    """`str()` of FastAPI's validation error for a literal `response_format.type`, endpoint context too."""
    problem = {
        "type": "literal_error",
        "loc": ("body", "response_format", "type"),
        "msg": f"Input should be {expected}",
        "input": kind,
        "ctx": {"expected": expected},
    }
    return (
        f"1 validation error:\n  {problem!r}\n\n"
        '  File "/opt/venv/lib/python3.12/site-packages/llama_cpp/server/app.py", line 503, in create_chat_completion\n'
        "    POST /v1/chat/completions\n"
    )


def _llama_cpp_python(kind: str, body: dict[str, Any]) -> Reply:
    message = _fastapi_text(kind, "'text' or 'json_object'")
    error = {"message": message, "type": "internal_server_error", "param": None, "code": None}
    return Reply(content=None, status=500, body={"error": error})


def _llama_server(status: int) -> Callable[[str, dict[str, Any]], Reply]:
    def refuse(kind: str, body: dict[str, Any]) -> Reply:
        message = f'response_format type must be one of "text" or "json_object", but got: {kind}'
        error_type = "invalid_request_error" if status == 400 else "server_error"
        return Reply(
            content=None, status=status, body={"error": {"code": status, "message": message, "type": error_type}}
        )

    return refuse


def _vllm(kind: str, body: dict[str, Any]) -> Reply:
    expected = "'text', 'json_object', 'json_schema' or 'structural_tag'"
    problem = {
        "type": "literal_error",
        "loc": ("body", "response_format", "type"),
        "msg": f"Input should be {expected}",
        "input": kind,
        "ctx": {"expected": expected},
    }
    error = {
        "message": f"1 validation error:\n  {problem!r}",
        "type": "Bad Request",
        "param": "body.response_format.type",
        "code": 400,
    }
    return Reply(content=None, status=400, body={"error": error})


def _openai(kind: str, body: dict[str, Any]) -> Reply:
    return Reply.error(
        400,
        f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', and 'text'.",
        code="invalid_value",
        param="response_format.type",
    )


def _litellm_unsupported(kind: str, body: dict[str, Any]) -> Reply:
    message = (
        "litellm.UnsupportedParamsError: huggingface does not support parameters: ['response_format'], "
        f"for model={body.get('model')}. To drop these, set `litellm.drop_params=True` or for proxy:\n\n"
        "`litellm_settings:\n drop_params: true`\n"
        f". Received Model Group={body.get('model')}\nAvailable Model Group Fallbacks=None"
    )
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": "400"}
    return Reply(content=None, status=400, body={"error": error})


ALL = frozenset({JSON_SCHEMA, JSON_OBJECT_SCHEMA, JSON_OBJECT})
OBJECTS = frozenset({JSON_OBJECT_SCHEMA, JSON_OBJECT})

OPENAI = Dialect("OpenAI", ALL, frozenset({JSON_SCHEMA}), _openai)
LLAMA_SERVER = Dialect("llama-server", ALL, frozenset({JSON_SCHEMA, JSON_OBJECT_SCHEMA}), _llama_server(400))
LLAMA_SERVER_2024 = Dialect(
    "llama-server before json_schema", OBJECTS, frozenset({JSON_OBJECT_SCHEMA}), _llama_server(500)
)
LLAMA_CPP_PYTHON = Dialect("llama-cpp-python", OBJECTS, frozenset({JSON_OBJECT_SCHEMA}), _llama_cpp_python)
#: Ollama takes every type (an unknown one is ignored): it never refuses
OLLAMA = Dialect("Ollama", ALL, frozenset({JSON_SCHEMA}), _openai)
VLLM = Dialect("vLLM", ALL, frozenset({JSON_SCHEMA}), _vllm)
LITELLM_NO_RESPONSE_FORMAT = Dialect(
    "LiteLLM, a provider without response_format", frozenset(), frozenset(), _litellm_unsupported
)


def behind_litellm(backend: Dialect) -> Dialect:
    """`backend` behind LiteLLM's proxy: the same steps, each refusal wrapped in LiteLLM's error."""

    def refuse(kind: str, body: dict[str, Any]) -> Reply:
        inner = backend.refuse(kind, body)
        status = 500 if inner.status >= 500 else inner.status
        name = "InternalServerError" if status >= 500 else "BadRequestError"
        message = (
            f"litellm.{name}: {name}: OpenAIException - {json.dumps(inner.body)}. "
            f"Received Model Group={body.get('model')}\nAvailable Model Group Fallbacks=None"
        )
        error = {"message": message, "type": None, "param": None, "code": str(status)}
        return Reply(content=None, status=status, body={"error": error})

    return Dialect(f"LiteLLM in front of {backend.name}", backend.takes, backend.enforces, refuse)


#: the dialects the table of docs/guides/local-models.md lists, by name
DIALECTS: dict[str, Dialect] = {
    dialect.name: dialect
    for dialect in (
        OPENAI,
        VLLM,
        OLLAMA,
        LLAMA_SERVER,
        LLAMA_SERVER_2024,
        LLAMA_CPP_PYTHON,
        behind_litellm(LLAMA_CPP_PYTHON),
        behind_litellm(LLAMA_SERVER),
        LITELLM_NO_RESPONSE_FORMAT,
    )
}
