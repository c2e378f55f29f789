"""Every credential the run knows, and the one rule for whatever leaves the process: it becomes "***".

Results, reports, logs and pull request comments are shared widely, and apps and LLMs quote
credentials back (an echoed header, a 401 body naming the key, a key in a URL the app puts in its
error). Guessing at each producer misses some; instead the run registers every credential value it
knows, and everything written, printed, logged or posted, and every user message sent to the app,
passes through `scrub_text` / `scrub`:

- LLM keys and tokens, when a token manager fetches them (`tokens.APITokenManager`);
- the manifest's `${VAR}` values that go into a target's URL, non-benign headers, query or body,
  and every value of a variable whose name looks secret (`SECRET_NAME`), wherever it is used
  (`manifest.register_secrets`); a value that is itself a URL only gives its userinfo;
- credentials a target is configured with (`targets.redaction.credential_values`);
- whatever a front end knows besides (the GitHub Action's secret inputs and runtime token, and the
  signed storage URLs it uploads the artifact to and downloads the base artifact from).

Values shorter than `MIN_SECRET_LENGTH` characters are ignored: scrubbing "yes" or "1234" would
mangle ordinary text, and so short a value is no credential worth the name. A value is also
scrubbed in the forms the run may have sent or recorded it in: JSON-escaped, percent-encoded, and
for URL userinfo the base64 `user:password` of basic auth.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import re
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any, TextIO
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

from .unicode_safety import visible_controls

REDACTED = "***"
#: shorter values are never registered (see the module docstring)
MIN_SECRET_LENGTH = 6
#: a variable whose name matches holds a credential, wherever the manifest uses it
SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SIG", re.IGNORECASE)


_PERCENT_HEX = re.compile("%[0-9A-F]{2}")


def _forms(value: str) -> set[str]:
    """`value` as it may appear in text the run produces: as is, JSON-escaped, percent-encoded (with
    upper- or lowercase hex digits: both are valid, and encoders differ)."""
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
    encoded = {quote(value, safe=""), quote(value), quote_plus(value)}
    forms |= encoded | {_PERCENT_HEX.sub(lambda escape: escape.group().lower(), form) for form in encoded}
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


class SecretRegistry:
    """A thread-safe set of credential values; scrubbing reads an immutable snapshot without locking."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: set[str] = set()
        self._forms: tuple[str, ...] = ()  # every form of every value, longest first

    def register(self, value: str | None) -> bool:
        """Remember `value` (surrounding whitespace stripped); False when it is too short or not text."""
        if not isinstance(value, str):
            return False
        value = value.strip()
        if len(value) < MIN_SECRET_LENGTH:
            return False
        if value in self._values:
            return True
        with self._lock:
            if value not in self._values:
                self._values.add(value)
                forms = set(self._forms) | _forms(value)
                self._forms = tuple(sorted(forms, key=lambda form: (-len(form), form)))
        return True

    def register_url(self, url: str | None) -> None:
        """The credentials a URL carries in its userinfo (`user:password@` or a bare `token@`)."""
        if not isinstance(url, str) or "@" not in url:
            return
        try:
            parts = urlsplit(url.strip())
            username, password = parts.username, parts.password
        except ValueError:
            return
        if not parts.scheme or not parts.netloc:
            return
        if password is None:  # https://<token>@host: the name is the credential
            if username:
                self.register(username)
                self.register(unquote(username))
            return
        self.register(password)
        self.register(unquote(password))
        plain = f"{unquote(username or '')}:{unquote(password)}"
        # the Basic header as UTF-8 clients send it, and as latin-1 ones (aiohttp, requests) do
        for encoding in ("utf-8", "latin-1"):
            with contextlib.suppress(UnicodeEncodeError):
                self.register(base64.b64encode(plain.encode(encoding)).decode())

    def register_signed_url(self, url: str | None) -> None:
        """A URL that is itself a credential (a signed storage URL a service hands out): its userinfo
        and every query value named like one (`sig`, `X-Amz-Signature`, `token`...), so an error
        quoting the URL (a dropped connection names it) shows "***" instead."""
        if not isinstance(url, str):
            return
        self.register_url(url)
        try:
            pairs = parse_qsl(urlsplit(url.strip()).query, keep_blank_values=True)
        except ValueError:
            return
        for name, value in pairs:
            if SECRET_NAME.search(name):
                self.register(value)

    def values(self) -> frozenset[str]:
        """The registered values (not their other forms)."""
        with self._lock:
            return frozenset(self._values)

    def clear(self) -> None:
        """Forget every value (tests, or a process that runs unrelated runs one after another)."""
        with self._lock:
            self._values.clear()
            self._forms = ()

    def scrub_text(self, text: str) -> str:
        """`text` with every occurrence of every known value replaced by "***".

        Occurrences that overlap or nest (one value inside or across another) become a single
        "***", so no piece of either value survives.
        """
        forms = self._forms
        if not forms or not text or not isinstance(text, str):
            return text
        spans: list[tuple[int, int]] = []
        for form in forms:
            start = text.find(form)
            while start != -1:
                spans.append((start, start + len(form)))
                start = text.find(form, start + 1)
        if not spans:
            return text
        spans.sort()
        pieces: list[str] = []
        position = 0
        begin, end = spans[0]
        for start, stop in spans[1:]:
            if start < end:  # overlapping: one span
                end = max(end, stop)
                continue
            pieces += [text[position:begin], REDACTED]
            position, (begin, end) = end, (start, stop)
        pieces += [text[position:begin], REDACTED, text[end:]]
        return "".join(pieces)

    def scrub(self, node: Any) -> Any:
        """`node` (JSON-like: dicts, lists, tuples, strings) with every string scrubbed, keys included."""
        if not self._forms:
            return node
        return self._scrub(node)

    def _scrub(self, node: Any) -> Any:
        if isinstance(node, str):
            return self.scrub_text(node)
        if isinstance(node, dict):
            return {self._scrub(key): self._scrub(value) for key, value in node.items()}
        if isinstance(node, list):
            return [self._scrub(value) for value in node]
        if isinstance(node, tuple):
            return tuple(self._scrub(value) for value in node)
        return node


#: the process-wide registry: credentials are known to the whole run, whichever part learnt them
registry = SecretRegistry()
register = registry.register
register_url = registry.register_url
register_signed_url = registry.register_signed_url
scrub_text = registry.scrub_text
scrub = registry.scrub
clear = registry.clear


def register_all(values: Iterable[str | None]) -> None:
    """Register several values at once."""
    for value in values:
        registry.register(value)


# --- the process's outputs: standard streams and logging ------------------------------------


class ScrubbedStream:
    """A text stream whose writes are scrubbed, and cannot steer the terminal or the log (control
    characters and bidi overrides become visible escapes); `unscrubbed` is the stream underneath."""

    def __init__(self, stream: TextIO) -> None:
        self.unscrubbed = stream

    def write(self, text: str) -> int:
        self.unscrubbed.write(visible_controls(scrub_text(text)))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.unscrubbed, name)


@contextlib.contextmanager
def scrubbed_output() -> Iterator[None]:
    """Scrub everything written to stdout and stderr meanwhile: prints, progress, tracebacks, log lines."""
    saved = sys.stdout, sys.stderr
    sys.stdout = ScrubbedStream(sys.stdout)
    sys.stderr = ScrubbedStream(sys.stderr)
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


@contextlib.contextmanager
def unscrubbed_stdout() -> Iterator[None]:
    """Write to the real stdout meanwhile: for the one line that must hold a secret (a log mask)."""
    saved = sys.stdout
    sys.stdout = getattr(saved, "unscrubbed", saved)
    try:
        yield
    finally:
        sys.stdout = saved


class ScrubFilter(logging.Filter):
    """Scrubs a log record's message, traceback and stack before any handler formats it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not registry._forms:
            return True
        with contextlib.suppress(Exception):  # a record that cannot be formatted is the handler's problem
            record.msg, record.args = scrub_text(record.getMessage()), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = scrub_text(record.exc_text)
        if record.stack_info:
            record.stack_info = scrub_text(record.stack_info)
        return True


_FILTER = ScrubFilter()


def scrub_logs(logger: logging.Logger | str) -> logging.Logger:
    """`logger` with the scrubbing filter attached (once). A logger's filters do not see its
    children's records, so every logger that may log a credential needs its own."""
    if isinstance(logger, str):
        logger = logging.getLogger(logger)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def scrub_package_logs(prefix: str = "simulator") -> None:
    """Attach the filter to `prefix` and every logger below it that exists now."""
    scrub_logs(prefix)
    for name in list(logging.root.manager.loggerDict):
        if name.startswith(prefix + "."):
            scrub_logs(name)
