"""Turning a model's failure into a `TurnError` with the reason to record and what to change.

The message names the model, its endpoint and the server's own words; `FixHints` says which
setting fixes it, in the library's words or, for a model a manifest built, the manifest's fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from ..errors import TurnError
from .errors import context_overflow, error_text, is_content_filter, refusal_over_the_limit

if TYPE_CHECKING:
    import openai


@dataclass(frozen=True)
class FixHints:
    """What a user edits when the model fails: the constructor's arguments in the library; a
    manifest's own fields (`user.endpoint`, the variable holding the key) when a manifest built it."""

    credential: str = "check the API key or token manager"
    model: str = "check endpoint_url and name"
    endpoint: str = "check endpoint_url"
    rate_limit: str = "lower the concurrency, raise rate_limit_wait, or ask the provider for a higher rate limit"
    timeout: str = "raise timeout"
    #: when the conversation outgrows the model's context
    context: str = (
        "shorten the conversation (fewer turns), or give the model a longer context "
        "(llama.cpp: --ctx-size; vLLM: --max-model-len)"
    )
    #: the setting that bounds the wait for a rate limit to lift, as the user wrote it
    rate_limit_wait: str = "rate_limit_wait"

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
            rate_limit=(
                f"lower --concurrency, raise {section}.rate_limit_wait, or ask the provider for a higher rate limit"
            ),
            timeout=f"raise {section}.timeout",
            context=(
                f"lower max_turns, or give {section}.model a longer context "
                "(llama.cpp: --ctx-size; vLLM: --max-model-len)"
            ),
            rate_limit_wait=f"{section}.rate_limit_wait",
        )


class Described(Protocol):
    """What a failure's message says about the model."""

    name: str
    timeout: float
    max_retries: int
    rate_limit_wait: float
    fix_hints: FixHints

    @property
    def chat_url(self) -> str: ...


def turn_error(
    model: Described, exc: openai.APIStatusError | openai.APIConnectionError, request: dict[str, Any]
) -> TurnError:
    """What a failure the model cannot adapt to means for the turn."""
    import openai

    if isinstance(exc, openai.BadRequestError) and is_content_filter(exc):
        return TurnError(
            "content_filter",
            f"{model.name}: the prompt was blocked by content filtering: {error_text(exc)}",
            detail={"status": 400, "request": request},
        )
    overflow = context_overflow(exc)
    if isinstance(exc, openai.APIStatusError) and overflow is not None:
        asked, holds = overflow.asked or overflow.prompt, overflow.holds
        sizes = "; ".join(s for s in (asked and f"{asked:,} tokens", holds and f"its context holds {holds:,}") if s)
        said = f" ({sizes})" if sizes else ""
        return failure(model, exc, f"cannot take a conversation this long{said}; {model.fix_hints.context}")
    if isinstance(exc, openai.BadRequestError):
        return failure(model, exc, "rejected the request")
    if isinstance(exc, (openai.AuthenticationError, openai.PermissionDeniedError)):
        return failure(model, exc, f"rejected the credential; {model.fix_hints.credential}", fatal=True)
    if isinstance(exc, openai.NotFoundError):
        return failure(model, exc, f"has no such model or deployment; {model.fix_hints.model}", fatal=True)
    if isinstance(exc, openai.RateLimitError) and exc.code == "insufficient_quota":
        return failure(model, exc, "has no quota left for this key; check its plan and billing", fatal=True)
    over = refusal_over_the_limit(exc)
    if isinstance(exc, openai.RateLimitError) and over is not None:
        what = (
            f"refused a request larger than its whole rate limit ({over[1]:,} asked, {over[0]:,} allowed): "
            f"waiting cannot help; shorten the conversation (max_turns, the persona, the task), lower "
            f"max_tokens, or ask the provider for a higher limit"
        )
        return failure(model, exc, what)
    if isinstance(exc, openai.RateLimitError):  # one the server says not to retry (`x-should-retry: false`)
        what = f"refused the request as rate-limited, not to be retried; {model.fix_hints.rate_limit}"
        return failure(model, exc, what)
    if isinstance(exc, openai.APIStatusError):
        return failure(model, exc, f"failed after {model.max_retries} retries")
    if isinstance(exc, openai.APITimeoutError):
        return TurnError(
            "timeout",
            f"{model.name} at {model.chat_url}: no answer within {model.timeout:g} s "
            f"(after {model.max_retries} retries); {model.fix_hints.timeout}",
        )
    return connection_failure(model, exc)


def rate_limit_error(model: Described, exc: openai.APIStatusError, waited: float, more: float) -> TurnError:
    """A rate limit that did not lift within `rate_limit_wait`: `waited` seconds so far, `more` asked."""
    still = f"; it asks for {more:.1f} s more" if more > 0.05 else ""
    return failure(
        model,
        exc,
        f"kept rate-limiting: still refused after {waited:.1f} s of waiting{still}, and "
        f"{model.fix_hints.rate_limit_wait} allows {model.rate_limit_wait:g} s; {model.fix_hints.rate_limit}",
    )


def connection_failure(model: Described, exc: openai.APIConnectionError) -> TurnError:
    """Unreachable (nothing listens there) is told apart from a connection dropped mid-request: a
    reset server was reported as "cannot reach ...: ReadError", which sent people to check the URL."""
    import httpx2  # loaded already: the SDK raised through it

    cause = exc.__cause__ or exc
    if isinstance(cause, httpx2.ProxyError):  # the proxy the environment names (HTTPS_PROXY, ...)
        what, where = "cannot reach", f"{model.chat_url} through the proxy"
    else:
        what = "cannot reach" if isinstance(cause, httpx2.ConnectError) else "lost the connection to"
        where = model.chat_url
    why = str(cause).strip() or f"{type(cause).__name__} (the connection was closed or reset)"
    return TurnError(
        "llm_error",
        f"{model.name}: {what} {where}: {why} (after {model.max_retries} retries); {model.fix_hints.endpoint}",
        detail={"url": model.chat_url},
    )


def failure(model: Described, exc: openai.APIStatusError, what: str, fatal: bool = False) -> TurnError:
    return TurnError(
        "llm_error",
        f"{model.name} at {model.chat_url} {what} (HTTP {exc.status_code}): {error_text(exc)}",
        detail={"status": exc.status_code, "code": exc.code, "url": model.chat_url},
        fatal=fatal,
    )
