"""The exit codes of every command and of the action, and how a run's outcome maps to one."""

from __future__ import annotations

import signal

from ..records import Summary

EXIT_OK = 0
#: the gate failed: the app misbehaved
EXIT_GATE_FAILED = 1
#: configuration or usage error: nothing ran
EXIT_CONFIG = 2
#: too many errors to judge, missing conversations, a fatal stop, or the run itself failed
EXIT_RUN_ERRORS = 3
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM
#: when a run fails the job: the gate, only errors, or never
FAIL_ON = ("gate", "errors", "never")


def exit_code(
    summary: Summary,
    *,
    fail_on: str = "gate",
    received: int | None = None,
    failed_internally: bool = False,
) -> int:
    """The process exit code of a run (or a re-check, a merge) from its summary and how it ended."""
    if received is not None:
        return 128 + int(received)
    status = summary["gate"]["status"]
    errored = status == "error" or bool(summary["gate"].get("errored"))  # errors beyond the gate, failures or not
    run = summary.get("run") or {}
    if fail_on == "never" or status == "skipped":
        return EXIT_OK
    if failed_internally or errored or run.get("fatal_error") or run.get("interrupted"):
        return EXIT_RUN_ERRORS
    if status == "fail" and fail_on == "gate":
        return EXIT_GATE_FAILED
    return EXIT_OK
