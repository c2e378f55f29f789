"""Endless and huge app answers cost bounded memory: `simulator run` in a subprocess, its peak RSS measured.

An endless chunked answer grew the process to 2.6 GB within a 10 s timeout, and a 300 MB answer
with a Content-Length was buffered whole (980 MB) before the reply was cut to 100,000 characters.
The HTTP connector now reads at most `target.max_reply_bytes` (default 10 MiB) and closes the
connection there. The test app makes these answers lazily, so only the simulator's memory grows.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulator.conversation.loop import MAX_REPLY_CHARS
from simulator.targets.http import DEFAULT_MAX_REPLY_BYTES
from tests.faults.harness import REPO, read_back
from tests.servers.chat_app import AppReply, FakeChatApp

#: what the run may add to its memory, whatever the app sends
GROWTH_LIMIT_MB = 200
PIECE = 64 * 1024

#: runs the CLI and reports the peak RSS before (after the imports) and after the run
WRAPPER = """
import json, resource, sys
import simulator.cli
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
code = simulator.cli.main(sys.argv[1:])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
sys.stderr.write("\\nRSS " + json.dumps({"before": before, "peak": peak, "exit": code}) + "\\n")
"""


@dataclass
class MeasuredRun:
    """One `simulator run` and what it left."""

    growth_mb: float
    exit_code: int
    result: dict[str, Any]
    sent_bytes: int  # what the test app wrote before the simulator hung up


class Counter:
    """Counts the bytes an answer's pieces hold as the app writes them."""

    def __init__(self) -> None:
        self.bytes = 0

    def count(self, pieces: Iterator[bytes]) -> Iterator[bytes]:
        for piece in pieces:
            self.bytes += len(piece)
            yield piece


def measured_run(
    folder: Path, route: str, settings: dict[str, Any], answer: Callable[[Counter], AppReply]
) -> MeasuredRun:
    """Scripted user messages, each answered with `answer(...)`, played by `simulator run`."""
    counter = Counter()
    folder.mkdir(parents=True, exist_ok=True)
    manifest, out = folder / "simulations.yml", folder / "out"
    with FakeChatApp() as app:
        app.default = lambda request: answer(counter)
        target = {"url": app.url + route, "timeout": 10, "retry": {"attempts": 0}, **settings}
        simulation = {"name": "huge", "persona": "jane", "task": "t", "turns": ["Hi", "Still there?", "Bye ###STOP###"]}
        manifest.write_text(json.dumps({"version": 1, "target": target, "simulations": [simulation]}))
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")}
        command = [sys.executable, "-c", WRAPPER, "run", str(manifest), "--out", str(out), "--quiet"]
        proc = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    lines = [line for line in proc.stderr.splitlines() if line.startswith("RSS ")]
    assert lines, f"the run did not finish: {proc.stderr[-2000:]}"
    rss = json.loads(lines[-1][4:])
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss is bytes on macOS, KiB on Linux
    results, _, problems = read_back(out)
    assert not problems and len(results) == 1, problems
    return MeasuredRun((rss["peak"] - rss["before"]) / scale, rss["exit"], results[0], counter.bytes)


def endless(piece: bytes, head: bytes = b"") -> Iterator[bytes]:
    yield head
    while True:
        yield piece


def lazy_json(total: int) -> Iterator[bytes]:
    """A promptflow answer of `total` bytes, made piece by piece."""
    head, tail = b'{"answer": "', b'"}'
    left = total - len(head) - len(tail)
    yield head
    while left > 0:
        yield b"y" * min(left, PIECE)
        left -= PIECE
    yield tail


def assert_cut_json(run: MeasuredRun) -> None:
    meta = run.result["meta_data"]
    message = meta["error"]["message"]
    assert meta["stop_reason"] == "app_error" and run.exit_code == 3, message  # not a timeout: cut at the limit
    assert f"more than {DEFAULT_MAX_REPLY_BYTES:,} bytes" in message and "target.max_reply_bytes if the app" in message
    assert "/promptflow" in message and "cannot be parsed" in message
    assert run.growth_mb < GROWTH_LIMIT_MB, f"the run grew by {run.growth_mb:.0f} MB"
    assert run.sent_bytes < 100 * 1024 * 1024, "the connection was not closed at the limit"


def test_an_endless_chunked_answer_ends_the_turn_at_the_limit(tmp_path: Path) -> None:
    run = measured_run(
        tmp_path,
        "/promptflow",
        {"format": "promptflow"},
        lambda counter: AppReply(chunks=lambda: counter.count(endless(b"x" * PIECE, b'{"answer": "'))),
    )
    assert_cut_json(run)


def test_a_300_mb_answer_with_a_content_length_is_cut(tmp_path: Path) -> None:
    total = 300 * 1024 * 1024
    run = measured_run(
        tmp_path,
        "/promptflow",
        {"format": "promptflow"},
        lambda counter: AppReply(chunks=lambda: counter.count(lazy_json(total)), content_length=total),
    )
    assert_cut_json(run)


def test_an_event_stream_cut_mid_stream_keeps_the_events_so_far(tmp_path: Path) -> None:
    """An OpenAI-style stream that never ends: each reply is the events completed before the limit."""
    event = "data: " + json.dumps({"object": "chat.completion.chunk", "choices": [{"delta": {"content": "ab"}}]})
    events = (event + "\n\n").encode() * 500
    run = measured_run(
        tmp_path,
        "/v1/chat/completions",
        {"format": "openai", "stream": True},
        lambda counter: AppReply(chunks=lambda: counter.count(endless(events)), content_type="text/event-stream"),
    )
    assert run.growth_mb < GROWTH_LIMIT_MB, f"the run grew by {run.growth_mb:.0f} MB"
    assert run.sent_bytes < 100 * 1024 * 1024
    result = run.result
    assert result["meta_data"]["stop_reason"] == "user_done" and run.exit_code == 0  # the conversation went on
    replies = [t for t in result["conversation"] if t["actor"] == "assistant"]
    assert len(replies) == 2
    complete = DEFAULT_MAX_REPLY_BYTES // (len(event) + 2)
    for turn in replies:
        assert turn["response"] == "ab" * (MAX_REPLY_CHARS // 2) and turn["reply_chars"] == 2 * complete
        cut, chars = turn["notes"]
        assert (
            cut.startswith(f"the app sent more than {DEFAULT_MAX_REPLY_BYTES:,} bytes (")
            and "target.max_reply_bytes)" in cut
        )
        assert f"the {complete:,} events completed before are the reply" in cut and "characters" in chars
        assert turn["full_json_response"]["status"] == 200
