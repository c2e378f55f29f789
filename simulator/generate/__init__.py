"""`simulator generate`: simulations written from the app's documents, its system prompt, its
production logs, or the adversarial playbook, as a manifest a reviewer can read.

Takes: `--from` sources (documents as passages with `file:line`, the system prompt, JSONL logs
scrubbed of personal data before anything is sent), the manifest's user model (or `--model`),
and what to make (`Settings`: how many, which kind, the seed, the personas' axes).
Gives: a manifest (or simulations appended to one) that `load_manifest` accepts: one simulation
per task, each with its source in comments and tags, personas varied along the axes, proposed
checks marked as such; for attacks, canaries seeded in `setup` and checks that catch a leak.
Flow: `command.prepare` reads and plans (the cost is said before any call), `pipeline.Generation`
asks the model (`asking`, through the run's limiter), merges near-duplicates (`dedup`) and counts
out the result; `writing` writes it and validates it before it replaces anything.
Used by: the CLI's `generate` command.
"""

from typing import TYPE_CHECKING, Any

from .choices import ATTACK_KINDS, DEFAULT_COUNT, DEFAULT_MAX_TOKENS, KINDS

if TYPE_CHECKING:
    from .command import Options, Prepared, prepare
    from .pii import Scrubber
    from .pipeline import Generated, Generation, Settings
    from .playbook import PLAYBOOK

#: where each name lives: imported when first used, so `import simulator.generate` costs nothing
_LAZY = {
    "Options": "command",
    "Prepared": "command",
    "prepare": "command",
    "Scrubber": "pii",
    "Generated": "pipeline",
    "Generation": "pipeline",
    "Settings": "pipeline",
    "PLAYBOOK": "playbook",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)


__all__ = [
    "ATTACK_KINDS",
    "DEFAULT_COUNT",
    "DEFAULT_MAX_TOKENS",
    "KINDS",
    "PLAYBOOK",
    "Generated",
    "Generation",
    "Options",
    "Prepared",
    "Scrubber",
    "Settings",
    "prepare",
]
