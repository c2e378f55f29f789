"""App connectors: one module per kind of app under test."""

from .base import AppReply, Target
from .callback import CallbackTarget
from .http import HttpTarget
from .model import ModelTarget

__all__ = ["AppReply", "Target", "CallbackTarget", "HttpTarget", "ModelTarget"]
