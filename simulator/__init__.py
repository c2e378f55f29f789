"""Simulated users for chat apps: an LLM plays a persona, talks to your app, and every turn is recorded.

from simulator import Persona, Simulator, OpenAIChatCompletionsModel, PlainTokenManager
"""

from .conversation.loop import ConversationCancelled, Simulator
from .conversation.users import LLMUser, ScriptedUser, UserSide
from .errors import (
    ConfigError,
    MissingCredentialError,
    MissingExtraError,
    PersonaError,
    SimulatorError,
    TemplateError,
    TurnError,
)
from .llm.models import OpenAIChatCompletionsModel
from .llm.token_managers import (
    APITokenManager,
    KeyVaultAPITokenManager,
    ManagedIdentityAPITokenManager,
    PlainTokenManager,
)
from .persona import GIVE_UP_MARKER, STOP_MARKER, Persona, predefined_personas
from .records import (
    CheckOutcome,
    ConversationResult,
    ErrorRecord,
    Evaluation,
    GateVerdict,
    MetaData,
    PlanRecord,
    RunInfo,
    SimulationSummary,
    Summary,
    Totals,
    Turn,
)
from .records.history_refs import expand_request
from .records.result import STOP_REASONS, validate_result
from .targets import AppReply, CallbackTarget, HttpTarget, ModelTarget, Target

__version__ = "0.1.0"

__all__ = [
    "GIVE_UP_MARKER",
    "STOP_MARKER",
    "STOP_REASONS",
    "APITokenManager",
    "AppReply",
    "CallbackTarget",
    "CheckOutcome",
    "ConfigError",
    "ConversationCancelled",
    "ConversationResult",
    "ErrorRecord",
    "Evaluation",
    "GateVerdict",
    "HttpTarget",
    "KeyVaultAPITokenManager",
    "LLMUser",
    "ManagedIdentityAPITokenManager",
    "MetaData",
    "MissingCredentialError",
    "MissingExtraError",
    "ModelTarget",
    "OpenAIChatCompletionsModel",
    "Persona",
    "PersonaError",
    "PlainTokenManager",
    "PlanRecord",
    "RunInfo",
    "ScriptedUser",
    "SimulationSummary",
    "Simulator",
    "SimulatorError",
    "Summary",
    "Target",
    "TemplateError",
    "Totals",
    "Turn",
    "TurnError",
    "UserSide",
    "expand_request",
    "predefined_personas",
    "validate_result",
]
