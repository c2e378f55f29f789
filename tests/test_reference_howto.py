"""The reference how-to's snippets, placeholders filled in, run against local servers."""

from __future__ import annotations

import asyncio
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator import KeyVaultAPITokenManager, OpenAIChatCompletionsModel, Persona, Simulator, validate_result
from tests.servers.openai_server import FakeOpenAIServer

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Secret:
    value: str


class VaultClient:
    def get_secret(self, name: str, version: str | None = None) -> Secret:
        return Secret("key-from-vault")


def test_reference_howto_end_to_end(
    llm: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    shutil.copy(REPO / "personas" / "jane.yaml", tmp_path / "jane.yaml")
    llm.default = lambda request: "I'd like to return my TrailMaster tent, order 5. ###STOP###"

    # 1. Defining model connections (the vault client stands in for Azure Key Vault)
    token_manager = KeyVaultAPITokenManager(
        secret_identifier="https://myvault.vault.azure.net/secrets/aoai-key",
        auth_header="api-key",
        logger=logging.getLogger("assistant_bot_token_manager"),
        secret_client=VaultClient(),
    )
    gpt_bot_model = OpenAIChatCompletionsModel(
        endpoint_url=llm.azure_endpoint,
        token_manager=token_manager,
        api_version="2023-03-15-preview",
        name="gpt-35-turbo",
        max_tokens=300,
        temperature=0.0,
    )

    def call_app(question, chat_history, meta_data):
        return {"answer": f"Refund started for: {question}"}

    async def simulate_callback(question, conversation_history, meta_data):
        reply = call_app(question, conversation_history, meta_data)
        return reply["answer"]

    # 2. Initialize Persona
    custom_persona = Persona(
        name="Random Person",
        profile="50 years old engineer",
        tone="bored",
        meta_data={"customer_id": 50, "address": "12 Elm St"},
    )
    jane = Persona.load(path="./jane.yaml")
    assert custom_persona.tone == "bored" and jane.name == "Jane"

    # 3. Initialize the simulator class
    simulator = Simulator(systemConnection=gpt_bot_model, userConnection=gpt_bot_model)
    simulator = Simulator(systemConnection=gpt_bot_model, simulate_callback=simulate_callback)

    # 4. Simulate conversations
    task = "Return the TrailMaster X4 tent and get a refund"
    conversation_result = simulator.simulate(persona=jane, task=task, max_conversation_turns=6)
    validate_result(conversation_result)
    assert conversation_result["conversation"][0]["response"] == "I'd like to return my TrailMaster tent, order 5."
    assert conversation_result["meta_data"]["stop_reason"] == "user_done"
    assert all(r.headers["api-key"] == "key-from-vault" for r in llm.chat_requests)
    assert llm.chat_requests[0].deployment == "gpt-35-turbo"

    async def notebook():
        return await simulator.simulate_async(persona=jane, task=task, max_conversation_turns=6)

    conversation_result = asyncio.run(notebook())
    assert conversation_result["meta_data"]["persona"]["name"] == "Jane"

    # 5.1 Save and load template
    print(jane.template)
    print(jane.tone)
    print(jane.profile)
    out = capsys.readouterr().out
    assert "Jane" in out and "happy" in out and "outdoor enthusiast" in out
    jane.export(path="./customPersona_jane.yaml")
    custom_persona = Persona.load(path="./customPersona_jane.yaml")
    assert custom_persona == jane
