"""Token managers: plain keys, Key Vault secrets, refreshed Entra tokens; secrets stay hidden."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from dataclasses import dataclass

import pytest

from simulator import (
    ConfigError,
    KeyVaultAPITokenManager,
    ManagedIdentityAPITokenManager,
    OpenAIChatCompletionsModel,
    Persona,
    PlainTokenManager,
    ScriptedUser,
    Simulator,
)
from tests.servers.openai_server import FakeOpenAIServer


def test_plain_key_and_env_var(monkeypatch: pytest.MonkeyPatch) -> None:
    assert PlainTokenManager("k1").get_token_sync() == "k1"
    monkeypatch.setenv("MY_KEY", "k2")
    manager = PlainTokenManager(env_var="MY_KEY")
    assert asyncio.run(manager.get_token()) == "k2"
    assert repr(manager) == "PlainTokenManager(env_var='MY_KEY', auth_header=None)"
    assert "k1" not in repr(PlainTokenManager("k1"))


def test_plain_key_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOPE_KEY", raising=False)
    with pytest.raises(ConfigError, match="NOPE_KEY"):
        PlainTokenManager(env_var="NOPE_KEY").get_token_sync()
    with pytest.raises(ConfigError):
        PlainTokenManager()
    with pytest.raises(ConfigError, match="auth_header"):
        PlainTokenManager("k", auth_header="Basic")


@dataclass
class Secret:
    value: str


class VaultClient:
    """Stands in for azure-keyvault-secrets' SecretClient (same get_secret signature)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str | None]] = []

    def get_secret(self, name: str, version: str | None = None) -> Secret:
        self.calls.append((name, version))
        return Secret(f"vault-key-{len(self.calls)}")


def test_key_vault_manager_reads_the_secret_named_by_the_identifier(llm: FakeOpenAIServer) -> None:
    client = VaultClient()
    manager = KeyVaultAPITokenManager(
        secret_identifier="https://myvault.vault.azure.net/secrets/openai-key/abc123",
        auth_header="api-key",
        logger=logging.getLogger("assistant_bot_token_manager"),
        secret_client=client,
    )
    assert (manager.vault_url, manager.secret_name, manager.secret_version) == (
        "https://myvault.vault.azure.net",
        "openai-key",
        "abc123",
    )
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.azure_endpoint, token_manager=manager, api_version="2023-03-15-preview", name="gpt-35-turbo"
    )
    asyncio.run(model.complete([{"role": "user", "content": "hi"}]))
    asyncio.run(model.complete([{"role": "user", "content": "hi"}]))
    assert [r.headers["api-key"] for r in llm.chat_requests] == ["vault-key-1", "vault-key-1"]
    assert client.calls == [("openai-key", "abc123")]
    assert "vault-key" not in repr(manager)


def test_key_vault_identifier_is_validated() -> None:
    with pytest.raises(ConfigError, match="Key Vault secret id"):
        KeyVaultAPITokenManager("https://myvault.vault.azure.net/keys/x", secret_client=VaultClient())


@dataclass
class AccessToken:
    token: str
    expires_on: int


class ShortLivedCredential:
    """An azure-identity style credential whose tokens live `lifetime` seconds."""

    def __init__(self, lifetime: float) -> None:
        self.lifetime = lifetime
        self.issued: list[AccessToken] = []

    def get_token(self, *scopes: str) -> AccessToken:
        assert scopes == ("https://cognitiveservices.azure.com/.default",)
        token = AccessToken(f"entra-{len(self.issued) + 1}", int(time.time() + self.lifetime))
        self.issued.append(token)
        return token


def test_managed_identity_token_is_refreshed_before_it_expires(llm: FakeOpenAIServer) -> None:
    """A long run must not die with 401: the server only accepts unexpired tokens."""
    credential = ShortLivedCredential(lifetime=2)
    manager = ManagedIdentityAPITokenManager(credential=credential, refresh_margin=1.2)

    def valid(headers: dict[str, str]) -> bool:
        sent = headers.get("authorization", "").removeprefix("Bearer ")
        return any(t.token == sent and t.expires_on > time.time() + 0.5 for t in credential.issued)

    llm.require_auth = valid
    model = OpenAIChatCompletionsModel(
        endpoint_url=llm.azure_endpoint, token_manager=manager, api_version="2024-06-01", name="dep"
    )
    simulator = Simulator(systemConnection=model, userConnection=ScriptedUser(["a", "b", "c", "d"]))
    started = time.monotonic()
    results = []
    while time.monotonic() - started < 2.5:
        results.append(simulator.simulate(Persona(name="P", profile="p"), "t", max_conversation_turns=2))
        time.sleep(0.3)
    assert all(not r["meta_data"]["is_error"] for r in results), [r["meta_data"]["error"] for r in results]
    assert len(credential.issued) >= 2
    assert manager.refresh_count == len(credential.issued)
    assert all(r.headers["authorization"].startswith("Bearer entra-") for r in llm.chat_requests)


def test_azure_managers_say_which_extra_to_install_when_they_are_built() -> None:
    """A missing extra fails where the manager is built, not later as an llm_error in every result."""
    code = (
        "import sys; sys.modules['azure.identity'] = None; sys.modules['azure.keyvault.secrets'] = None\n"
        "from simulator import KeyVaultAPITokenManager, ManagedIdentityAPITokenManager\n"
        "for build in (lambda: KeyVaultAPITokenManager('https://v.vault.azure.net/secrets/s'),\n"
        "              lambda: ManagedIdentityAPITokenManager()):\n"
        "    try:\n"
        "        build()\n"
        "    except ImportError as e:\n"
        "        print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    lines = out.strip().splitlines()
    assert len(lines) == 2
    assert all("pip install 'chat-simulator[azure]'" in line for line in lines)
