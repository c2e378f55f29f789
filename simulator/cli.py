"""`simulator` command line: run, check, report, validate, merge, personas.

The entry point: `main` reads the arguments (`cli_parser`), runs the command (`cli_commands`)
with everything it prints scrubbed of the run's known credentials, and turns whatever escapes the
command into an exit code; `run_and_exit` is the console script. What each exit code means is
said at the end of `simulator --help` (`cli_parser.EPILOG`).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import os
import sys
import threading
import traceback
from typing import NoReturn

from .cli_parser import build_parser
from .errors import ConfigError, UnreadableRecord
from .run.exit_codes import (  # noqa: F401 - the exit codes are part of the CLI's interface
    EXIT_CONFIG,
    EXIT_GATE_FAILED,
    EXIT_OK,
    EXIT_RUN_ERRORS,
    EXIT_SIGINT,
    EXIT_SIGTERM,
)
from .text import known_secrets


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    known_secrets.scrub_package_logs()
    with known_secrets.scrubbed_output():
        try:
            return _dispatch(args)
        except Exception as exc:  # a bug: its traceback may quote a credential too, so it is printed scrubbed here
            traceback.print_exc()
            # never 1, which says the gate failed: a job gated on the exit code must not read a crash as a verdict
            sys.stderr.write(f"internal error: {type(exc).__name__}; nothing above is a verdict on the app\n")
            return EXIT_RUN_ERRORS


def run_and_exit() -> NoReturn:
    """The `simulator` command: `main()`, then exit without tearing the interpreter down.

    Tearing down frees every module one by one: with the openai SDK loaded that takes 0.17-0.19 s,
    more than the rest of a run's tail. What the interpreter does before that still happens: threads
    that are not daemons are waited for, exit handlers (`atexit`, a callback's included) run and the
    output is flushed; only the freeing is skipped. Under a profiler, tracer or coverage,
    which write their data after the program returns, the command exits the usual way.
    """
    code = main()
    if _watched():
        sys.exit(code)
    for thread in threading.enumerate():  # as the interpreter does first: a callback's own threads end
        if thread is not threading.main_thread() and not thread.daemon:
            thread.join()
    run_exit_handlers = getattr(atexit, "_run_exitfuncs", None)
    if run_exit_handlers is not None:
        run_exit_handlers()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):  # a closed pipe: nothing more can be said
            stream.flush()
    os._exit(code)


def _watched() -> bool:
    """Whether something runs the command to look at it afterwards (cProfile, coverage, a debugger)."""
    return sys.getprofile() is not None or sys.gettrace() is not None or "coverage" in sys.modules


def _dispatch(args: argparse.Namespace) -> int:
    try:
        return args.handler(args)
    except UnreadableRecord as exc:  # a results folder's or a base run's file: the data, not the setup
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_RUN_ERRORS
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return EXIT_CONFIG
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as exc:  # the disk or the folder failed outside a run (reports, merges)
        sys.stderr.write(f"error: {exc.filename or ''}: {exc.strerror or exc}\n")
        return EXIT_RUN_ERRORS
    except KeyboardInterrupt:  # Ctrl-C outside a run (loading, reporting): nothing finished is lost
        sys.stderr.write("interrupted\n")
        return EXIT_SIGINT


if __name__ == "__main__":
    run_and_exit()
