"""Numbers in HTTP headers: a wait or a count when the header says one, else None ("absent")."""

from __future__ import annotations

import email.utils

import pytest

from simulator.parsing import header_numbers

NOT_A_WAIT = ["nan", "NaN", "inf", "-inf", "Infinity", "-5", "-0.5", "+5", "1e400", "1e3", "0x10", "", "  ", "five",
              "1_000", "٣", "5 5", "1.", ".5", "9" * 400]  # fmt: skip


@pytest.mark.parametrize("value", NOT_A_WAIT)
def test_a_wait_that_is_no_number_is_absent(value: str) -> None:
    assert header_numbers.seconds(value, 60) is None
    assert header_numbers.seconds(value, 60, unit=0.001, dates=False) is None


@pytest.mark.parametrize(("value", "expected"), [("0", 0.0), ("7", 7.0), (" 2.5 ", 2.5), ("0.01", 0.01)])
def test_delta_seconds_are_read(value: str, expected: float) -> None:
    assert header_numbers.seconds(value, 60) == expected


def test_a_wait_is_capped_and_milliseconds_are_scaled() -> None:
    assert header_numbers.seconds("3600", 60) == 60
    assert header_numbers.seconds("9" * 30, 60) == 60  # long, finite: capped
    assert header_numbers.seconds("9" * 31, 60) is None  # longer than any wait a server means
    assert header_numbers.seconds("250", 60, unit=0.001, dates=False) == 0.25
    assert header_numbers.seconds(None, 60) is None


def test_http_dates_are_seconds_from_now() -> None:
    now = 1_000_000.0
    assert header_numbers.seconds(email.utils.formatdate(now + 30, usegmt=True), 60, now=now) == pytest.approx(30)
    assert header_numbers.seconds(email.utils.formatdate(now - 30, usegmt=True), 60, now=now) == 0.0  # past
    assert header_numbers.seconds("Fri, 31 Dec 9999 23:59:59 GMT", 60, now=now) == 60
    minus_zero = email.utils.formatdate(now + 30)  # "-0000": no zone named, so UTC
    assert minus_zero.endswith("-0000") and header_numbers.seconds(minus_zero, 60, now=now) == pytest.approx(30)
    assert header_numbers.seconds("Mon, 99 Foo 2015 07:28:00 GMT", 60, now=now) is None
    assert header_numbers.seconds(email.utils.formatdate(now + 30, usegmt=True), 60, dates=False, now=now) is None


def test_the_cap_must_be_a_number_of_seconds() -> None:
    for cap in (float("nan"), float("inf"), -1.0):
        with pytest.raises(ValueError, match="cap"):
            header_numbers.seconds("5", cap)


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "1.5", "1e3", "0x10", "", "+3", "٣", "9" * 31])
def test_a_count_that_is_no_whole_number_is_absent(value: str) -> None:
    assert header_numbers.count(value) is None


def test_counts_are_read_up_to_their_maximum() -> None:
    assert header_numbers.count("0") == 0 and header_numbers.count(" 4999 ") == 4999
    assert header_numbers.count("1714560000", maximum=2**32) == 1714560000
    assert header_numbers.count(str(2**32 + 1), maximum=2**32) is None
    assert header_numbers.count(str(2**53 + 1)) is None and header_numbers.count(None) is None
