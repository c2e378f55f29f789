"""What a command imports is start-up time: each heavy package only where it is used.

`openai` (with pydantic and httpx2) takes about 0.4 s to import, aiohttp 0.1 s, jsonschema 25 ms;
`validate` needs none of them, a scripted run only aiohttp (it sends HTTP requests), and nothing
but an LLM user or judge needs the SDK. `-X importtime` lists every module a process imported.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.servers.chat_app import FakeChatApp


def _imported(*args: str, cwd: Path) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "simulator", *args], capture_output=True, text=True, cwd=cwd
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {line.rsplit("|", 1)[1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")}


def test_validate_and_a_scripted_run_import_only_what_they_use(tmp_path: Path) -> None:
    with FakeChatApp() as app:
        manifest = tmp_path / "simulations.yml"
        manifest.write_text(
            "version: 1\n"
            f"target: {{url: '{app.url}/promptflow', format: promptflow,\n"
            "  promptflow: {input: question, history: chat_history, output: answer}}\n"
            "simulations:\n"
            "  - {name: scripted, persona: jane, task: ask, turns: [hello, thanks], repeat: 2}\n"
        )
        validate = _imported("validate", str(manifest), cwd=tmp_path)
        run = _imported("run", str(manifest), "--out", str(tmp_path / "out"), cwd=tmp_path)
        report = _imported("report", str(tmp_path / "out"), cwd=tmp_path)
    assert {"openai", "httpx2", "aiohttp", "jsonschema"} & validate == set()
    assert {"openai", "httpx2", "jsonschema"} & run == set() and "aiohttp" in run
    assert {"openai", "httpx2", "aiohttp"} & report == set()
