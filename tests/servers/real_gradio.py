"""Real Gradio apps for tests/test_gradio_real.py, each a `gr.ChatInterface` launched as its users launch
one, on 127.0.0.1 in this process (run as `python -m tests.servers.real_gradio`, with gradio installed).

* `plain`: `shop_assistant`, whose reply counts the turns of the history the app keeps (its endpoint
  is the function's name, `/shop_assistant`); the message "break" raises `gr.Error("no such order")`;
* `streaming`: the same reply from `typing_assistant`, yielded a few characters at a time (its
  endpoint named `/shop_assistant` too, with `api_name`);
* `queue_only`: `shop_assistant` behind `demo.queue(api_open=False)`, whose run route refuses calls.

Prints `ready <name> <url>` for each app, then serves until its standard input closes.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Iterator
from typing import Any

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402 - after the environment it reads


def shop_assistant(message: str, history: list[dict[str, Any]]) -> str:
    if message == "break":
        raise gr.Error("no such order")
    return f"turn {len(history) // 2 + 1}: {message}"


def typing_assistant(message: str, history: list[dict[str, Any]]) -> Iterator[str]:
    reply = shop_assistant(message, history)
    for end in range(4, len(reply) + 4, 4):
        yield reply[:end]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def launch(demo: gr.Blocks) -> str:
    """The app's root URL, on a free port (another may take the one probed first: then try again)."""
    for attempt in range(5):
        port = free_port()
        try:
            demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        except OSError:
            if attempt == 4:
                raise
            continue
        return f"http://127.0.0.1:{port}"
    raise AssertionError("unreachable")


def main() -> None:
    apps = {
        "plain": gr.ChatInterface(shop_assistant),
        "streaming": gr.ChatInterface(typing_assistant, api_name="shop_assistant"),
        "queue_only": gr.ChatInterface(shop_assistant).queue(api_open=False),
    }
    for name, demo in apps.items():
        print("ready", name, launch(demo), flush=True)
    sys.stdin.read()
    for demo in apps.values():
        demo.close()


if __name__ == "__main__":
    main()
