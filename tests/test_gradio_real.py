"""format: gradio against real Gradio apps (tests/servers/real_gradio.py, in a process of their own),
collected only where `gradio` is installed: it is not in the test extra, as a cold install of it
takes over a minute. `pip install gradio` into the venv to run these.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from simulator import TurnError
from simulator.targets.http import HttpTarget
from tests.test_gradio import converse, texts

REPO = Path(__file__).resolve().parent.parent
#: seconds the apps get to start (importing gradio takes a few)
START_SECONDS = 90


def serve() -> Iterator[dict[str, str]]:
    """The apps' root URLs by name, while they run (what they log goes to a file, shown if they fail to start)."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.servers.real_gradio"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        watchdog = threading.Timer(START_SECONDS, process.kill)  # a hung start fails the test, not the suite
        watchdog.start()
        try:
            yield started(process, log)
        finally:
            watchdog.cancel()
            if process.stdin is not None:
                process.stdin.close()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def started(process: subprocess.Popen[str], log: IO[bytes]) -> dict[str, str]:
    """The `ready <name> <url>` lines of the three apps."""
    assert process.stdout is not None
    urls: dict[str, str] = {}
    while len(urls) < 3:
        line = process.stdout.readline()
        if not line:
            log.seek(0)
            said = log.read().decode(errors="replace")[-4000:]
            raise RuntimeError(f"the Gradio apps did not start (exit code {process.wait()}):\n{said}")
        if line.startswith("ready "):
            _, name, url = line.split()
            urls[name] = url
    return urls


def target(url: str, **config: Any) -> HttpTarget:
    return HttpTarget.from_config(
        {"url": url, "format": "gradio", "api": "/shop_assistant", "retry": {"attempts": 0}, **config}
    )


if importlib.util.find_spec("gradio") is not None:

    @pytest.fixture(scope="module")
    def apps() -> Iterator[dict[str, str]]:
        yield from serve()

    @pytest.mark.parametrize("name", ["plain", "streaming", "queue_only"])
    def test_a_real_chat_interface_keeps_each_conversation_in_its_own_session(apps: dict[str, str], name: str) -> None:
        replies = converse(target(apps[name]), {"a": ["a1", "a2", "a3"], "b": ["b1", "b2"]})
        assert texts(replies) == {
            "a": ["turn 1: a1", "turn 2: a2", "turn 3: a3"],
            "b": ["turn 1: b1", "turn 2: b2"],
        }
        route = "run" if name == "plain" else "call"
        assert replies["a"][2].request["url"] == f"{apps[name]}/gradio_api/{route}/shop_assistant"

    def test_a_real_apps_errors_say_what_it_said_and_what_to_set(apps: dict[str, str]) -> None:
        for name in ("plain", "queue_only"):
            with pytest.raises(TurnError) as caught:
                converse(target(apps[name]), {"c": ["break"]})
            assert "no such order" in str(caught.value) and not caught.value.fatal
        with pytest.raises(TurnError) as caught:
            converse(target(apps["plain"], api="/chat"), {"c": ["hi"]})
        assert caught.value.fatal
        assert "no endpoint answers to the name /chat" in str(caught.value)
