"""OpenAIChatCompletionsModel: one chat-completions connection (OpenAI, Azure OpenAI, compatible).

Built on the `openai` SDK (its client, auth and error types; its retries are `retries`, so a rate
limit is waited out with every other request to the endpoint: `simulator.aio.limiter`). This
module adds what a simulation needs on top: endpoint styles, credentials from a token manager,
reasoning models, and every failure a `TurnError` with a reason the result can record (`failures`).
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlparse, urlunparse

from ..aio.event_loops import PerLoop
from ..aio.http_sessions import MAX_CONNECTIONS, new_session
from ..aio.limiter import EndpointLimiter
from ..errors import ConfigError, MissingCredentialError, TurnError
from ..text import known_secrets
from .context_room import answer_room, held_to
from .errors import error_text, is_content_filter, names_response_format
from .failures import FixHints, rate_limit_error, turn_error
from .replies import ModelReply, read_reply
from .response_formats import FormatNegotiation
from .retries import DEFAULT_RATE_LIMIT_WAIT, Retries, check_rate_limit_wait, rate_limited, request_tokens
from .token_managers import API_KEY_HEADER, BEARER, APITokenManager, PlainTokenManager

if TYPE_CHECKING:
    import httpx2
    import openai

__all__ = ["FixHints", "ModelReply", "OpenAIChatCompletionsModel"]

log = known_secrets.scrub_logs(logging.getLogger("simulator.llm.models"))

REASONING_MODEL = re.compile(r"^(o\d|gpt-5(?!-chat))", re.IGNORECASE)
SAMPLING_PARAMS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
#: format steps, parameter adaptations and a credential refresh, at most, for one completion
MAX_ADAPTATIONS = 10


class OpenAIChatCompletionsModel:
    """A chat model reached through the `openai` SDK.

    With `api_version`, the endpoint is Azure OpenAI and `name` is the deployment; the endpoint
    may be the resource URL or a full `.../openai/deployments/<name>/chat/completions` URL.
    Without it, `endpoint_url` is an OpenAI-compatible base URL (OpenAI when omitted, or Ollama,
    vLLM, llama.cpp server, ...). Reasoning models get `max_completion_tokens` and no sampling
    parameters; a server that rejects a parameter gets the request again without it.

    Failures that may pass are retried `max_retries` times. A 429 is not one of them: every request
    of the model (of every model a run builds for the same endpoint and name) waits until the
    server's wait has passed, and fewer go at a time (`limiter`); only a limit that still refuses
    after `rate_limit_wait` seconds fails the turn.
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
        rate_limit_wait: float = DEFAULT_RATE_LIMIT_WAIT,
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
        self.rate_limit_wait = check_rate_limit_wait(rate_limit_wait, "OpenAIChatCompletionsModel: rate_limit_wait")
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
        #: the endpoint's shared pause and window; a run gives every model of one endpoint the same
        self.limiter = EndpointLimiter(f"{name} at {self.chat_url}")
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
            "max_retries": 0,  # retried in `_complete` (`retries`): a 429 is the endpoint's limiter's
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

    @property
    def limit_key(self) -> str:
        """The endpoint as its rate limit sees it: where requests go and the model (or deployment)."""
        return f"{self.chat_url} {self.name}"

    def share_limiter(self, limiter: EndpointLimiter) -> None:
        """Wait out rate limits with `limiter`, shared by every model of the run that calls this endpoint."""
        self.limiter = limiter

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
        adaptations = 0
        retries = Retries(self.limiter, self.max_retries, self.rate_limit_wait)
        fresh = True  # no retry spent at this format step yet: a refusal of the format steps down at once
        room: int | None = None  # tokens the context leaves this request's answer, once a refusal said so
        while adaptations <= MAX_ADAPTATIONS:  # format steps, parameter adaptations, one credential refresh
            params = held_to(self._params(), room)
            ask = self._formats.ask(response_format)
            if ask.response_format is not None:
                params["response_format"] = ask.response_format
            request = {"model": self.name, "messages": ask.messages(messages), **params}
            # a probe is not retried: a server that cannot do the format fails the same way every
            # time (llama-cpp-python answers 500, which would be sent again max_retries times)
            probe = fresh and self._formats.unsettled(ask)
            slot = await retries.slot()
            try:
                # the SDK's generic `post` keeps its auth and error types but skips its per-field
                # transform and model parsing, which cost more CPU than the rest of a turn
                response = await self._client().post(
                    "/chat/completions", body={**request, **self.extra_body}, cast_to=httpx2.Response
                )
            except (openai.APIStatusError, openai.APIConnectionError) as exc:
                if isinstance(exc, openai.APIStatusError) and rate_limited(exc):
                    wait, waited, more = retries.refused(slot, exc)
                    if wait:  # not counted: everyone waits for the limit to lift, then this goes first
                        continue
                    raise rate_limit_error(self, exc, waited, more) from None
                retries.failed(slot, exc)
                sent_format = ask.step is not None and ask.response_format is not None
                names_format = sent_format and isinstance(exc, openai.APIStatusError) and names_response_format(exc)
                if not (probe and names_format) and await retries.back_off(exc):
                    fresh = False
                    continue
                adaptations += 1
                if names_format and isinstance(exc, openai.APIStatusError):
                    self._formats.step_down(ask, exc, f"{self.name} at {self.chat_url}")
                    retries.used, fresh = 0, True
                    continue
                if room is None and (room := answer_room(exc, params)) is not None:
                    log.info("%s: the context leaves %d tokens for the answer; asking for that many", self.name, room)
                    continue
                if isinstance(exc, openai.BadRequestError) and not is_content_filter(exc) and self._adapt_to(exc):
                    continue
                manager = self.token_manager
                credential = isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError))
                if credential and manager is not None and manager.refreshable and not refreshed:
                    refreshed = True
                    manager.invalidate()
                    continue
                raise turn_error(self, exc, request) from None
            else:
                retries.answered(slot, response.headers, request_tokens(request))
            finally:
                slot.release()  # a cancellation, or anything else: the slot is free (a no-op once reported)
            self._formats.accepted(ask)
            return read_reply(response, request, self.name, self.chat_url)
        raise TurnError("llm_error", f"{self.name} at {self.chat_url}: kept rejecting the request parameters")
