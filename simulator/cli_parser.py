"""The `simulator` command's arguments and help: `build_parser` gives the parser, each subcommand
bound to its function in `cli_commands`; a value argparse can refuse (`--concurrency 0`) is
refused here, before anything runs or prints."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from . import cli_commands
from .cli_output import FORMATS
from .generate.choices import ATTACK_KINDS, DEFAULT_COUNT, DEFAULT_MAX_TOKENS, KINDS
from .manifest import DEFAULT_MANIFEST
from .run.plan import MAX_REPEAT
from .run.replay import MATCHES

#: the end of `simulator --help`: what the exit codes mean, and that what is printed is scrubbed
EPILOG = """\
Exit codes: 0 the gate passed; 1 the gate failed (the app misbehaved); 2 configuration or usage
error (nothing ran); 3 too many errors to judge (app down, LLM failing), planned conversations
missing, a fatal error stopped the run, or the run itself failed (full disk, an internal error);
130 interrupted by Ctrl-C, 143 by SIGTERM (finished conversations and the summary kept).

Everything the command prints (progress, the summary, errors, log lines, a traceback) has the
run's known credentials scrubbed (`simulator.text.known_secrets`).
"""


def _positive(name: str) -> Callable[[str], int]:
    """An argparse type: a whole number >= 1, refused before anything runs or prints."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be a whole number, got {text!r}") from None
        if value < 1:
            raise argparse.ArgumentTypeError(f"{name} must be 1 or more, got {value}")
        return value

    return parse


def _add_format(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--format",
        choices=FORMATS,
        default="text",
        help="text (default): the summary on stdout; json: one JSON document on stdout, for machines",
    )


def _add_run(run: argparse.ArgumentParser) -> None:
    run.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST, help=f"default {DEFAULT_MANIFEST}")
    run.add_argument(
        "--app-url",
        help="where the app is (e.g. the preview deployment of this PR): an origin keeps target.url's path, "
        "a URL with a path replaces it",
    )
    run.add_argument("--out", default="results", help="results folder (default: results)")
    run.add_argument(
        "--concurrency", type=_positive("--concurrency"), default=8, help="conversations at a time (default 8)"
    )
    run.add_argument("--shard", help="run shard i of n, e.g. 2/4, for a job matrix")
    run.add_argument("--filter", action="append", help="only simulations whose name contains this (or glob)")
    run.add_argument("--tag", action="append", help="only simulations with this tag")
    run.add_argument("--repeat", type=int, help=f"play each simulation this many times (1 to {MAX_REPEAT})")
    run.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out: keep its finished conversations, play only the missing ones",
    )
    run.add_argument(
        "--replay",
        metavar="DIR",
        help="replay the user messages of an earlier run's results folder while the app answers as it did; "
        "the live user model takes over at the first different reply",
    )
    run.add_argument(
        "--replay-match",
        choices=MATCHES,
        default="exact",
        help="when app replies count as the same: exact (default) or up to whitespace and case",
    )
    run.add_argument(
        "--replay-ignore",
        action="append",
        metavar="REGEX",
        help="parts of app replies to ignore when comparing (ids, dates); repeatable",
    )
    run.add_argument(
        "--quiet",
        action="store_true",
        help="no progress and no summary table: only how it ended (and, with --baseline, what changed)",
    )
    run.add_argument("--baseline", help="a base-branch results folder to compare with (summary.json)")
    _add_format(run)
    run.set_defaults(handler=cli_commands.cmd_run)


GENERATE_DESCRIPTION = """\
Write simulations (personas, tasks, proposed checks) with the manifest's user model, or --model:

  simulator generate --from docs/ --from app-prompt.txt --from logs.jsonl --count 20 --seed 7
  simulator generate --kind adversarial --from docs/ --from app-prompt.txt --seed 7

What it will cost is said before any call (--dry-run: only that). The file says where each
simulation came from and marks the proposed checks; it validates as written."""

#: where `simulator generate` writes unless --out says otherwise
GENERATED_MANIFEST = ".github/simulations.generated.yml"


def _add_generate(generate: argparse.ArgumentParser) -> None:
    generate.add_argument(
        "--from",
        dest="sources",
        action="append",
        required=True,
        metavar="PATH",
        help="what to generate from (repeatable): documents (a folder or Markdown, text, HTML files), the app's "
        "system prompt (a file with 'prompt' in its name), conversation logs (.jsonl: OpenAI messages or "
        "conversations.jsonl); a docs:, prompt: or logs: prefix says which outright",
    )
    generate.add_argument(
        "--kind",
        choices=KINDS,
        default="tasks",
        help="tasks (default): users with tasks from the sources; adversarial: attackers from the playbook, "
        "grounded in the documents and prompt",
    )
    generate.add_argument(
        "--count",
        type=_positive("--count"),
        help=f"simulations to write (default {DEFAULT_COUNT}; adversarial: one per attack kind)",
    )
    generate.add_argument("--out", default=GENERATED_MANIFEST, help=f"the file to write (default {GENERATED_MANIFEST})")
    generate.add_argument(
        "--append", action="store_true", help="add the simulations to the existing --out manifest's list"
    )
    generate.add_argument("--force", action="store_true", help="replace an existing --out file")
    generate.add_argument(
        "--manifest",
        default=DEFAULT_MANIFEST,
        help=f"the manifest whose user model generates and whose target the file copies (default {DEFAULT_MANIFEST})",
    )
    generate.add_argument("--model", help="the model to generate with, instead of the manifest's user model")
    generate.add_argument("--endpoint", help="with --model: its OpenAI-compatible base URL (a local server)")
    generate.add_argument("--api-key-env", help="with --model: the environment variable holding its key")
    generate.add_argument(
        "--seed", type=int, help="fixes the personas, the canaries and (on models that honour it) the answers"
    )
    generate.add_argument(
        "--max-tokens",
        type=_positive("--max-tokens"),
        default=DEFAULT_MAX_TOKENS,
        help=f"the most tokens of one answer (default {DEFAULT_MAX_TOKENS})",
    )
    generate.add_argument(
        "--names-file", help="names to scrub from the logs (one a line), beside e-mails, phones and card numbers"
    )
    generate.add_argument(
        "--axis",
        action="append",
        default=[],
        metavar="NAME=V1,V2",
        help="vary the personas along this axis (repeatable; replaces a default one of the same name: expertise, "
        "patience, language, tone; NAME= drops one)",
    )
    generate.add_argument(
        "--attacks", help=f"adversarial: the attack kinds, comma-separated (default all: {', '.join(ATTACK_KINDS)})"
    )
    generate.add_argument(
        "--seed-url",
        default="{{base}}/test",
        help="adversarial: where setup seeds the canaries (default {{base}}/test: PUT .../customers/ID, ...)",
    )
    generate.add_argument(
        "--state-url", default="{{base}}", help="where outcome checks read the app's state (default {{base}})"
    )
    generate.add_argument(
        "--log-sample",
        type=_positive("--log-sample"),
        default=200,
        help="logs: the most conversations read from each log, evenly sampled (default 200)",
    )
    generate.add_argument(
        "--concurrency", type=_positive("--concurrency"), default=4, help="model calls at a time (default 4)"
    )
    generate.add_argument(
        "--yes", action="store_true", help="do not ask before spending (a non-interactive run never asks)"
    )
    generate.add_argument(
        "--dry-run", action="store_true", help="print the sources, the estimate and each call's size; call nothing"
    )
    generate.set_defaults(handler=cli_commands.cmd_generate)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="simulator",
        description="Simulated users talk to your chat app; every turn is recorded.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    _add_run(commands.add_parser("run", help="play every simulation of a manifest"))

    validate = commands.add_parser("validate", help="check a manifest without running it")
    validate.add_argument("manifest", nargs="?", default=DEFAULT_MANIFEST)
    validate.add_argument("--strict", action="store_true", help="unset environment variables are errors, not warnings")
    _add_format(validate)
    validate.set_defaults(handler=cli_commands.cmd_validate)

    check = commands.add_parser("check", help="re-evaluate finished results with the manifest's checks")
    check.add_argument("results", help="a results folder (conversations.jsonl)")
    check.add_argument("--manifest", help="default: the manifest named in the folder's summary.json")
    check.add_argument("--baseline", help="a base-branch results folder to compare with")
    check.add_argument(
        "--requery",
        action="store_true",
        help="outcome checks ask the app again instead of reading the recorded answers",
    )

    report = commands.add_parser("report", help="write report.html and report.md for a results folder")
    report.add_argument("results", help="a results folder (summary.json, conversations.jsonl)")
    report.add_argument("--baseline", help="a base-branch results folder to compare with")
    _add_format(report)
    report.set_defaults(handler=cli_commands.cmd_report)
    _add_format(check)
    check.set_defaults(handler=cli_commands.cmd_check)

    merge = commands.add_parser("merge", help="join the results folders of several shards")
    merge.add_argument("out", help="folder to write the merged results to")
    merge.add_argument("shards", nargs="+", help="the shards' results folders")
    merge.add_argument("--baseline", help="a base-branch results folder to compare with")
    _add_format(merge)
    merge.set_defaults(handler=cli_commands.cmd_merge)

    _add_generate(
        commands.add_parser(
            "generate",
            help="write simulations from your documents, system prompt, logs or the adversarial playbook",
            description=GENERATE_DESCRIPTION,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )

    personas = commands.add_parser("personas", help="list predefined personas, or show one")
    personas.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    personas.add_argument("name", nargs="?")
    personas.set_defaults(handler=cli_commands.cmd_personas)
    return parser
