"""OpenAIChatCompletionsModel: one chat-completions connection (OpenAI, Azure OpenAI, compatible).

Built on the `openai` SDK, which owns retries with back-off and `Retry-After`. This module adds
what a simulation needs on top: endpoint styles, credentials from a token manager, reasoning
models, and turning every failure into a `TurnError` with a reason the result can record.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse, urlunparse

from ..aio.event_loops import PerLoop
from ..aio.http_sessions import MAX_CONNECTIONS, new_session
from ..errors import ConfigError, MissingCredentialError, TurnError
from ..parsing import strict_json
from ..text import known_secrets
from ..text.known_secrets import scrub, scrub_text
from .errors import error_text, is_content_filter, names_response_format, retry_after, transient
from .response_formats import FormatNegotiation
from .thinking import count_reasoning, split_thinking
from .token_managers import API_KEY_HEADER, BEARER, APITokenManager, PlainTokenManager

if TYPE_CHECKING:
    import httpx2
    import openai

log = known_secrets.scrub_logs(logging.getLogger("simulator.llm.models"))

REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!-chat))", re.IGNORECASE)
SAMPLING_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
#: The SDK's first back-off, used when a probe's transient failure hands over to its retries
FIRST_RETRY_DELAY = 0.5


@dataclass(frozen=True)
class FixHints:
    """What a user edits when the model fails: the constructor's arguments in the library; a
    manifest's own fields (`user.endpoint`, the variable holding the key) when a manifest built it."""

    credential: str = "check the API key or token manager"
    model: str = "check endpoint_url and name"
    endpoint: str = "check endpoint_url"
    rate_limit: str = "lower the concurrency or raise max_retries"
    timeout: str = "raise timeout"

    @classmethod
    def for_manifest(cls, section: str, key_env: str | None, default_key_env: str) -> FixHints:
        """The hints for a model a manifest's `section` (`user`, `judge`, `simulations[2].user`) describes."""
        if key_env:
            credential = f"check the key in {key_env} ({section}.api_key_env)"
        else:
            credential = f"check the key in {default_key_env} (or name another variable in {section}.api_key_env)"
        return cls(
            credential=credential,
            model=f"check {section}.endpoint and {section}.model",
            endpoint=f"check {section}.endpoint",
            rate_limit=f"lower --concurrency or raise {section}.max_retries",
            timeout=f"raise {section}.timeout",
        )


@dataclass
class ModelReply:
    """One completion: the text, the whole JSON answer, and the request that produced it.

    `content` is the visible answer, without a reasoning model's thinking, which is in
    `reasoning` (see `simulator.llm.thinking`); `usage` then counts it as `reasoning_tokens`.
    """

    content: str
    raw: dict[str, Any]
    request: dict[str, Any]
    usage: dict[str, Any] | None
    finish_reason: str | None
    reasoning: str | None = None
    #: the thinking never ended: `max_tokens` ran out before any answer
    thinking_cut_off: bool = False

    @property
    def only_thinking(self) -> bool:
        """The model thought and said nothing: the caller has no answer to use."""
        return not self.content.strip() and (self.reasoning is not None or self.thinking_cut_off)


class OpenAIChatCompletionsModel:
    """A chat model reached through the `openai` SDK.

    With `api_version`, the endpoint is Azure OpenAI and `name` is the deployment; the endpoint
    may be the resource URL or a full `.../openai/deployments/<name>/chat/completions` URL.
    Without it, `endpoint_url` is an OpenAI-compatible base URL (OpenAI when omitted, or Ollama,
    vLLM, llama.cpp server, ...). Reasoning models get `max_completion_tokens` and no sampling
    parameters; a server that rejects a parameter gets the request again without it.
    """

    def __init__(
        self,
        endpoint_url: str | None = None,
        token_manager: APITokenManager | None = None,
        api_version: str | None = None,
        name: str = "gpt-4o-mini",
        max_tokens: int | None = 300,
        temperature: float | None = 0.0,
        top_p: float | None = None,
        stop: list[str] | None = None,
        *,
        max_completion_tokens: int | None = None,
        reasoning: bool | None = None,
        reasoning_effort: str | None = None,
        seed: int | None = None,
        timeout: float = 60.0,
        max_retries: int = 3,
        extra_body: dict[str, Any] | None = None,
        default_headers: dict[str, str] | None = None,
    ) -> None:
        if not name or not isinstance(name, str):
            raise ConfigError("OpenAIChatCompletionsModel: name (the model or Azure deployment) is required")
        if token_manager is not None and not isinstance(token_manager, APITokenManager):
            raise ConfigError(
                f"OpenAIChatCompletionsModel: token_manager must be a token manager, got {type(token_manager).__name__}"
            )
        self.name = name
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.top_p = top_p
        self.stop = stop
        self.max_completion_tokens = max_completion_tokens
        self.reasoning = bool(REASONING_MODEL.match(name)) if reasoning is None else reasoning
        self.reasoning_effort = reasoning_effort
        self.seed = seed
        self.timeout = timeout
        self.max_retries = max_retries
        self.extra_body = dict(extra_body or {})
        self.default_headers = dict(default_headers or {})
        for header, value in self.default_headers.items():
            if known_secrets.SECRET_NAME.search(header) and isinstance(value, str):
                known_secrets.register_all([value, *value.split()[1:]])  # "Bearer <token>": the token alone too
        known_secrets.register_url(endpoint_url)
        self._resolve_endpoint(endpoint_url, api_version)
        self.token_manager = token_manager or self._token_manager_from_env()
        self._use_completion_tokens = self.reasoning
        self._dropped: set[str] = set(SAMPLING_PARAMS) if self.reasoning else set()
        # what this endpoint does with structured output, shared by every conversation using the model
        self._formats = FormatNegotiation()
        self._connections = MAX_CONNECTIONS  # raised by `warm` for a run with more conversations at a time
        self._clients: PerLoop[Any] = PerLoop(self._make_sdk_client)
        #: what a failure's message tells the user to change; a manifest sets its own fields' names
        self.fix_hints = FixHints()
        #: completions asked for (`complete` calls, whatever retries each took): what a run cost
        self.calls = 0

    # --- configuration ------------------------------------------------------------------

    def _resolve_endpoint(self, endpoint_url: str | None, api_version: str | None) -> None:
        self.deployment: str | None = None
        if endpoint_url is None:
            if api_version:
                raise ConfigError(
                    "OpenAIChatCompletionsModel: api_version given but no endpoint_url (the Azure resource URL)"
                )
            self.endpoint_url, self.api_version = None, None
            return
        parsed = urlparse(endpoint_url.strip())
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ConfigError(f"endpoint_url {endpoint_url!r} is not an http(s) URL")
        query_version = parse_qs(parsed.query).get("api-version", [None])[0]
        self.api_version = api_version or query_version
        path = parsed.path.rstrip("/")
        path = re.sub(r"/chat/completions$", "", path)
        if self.api_version:
            match = re.search(r"/openai/deployments/([^/]+)", path)
            if match:
                self.deployment = match.group(1)
                path = path[: match.start()]
            path = re.sub(r"/openai$", "", path)
        self.endpoint_url = urlunparse((parsed.scheme, parsed.netloc, path, "", "", ""))

    @property
    def is_azure(self) -> bool:
        return bool(self.api_version)

    def _token_manager_from_env(self) -> APITokenManager | None:
        env_var = "AZURE_OPENAI_API_KEY" if self.is_azure else "OPENAI_API_KEY"
        if os.environ.get(env_var):
            return PlainTokenManager(env_var=env_var)
        if self.endpoint_url is None:
            raise MissingCredentialError(
                "OpenAIChatCompletionsModel: no credential for api.openai.com; set OPENAI_API_KEY or pass "
                "token_manager=PlainTokenManager(env_var='MY_KEY_VARIABLE')"
            )
        if self.is_azure:
            raise MissingCredentialError(
                f"OpenAIChatCompletionsModel: no credential for Azure OpenAI at {self.endpoint_url}; set "
                "AZURE_OPENAI_API_KEY or pass a token manager (PlainTokenManager, KeyVaultAPITokenManager, "
                "ManagedIdentityAPITokenManager)"
            )
        return None  # a local server that needs no key

    def describe(self) -> dict[str, Any]:
        """What the results record about this model (never a credential)."""
        return {
            "kind": "azure_openai" if self.is_azure else "openai_compatible",
            "endpoint": self.endpoint_url or "https://api.openai.com/v1",
            "model": self.name,
            **({"deployment": self.deployment or self.name, "api_version": self.api_version} if self.is_azure else {}),
        }

    @property
    def chat_url(self) -> str:
        """Where requests go, for error messages."""
        if self.is_azure:
            return f"{self.endpoint_url}/openai/deployments/{self.deployment or self.name}/chat/completions"
        return f"{self.endpoint_url or 'https://api.openai.com/v1'}/chat/completions"

    def __repr__(self) -> str:
        return f"OpenAIChatCompletionsModel(name={self.name!r}, endpoint={self.describe()['endpoint']!r})"

    # --- the client, one per event loop (connections cannot cross loops) -------------------

    def _make_sdk_client(self) -> Any:
        """The running loop's SDK client, sending over an aiohttp session (`simulator.llm.transport`):
        httpx2's own pool cost twice the CPU per request, and more the more connections it held.
        One client for every conversation: the session's pool does not slow down with its size."""
        import httpx2  # with the SDK, on first use: `validate` and scripted runs need neither

        from .transport import LLMTransport

        transport = LLMTransport(lambda: new_session(limit=self._connections))
        # redirects followed as the SDK's default client does; proxies are the transport's (`proxy_for`)
        http_client = httpx2.AsyncClient(
            transport=transport, timeout=self.timeout, follow_redirects=True, trust_env=False
        )
        client = self._make_client(http_client)
        transport.open()  # now, inside the loop the session serves, once nothing can fail before it
        return client

    def _make_client(self, http_client: httpx2.AsyncClient) -> Any:
        import openai  # on first use: the SDK takes longer to import than the rest of the package

        common: dict[str, Any] = {
            "timeout": self.timeout,
            "max_retries": self.max_retries,
            "default_headers": dict(self.default_headers),
            "http_client": http_client,
        }
        manager = self.token_manager
        header = (manager.auth_header if manager else None) or (API_KEY_HEADER if self.is_azure else BEARER)
        if self.is_azure and self.endpoint_url is not None:
            auth: dict[str, Any]
            if manager is None:
                auth = {"api_key": "unused"}
            elif header == BEARER:
                auth = {"azure_ad_token_provider": manager.get_token}
            else:
                auth = {"api_key": manager.get_token}
            return openai.AsyncAzureOpenAI(
                azure_endpoint=self.endpoint_url,
                azure_deployment=self.deployment or self.name,
                api_version=self.api_version,
                **auth,
                **common,
            )
        if manager is not None and header == API_KEY_HEADER:
            common["default_headers"][API_KEY_HEADER] = manager.get_token_sync()
            return openai.AsyncOpenAI(base_url=self.endpoint_url, api_key="unused", **common)
        api_key: Any = manager.get_token if manager is not None else "unused"
        return openai.AsyncOpenAI(base_url=self.endpoint_url, api_key=api_key, **common)

    def _client(self) -> Any:
        """The running event loop's SDK client."""
        return self._clients.get()

    async def warm(self, concurrency: int = 1) -> None:
        """Import the SDK and build the client and its session now, not inside the first request's
        clock, for a run of `concurrency` conversations at a time (each may have a request in flight,
        so the session keeps as many connections)."""
        self._connections = max(MAX_CONNECTIONS, concurrency)
        self._client()

    async def aclose(self) -> None:
        """Close the running event loop's client and its aiohttp session."""
        client = self._clients.pop()
        if client is not None:
            await client.close()

    # --- requests -----------------------------------------------------------------------

    def _params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        limit = self.max_completion_tokens or self.max_tokens
        if limit is not None:
            params["max_completion_tokens" if self._use_completion_tokens else "max_tokens"] = limit
        for key in ("temperature", "top_p"):
            value = getattr(self, key)
            if value is not None and key not in self._dropped:
                params[key] = value
        if self.stop and "stop" not in self._dropped:
            params["stop"] = self.stop
        if self.reasoning_effort and "reasoning_effort" not in self._dropped:
            params["reasoning_effort"] = self.reasoning_effort
        if self.seed is not None and "seed" not in self._dropped:
            params["seed"] = self.seed
        return params

    def _adapt_to(self, exc: openai.BadRequestError) -> bool:
        """Learn from a 400 that names an unsupported parameter; True when a retry may succeed."""
        text = error_text(exc).lower()
        param = (exc.param or "").lower()
        unsupported = any(w in text for w in ("unsupported", "not supported", "does not support", "unrecognized"))
        if not unsupported:
            return False
        if not self._use_completion_tokens and (param == "max_tokens" or "max_completion_tokens" in text):
            self._use_completion_tokens = True
            log.warning("%s rejects max_tokens; sending max_completion_tokens instead", self.name)
            return True
        for key in (*SAMPLING_PARAMS, "stop", "reasoning_effort", "seed"):
            if key not in self._dropped and (param == key or f"'{key}'" in text):
                self._dropped.add(key)
                log.warning("%s rejects %s; sending requests without it", self.name, key)
                return True
        return False

    async def complete(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None = None
    ) -> ModelReply:
        """One chat completion. Failures raise `TurnError` with the reason to record.

        `response_format` is asked for only when given. A server that refuses it (an error that
        names `response_format`, whatever its status) gets the next step of the ladder
        (`simulator.llm.response_formats`): the schema as `json_object`'s `schema`, then bare
        `json_object`, then none, the last two with the schema written into the last user message.
        The model remembers the step; below `json_object`+`schema` the caller must validate the answer.
        """
        self.calls += 1
        if self._formats.unsettled(self._formats.ask(response_format)):
            async with self._formats.probe_lock():
                # what the probe before this one learnt may settle it: then no need to hold the others
                if self._formats.unsettled(self._formats.ask(response_format)):
                    return await self._complete(messages, response_format)
        return await self._complete(messages, response_format)

    async def _complete(self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None) -> ModelReply:
        import httpx2
        import openai

        refreshed = False
        retries: int | None = None  # the SDK's retries, once a probe failed for a passing reason
        for _ in range(10):  # format steps, parameter adaptations and one credential refresh at most
            params = self._params()
            ask = self._formats.ask(response_format)
            if ask.response_format is not None:
                params["response_format"] = ask.response_format
            request = {"model": self.name, "messages": ask.messages(messages), **params}
            # a probe is not retried: a server that cannot do the format fails the same way every
            # time (llama-cpp-python answers 500, which the SDK would send again max_retries times)
            probe = retries is None and self._formats.unsettled(ask)
            options: dict[str, Any] = {"max_retries": 0} if probe else {}
            if retries is not None:
                options["max_retries"] = retries
            try:
                # the SDK's generic `post` keeps its retries, auth and error types but skips its
                # per-field transform and model parsing, which cost more CPU than the rest of a turn
                response = await self._client().post(
                    "/chat/completions", body={**request, **self.extra_body}, cast_to=httpx2.Response, options=options
                )
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                sent_format = ask.step is not None and ask.response_format is not None
                if sent_format and isinstance(exc, openai.APIStatusError) and names_response_format(exc):
                    self._formats.step_down(ask, exc, f"{self.name} at {self.chat_url}")
                    retries = None
                    continue
                if probe and self.max_retries > 0 and transient(exc):
                    delay = retry_after(exc)
                    await asyncio.sleep(delay if delay is not None and delay > 0 else FIRST_RETRY_DELAY)
                    retries = self.max_retries - 1
                    continue
                if isinstance(exc, openai.BadRequestError) and not is_content_filter(exc) and self._adapt_to(exc):
                    continue
                manager = self.token_manager
                credential = isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError))
                if credential and manager is not None and manager.refreshable and not refreshed:
                    refreshed = True
                    manager.invalidate()
                    continue
                raise self._turn_error(exc, request) from None
            self._formats.accepted(ask)
            return self._reply(response, request)
        raise TurnError("llm_error", f"{self.name} at {self.chat_url}: kept rejecting the request parameters")

    def _turn_error(self, exc: openai.APIStatusError | openai.APIConnectionError, request: dict[str, Any]) -> TurnError:
        """What a failure the model cannot adapt to means for the turn."""
        import openai

        if isinstance(exc, openai.BadRequestError) and is_content_filter(exc):
            return TurnError(
                "content_filter",
                f"{self.name}: the prompt was blocked by content filtering: {error_text(exc)}",
                detail={"status": 400, "request": request},
            )
        if isinstance(exc, openai.BadRequestError):
            return self._failure(exc, "rejected the request")
        if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
            return self._failure(exc, f"rejected the credential; {self.fix_hints.credential}", fatal=True)
        if isinstance(exc, openai.NotFoundError):
            return self._failure(exc, f"has no such model or deployment; {self.fix_hints.model}", fatal=True)
        if isinstance(exc, openai.RateLimitError):
            return self._failure(
                exc, f"kept rate-limiting after {self.max_retries} retries; {self.fix_hints.rate_limit}"
            )
        if isinstance(exc, openai.APIStatusError):
            return self._failure(exc, f"failed after {self.max_retries} retries")
        if isinstance(exc, openai.APITimeoutError):
            return TurnError(
                "timeout",
                f"{self.name} at {self.chat_url}: no answer within {self.timeout:g} s "
                f"(after {self.max_retries} retries); {self.fix_hints.timeout}",
            )
        return self._connection_failure(exc)

    def _connection_failure(self, exc: openai.APIConnectionError) -> TurnError:
        """Unreachable (nothing listens there) is told apart from a connection dropped mid-request: a
        reset server was reported as "cannot reach ...: ReadError", which sent people to check the URL."""
        import httpx2  # loaded already: the SDK raised through it

        cause = exc.__cause__ or exc
        if isinstance(cause, httpx2.ProxyError):  # the proxy the environment names (HTTPS_PROXY, ...)
            what, where = "cannot reach", f"{self.chat_url} through the proxy"
        else:
            what = "cannot reach" if isinstance(cause, httpx2.ConnectError) else "lost the connection to"
            where = self.chat_url
        why = str(cause).strip() or f"{type(cause).__name__} (the connection was closed or reset)"
        return TurnError(
            "llm_error",
            f"{self.name}: {what} {where}: {why} (after {self.max_retries} retries); {self.fix_hints.endpoint}",
            detail={"url": self.chat_url},
        )

    def _failure(self, exc: openai.APIStatusError, what: str, fatal: bool = False) -> TurnError:
        return TurnError(
            "llm_error",
            f"{self.name} at {self.chat_url} {what} (HTTP {exc.status_code}): {error_text(exc)}",
            detail={"status": exc.status_code, "code": exc.code, "url": self.chat_url},
            fatal=fatal,
        )

    def _reply(self, response: httpx2.Response, request: dict[str, Any]) -> ModelReply:
        try:
            raw = strict_json.loads(response.content, max_depth=strict_json.EMBEDDED_MAX_DEPTH)
        except strict_json.JSONError as exc:  # a repeated key too: which message or verdict is meant cannot be known
            what = (
                "something that is not JSON"
                if isinstance(exc, strict_json.NotJSON)
                else f"JSON that cannot be used: {exc}"
            )
            snippet = scrub_text(response.text)[:300]
            raise TurnError(
                "llm_error",
                f"{self.name} at {self.chat_url} answered with {what}: {snippet!r}",
                detail={"status": response.status_code, "response": snippet},
            ) from None
        choices = raw.get("choices") if isinstance(raw, dict) else None
        choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
        if choice is None:
            raise TurnError("llm_error", f"{self.name}: the answer had no choices", detail={"response": raw})
        usage = raw.get("usage") if isinstance(raw.get("usage"), dict) else None
        finish_reason = choice.get("finish_reason")
        if finish_reason == "content_filter":
            raise TurnError(
                "content_filter",
                f"{self.name}: the answer was withheld by content filtering",
                detail={"response": raw, "request": request, "usage": usage},
            )
        message = choice.get("message")
        thinking = split_thinking(message if isinstance(message, dict) else {})
        # the reply becomes the simulated user's message to the app, a verdict or the app's answer: a
        # credential the server quoted back (its own key, echoed request headers) must go no further
        return ModelReply(
            content=scrub_text(thinking.content),
            raw=scrub(raw),
            request=scrub(request),
            usage=count_reasoning(usage, thinking.reasoning),
            finish_reason=finish_reason,
            reasoning=scrub_text(thinking.reasoning) if thinking.reasoning else None,
            thinking_cut_off=thinking.cut_off,
        )
