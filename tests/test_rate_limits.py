"""Rate limits over real HTTP: one pause for every caller of an endpoint, AIMD, and a limit that never lifts.

The user model is the fake OpenAI server on 127.0.0.1 (scripted 429s, or its rate limit); the app is
the fake chat app or a callback file. Each test takes a second or two.
"""

from __future__ import annotations

import asyncio
import io
import json
import textwrap
import threading
import time
from pathlib import Path

import pytest

from simulator import OpenAIChatCompletionsModel, Persona, Simulator, TurnError
from simulator.aio.limiter import LimitEvent
from simulator.cli import EXIT_OK, main
from simulator.cli_output import Progress
from simulator.manifest import load_manifest
from simulator.run.plan import plan_jobs
from simulator.run.runner import run_jobs
from simulator.targets import CallbackTarget
from tests.servers.chat_app import AppReply, FakeChatApp
from tests.servers.openai_server import FakeOpenAIServer, RecordedRequest, Reply

HELLO = [{"role": "user", "content": "hello"}]
APP = "def respond(question, history, meta):\n    return 'You said: ' + question\n"


#: OpenAI's 429 for a request over the tokens a minute on its own
TOO_LARGE = (
    "Request too large for gpt-4o in organization org-abc on tokens per min (TPM): Limit 30000, "
    "Requested 36,278. The input or output tokens must be reduced in order to run successfully."
)


def refusal(**headers: str) -> Reply:
    return Reply.error(429, "Rate limit reached", code="rate_limit_exceeded", headers=headers)


class Arrivals:
    """Answers every request after `delay`, refusing the `refuse`-th (1-based) with `refused`; notes
    when each arrived and how many were in the server at once."""

    def __init__(self, delay: float = 0.05, refuse: int | None = None, refused: Reply | None = None) -> None:
        self.delay, self.refuse, self.refused = delay, refuse, refused
        self.lock = threading.Lock()
        self.times: list[float] = []
        self.bodies: list[dict] = []
        self.refused_at: list[float] = []
        self.active = 0
        self.busy: list[tuple[float, int]] = []  # (when, requests in the server then)

    def __call__(self, request: RecordedRequest) -> Reply | str:
        now = time.monotonic()
        with self.lock:
            self.times.append(now)
            self.bodies.append(request.body)
            self.active += 1
            self.busy.append((now, self.active))
            refuse = len(self.times) == self.refuse
            if refuse:
                self.refused_at.append(now)
                self.active -= 1
        if refuse:
            return self.refused or refusal(**{"Retry-After": "0"})
        time.sleep(self.delay)
        with self.lock:
            self.active -= 1
        return "fine"


def project(tmp_path: Path, user: str, simulations: str, target: str = "{callback: 'app.py:respond'}") -> Path:
    (tmp_path / "app.py").write_text(APP)
    manifest = tmp_path / "simulations.yml"
    manifest.write_text(
        f"version: 1\ntarget: {target}\n" + textwrap.dedent(user) + "simulations:\n" + textwrap.dedent(simulations)
    )
    return manifest


class Told(list):
    """A listener keeping each event with the moment the limiter told of it: a pause starts when the
    client has read the 429, and requests it had sent before may still be arriving then."""

    def __call__(self, event: LimitEvent) -> None:
        self.append((time.monotonic(), event))

    def first_429(self) -> float:
        return next(at for at, event in self if event.why == "HTTP 429")


def run(manifest: Path, out: Path, concurrency: int, events: list | None = None) -> dict:
    loaded = load_manifest(manifest, environ={})
    listener = None if events is None else events if isinstance(events, Told) else events.append
    outcome = asyncio.run(run_jobs(loaded, plan_jobs(loaded), out, concurrency=concurrency, on_rate_limit=listener))
    return {"summary": outcome.summary, "results": outcome.results}


# --- one pause for everyone --------------------------------------------------------------------------


def test_one_429_pauses_every_caller_of_the_model_for_its_retry_after(llm: FakeOpenAIServer) -> None:
    """Eight conversations of three requests each: the fifth request is refused with a 0.5 s wait, and
    no request reaches the server until it has passed, though the others' next turns are ready at once."""
    arrivals = Arrivals(delay=0.05, refuse=5, refused=refusal(**{"retry-after-ms": "500"}))
    llm.default = arrivals
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=0)
    told = Told()
    model.limiter.listen(told)

    async def conversation() -> None:
        for _ in range(3):
            await model.complete(HELLO)

    async def everyone() -> None:
        await asyncio.gather(*(conversation() for _ in range(8)))

    asyncio.run(everyone())
    seen_at = told.first_429()
    during = [t for t in arrivals.times if seen_at + 0.02 < t < seen_at + 0.47]
    after = [t for t in arrivals.times if t >= seen_at + 0.47]
    assert during == []  # the others' second turns (ready 0.05 s in) waited too
    assert len(arrivals.times) == 8 * 3 + 1 and len(after) >= 8  # every conversation had turns left to wait
    assert model.limiter.refusals == 1  # and max_retries=0: the 429 cost no retry


def test_a_run_shares_one_pause_between_the_settings_that_call_one_endpoint(
    tmp_path: Path, llm: FakeOpenAIServer
) -> None:
    """Two simulations whose user settings differ (temperature) call the same endpoint and model: one
    limiter for both, so a 429 met by one holds the other's requests too; progress hears of it."""
    arrivals = Arrivals(delay=0.02, refuse=6, refused=refusal(**{"Retry-After": "0.4"}))
    llm.default = arrivals
    user = f"user: {{model: u, endpoint: '{llm.openai_base_url}', max_retries: 0}}\n"
    hot = f"{{model: u, endpoint: '{llm.openai_base_url}', max_retries: 0, temperature: 1}}"
    simulations = f"""\
      - {{name: cold, persona: jane, task: t, repeat: 4, max_turns: 6}}
      - {{name: hot, persona: jane, task: t, repeat: 4, max_turns: 6, user: {hot}}}
    """
    told = Told()
    done = run(project(tmp_path, user, simulations), tmp_path / "out", concurrency=8, events=told)
    assert done["summary"]["totals"]["errors"] == 0 and len(done["results"]) == 8
    seen_at = told.first_429()
    assert [t for t in arrivals.times if seen_at + 0.02 < t < seen_at + 0.37] == []
    after = [body for t, body in zip(arrivals.times, arrivals.bodies, strict=True) if t >= seen_at + 0.37]
    events = [event for _, event in told]
    assert {body.get("temperature") for body in after} == {0.0, 1}  # both settings waited, then went on
    assert (
        events[0].endpoint == "user model"
        and events[0].why == "HTTP 429"
        and events[0].wait == pytest.approx(0.4, abs=0.05)
    )
    # slow start had grown the window from 4 towards 8 when the 429 came: half of those in flight go on
    assert 4 <= events[0].previous <= 8 and 1 <= events[0].concurrency <= events[0].previous / 2


def test_a_429_from_the_app_holds_every_conversations_turn(tmp_path: Path, app: FakeChatApp) -> None:
    """The app's limiter: scripted users, one 429 with Retry-After 0.3 s; no app request meanwhile."""
    app.script(AppReply.rate_limited(0.3))
    simulations = """\
      - {name: s, persona: jane, task: t, turns: [one, two, three], repeat: 6, max_turns: 6}
    """
    target = f"{{url: '{app.url}/promptflow', format: promptflow, retry: {{attempts: 0}}}}"
    done = run(project(tmp_path, "", simulations, target=target), tmp_path / "out", concurrency=6)
    assert done["summary"]["totals"]["errors"] == 0  # attempts: 0, yet the 429 was sent again
    times = [r.received_at for r in app.requests if r.method == "POST"]  # not the flow's swagger
    refused_at = times[0]
    assert [t for t in times if refused_at + 0.03 < t < refused_at + 0.27] == []
    assert len(times) == 6 * 3 + 1


# --- AIMD ------------------------------------------------------------------------------------------


def test_a_429_halves_the_requests_in_flight_and_good_answers_grow_them_back(llm: FakeOpenAIServer) -> None:
    arrivals = Arrivals(delay=0.05, refuse=17)  # the first sixteen warm the client up
    llm.default = arrivals
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=0)
    model.limiter.set_ceiling(8)
    events: list[LimitEvent] = []
    model.limiter.listen(events.append)
    windows: list[tuple[float, int]] = []

    async def caller(until: float) -> None:
        while time.monotonic() < until:
            await model.complete(HELLO)
            windows.append((time.monotonic(), model.limiter.concurrency))

    async def load() -> None:
        await asyncio.gather(*(model.complete(HELLO) for _ in range(16)))  # slow start: grown to 8 meanwhile
        until = time.monotonic() + 2.2
        await asyncio.gather(*(caller(until) for _ in range(8)))

    asyncio.run(load())
    [cut] = [e for e in events if e.why == "HTTP 429"]
    assert (cut.previous, cut.concurrency) == (8, 4)  # the 8 in flight, halved
    [refused_at] = arrivals.refused_at
    soon = [n for t, n in arrivals.busy if refused_at + 0.25 < t < refused_at + 0.6]
    assert soon and max(soon) <= 4  # once the 8 sent before the cut were answered: 4 at a time
    assert 5 <= model.limiter.concurrency <= 8  # grown back while answers came and callers waited
    assert max(n for _, n in arrivals.busy) <= 8


def test_slow_start_sends_four_requests_first_and_one_more_with_each_good_answer(llm: FakeOpenAIServer) -> None:
    """Sixteen callers at once: four requests go before any answer says the endpoint takes more, then
    each good answer lets one more go (doubling each round trip) up to the ceiling; no 429 needed."""
    arrivals = Arrivals(delay=0.1)
    llm.default = arrivals
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=0)
    model.limiter.set_ceiling(16)

    async def load() -> None:
        await asyncio.gather(*(model.complete(HELLO) for _ in range(48)))

    asyncio.run(load())
    start = arrivals.times[0]
    first_round = [n for t, n in arrivals.busy if t < start + 0.08]
    assert max(first_round) == 4  # not the 16 callers at once
    assert max(n for _, n in arrivals.busy) == 16  # grown to the ceiling
    assert model.limiter.concurrency == 16 and model.limiter.refusals == 0


def test_a_timeout_halves_the_requests_in_flight(llm: FakeOpenAIServer) -> None:
    # a timeout roomy enough that the retries' prompt answers arrive within it on a loaded machine
    llm.script(*[Reply(content="late", delay=1.5)] * 4, *[Reply(content="ok")] * 4)
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", timeout=1.0, max_retries=1)
    model.limiter.set_ceiling(4)
    events: list[LimitEvent] = []
    model.limiter.listen(events.append)

    async def four() -> list[str]:
        return [r.content for r in await asyncio.gather(*(model.complete(HELLO) for _ in range(4)))]

    assert asyncio.run(four()) == ["ok"] * 4  # each retried once (a timeout's retry is counted)
    assert [(e.why, e.previous, e.concurrency) for e in events] == [("timeout", 4, 2)]  # once for the four


def test_an_answer_that_says_the_budget_is_spent_holds_the_next_request_before_the_wall(
    llm: FakeOpenAIServer,
) -> None:
    """OpenAI's x-ratelimit-remaining-requests at 0: the next request waits for the budget to refill
    (reset / limit = 0.2 s here) instead of being refused."""
    llm.limit(requests_per_second=5, ratelimit_headers=True)
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=0)

    async def eight() -> None:
        for _ in range(8):
            await model.complete(HELLO)

    started = time.monotonic()
    asyncio.run(eight())
    assert llm.refused == 0 and len(llm.chat_requests) == 8
    assert time.monotonic() - started >= 0.5  # three more than the burst of 5, 0.2 s apart


# --- a limit that never lifts ----------------------------------------------------------------------


def test_a_user_model_limit_that_never_lifts_fails_after_rate_limit_wait_naming_the_endpoint(
    tmp_path: Path, llm: FakeOpenAIServer
) -> None:
    arrivals = Arrivals(delay=0.0)  # only notes when each came
    llm.default = lambda request: (arrivals(request), refusal(**{"retry-after-ms": "50"}))[1]
    user = f"user: {{model: u, endpoint: '{llm.openai_base_url}', max_retries: 0, rate_limit_wait: 0.3}}\n"
    simulations = "  - {name: s, persona: jane, task: t, repeat: 2, max_turns: 4}\n"
    done = run(project(tmp_path, user, simulations), tmp_path / "out", concurrency=2)
    assert 0.25 < arrivals.times[-1] - arrivals.times[0] < 1.5  # refused for rate_limit_wait, then given up
    for result in done["results"]:
        meta = result["meta_data"]
        assert meta["stop_reason"] == "llm_error"
        assert (
            f"u at {llm.openai_base_url}/chat/completions kept rate-limiting: still refused after"
            in meta["stop_detail"]
        )
        assert (
            "user.rate_limit_wait allows 0.3 s; lower --concurrency, raise user.rate_limit_wait" in meta["stop_detail"]
        )
        assert "(HTTP 429)" in meta["stop_detail"]
    assert len(llm.chat_requests) > 2  # sent again after each wait, costing no retry (max_retries: 0)


def test_an_app_limit_that_never_lifts_fails_after_rate_limit_wait(tmp_path: Path, app: FakeChatApp) -> None:
    app.default = lambda request: AppReply.rate_limited(0.05)
    target = f"{{url: '{app.url}/promptflow', format: promptflow, rate_limit_wait: 0.3, retry: {{attempts: 1}}}}"
    simulations = "  - {name: s, persona: jane, task: t, turns: [one], max_turns: 2}\n"
    [result] = run(project(tmp_path, "", simulations, target=target), tmp_path / "out", concurrency=1)["results"]
    detail = result["meta_data"]["stop_detail"]
    assert result["meta_data"]["stop_reason"] == "app_error"
    assert f"the app at {app.url}/promptflow kept rate-limiting" in detail
    assert "and target.rate_limit_wait allows 0.3 s: lower --concurrency, raise target.rate_limit_wait" in detail
    assert len(app.requests) > 2


def test_an_app_that_relays_a_request_too_large_fails_that_turn_at_once(tmp_path: Path, app: FakeChatApp) -> None:
    """The app's 429 is read the same way: a request over the whole limit is not waited for."""
    relayed = AppReply.error(429, TOO_LARGE, headers={"Retry-After": "1"})
    app.default = lambda request: relayed if "huge" in json.dumps(request.body) else AppReply(text="fine")
    target = f"{{url: '{app.url}/promptflow', format: promptflow, rate_limit_wait: 3, retry: {{attempts: 2}}}}"
    simulations = (
        "  - {name: big, persona: jane, task: t, turns: [huge], max_turns: 2}\n"
        "  - {name: small, persona: jane, task: t, turns: [one, two], max_turns: 2}\n"
    )
    done = run(project(tmp_path, "", simulations, target=target), tmp_path / "out", concurrency=2)
    meta = {r["meta_data"]["simulation"]: r["meta_data"] for r in done["results"]}
    assert meta["big"]["stop_reason"] == "app_error"
    assert (
        f"the app at {app.url}/promptflow refused a request larger than its whole rate limit "
        "(36,278 asked, 30,000 allowed): waiting cannot help" in meta["big"]["stop_detail"]
    )
    assert meta["small"]["stop_reason"] != "app_error"
    assert sum("huge" in json.dumps(r.body) for r in app.requests) == 1  # neither waited for nor retried


def test_one_request_refused_until_rate_limit_wait_leaves_the_rest_of_the_run_at_full_speed(
    llm: FakeOpenAIServer,
) -> None:
    """OpenAI refuses a request larger than its tokens a minute with a 429 that never lifts, while
    every other request goes through. Each refusal of it in a row used to halve the window again,
    down to one request every second or so for the rest of the run; refusals in a row back off in
    the pause, and the window is cut once."""

    def answer(request: RecordedRequest) -> Reply | str:
        if "huge" in json.dumps(request.body):
            return refusal(**{"retry-after-ms": "20"})
        time.sleep(0.01)
        return "fine"

    llm.default = answer
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=0, rate_limit_wait=0.4)
    model.limiter.set_ceiling(4)
    huge = [{"role": "user", "content": "huge"}]

    async def load() -> None:
        await asyncio.gather(*(model.complete(HELLO) for _ in range(4)))
        with pytest.raises(TurnError, match="kept rate-limiting"):
            await model.complete(huge)

    asyncio.run(load())
    refused = [r for r in llm.chat_requests if "huge" in json.dumps(r.body)]
    assert len(refused) >= 4  # refused again and again, each a cut before this was mended
    # the first refusal's cut (one in flight, halved), no more: requests go an answer's time apart at
    # most, where 1/32 spaced them 32 answers' time apart
    assert model.limiter.window >= 0.5


def test_timeouts_in_a_row_do_not_space_the_next_requests_out(llm: FakeOpenAIServer) -> None:
    """An endpoint that hangs on one request: two timeouts in a row cut the window once (one in
    flight, halved), not to a quarter."""
    llm.script(*[Reply(content="late", delay=1.5)] * 2, *[Reply(content="ok")] * 10)
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", timeout=1.0, max_retries=1)
    model.limiter.set_ceiling(4)

    async def load() -> None:
        with pytest.raises(TurnError):
            await model.complete(HELLO)  # both tries time out
        for _ in range(10):
            await model.complete(HELLO)

    asyncio.run(load())
    assert model.limiter.window >= 0.5 and len(llm.chat_requests) == 12


def test_a_request_larger_than_the_whole_limit_fails_at_once_and_holds_nobody_up(llm: FakeOpenAIServer) -> None:
    """OpenAI's 429 for a request over the tokens a minute on its own can never pass: it used to
    pause every request to the model, again and again, until `rate_limit_wait` (600 s by default)."""
    too_large = Reply.error(
        429,
        TOO_LARGE,
        code="rate_limit_exceeded",
        type="tokens",
        headers={"Retry-After": "1"},
    )
    llm.default = lambda request: too_large if "huge" in json.dumps(request.body) else "fine"
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=2, rate_limit_wait=3)

    async def load() -> str:
        with pytest.raises(TurnError) as err:
            await model.complete([{"role": "user", "content": "huge"}])
        await asyncio.gather(*(model.complete(HELLO) for _ in range(4)))
        return str(err.value)

    message = asyncio.run(load())
    assert "refused a request larger than its whole rate limit (36,278 asked, 30,000 allowed)" in message
    assert "shorten the conversation (max_turns, the persona, the task)" in message
    assert len(llm.chat_requests) == 5  # sent once, not retried, not waited for
    assert model.limiter.pause_left() == 0 and model.limiter.refusals == 0  # nobody paused for it


def test_a_wait_longer_than_rate_limit_wait_fails_at_once(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: refusal(**{"Retry-After": "120"})
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", rate_limit_wait=60)
    with pytest.raises(TurnError) as err:
        asyncio.run(model.complete(HELLO))
    assert "it asks for 120.0 s more, and rate_limit_wait allows 60 s" in str(err.value)
    assert len(llm.chat_requests) == 1


def test_a_429_for_a_quota_that_is_spent_is_not_waited_for(llm: FakeOpenAIServer) -> None:
    llm.default = lambda request: Reply.error(429, "You exceeded your current quota", code="insufficient_quota")
    model = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m")
    with pytest.raises(TurnError) as err:
        asyncio.run(model.complete(HELLO))
    assert err.value.fatal and "has no quota left" in str(err.value) and len(llm.chat_requests) == 1


def test_waiting_for_a_rate_limit_does_not_count_against_the_turn_timeout(llm: FakeOpenAIServer) -> None:
    llm.script(refusal(**{"retry-after-ms": "700"}), "Hi, where is my order?")
    user = OpenAIChatCompletionsModel(endpoint_url=llm.openai_base_url, name="m", max_retries=0)
    simulator = Simulator(
        system_connection=CallbackTarget(lambda q, h, m: "Here."), user_connection=user, turn_timeout=0.5
    )
    result = simulator.simulate(persona=Persona.load("jane"), task="t", max_conversation_turns=2)
    assert result["meta_data"]["stop_reason"] == "max_turns" and not result["meta_data"].get("is_error")
    assert result["conversation"][0]["response"] == "Hi, where is my order?"


# --- the scenario, small ---------------------------------------------------------------------------


def test_twenty_conversations_at_concurrency_16_against_20_requests_a_second_all_finish(
    tmp_path: Path, llm: FakeOpenAIServer
) -> None:
    """The user model refuses what goes over 20 requests a second (429, Retry-After in whole seconds);
    with no retries at all (max_retries: 0) every conversation still ends as it should."""
    llm.limit(requests_per_second=20)
    llm.default = lambda request: Reply(content="Tell me more.", delay=0.02)
    user = f"user: {{model: u, endpoint: '{llm.openai_base_url}', max_retries: 0}}\n"
    simulations = "  - {name: s, persona: jane, task: t, repeat: 20, max_turns: 6}\n"
    done = run(project(tmp_path, user, simulations), tmp_path / "out", concurrency=16)
    assert done["summary"]["totals"]["errors"] == 0 and len(done["results"]) == 20
    assert all(r["meta_data"]["turn_count"] == 6 for r in done["results"])
    assert llm.refused > 0  # the limit was met, and waited out
    assert len(llm.chat_requests) - llm.refused == 20 * 3


# --- where the run is watched ----------------------------------------------------------------------


def test_progress_says_who_rate_limits_how_long_everyone_waits_and_how_many_go_at_a_time() -> None:
    stream = io.StringIO()
    progress = Progress(4, stream)
    progress.rate_limit(LimitEvent("user model", 2.14, 4, 8, "HTTP 429"))
    progress.rate_limit(LimitEvent("user model", 1.0, 2, 4, "HTTP 429"))  # within 2 s: not repeated
    progress.rate_limit(LimitEvent("app", 0.0, 3, 6, "timeout"))
    progress.rate_limit(LimitEvent("judge", 0.2, 5, 5, "budget spent"))  # a short wait: no line
    assert stream.getvalue().splitlines() == [
        "rate-limited by user model: waiting 2.1 s; 4 requests at a time (was 8)",
        "app timed out: 3 requests at a time (was 6)",
    ]
    quiet = io.StringIO()
    Progress(4, quiet, quiet=True).rate_limit(LimitEvent("user model", 2.0, 4, 8, "HTTP 429"))
    assert quiet.getvalue() == ""


def test_the_run_command_prints_the_rate_limit_line_on_stderr(
    tmp_path: Path, llm: FakeOpenAIServer, capsys: pytest.CaptureFixture[str]
) -> None:
    llm.script(refusal(**{"retry-after-ms": "300"}))
    user = f"user: {{model: u, endpoint: '{llm.openai_base_url}', max_retries: 0}}\n"
    manifest = project(tmp_path, user, "  - {name: s, persona: jane, task: t, repeat: 2, max_turns: 2}\n")
    assert main(["run", str(manifest), "--out", str(tmp_path / "out"), "--concurrency", "2"]) == EXIT_OK
    captured = capsys.readouterr()
    assert "rate-limited by user model: waiting 0.3 s; 1 request at a time (was 2)" in captured.err
    assert "rate-limited" not in captured.out
    lines = (tmp_path / "out" / "conversations.jsonl").read_text().splitlines()
    assert [json.loads(line)["meta_data"]["is_error"] for line in lines] == [False, False]
