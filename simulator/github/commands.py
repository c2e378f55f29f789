"""Workflow commands: outputs, masks, groups, annotations, and untrusted text that cannot issue any.

Built on actions-toolkit's `core`, which escapes command data; this module adds what it lacks: the
file commands written in one place that reports a missing or unwritable file instead of raising
(outputs with a random delimiter, the job summary), a stop-commands wrapper for text the app or an
LLM wrote, and annotation messages cut to the runner's limit. Every message,
output and untrusted text has the run's known credentials scrubbed (`simulator.text.known_secrets`).
"""

from __future__ import annotations

import os
import secrets
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from actions_toolkit import core
from actions_toolkit.file_command import prepare_key_value_message

from ..text import known_secrets
from ..text.known_secrets import scrub_text

ANNOTATION_LIMIT = 4_000  # the runner cuts annotation messages at 4,096 characters


def mask(value: str | None) -> None:
    """Ask the runner to hide `value` (and each of its lines) in every later log line."""
    if not value or not value.strip():
        return
    with known_secrets.unscrubbed_stdout():  # the mask command itself must carry the value
        for line in {value, *value.splitlines()}:
            if len(line.strip()) >= 4:
                core.set_secret(line)


class FileCommandError(Exception):
    """A GITHUB_* file (outputs, job summary) could not be written; the message says which and why."""


def append_file_command(variable: str, text: str, env: Mapping[str, str] | None = None) -> None:
    """Append `text` to the file the runner names in `variable` (GITHUB_OUTPUT, GITHUB_STEP_SUMMARY)."""
    path = (os.environ if env is None else env).get(variable)
    if not path:
        raise FileCommandError(f"${variable} is not set (the runner sets it for every step)")
    try:
        with open(path, "a", encoding="utf-8", errors="replace", newline="") as handle:
            handle.write(text)
    except OSError as exc:
        raise FileCommandError(f"${variable} ({path}) cannot be written: {exc.strerror or exc}") from None


def output_lines(outputs: Mapping[str, Any]) -> str:
    """`name<<delimiter` blocks, as actions-toolkit formats them (a random delimiter that no value
    contains, so no value can end its block and set another output)."""
    return "".join(
        prepare_key_value_message(name, "" if value is None else scrub_text(str(value))) + os.linesep
        for name, value in outputs.items()
    )


def set_outputs(outputs: Mapping[str, Any], env: Mapping[str, str] | None = None) -> None:
    """All the outputs in one write; raises FileCommandError when $GITHUB_OUTPUT cannot take them."""
    append_file_command("GITHUB_OUTPUT", output_lines(outputs), env)


@contextmanager
def group(title: str) -> Iterator[None]:
    core.start_group(title)
    try:
        yield
    finally:
        sys.stdout.flush()
        core.end_group()


def print_untrusted(text: str) -> None:
    """Print text the app or an LLM wrote: a line like `::add-mask::` or `::error::` in it is not run."""
    token = secrets.token_hex(16)
    text = scrub_text(text)
    sys.stdout.write(f"::stop-commands::{token}\n")
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.write(f"::{token}::\n")
    sys.stdout.flush()


def _cut(message: str) -> str:
    return message if len(message) <= ANNOTATION_LIMIT else message[: ANNOTATION_LIMIT - 1] + "…"


def _annotate(kind: str, message: str, file: str | None, line: int | None, title: str | None) -> None:
    # only the properties that are set: the toolkit's own helpers also emit empty `col=` and friends
    given = (("title", title), ("file", file), ("line", line))
    properties = {k: scrub_text(v) if isinstance(v, str) else v for k, v in given if v}
    core.issue_command(kind, properties, _cut(scrub_text(message)))
    sys.stdout.flush()


def error(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("error", message, file, line, title)


def warning(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("warning", message, file, line, title)


def notice(message: str, *, file: str | None = None, line: int | None = None, title: str | None = None) -> None:
    _annotate("notice", message, file, line, title)


def get_input(name: str) -> str:
    """An action input; the runner passes `INPUT_<NAME>` with hyphens kept, some tools turn them into `_`."""
    value = core.get_input(name)
    if not value and "-" in name:
        value = core.get_input(name.replace("-", "_"))
    return value
