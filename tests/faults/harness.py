"""The fault suite's case table and measurements, shared by tests/faults and bench/faults_report.py.

Every fault case plays one manifest of several simulations through the real runner
(`load_manifest`, `plan_jobs`, `run_jobs`) against local fake servers on 127.0.0.1. Exactly one
simulation, `victim`, meets the fault: only its messages (app side) or its task (user side) carry
`MARK`, and the fake servers answer those with the fault. A case *survives* when `problems()` finds
nothing wrong:

- the run finished: no crash, nothing left unplayed, no fatal stop, every line of
  `conversations.jsonl` a valid conversation_result, `summary.json` written;
- every other conversation is intact: the same turns as in a fault-free run of the same manifest,
  and a pass;
- the victim records why it ended (`meta_data.stop_reason`, `meta_data.error`, the failed turn kept
  with its error) and `summary.json` counts it as an error, not a failure; or, for a transient
  fault (only the first try fails), the retry happened and the conversation passed like the
  fault-free one.

A reply of several MB is not an error: the simulator keeps the first `MAX_REPLY_CHARS` characters
with a note on the turn (see `simulator.conversation.loop.MAX_REPLY_CHARS`), the conversation goes on, and
results and reports stay small. An answer that never ends is read to `target.max_reply_bytes` and
cut there: a JSON answer cut mid-way is an app error (tests/faults/test_reply_bounds.py measures
the memory such answers cost).

The signal loop (`signal_run`) interrupts `python -m simulator run` with SIGTERM or SIGINT at a time
drawn from a seeded RNG and checks what the folder kept.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simulator import validate_result
from simulator.conversation.loop import MAX_REPLY_CHARS
from simulator.manifest import load_manifest
from simulator.run.plan import plan_jobs
from simulator.run.runner import RunOutcome, run_jobs
from simulator.targets.http import DEFAULT_MAX_REPLY_BYTES
from tests.servers.chat_app import AppReply, FakeChatApp, RecordedRequest, echo_reply
from tests.servers.openai_server import FakeOpenAIServer, Reply
from tests.servers.openai_server import RecordedRequest as LLMRequest

REPO = Path(__file__).resolve().parents[2]
MARK = "FAULT-7"
VICTIM = "victim"
#: small, so the whole suite stays fast (retries after 10 ms), yet many times what a local answer takes
TARGET_RETRY = {"attempts": 2, "backoff": 0.01, "max_backoff": 0.2}
#: the timeouts of the cases whose fault is a timeout; every other case gets `ROOMY_TIMEOUT`, so that a
#: loaded machine (a 5 MB reply read under `-n auto`) never turns a slow answer into a retry the case
#: did not ask for, and the victim's request count stays the fault's own
TARGET_TIMEOUT = 0.3
USER_TIMEOUT = 0.5
ROOMY_TIMEOUT = 10.0
USER_MAX_RETRIES = 1
SLOW = 0.8  # a fault delay longer than the timeouts above
RETRY_AFTER = 0.1  # seconds a 429 asks to wait; the retry must honour it
#: seconds a 429 that never lifts is waited out (sent again, costing no retry) before the turn fails
RATE_LIMIT_WAIT = 0.6
FAST_RETRY = {"retry-after-ms": "10"}  # a 5xx from the LLM asking the SDK to retry after 10 ms
HUGE_CHARS = 5 * 1024 * 1024
CONCURRENCY = 2
#: what conversations.jsonl may hold in any case: a multi-MB reply is cut, an error keeps a snippet
RESULTS_BYTES = 8 * MAX_REPLY_CHARS
EXPECT = {"contains": "You said", "not_contains": ["Traceback"]}

# --- the case table -------------------------------------------------------------------------------


def endless_json() -> Iterator[bytes]:
    """A JSON answer that never ends, made as it is sent: read past the byte limit, it cannot be parsed."""
    yield b'{"answer": "'
    piece = b"x" * 65536
    while True:
        yield piece


@dataclass(frozen=True)
class AppFault:
    """A fault of the app under test, answered to the victim's marked message."""

    name: str
    reply: Callable[[], AppReply]
    #: how a persistent fault ends the victim; None: not an error (the reply is handled)
    stop_reason: str | None
    #: the HTTP connector retries it, so a fault that happens once must end in a pass
    retried: bool
    #: what `meta_data.error.message` must say (case-insensitive)
    why: str = ""
    #: a rate limit: waited out with the app's limiter until `rate_limit_wait`, costing no retry
    limited: bool = False


@dataclass(frozen=True)
class LLMFault:
    """A fault of the LLM that plays the user, answered when the victim's user writes its second message."""

    name: str
    reply: Callable[[], Reply]
    stop_reason: str
    #: "sdk": the model retries it `max_retries` times; "limiter": a 429 waited out until `rate_limit_wait`,
    #: costing no retry; "ask-again": LLMUser asks again with a note; None: not retried
    retry: str | None
    #: what `meta_data.error.message` must say (case-insensitive)
    why: str = ""


APP_FAULTS: tuple[AppFault, ...] = (
    AppFault(
        "http-500",
        lambda: AppReply.error(500, "internal error"),
        "app_error",
        True,
        "failed after 2 retries (HTTP 500)",
    ),
    AppFault("http-502", lambda: AppReply.error(502, "bad gateway"), "app_error", True, "(HTTP 502)"),
    AppFault("http-503", lambda: AppReply.error(503, "service unavailable"), "app_error", True, "(HTTP 503)"),
    AppFault(
        "429-retry-after",
        lambda: AppReply.rate_limited(RETRY_AFTER),
        "app_error",
        True,
        "kept rate-limiting after",
        limited=True,
    ),
    AppFault(
        "429-no-retry-after",
        lambda: AppReply.rate_limited(None),
        "app_error",
        True,
        f"and target.rate_limit_wait allows {RATE_LIMIT_WAIT:g} s",
        limited=True,
    ),
    AppFault(
        "timeout",
        lambda: AppReply(text="too late", delay=SLOW),
        "timeout",
        True,
        f"no complete answer within {TARGET_TIMEOUT:g} s",
    ),
    AppFault("connection-reset", lambda: AppReply(close_connection=True), "app_error", True, "closed or reset"),
    AppFault(
        "truncated-body",
        lambda: AppReply(text="a reply cut off in the middle", truncate=True),
        "app_error",
        True,
        "failed before a complete answer",
    ),
    AppFault(
        "429-request-too-large",
        lambda: AppReply.error(429, "Request too large: Limit 30000, Requested 36278.", {"Retry-After": "1"}),
        "app_error",
        False,
        "refused a request larger than its whole rate limit (36,278 asked, 30,000 allowed)",
    ),
    AppFault("not-json", AppReply.not_json, "app_error", False, "a body that is not JSON"),
    AppFault(
        "wrong-shape", lambda: AppReply(body={"unexpected": "shape"}), "app_error", False, "without the reply text"
    ),
    AppFault("empty-reply", AppReply.empty, "app_error", False, "empty reply"),
    AppFault("multi-mb-reply", lambda: AppReply(text="You said: " + "x" * (HUGE_CHARS - 10)), None, False),
    AppFault(
        "multi-mb-error-body", lambda: AppReply(status=500, body="E" * HUGE_CHARS), "app_error", True, "(HTTP 500)"
    ),
    AppFault(
        "endless-body",
        lambda: AppReply(chunks=endless_json),
        "app_error",
        False,
        f"sent more than {DEFAULT_MAX_REPLY_BYTES:,} bytes",
    ),
)

#: format name -> (FakeChatApp route, target settings)
APP_FORMATS: dict[str, tuple[str, dict[str, Any]]] = {
    "promptflow": ("/promptflow", {"format": "promptflow"}),
    "openai": ("/v1/chat/completions", {"format": "openai"}),
    "openai-stream": ("/v1/chat/completions", {"format": "openai", "stream": True}),
    "http": (
        "/chat",
        {
            "format": "http",
            "request": {"body": {"message": "{{question}}", "conversation_id": "{{conversation_id}}"}},
            "response": "data.reply.text",
        },
    ),
}

LLM_FAULTS: tuple[LLMFault, ...] = (
    LLMFault(
        "429-retry-after",
        lambda: Reply.rate_limited(0.01),
        "llm_error",
        "limiter",
        "kept rate-limiting: still refused after",
    ),
    LLMFault(
        "429-no-retry-after",
        lambda: Reply.rate_limited(None),
        "llm_error",
        "limiter",
        f"and user.rate_limit_wait allows {RATE_LIMIT_WAIT:g} s; lower --concurrency, raise user.rate_limit_wait",
    ),
    LLMFault(
        "http-500",
        lambda: Reply.error(500, "server error", type="server_error", headers=FAST_RETRY),
        "llm_error",
        "sdk",
        "failed after 1 retries (HTTP 500)",
    ),
    LLMFault(
        "http-503",
        lambda: Reply.error(503, "overloaded", type="server_error", headers=FAST_RETRY),
        "llm_error",
        "sdk",
        "(HTTP 503)",
    ),
    LLMFault(
        "timeout",
        lambda: Reply(content="too late", delay=SLOW),
        "timeout",
        "sdk",
        f"no answer within {USER_TIMEOUT:g} s",
    ),
    LLMFault("connection-reset", lambda: Reply(close_connection=True), "llm_error", "sdk", "lost the connection"),
    LLMFault("content-filter-prompt", Reply.content_filter_prompt, "content_filter", None, "prompt was blocked"),
    LLMFault("content-filter-completion", Reply.content_filter_completion, "content_filter", None, "withheld"),
    LLMFault(
        "not-json",
        lambda: Reply(body="<html>busy</html>", headers={"Content-Type": "text/html"}),
        "llm_error",
        None,
        "not JSON",
    ),
    LLMFault(
        "no-choices",
        lambda: Reply(body={"id": "c-1", "object": "chat.completion", "choices": []}),
        "llm_error",
        None,
        "no choices",
    ),
    LLMFault(
        "context-full",
        lambda: Reply.error(
            400,
            "request (4476 tokens) exceeds the available context size (4096 tokens)",
            type="exceed_context_size_error",
        ),
        "llm_error",
        None,
        "cannot take a conversation this long (4,476 tokens; its context holds 4,096)",
    ),
    LLMFault(
        "429-request-too-large",
        lambda: Reply.error(
            429,
            "Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 36278.",
            code="rate_limit_exceeded",
            type="tokens",
            headers={"Retry-After": "1"},
        ),
        "llm_error",
        None,
        "refused a request larger than its whole rate limit (36,278 asked, 30,000 allowed)",
    ),
    LLMFault("empty-message", lambda: Reply(content=""), "llm_error", "ask-again", "the reply was empty"),
    LLMFault("whitespace-message", lambda: Reply(content="  \n\t  "), "llm_error", "ask-again", "the reply was empty"),
    LLMFault("null-content", lambda: Reply(content=None), "llm_error", "ask-again", "the reply was empty"),
    LLMFault(
        "speaks-as-assistant",
        lambda: Reply(content="Assistant: Of course! How can I help you with your order today?"),
        "llm_error",
        "ask-again",
        "spoke as the assistant",
    ),
)


@dataclass(frozen=True)
class Case:
    """One row of the suite: a fault, where it hits, and whether it happens once or every time."""

    side: str  # "app" or "user"
    fault: AppFault | LLMFault
    fmt: str = "promptflow"
    transient: bool = False

    @property
    def id(self) -> str:
        where = f"app-{self.fmt}" if self.side == "app" else "user-llm"
        return f"{where}-{self.fault.name}" + ("-transient" if self.transient else "")


def app_cases() -> list[Case]:
    """Every app fault in every format, plus a happens-once variant of each retried fault."""
    cases = [Case("app", fault, fmt) for fmt in APP_FORMATS for fault in APP_FAULTS]
    cases += [Case("app", fault, fmt, True) for fmt in APP_FORMATS for fault in APP_FAULTS if fault.retried]
    return cases


def llm_cases() -> list[Case]:
    """Every user-LLM fault, plus a happens-once variant of each retried one."""
    return [Case("user", f) for f in LLM_FAULTS] + [Case("user", f, transient=True) for f in LLM_FAULTS if f.retry]


def all_cases() -> list[Case]:
    return app_cases() + llm_cases()


# --- manifests ----------------------------------------------------------------------------------

#: (name, persona, scripted turns, repeat); the victim's second message carries the mark
SCRIPTED = (
    ("steady-a", "jane", ["Hello there", "Where is order 42?", "Thanks ###STOP###"], 1),
    (
        VICTIM,
        "walter",
        ["Hi, I need help", f"{MARK}: what can you tell me?", "Anything else?", "Thank you ###STOP###"],
        1,
    ),
    ("steady-b", "priya", ["What is the return policy?", "And for tents?", "Great ###STOP###"], 2),
    ("steady-c", "sofia", ["Hola, one question", "Is shipping free?", "Ok ###STOP###"], 1),
)
#: (name, persona, task, repeat) played by the user LLM; only the victim's task carries the mark
LLM_PLAYED = (
    ("steady-a", "jane", "Find out where order 42 is", 1),
    (VICTIM, "walter", f"{MARK}: return the TrailMaster tent", 1),
    ("steady-b", "priya", "Ask about the return policy for tents", 2),
    ("steady-c", "sofia", "Ask whether shipping is free", 1),
)
USER_LINES = ("Hello, I need some help.", "Could you check that for me?", "Thanks, that is all. ###STOP###")


def app_manifest(app_url: str, fmt: str, timeout: float = ROOMY_TIMEOUT) -> dict[str, Any]:
    route, settings = APP_FORMATS[fmt]
    target = {
        "url": app_url + route,
        "timeout": timeout,
        "retry": TARGET_RETRY,
        "rate_limit_wait": RATE_LIMIT_WAIT,
        **settings,
    }
    return {
        "version": 1,
        "target": target,
        "defaults": {"max_turns": 8, "expect": EXPECT},
        "simulations": [
            {"name": name, "persona": persona, "task": "Get an answer", "turns": turns, "repeat": repeat}
            for name, persona, turns, repeat in SCRIPTED
        ],
    }


def llm_manifest(app_url: str, llm_url: str, timeout: float = ROOMY_TIMEOUT) -> dict[str, Any]:
    return {
        "version": 1,
        "target": {"url": app_url + "/promptflow", "format": "promptflow", "timeout": 5, "retry": TARGET_RETRY},
        "user": {
            "model": "sim-user",
            "endpoint": llm_url,
            "timeout": timeout,
            "max_retries": USER_MAX_RETRIES,
            "rate_limit_wait": RATE_LIMIT_WAIT,
        },
        "defaults": {"max_turns": 8, "expect": EXPECT},
        "simulations": [
            {"name": name, "persona": persona, "task": task, "repeat": repeat}
            for name, persona, task, repeat in LLM_PLAYED
        ],
    }


# --- fault routing in the fake servers ----------------------------------------------------------


class Once:
    """Counts down: True for the first `times` calls (None: always)."""

    def __init__(self, times: int | None) -> None:
        self.left = times

    def __call__(self) -> bool:
        if self.left is None:
            return True
        if self.left <= 0:
            return False
        self.left -= 1
        return True


def is_marked(request: RecordedRequest) -> bool:
    return MARK in (request.user_text or "")


def app_router(fault: AppFault | None, times: int | None) -> Callable[[RecordedRequest], AppReply]:
    """The app's replies: the fault for the victim's marked message, an echo for everything else."""
    hit = Once(times)

    def reply(request: RecordedRequest) -> AppReply:
        if fault is not None and is_marked(request) and hit():
            return fault.reply()
        return echo_reply(request)

    return reply


def own_messages(request: LLMRequest) -> int:
    """How many messages the simulated user wrote so far (they are `assistant` in its prompt)."""
    return sum(1 for m in request.messages if m.get("role") == "assistant")


def is_victim_fault_turn(request: LLMRequest) -> bool:
    system = request.messages[0].get("content", "") if request.messages else ""
    return MARK in str(system) and own_messages(request) == 1


def llm_router(fault: LLMFault | None, times: int | None, seen: list[float]) -> Callable[[LLMRequest], Reply]:
    """The user model's replies: a fixed script, and the fault for the victim's second message.

    `seen` gets the arrival time of every request for that message (the fake records none).
    """
    hit = Once(times)

    def reply(request: LLMRequest) -> Reply:
        if is_victim_fault_turn(request):
            seen.append(time.monotonic())
            if fault is not None and hit():
                return fault.reply()
        return Reply(content=USER_LINES[min(own_messages(request), len(USER_LINES) - 1)])

    return reply


# --- playing a case -----------------------------------------------------------------------------


@dataclass
class CaseRun:
    """What one case produced, read back from disk."""

    case: Case
    outcome: RunOutcome | None = None
    crash: str | None = None
    results: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] | None = None
    file_problems: list[str] = field(default_factory=list)
    baseline: dict[tuple[str, int], list[tuple[str, str]]] = field(default_factory=dict)
    #: received_at of every request for the victim's faulty turn
    fault_requests: list[float] = field(default_factory=list)
    wall_s: float = 0.0


def play(manifest: dict[str, Any], folder: Path) -> tuple[RunOutcome | None, str | None]:
    """Write the manifest (JSON is YAML) and run it through the real runner into `folder/out`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "simulations.yml"
    path.write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    loaded = load_manifest(path, environ={})
    try:
        return asyncio.run(run_jobs(loaded, plan_jobs(loaded), folder / "out", concurrency=CONCURRENCY)), None
    except Exception as exc:  # the run must never crash; report it as a problem instead
        return None, f"{type(exc).__name__}: {exc}"


def read_back(out: Path) -> tuple[list[dict[str, Any]], dict[str, Any] | None, list[str]]:
    """The results and summary as written, with every unreadable or invalid line as a problem."""
    problems: list[str] = []
    results: list[dict[str, Any]] = []
    lines_file = out / "conversations.jsonl"
    text = lines_file.read_text(encoding="utf-8") if lines_file.is_file() else ""
    if not lines_file.is_file():
        problems.append("conversations.jsonl was not written")
    elif text and not text.endswith("\n"):
        problems.append("conversations.jsonl ends with a partial line")
    for number, line in enumerate(text.splitlines(), 1):
        try:
            result = json.loads(line)
            validate_result(result)
        except Exception as exc:  # noqa: BLE001 - any damage is a problem to report
            problems.append(f"conversations.jsonl:{number}: {type(exc).__name__}: {str(exc)[:200]}")
            continue
        results.append(result)
    summary_file = out / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else None
    if summary is None:
        problems.append("summary.json was not written")
    return results, summary, problems


def transcript(result: dict[str, Any]) -> list[tuple[str, str]]:
    return [(t["actor"], t["response"]) for t in result["conversation"]]


def key(result: dict[str, Any]) -> tuple[str, int]:
    meta = result["meta_data"]
    return meta["simulation"], meta["repeat"]


_BASELINES: dict[str, dict[tuple[str, int], list[tuple[str, str]]]] = {}


def baseline(side: str, fmt: str) -> dict[tuple[str, int], list[tuple[str, str]]]:
    """The turns of a fault-free run of the same manifest (played once per format and cached)."""
    name = f"app-{fmt}" if side == "app" else "user-llm"
    if name not in _BASELINES:
        fault = APP_FAULTS[0] if side == "app" else LLM_FAULTS[0]
        with tempfile.TemporaryDirectory() as tmp:
            run = _play_case(Case(side, fault, fmt), Path(tmp), inject=False)
        bad = [r for r in run.results if (r.get("evaluation") or {}).get("status") != "pass"]
        if run.crash or run.file_problems or bad or len(run.results) != 5:
            raise AssertionError(f"the fault-free {name} run is not clean: {run.crash} {run.file_problems} {bad[:1]}")
        _BASELINES[name] = {key(r): transcript(r) for r in run.results}
    return _BASELINES[name]


def times_out(case: Case) -> bool:
    """Whether `case`'s fault is a timeout, the only fault the tight timeouts are for."""
    return case.fault.stop_reason == "timeout"


def run_case(case: Case, folder: Path) -> CaseRun:
    """Play `case` into `folder` and collect what it left; `problems()` gives the verdict."""
    run = _play_case(case, folder, inject=True)
    run.baseline = baseline(case.side, case.fmt)
    return run


def _play_case(case: Case, folder: Path, inject: bool) -> CaseRun:
    times = 1 if case.transient else None
    run = CaseRun(case)
    started = time.monotonic()
    with FakeChatApp() as app:
        if case.side == "app":
            fault = case.fault if inject else None
            app.default = app_router(fault, times)  # type: ignore[arg-type]
            app.sse_piece_delay = 0
            timeout = TARGET_TIMEOUT if times_out(case) else ROOMY_TIMEOUT
            run.outcome, run.crash = play(app_manifest(app.url, case.fmt, timeout), folder)
            run.fault_requests = [r.received_at for r in list(app.requests) if is_marked(r)]
        else:
            seen: list[float] = []
            with FakeOpenAIServer() as llm:
                llm.default = llm_router(case.fault if inject else None, times, seen)  # type: ignore[arg-type]
                timeout = USER_TIMEOUT if times_out(case) else ROOMY_TIMEOUT
                run.outcome, run.crash = play(llm_manifest(app.url, llm.openai_base_url, timeout), folder)
            run.fault_requests = seen
    run.wall_s = time.monotonic() - started
    run.results, run.summary, run.file_problems = read_back(folder / "out")
    return run


# --- the verdict ----------------------------------------------------------------------------------


def expected_requests(case: Case) -> int:
    """How many requests the victim's faulty turn must have made: the retries are part of the contract.
    A rate limit that never lifts is sent again until `RATE_LIMIT_WAIT`: at least twice (`limited`)."""
    if case.transient:
        return 2
    fault = case.fault
    if isinstance(fault, AppFault):
        return TARGET_RETRY["attempts"] + 1 if fault.retried and not fault.limited else 1
    return {"sdk": USER_MAX_RETRIES + 1, "ask-again": 3}.get(fault.retry or "", 1)


def limited(case: Case) -> bool:
    """A rate limit that never lifts: sent again, costing no retry, until `rate_limit_wait` has passed."""
    fault = case.fault
    return not case.transient and (getattr(fault, "limited", False) or getattr(fault, "retry", None) == "limiter")


def problems(run: CaseRun) -> list[str]:
    """Everything that keeps `run` from having survived its fault; empty when it did."""
    if run.crash or run.outcome is None:
        return [f"the run crashed: {run.crash}"]
    found = list(run.file_problems)
    outcome = run.outcome
    if outcome.interrupted or outcome.fatal_error or outcome.not_run:
        found.append(
            f"the run did not finish: interrupted={outcome.interrupted} fatal={outcome.fatal_error!r} "
            f"not_run={outcome.not_run}"
        )
    if run.summary is None:
        return found
    if run.summary["totals"]["conversations"] != len(run.results):
        found.append("summary.json does not count the conversations in conversations.jsonl")
    size = (outcome.out_dir / "conversations.jsonl").stat().st_size
    if size > RESULTS_BYTES:
        found.append(f"conversations.jsonl holds {size:,} bytes, more than {RESULTS_BYTES:,}")
    got = {key(r): r for r in run.results}
    if set(got) != set(run.baseline):
        found.append(f"conversations {sorted(got)} instead of {sorted(run.baseline)}")
    for k, result in sorted(got.items()):
        if k[0] == VICTIM:
            continue
        if transcript(result) != run.baseline.get(k):
            found.append(f"{k[0]}#{k[1]} is not intact: {transcript(result)} != {run.baseline.get(k)}")
        if (result.get("evaluation") or {}).get("status") != "pass":
            found.append(f"{k[0]}#{k[1]} did not pass: {result.get('evaluation')}")
    victim = got.get((VICTIM, 1))
    if victim is None:
        return [*found, "the victim's conversation is missing"]
    if limited(run.case):
        if len(run.fault_requests) < 2:
            found.append(f"the rate-limited turn was tried {len(run.fault_requests)} times, not again")
    elif len(run.fault_requests) != expected_requests(run.case):
        found.append(f"the faulty turn was tried {len(run.fault_requests)} times, not {expected_requests(run.case)}")
    if run.case.transient:
        found += _retried_to_a_pass(run, victim)
    elif run.case.fault.stop_reason is None:
        found += _reply_cut(run, victim)
    else:
        found += _recorded_as_error(run, victim)
    return found


def _gate(run: CaseRun, passes: int, errors: int) -> list[str]:
    gate = run.summary["gate"] if run.summary else {}
    counts = (gate.get("passes"), gate.get("failures"), gate.get("errors"))
    if counts != (passes, 0, errors):
        return [f"gate counts passes/failures/errors {counts}, expected {(passes, 0, errors)}"]
    return []


def _recorded_as_error(run: CaseRun, victim: dict[str, Any]) -> list[str]:
    found = []
    fault = run.case.fault
    meta = victim["meta_data"]
    actor = "assistant" if run.case.side == "app" else "user"
    error = meta.get("error") or {}
    if meta["stop_reason"] != fault.stop_reason or not meta.get("is_error"):
        found.append(f"victim ended with {meta['stop_reason']}, expected {fault.stop_reason}")
    if error.get("reason") != fault.stop_reason or error.get("actor") != actor or not error.get("message"):
        found.append(f"meta_data.error does not say why: {error}")
    elif fault.why.lower() not in error["message"].lower():
        found.append(f"meta_data.error.message does not say {fault.why!r}: {error['message']}")
    last = victim["conversation"][-1] if victim["conversation"] else {}
    if last.get("actor") != actor or not last.get("error") or last.get("response") != "":
        found.append(f"the failed turn is not kept with its error: {last}")
    before = transcript(victim)[:-1]
    if before != run.baseline[(VICTIM, 1)][: len(before)] or not before:
        found.append(f"the victim's turns before the fault differ from the fault-free run: {before}")
    status = (victim.get("evaluation") or {}).get("status")
    if status != "error":
        found.append(f"the victim's evaluation is {status!r}, not 'error'")
    sim = run.summary["simulations"].get(VICTIM, {}) if run.summary else {}
    if sim.get("errors") != 1 or sim.get("verdict", {}).get("failures") != 0:
        found.append(f"summary.json does not count the victim as one error: {sim.get('verdict')}")
    found += _gate(run, passes=len(run.baseline) - 1, errors=1)
    if isinstance(fault, AppFault) and fault.name == "429-retry-after":
        gaps = [b - a for a, b in zip(run.fault_requests, run.fault_requests[1:], strict=False)]
        if not gaps or min(gaps) < RETRY_AFTER * 0.9:
            found.append(f"Retry-After {RETRY_AFTER}s was not honoured: retries came after {gaps}")
    return found


def _retried_to_a_pass(run: CaseRun, victim: dict[str, Any]) -> list[str]:
    found = []
    if transcript(victim) != run.baseline[(VICTIM, 1)]:
        found.append(f"the retried victim differs from the fault-free run: {transcript(victim)}")
    status = (victim.get("evaluation") or {}).get("status")
    if status != "pass":
        found.append(f"the retried victim's evaluation is {status!r}, not 'pass'")
    turn = fault_turn(victim, run.case.side)
    fault = run.case.fault
    if isinstance(fault, AppFault):
        retries = ((turn or {}).get("full_json_response") or {}).get("retries")
        if not isinstance(retries, int) or retries < 1:  # a busy machine may need a second retry
            found.append(f"the app turn after the fault does not record its retry: retries={retries}")
    elif fault.retry == "ask-again":
        notes = (turn or {}).get("notes") or []
        if not notes:
            found.append("the user turn asked again does not note why")
    found += _gate(run, passes=len(run.baseline), errors=0)
    return found


def fault_turn(victim: dict[str, Any], side: str) -> dict[str, Any] | None:
    """The turn that met the fault: the app's answer to the marked message, or the user's second message."""
    turns = victim["conversation"]
    if side == "app":
        return next(
            (b for a, b in zip(turns, turns[1:], strict=False) if a["actor"] == "user" and MARK in a["response"]), None
        )
    users = [t for t in turns if t["actor"] == "user"]
    return users[1] if len(users) > 1 else None


def _reply_cut(run: CaseRun, victim: dict[str, Any]) -> list[str]:
    from simulator.report import COMMENT_LIMIT, SUMMARY_LIMIT, render_html, render_markdown

    found = []
    meta = victim["meta_data"]
    expected_stop = "user_done"
    if meta["stop_reason"] != expected_stop or (victim.get("evaluation") or {}).get("status") != "pass":
        found.append(f"the victim did not go on after the huge reply: {meta['stop_reason']} {victim.get('evaluation')}")
    turn = fault_turn(victim, "app") or {}
    if len(turn.get("response", "")) != MAX_REPLY_CHARS:
        found.append(f"the huge reply was kept with {len(turn.get('response', ''))} characters, not {MAX_REPLY_CHARS}")
    if turn.get("reply_chars") != HUGE_CHARS or not any("cut" in n for n in turn.get("notes") or []):
        found.append(f"the cut reply has no note saying so: {turn.get('notes')} {turn.get('reply_chars')}")
    shown = {**victim, "evaluation": {"status": "error", "checks": [], "failed": [], "errors": ["shown"]}}
    for limit in (COMMENT_LIMIT, SUMMARY_LIMIT):
        text = render_markdown(run.summary, [shown], limit=limit)
        if len(text) > limit:
            found.append(f"the Markdown report is {len(text):,} characters, over its limit {limit:,}")
    page = render_html(run.summary, run.results)  # report.html shows every turn in full
    if len(page) > RESULTS_BYTES:
        found.append(f"report.html is {len(page):,} characters for a cut reply")
    return found


# --- signals ------------------------------------------------------------------------------------

SIGNAL_SIMULATIONS = 3
SIGNAL_REPEAT = 10
SIGNAL_APP_DELAY = 0.05
SIGNAL_WINDOW = (0.0, 0.8)  # seconds after the run started writing; the run lasts well over a second


@dataclass
class SignalRun:
    """One interrupted CLI run and what its folder kept."""

    signal: signal.Signals
    after_s: float
    returncode: int | None = None
    lines: int = 0
    finished: int = 0
    problems: list[str] = field(default_factory=list)


def signal_manifest(app_url: str) -> dict[str, Any]:
    route, settings = APP_FORMATS["http"]
    return {
        "version": 1,
        "target": {"url": app_url + route, "timeout": 5, "retry": TARGET_RETRY, **settings},
        "defaults": {"max_turns": 6, "expect": EXPECT},
        "simulations": [
            {
                "name": f"sim-{i}",
                "persona": "jane",
                "task": "t",
                "turns": ["one", "two", "three"],
                "repeat": SIGNAL_REPEAT,
            }
            for i in range(SIGNAL_SIMULATIONS)
        ],
    }


def signal_run(
    folder: Path, sig: signal.Signals, after_s: float, app_delay: float = SIGNAL_APP_DELAY, after_lines: int = 0
) -> SignalRun:
    """Start `python -m simulator run`, send `sig` `after_s` seconds after it opened its results (and,
    with `after_lines`, after it wrote that many conversations), check the folder.

    `app_delay` is how long the app takes per reply: a long one makes sure that nothing can have
    finished when the signal comes, however slow the machine is at that moment."""
    run = SignalRun(sig, after_s)
    folder.mkdir(parents=True, exist_ok=True)
    manifest, out = folder / "simulations.yml", folder / "out"
    with FakeChatApp() as app:
        app.default = lambda request: AppReply(text=f"You said: {request.user_text}", delay=app_delay)
        manifest.write_text(json.dumps(signal_manifest(app.url)), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")}
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "simulator",
                "run",
                str(manifest),
                "--out",
                str(out),
                "--concurrency",
                "4",
                "--quiet",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 20
        results_file = out / "conversations.jsonl"
        while not results_file.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        while after_lines and proc.poll() is None and time.monotonic() < deadline:
            if results_file.read_bytes().count(b"\n") >= after_lines:
                break
            time.sleep(0.005)
        time.sleep(after_s)
        if proc.poll() is not None:
            run.problems.append(f"the run ended before the signal (exit {proc.returncode})")
        proc.send_signal(sig)
        try:
            _, stderr = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, stderr = proc.communicate()
            run.problems.append("the run did not stop within 20 s of the signal")
        seen = set(app.transcripts)
    run.returncode = proc.returncode
    expected = 143 if sig == signal.SIGTERM else 130
    if proc.returncode != expected:
        run.problems.append(f"exit code {proc.returncode}, expected {expected}: {stderr[-500:]}")
    if "Traceback" in stderr:
        run.problems.append(f"a traceback was printed: {stderr[-800:]}")
    results, summary, file_problems = read_back(out)
    run.problems += file_problems
    run.lines = len(results) + sum(1 for p in file_problems if p.startswith("conversations.jsonl:"))
    run.finished = sum(1 for r in results if r["meta_data"]["stop_reason"] != "cancelled")
    if summary is not None:
        if summary["run"].get("interrupted") is not True:
            run.problems.append(f"summary.json says interrupted={summary['run'].get('interrupted')}")
        if summary["totals"]["conversations"] != run.lines:
            run.problems.append(f"summary.json counts {summary['totals']['conversations']}, the file has {run.lines}")
        planned = SIGNAL_SIMULATIONS * SIGNAL_REPEAT
        if len(summary["run"].get("not_run", [])) != planned - run.lines:
            run.problems.append(
                f"not_run lists {len(summary['run'].get('not_run', []))}, expected {planned - run.lines}"
            )
    kept = {r["conversation_id"] for r in results}
    lost = seen - kept
    if lost:
        run.problems.append(f"{len(lost)} conversation(s) the app talked to are not in conversations.jsonl")
    for result in results:
        if result["meta_data"]["stop_reason"] != "cancelled" and len(result["conversation"]) != 6:
            run.problems.append(f"a finished conversation has {len(result['conversation'])} turns, not 6")
    return run


def signal_plan(count: int, seed: int = 20240611) -> list[tuple[signal.Signals, float]]:
    """`count` (signal, delay) pairs from a seeded RNG: SIGTERM and SIGINT alternate, delays are random."""
    rng = random.Random(seed)
    return [((signal.SIGTERM, signal.SIGINT)[i % 2], round(rng.uniform(*SIGNAL_WINDOW), 3)) for i in range(count)]


# --- kill -9 at random points, then readers and --resume -------------------------------------------

KILL_APP = (
    "import time\n"
    "def respond(question, history, meta):\n"
    "    time.sleep(0.03)\n"
    "    return {'answer': 'You said: ' + question + ' ' + 'x' * 400_000}\n"  # big lines: tearing one is likely
)
KILL_REPEAT = 24


@dataclass
class KillRun:
    """One `simulator run` killed with SIGKILL, what it left, and whether every reader and --resume coped."""

    after_s: float
    lines: int = 0
    torn: bool = False
    problems: list[str] = field(default_factory=list)


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY")}
    return subprocess.run(
        [sys.executable, "-m", "simulator", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def kill9_run(folder: Path, after_s: float) -> KillRun:
    """Kill a run `after_s` seconds after its first line; then `report`, `check`, `merge` and `--resume` must
    work on what it left: the torn line dropped with a warning, the missing ones counted, nothing read
    as a pass, and --resume completing exactly the planned conversations."""
    run = KillRun(after_s)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "app.py").write_text(KILL_APP)
    manifest, out = folder / "simulations.yml", folder / "out"
    manifest.write_text(
        "version: 1\ntarget: {callback: 'app.py:respond'}\nsimulations:\n"
        f"  - {{name: big, persona: jane, task: t, turns: [one], repeat: {KILL_REPEAT}}}\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator", "run", str(manifest), "--out", str(out), "--quiet", "--concurrency", "2"],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    results = out / "conversations.jsonl"
    deadline = time.monotonic() + 60
    while not (results.is_file() and b"\n" in results.read_bytes()) and time.monotonic() < deadline:
        if proc.poll() is not None:
            run.problems.append(f"the run ended (exit {proc.returncode}) before it could be killed")
            return run
        time.sleep(0.005)
    time.sleep(after_s)
    proc.kill()
    proc.wait(timeout=30)
    data = results.read_bytes()
    run.lines, run.torn = data.count(b"\n"), not data.endswith(b"\n")
    if proc.returncode != -signal.SIGKILL:
        return run  # it finished first: nothing to salvage
    missing = KILL_REPEAT - run.lines
    for command in (["report", str(out)], ["check", str(out)], ["merge", str(folder / "merged"), str(out)]):
        done = _cli(*command)
        if "Traceback" in done.stderr or done.returncode not in (0, 3):
            run.problems.append(f"{command[0]}: exit {done.returncode}: {done.stderr[-500:]}")
        if run.torn and command[0] == "report" and "dropped an incomplete last line" not in done.stderr:
            run.problems.append(f"{command[0]} did not warn about the torn line: {done.stderr[-300:]}")
        counted = f"{KILL_REPEAT} planned, {run.lines} finished, {missing} missing"
        if counted not in done.stdout or (missing and "Gate: PASS" in done.stdout):
            run.problems.append(f"{command[0]} does not say {counted!r}: {done.stdout[-300:]}")
    done = _cli("run", str(manifest), "--out", str(out), "--quiet", "--resume")
    if done.returncode != 0:
        run.problems.append(f"--resume: exit {done.returncode}: {done.stderr[-500:]}")
        return run
    keys = sorted(f"{r['meta_data']['simulation']}#{r['meta_data']['repeat']}" for r in read_back(out)[0])
    if keys != sorted(f"big#{i}" for i in range(1, KILL_REPEAT + 1)):
        run.problems.append(f"after --resume the folder holds {len(keys)} conversations, not each planned one once")
    return run


def kill9_plan(count: int, seed: int = 20261127) -> list[float]:
    """`count` kill delays (seconds after the first line) from a seeded RNG."""
    rng = random.Random(seed)
    return [round(rng.uniform(0.0, 0.3), 3) for _ in range(count)]
