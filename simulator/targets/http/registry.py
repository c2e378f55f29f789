"""The HTTP formats a target may speak, by the name a manifest gives in `format:`.

A new format is a module with an `HttpFormat` subclass and one entry here; the manifest schema's
`format` enum lists the same names (a test holds them equal).
"""

from __future__ import annotations

from .format import HttpFormat
from .gradio import GradioFormat
from .openai import OpenAIFormat
from .promptflow import PromptflowFormat
from .templated import TemplatedFormat

#: format name -> its class, in the order messages list them (the first is the default)
FORMATS: dict[str, type[HttpFormat]] = {
    PromptflowFormat.name: PromptflowFormat,
    OpenAIFormat.name: OpenAIFormat,
    TemplatedFormat.name: TemplatedFormat,
    GradioFormat.name: GradioFormat,
}
DEFAULT_FORMAT = "promptflow"
