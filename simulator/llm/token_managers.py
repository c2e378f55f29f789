"""Token managers: where the LLM's credential comes from, refreshed before it expires.

A token manager hands out a secret (an API key or a bearer token) and says which header carries
it. Secrets are never part of `repr`, log lines or results: each one fetched joins the run's known
secrets (`simulator.text.known_secrets`), scrubbed from everything the run writes or sends on.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import threading
import time
from abc import ABC, abstractmethod
from typing import Any
from urllib.parse import urlparse

from ..errors import ConfigError, MissingCredentialError, MissingExtraError
from ..text import known_secrets

API_KEY_HEADER = "api-key"
BEARER = "Bearer"
COGNITIVE_SERVICES_SCOPE = "https://cognitiveservices.azure.com/.default"


def _normalise_header(auth_header: str | None) -> str | None:
    if auth_header is None:
        return None
    lowered = auth_header.strip().lower()
    if lowered in ("api-key", "api_key", "apikey"):
        return API_KEY_HEADER
    if lowered in ("bearer", "authorization"):
        return BEARER
    raise ConfigError(f"auth_header must be 'api-key' or 'Bearer', got {auth_header!r}")


class APITokenManager(ABC):
    """Base class: caches one secret, refreshes it when stale, forgets it on demand.

    Subclasses implement `_fetch()` returning `(secret, expires_at_epoch_or_None)`.
    """

    #: refresh this many seconds before the secret expires
    refresh_margin: float = 300.0

    def __init__(self, auth_header: str | None = None, logger: logging.Logger | None = None) -> None:
        self.auth_header = _normalise_header(auth_header)
        self.logger = known_secrets.scrub_logs(logger or logging.getLogger("simulator.llm.token_managers"))
        self._lock = threading.Lock()
        self._secret: str | None = None
        self._expires_at: float | None = None
        self.last_refresh_time: float | None = None
        self.refresh_count = 0

    @abstractmethod
    def _fetch(self) -> tuple[str, float | None]:
        """Get a new secret and when it expires (epoch seconds, or None for never)."""

    def _fresh(self) -> bool:
        if self._secret is None:
            return False
        return self._expires_at is None or time.time() < self._expires_at - self.refresh_margin

    def get_token_sync(self) -> str:
        """The current secret, fetched or refreshed first when needed (thread-safe)."""
        with self._lock:
            if not self._fresh():
                secret, expires_at = self._fetch()
                if not secret:
                    raise ConfigError(f"{self!r} produced an empty credential")
                known_secrets.register(secret)
                self._secret, self._expires_at = secret, expires_at
                self.last_refresh_time = time.time()
                self.refresh_count += 1
                if expires_at is not None:
                    self.logger.info("%r refreshed a credential valid for %.0f s", self, expires_at - time.time())
            return self._secret  # type: ignore[return-value]

    async def get_token(self) -> str:
        """Async form of `get_token_sync`; slow fetches run off the event loop."""
        if self._fresh():
            return self._secret  # type: ignore[return-value]
        return await asyncio.to_thread(self.get_token_sync)

    def invalidate(self) -> None:
        """Forget the cached secret, e.g. after the server answered 401, so the next call refetches."""
        with self._lock:
            self._secret = None
            self._expires_at = None

    @property
    def refreshable(self) -> bool:
        """Whether refetching can yield a different secret (worth a retry after 401)."""
        return True

    def _describe(self) -> str:
        return ""

    def __repr__(self) -> str:
        detail = self._describe()
        header = f"auth_header={self.auth_header!r}"
        return f"{type(self).__name__}({detail + ', ' if detail else ''}{header})"


class PlainTokenManager(APITokenManager):
    """A fixed key, given directly or read from an environment variable when first needed."""

    def __init__(
        self,
        api_key: str | None = None,
        *,
        env_var: str | None = None,
        auth_header: str | None = None,
        logger: logging.Logger | None = None,
    ) -> None:
        super().__init__(auth_header, logger)
        if api_key is None and env_var is None:
            raise ConfigError("PlainTokenManager needs api_key= or env_var= (the variable holding the key)")
        if api_key is not None and env_var is not None:
            raise ConfigError("PlainTokenManager takes api_key= or env_var=, not both")
        if api_key is not None and not str(api_key).strip():
            raise ConfigError("PlainTokenManager: api_key is empty")
        self._api_key = api_key
        self.env_var = env_var

    def _fetch(self) -> tuple[str, float | None]:
        if self._api_key is not None:
            return self._api_key, None
        value = os.environ.get(self.env_var or "", "").strip()
        if not value:
            raise MissingCredentialError(
                f"environment variable {self.env_var} is not set or empty; it should hold the API key"
            )
        return value, None

    @property
    def refreshable(self) -> bool:
        return False

    def _describe(self) -> str:
        return f"env_var={self.env_var!r}" if self.env_var else "api_key=***"


def _parse_secret_identifier(secret_identifier: str) -> tuple[str, str, str | None]:
    parsed = urlparse(secret_identifier)
    parts = [p for p in parsed.path.split("/") if p]
    if parsed.scheme != "https" or not parsed.netloc or len(parts) not in (2, 3) or parts[0] != "secrets":
        raise ConfigError(
            f"secret_identifier {secret_identifier!r} is not a Key Vault secret id; expected "
            "https://<vault>.vault.azure.net/secrets/<name>[/<version>]"
        )
    version = parts[2] if len(parts) == 3 else None
    return f"https://{parsed.netloc}", parts[1], version


def _require(module: str, what: str, package: str) -> None:
    """Fail when the object is built, not at its first conversation: a missing extra is a setup error."""
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError, AttributeError):  # a parent package missing, or blocked in sys.modules
        found = False
    if not found:
        raise MissingExtraError(what, "azure", package)


def _default_azure_credential() -> Any:
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise MissingExtraError("Azure authentication", "azure", "azure-identity") from None
    return DefaultAzureCredential()


class KeyVaultAPITokenManager(APITokenManager):
    """An API key kept as an Azure Key Vault secret, re-read every `refresh_interval` seconds.

    `credential` defaults to azure-identity's DefaultAzureCredential; `secret_client` may be any
    object with `get_secret(name, version)` returning something with `.value`.
    """

    def __init__(
        self,
        secret_identifier: str,
        auth_header: str = API_KEY_HEADER,
        logger: logging.Logger | None = None,
        *,
        credential: Any = None,
        secret_client: Any = None,
        refresh_interval: float = 3600.0,
    ) -> None:
        super().__init__(auth_header, logger)
        self.secret_identifier = secret_identifier
        self.vault_url, self.secret_name, self.secret_version = _parse_secret_identifier(secret_identifier)
        if secret_client is None:
            _require("azure.keyvault.secrets", "KeyVaultAPITokenManager", "azure-keyvault-secrets")
            if credential is None:
                _require("azure.identity", "KeyVaultAPITokenManager's default credential", "azure-identity")
        self._credential = credential
        self._client = secret_client
        self.refresh_interval = refresh_interval
        self.refresh_margin = 0.0

    def _secret_client(self) -> Any:
        if self._client is None:
            try:
                from azure.keyvault.secrets import SecretClient
            except ImportError:
                raise MissingExtraError("KeyVaultAPITokenManager", "azure", "azure-keyvault-secrets") from None
            credential = self._credential or _default_azure_credential()
            self._client = SecretClient(vault_url=self.vault_url, credential=credential)
        return self._client

    def _fetch(self) -> tuple[str, float | None]:
        secret = self._secret_client().get_secret(self.secret_name, self.secret_version)
        return secret.value, time.time() + self.refresh_interval

    def _describe(self) -> str:
        return f"secret_identifier={self.secret_identifier!r}"


class ManagedIdentityAPITokenManager(APITokenManager):
    """A Microsoft Entra bearer token from an azure-identity credential, refreshed before expiry.

    `credential` defaults to `ManagedIdentityCredential(client_id=client_id)`; pass any
    azure-identity credential (DefaultAzureCredential, WorkloadIdentityCredential, ...) instead.
    """

    def __init__(
        self,
        token_scope: str = COGNITIVE_SERVICES_SCOPE,
        auth_header: str = BEARER,
        logger: logging.Logger | None = None,
        *,
        credential: Any = None,
        client_id: str | None = None,
        refresh_margin: float = 300.0,
    ) -> None:
        super().__init__(auth_header, logger)
        self.token_scope = token_scope
        self.client_id = client_id
        if credential is None:
            _require("azure.identity", "ManagedIdentityAPITokenManager", "azure-identity")
        self._credential = credential
        self.refresh_margin = refresh_margin

    def _get_credential(self) -> Any:
        if self._credential is None:
            try:
                from azure.identity import ManagedIdentityCredential
            except ImportError:
                raise MissingExtraError("ManagedIdentityAPITokenManager", "azure", "azure-identity") from None
            self._credential = ManagedIdentityCredential(client_id=self.client_id)
        return self._credential

    def _fetch(self) -> tuple[str, float | None]:
        access = self._get_credential().get_token(self.token_scope)
        return access.token, float(access.expires_on)

    def _describe(self) -> str:
        return f"token_scope={self.token_scope!r}"
