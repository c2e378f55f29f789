"""A chat app reached over HTTP: Prompt flow, OpenAI chat completions, a Gradio app, or any JSON API.

`HttpTarget.from_config(manifest["target"])` builds one. Each turn is one request (a Gradio app's
queue takes two; each retried on
429/503/5xx, timeouts and dropped connections); the reply text is read from the JSON answer with a
path (`json_path`), or assembled from a `text/event-stream`. Answers are read as a stream and never
past `max_reply_bytes`, so an endless or huge answer costs a bounded amount of memory.
Per-conversation state (a server-issued session id, cookies) is kept apart so concurrent
conversations never share a session. What is recorded never holds a credential: sensitive headers
and query values are replaced by "***".

What differs between formats lives in one module each (`promptflow`, `openai`, `gradio`,
`templated` for format `http`), listed in `FORMATS`; `target_problems` names every problem of a configuration
without building anything, with the very checks `HttpTarget` runs.
"""

from .answer import RAW_EVENT_BYTES, SNIPPET_CHARS
from .bounded import BoundedBody, read_body
from .config import (
    COMMON_KEYS,
    CONFIG_KEYS,
    DEFAULT_MAX_REPLY_BYTES,
    DEFAULT_TIMEOUT,
    HISTORY_MODES,
    REPLY_BYTES_RANGE,
    HttpSettings,
    check_config,
    config_keys,
    load_settings,
    target_problems,
)
from .errors import FATAL_STATUSES
from .format import PLACEHOLDERS, HttpFormat, Template
from .problems import Problem, Problems, TargetConfigError
from .registry import DEFAULT_FORMAT, FORMATS
from .session import SessionSpec
from .sse import DRAIN_SECONDS, Lines, read_events
from .target import ERROR_BODY_BYTES, HttpTarget, encode_body
from .templated import BODY_PLACEHOLDERS, METHODS

_Lines = Lines  # also importable under its private name

__all__ = [
    "BODY_PLACEHOLDERS",
    "COMMON_KEYS",
    "CONFIG_KEYS",
    "DEFAULT_FORMAT",
    "DEFAULT_MAX_REPLY_BYTES",
    "DEFAULT_TIMEOUT",
    "DRAIN_SECONDS",
    "ERROR_BODY_BYTES",
    "FATAL_STATUSES",
    "FORMATS",
    "HISTORY_MODES",
    "METHODS",
    "PLACEHOLDERS",
    "RAW_EVENT_BYTES",
    "REPLY_BYTES_RANGE",
    "SNIPPET_CHARS",
    "BoundedBody",
    "HttpFormat",
    "HttpSettings",
    "HttpTarget",
    "Lines",
    "Problem",
    "Problems",
    "SessionSpec",
    "TargetConfigError",
    "Template",
    "check_config",
    "config_keys",
    "encode_body",
    "load_settings",
    "read_body",
    "read_events",
    "target_problems",
]
