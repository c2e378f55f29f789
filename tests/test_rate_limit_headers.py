"""Rate-limit headers, read (simulator.aio.rate_headers) and written (the test servers' rate limit)."""

from __future__ import annotations

import email.utils

import pytest
import requests

from simulator.aio.rate_headers import Budget, RateHints, over_the_limit, parse_duration, read_hints
from tests.servers.openai_server import FakeOpenAIServer
from tests.servers.rate_limit import RateLimit, go_duration

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("7.66s", 7.66),
        ("250us", 0.00025),
        ("250µs", 0.00025),
        ("0s", 0.0),
        ("0.5", 0.5),
        (" 12 ", 12.0),
    ],
)
def test_openai_reset_durations_are_read_as_seconds(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", [None, "", "soon", "-1s", "1x", "1e3s", "nan", "inf", "1s2", "s", "1 s", "9" * 50])
def test_a_reset_that_is_no_duration_reads_as_absent(text: str | None) -> None:
    assert parse_duration(text) is None


def test_retry_after_in_seconds_and_as_an_http_date() -> None:
    assert read_hints({"Retry-After": "2"}).retry_after == 2.0
    assert read_hints({"retry-after": "0.5"}).retry_after == 0.5
    date = email.utils.formatdate(NOW + 30, usegmt=True)
    assert read_hints({"Retry-After": date}, now=NOW).retry_after == pytest.approx(30)
    past = email.utils.formatdate(NOW - 30, usegmt=True)
    assert read_hints({"Retry-After": past}, now=NOW).retry_after == 0.0


def test_retry_after_ms_is_preferred_to_retry_after() -> None:
    hints = read_hints({"Retry-After": "1", "retry-after-ms": "150"})
    assert hints.retry_after == pytest.approx(0.15) and hints.refusal_wait == pytest.approx(0.15)
    # milliseconds have no date form: a bad one leaves Retry-After to say it
    assert read_hints({"Retry-After": "3", "retry-after-ms": "soon"}).retry_after == 3.0


@pytest.mark.parametrize("value", ["nan", "inf", "-5", "1e400", "0x10", ""])
def test_a_wait_that_is_no_number_reads_as_absent(value: str) -> None:
    assert read_hints({"Retry-After": value, "retry-after-ms": value}).retry_after is None


def test_the_x_ratelimit_headers_in_any_case() -> None:
    hints = read_hints(
        {
            "X-RateLimit-Limit-Requests": "60",
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "1s",
            "x-ratelimit-limit-tokens": "150000",
            "x-ratelimit-remaining-tokens": "149000",
            "x-ratelimit-reset-tokens": "6m0s",
        }
    )
    assert hints.requests == Budget(remaining=0, reset=1.0, limit=60)
    assert hints.tokens == Budget(remaining=149000, reset=360.0, limit=150000)
    assert hints.retry_after is None
    assert hints.refusal_wait == 1.0  # a 429 without a wait: the reset of the budget it used up


def test_what_a_429_asks_to_wait_for_when_it_gives_only_resets() -> None:
    both_spent = read_hints(
        {
            "x-ratelimit-remaining-requests": "0",
            "x-ratelimit-reset-requests": "20ms",
            "x-ratelimit-remaining-tokens": "0",
            "x-ratelimit-reset-tokens": "2s",
        }
    )
    assert both_spent.refusal_wait == 2.0  # the later of the two budgets it used up
    resets_only = read_hints({"x-ratelimit-reset-requests": "3s", "x-ratelimit-reset-tokens": "500ms"})
    assert resets_only.refusal_wait == 0.5  # none said spent: the nearest reset
    assert read_hints({}).refusal_wait is None and read_hints(None) == RateHints()


def test_the_time_until_a_budget_has_room_follows_its_refill() -> None:
    budget = Budget(remaining=2, reset=1.0, limit=10)  # 8 missing, refilled in 1 s: 8 a second
    assert budget.time_for(1) == 0.0
    assert budget.time_for(4) == pytest.approx(0.25)
    assert budget.time_for(100) == 1.0  # at most the full reset
    assert Budget(remaining=0, reset=2.0).time_for(1) == 2.0  # no limit said: the whole reset
    assert Budget(remaining=0).time_for(1) is None


# --- the test servers' side -------------------------------------------------------------------------


def test_go_durations_as_openai_writes_them() -> None:
    assert [go_duration(s) for s in (0.0199, 0.5, 1, 7.66, 360, 3723.5)] == [
        "20ms",
        "500ms",
        "1s",
        "7.66s",
        "6m0s",
        "1h2m3.5s",
    ]
    assert all(parse_duration(go_duration(s)) == pytest.approx(s, abs=0.001) for s in (0.02, 1, 7.66, 360, 3723.5))


def test_a_token_bucket_admits_its_burst_then_one_request_per_refill() -> None:
    limit = RateLimit(requests_per_second=10)
    assert all(limit.take(0, 100.0).admitted for _ in range(10))
    refused = limit.take(0, 100.0)
    assert not refused.admitted and refused.headers == {"Retry-After": "1"}  # whole seconds, rounded up
    assert refused.wait == pytest.approx(0.1)
    assert limit.take(0, 100.1).admitted and not limit.take(0, 100.1).admitted
    assert (limit.admitted, limit.refused) == (11, 2)


def test_a_fixed_window_refuses_until_the_next_second() -> None:
    limit = RateLimit(requests_per_second=3, mode="window", whole_seconds=False, retry_after_ms=True)
    assert [limit.take(0, 50.2).admitted for _ in range(4)] == [True, True, True, False]
    refused = limit.take(0, 50.7)
    assert refused.headers == {"Retry-After": "0.300", "retry-after-ms": "300"}
    assert limit.take(0, 51.0).admitted


def test_a_tokens_per_minute_limit_counts_what_each_request_may_take() -> None:
    limit = RateLimit(requests_per_second=100, tokens_per_minute=6000, ratelimit_headers=True)  # 100 tokens a second
    first = limit.take(60, 10.0)
    assert first.admitted and first.headers["x-ratelimit-remaining-tokens"] == "40"
    assert first.headers["x-ratelimit-limit-requests"] == "100" and first.headers["x-ratelimit-reset-tokens"] == "600ms"
    refused = limit.take(60, 10.0)
    assert not refused.admitted and refused.wait == pytest.approx(0.2)


def test_the_fake_openai_server_refuses_above_its_limit_and_counts_it(llm: FakeOpenAIServer) -> None:
    llm.limit(requests_per_second=2, retry_after_ms=True, ratelimit_headers=True)
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    answers = [requests.post(llm.openai_base_url + "/chat/completions", json=body, timeout=5) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["x-ratelimit-remaining-requests"] == "1"
    assert answers[2].headers["Retry-After"] == "1" and 0 < int(answers[2].headers["retry-after-ms"]) <= 500
    assert answers[2].json()["error"]["code"] == "rate_limit_exceeded"
    assert llm.refused == 1 and len(llm.chat_requests) == 3 and len(llm.refused_at) == 1
    assert answers[0].json()["choices"][0]["message"]["content"] == "ok"  # scripted replies as before


@pytest.mark.parametrize(
    ("refusal", "read"),
    [
        ("Request too large for gpt-4o on tokens per min (TPM): Limit 30000, Requested 342389.", (30000, 342389)),
        ('{"message": "... (TPM): Limit: 1,000,000, Requested: 44,975,775. The input ..."}', (1000000, 44975775)),
        ("Rate limit reached for gpt-4o on tokens per min (TPM): Limit 30000, Used 29000, Requested 2000.", None),
        ("Limit 30000, Requested 30000.", None),  # as large as the limit: it passes once the budget is full
        ("Rate limit reached for requests. Please try again later.", None),
        ("Limit " + "9" * 5000 + ", Requested " + "9" * 5001, None),  # no reading of a number that long
        ("", None),
    ],
)
def test_a_refusal_of_a_request_over_the_whole_limit_is_told_from_a_limit_to_wait_out(
    refusal: str, read: tuple[int, int] | None
) -> None:
    assert over_the_limit(refusal) == read
