"""Personal data scrubbed from logs before anything is sent: what is replaced, what is left, the counts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.errors import SourceError
from simulator.generate import Scrubber
from simulator.generate.logs import read_log
from simulator.generate.pii import luhn, read_names


@pytest.mark.parametrize(
    ("text", "scrubbed", "kind"),
    [
        ("mail me at jane.doe+shop@mail.example.co.uk please", "mail me at [EMAIL] please", "email"),
        ("card 4111 1111 1111 1111 ok", "card [CARD] ok", "card"),
        ("card 4111-1111-1111-1111", "card [CARD]", "card"),
        ("card 378282246310005 (amex)", "card [CARD] (amex)", "card"),
        ("call +1 (415) 555-2671 now", "call [PHONE] now", "phone"),
        ("call 020 7946 0958", "call [PHONE]", "phone"),
        ("ring +44 20 7946 0958", "ring [PHONE]", "phone"),
        ("it's John Smith here", "it's [NAME] here", "name"),
        ("JOHN SMITH again", "[NAME] again", "name"),
    ],
)
def test_each_kind_is_replaced_and_counted(text: str, scrubbed: str, kind: str) -> None:
    scrubber = Scrubber(["John Smith", "Smith"])
    assert scrubber.scrub(text) == scrubbed
    assert dict(scrubber.counts) == {kind: 1}


@pytest.mark.parametrize(
    "text",
    [
        "order 5 arrived on 2024-05-01",  # a date is no phone
        "order 12345678",  # eight digits without a + are an order number
        "card 4111 1111 1111 1112",  # fails the Luhn check: not a card number
        "Johnson and Smithers",  # names match as whole words only
        "50% off, version 1.2.3",
    ],
)
def test_what_is_not_personal_is_left_alone(text: str) -> None:
    scrubber = Scrubber(["John", "Smith"])
    assert scrubber.scrub(text) == text
    assert not scrubber.counts


def test_the_summary_counts_each_kind() -> None:
    scrubber = Scrubber(["Ann Lee"])
    scrubber.scrub("a@b.io and c@d.io, Ann Lee, 4111111111111111")
    assert scrubber.summary() == "2 e-mail addresses, 1 card number, 1 name"
    assert Scrubber().summary() == "nothing"


def test_luhn() -> None:
    assert luhn("4111111111111111") and luhn("4000000000000002") and not luhn("4111111111111112")


def test_names_file(tmp_path: Path) -> None:
    names = tmp_path / "names.txt"
    names.write_text("# staff\nAnn Lee\n\n  Bob  \n")
    assert read_names(names) == ["Ann Lee", "Bob"]
    with pytest.raises(SourceError, match="--names-file .*missing.txt: no such file"):
        read_names(tmp_path / "missing.txt")


def test_a_log_is_scrubbed_whole_before_it_is_cut(tmp_path: Path) -> None:
    """A card number across the cut at 600 characters is still found."""
    log = tmp_path / "log.jsonl"
    message = "x " * 298 + "4111 1111 1111 1111 and more"
    log.write_text(json.dumps({"messages": [{"role": "user", "content": message}]}) + "\n")
    scrubber = Scrubber()
    read = read_log(log, scrubber, 10)
    assert "4111" not in read.conversations[0].messages[0] and scrubber.counts["card"] == 1


def test_assistant_messages_are_not_read(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    line = {"messages": [{"role": "assistant", "content": "Hi Ann, your card 4111111111111111"},
                         {"role": "user", "content": "thanks"}]}  # fmt: skip
    log.write_text(json.dumps(line) + "\n")
    scrubber = Scrubber()
    assert read_log(log, scrubber, 10).conversations[0].messages == ["thanks"]
    assert not scrubber.counts
