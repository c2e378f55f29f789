"""Errors a user can cause, each carrying enough context to fix the cause without a traceback.

The tree of what the package raises on purpose (module-local classes named where they live):

    SimulatorError
    ├── ConfigError (+ValueError)      a file, argument or setting is invalid; nothing ran (exit 2)
    │   ├── FieldError                 one field inside the value read, at that field's own line
    │   ├── FieldErrors                several of them at once
    │   ├── UnreadableRecord           a results file that cannot be read (exit 3)
    │   ├── PersonaError               a persona file or mapping
    │   ├── TemplateError              a `{{name}}` template
    │   ├── MissingCredentialError     a model's key or token is not set
    │   ├── ManifestError              every problem of a manifest (manifest/types.py)
    │   ├── TargetConfigError          every problem of a URL target (targets/http/problems.py)
    │   └── SourceError                a document, prompt or log `simulator generate` reads
    ├── GenerationError                `simulator generate`: the model's answers could not be used (exit 3)
    ├── MissingExtraError (+ImportError)  an optional dependency is not installed
    └── TurnError                      one turn failed: its `reason` is one of STOP_REASONS
                                       (records/result.py), `fatal` ends the conversation

Raised and caught inside one stage, never reaching a user as such:

    parsing:  JSONError ← NotJSON (strict_json), PathError (json_path)
    manifest: RowProblem (datasets) → a problem at the dataset row's line
    aio:      ExchangeFailed (http_sessions) → a target's TurnError
    targets:  RetryLater (retry), UnusableAnswer, MissingReply (http/format),
              SwaggerUnreadable (http/promptflow_swagger) → TurnError or a problem
    state:    StateError (client) → the outcome check's ERROR
    results:  StorageError (folder) → the run stops with every finished conversation kept
    conversation: ConversationCancelled (loop, an asyncio.CancelledError) → a cancelled run
    github:   ArtifactError, BaselineUnavailable, CommentError, FileCommandError, NotJSON
              (json_numbers), UnsafeArchive (safe_unzip) → a warning in the log and summary
"""

from __future__ import annotations

from .text.known_secrets import scrub, scrub_text


class SimulatorError(Exception):
    """Base class of every error this package raises on purpose."""


class ConfigError(SimulatorError, ValueError):
    """A file, argument or setting is invalid; nothing ran."""


class FieldError(ConfigError):
    """A `ConfigError` about one field inside the value being read (`field`, a path relative to it),
    so a manifest can point at that field's own line."""

    def __init__(self, field: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.field = field


class FieldErrors(ConfigError):
    """Several `FieldError`s at once (one per item of a list), so one bad item hides no other."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("\n".join(str(error) for error in errors))
        self.errors = errors


def field_errors(exc: ConfigError) -> list[tuple[tuple[str | int, ...], str]]:
    """Each problem in `exc` with the field it is about (`()` when it names none)."""
    if isinstance(exc, FieldErrors):
        return [(error.field, str(error)) for error in exc.errors]
    return [(getattr(exc, "field", ()), str(exc))]


class UnreadableRecord(ConfigError):
    """A record a run left (results lines, plan.json, summary.json, a base run's) that cannot be
    read: the data is damaged or not ours, not the configuration (commands exit with 3, not 2)."""


class PersonaError(ConfigError):
    """A persona file or persona argument is invalid."""


class TemplateError(ConfigError):
    """A prompt template uses a placeholder nobody provides."""


class MissingCredentialError(ConfigError):
    """An LLM credential is not available (e.g. secrets are not passed to fork pull requests)."""


class SourceError(ConfigError):
    """A source `simulator generate` was given (documents, a system prompt, a log file) cannot be
    used: the message names the file (and line) and what to give instead."""


class GenerationError(SimulatorError):
    """`simulator generate` could not finish: the model failed, or answered what cannot be used
    after one repair retry. Nothing was written; the message says which call and why."""


class MissingExtraError(SimulatorError, ImportError):
    """An optional dependency is needed for a feature the user asked for."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the '{module}' package, which is not installed. "
            f"Install it with: pip install 'chat-simulator[{extra}]'"
        )


class TurnError(SimulatorError):
    """A turn could not be produced; the conversation ends with `reason` recorded.

    Its message and detail often quote what a server answered (an error body naming the key the
    request carried), so known credentials are scrubbed from both when it is made.
    """

    def __init__(self, reason: str, message: str, *, detail: dict | None = None, fatal: bool = False) -> None:
        super().__init__(scrub_text(message))
        self.reason = reason
        self.detail = scrub(detail or {})
        #: the same failure will hit every conversation (bad key, wrong URL): a runner may stop early
        self.fatal = fatal
