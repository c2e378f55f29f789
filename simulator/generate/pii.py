"""Personal data scrubbed from production logs before any of it is sent to a model.

Deterministic and local: e-mail addresses, payment card numbers (13 to 19 digits that pass the
Luhn check, spaces or dashes allowed), phone numbers (9 to 15 digits, or 8 and more after a `+`;
dates are left alone), and names from a list (`--names-file`, one a line, matched as whole words
whatever their case). Each is replaced by a placeholder (`[EMAIL]`, `[CARD]`, `[PHONE]`, `[NAME]`)
and counted, so the command can say what it removed.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from ..errors import SourceError

KINDS = ("email", "card", "phone", "name")
PLACEHOLDERS = {"email": "[EMAIL]", "card": "[CARD]", "phone": "[PHONE]", "name": "[NAME]"}
#: how the summary line names each kind
KIND_WORDS = {"email": "e-mail address", "card": "card number", "phone": "phone number", "name": "name"}

EMAIL = re.compile(r"(?<![\w.+-])[\w.%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{1,5}){1,5}(?!\w)")
DATE = re.compile(r"\d{4}[./-]\d{1,2}[./-]\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}")


def luhn(digits: str) -> bool:
    """Whether a card number's check digit is right."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def read_names(path: str | Path) -> list[str]:
    """The names in a `--names-file`: one a line; blank lines and `#` comments left out."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise SourceError(f"--names-file {file}: no such file; give a text file with one name a line") from None
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or exc
        raise SourceError(f"--names-file {file}: cannot read it ({why}); give a UTF-8 text file") from None
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


class Scrubber:
    """Replaces personal data in text and counts what it replaced, by kind."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        unique = sorted({n.strip() for n in names if n.strip()}, key=lambda n: (-len(n), n.lower()))
        self._names = (
            re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in unique) + r")(?!\w)", re.IGNORECASE)
            if unique
            else None
        )
        self.counts: Counter[str] = Counter()

    def scrub(self, text: str) -> str:
        """`text` with every e-mail address, card number, phone number and listed name replaced."""
        text = EMAIL.sub(lambda m: self._replace("email"), text)
        text = CARD.sub(self._card, text)
        text = PHONE.sub(self._phone, text)
        if self._names is not None:
            text = self._names.sub(lambda m: self._replace("name"), text)
        return text

    def _replace(self, kind: str) -> str:
        self.counts[kind] += 1
        return PLACEHOLDERS[kind]

    def _card(self, match: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", match.group())
        return self._replace("card") if 13 <= len(digits) <= 19 and luhn(digits) else match.group()

    def _phone(self, match: re.Match[str]) -> str:
        found = match.group()
        digits = re.sub(r"\D", "", found)
        if DATE.fullmatch(found.strip()):
            return found
        if 9 <= len(digits) <= 15 or (found.startswith("+") and 8 <= len(digits) <= 15):
            return self._replace("phone")
        return found

    def summary(self) -> str:
        """`3 e-mail addresses, 1 card number` (or `nothing`)."""
        parts = []
        for kind in KINDS:
            count = self.counts[kind]
            if count:
                parts.append(f"{count} {KIND_WORDS[kind]}{'' if count == 1 else 'es' if kind == 'email' else 's'}")
        return ", ".join(parts) or "nothing"
