"""Shared fixtures: local servers on 127.0.0.1 that the tests start and stop themselves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser

from simulator.text import known_secrets
from tests.browser import chromium_found, launch
from tests.servers.chat_app import FakeChatApp
from tests.servers.github_api import FakeGitHub
from tests.servers.openai_server import FakeOpenAIServer


@pytest.fixture
def llm() -> Iterator[FakeOpenAIServer]:
    """An OpenAI-compatible chat server whose replies the test scripts."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
def app() -> Iterator[FakeChatApp]:
    """A chat app under test (promptflow, openai, http routes) whose replies the test scripts."""
    with FakeChatApp() as server:
        yield server


@pytest.fixture
def gh() -> Iterator[FakeGitHub]:
    """GitHub's REST API and the runner's artifact service, recording what they receive."""
    with FakeGitHub() as server:
        yield server


@pytest.fixture
def llm_app() -> Iterator[FakeOpenAIServer]:
    """A second OpenAI-compatible server, playing the app under test."""
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_ambient_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's real keys from the environment."""
    for name in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "OPENAI_BASE_URL", "AZURE_OPENAI_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(autouse=True)
def _fresh_known_secrets() -> Iterator[None]:
    """Each test starts knowing no credential: one test's secrets must not scrub another's text."""
    known_secrets.clear()
    yield
    known_secrets.clear()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without a Chromium the browser tests say so (skipped, needing it) rather than erroring."""
    if chromium_found():
        return
    needs = pytest.mark.skip(reason="needs Chromium for the report tests: apt-get install chromium")
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(needs)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, one per test module that asks for it."""
    yield from launch()
