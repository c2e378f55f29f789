"""The app under test, one module per kind: over HTTP, a Python callback, or a model as the app.

Takes: a target's settings from the manifest (or code) and the conversation so far.
Gives: a `Target` whose `send` returns the app's `AppReply` for one user message; `http` holds
each wire format (JSON, SSE, OpenAI, Prompt flow, Gradio), `retry` and `redaction` what every
kind shares.
Used by: `conversation` (talks to it), `state` (sends state requests the same way), `manifest`
(checks a target as the run will build it), `run.connections` (builds it).
"""

from .base import AppReply, Target
from .callback import CallbackTarget
from .http import HttpTarget
from .model import ModelTarget

__all__ = ["AppReply", "CallbackTarget", "HttpTarget", "ModelTarget", "Target"]
