"""The records a run writes, as types, and the conversation_result built turn by turn.

Takes: the shipped schemas; the types need nothing, `result` sits on `parsing` and `text`.
Gives: the `TypedDict`s of `conversation_result`, `summary.json` and `plan.json` (this module),
`result` (the recorder of one conversation and its schema check) and `history_refs` (recorded
requests that point at `conversation[]` instead of repeating it).
Used by: every stage that reads or writes a record, from `targets` up to `report` and `github`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypedDict

# --- conversation_result ------------------------------------------------------------------------------


class Usage(TypedDict):
    """Tokens spent, as the OpenAI API counts them."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    reasoning_tokens: int  # part of completion_tokens: what thinking cost


class _ErrorRequired(TypedDict):
    reason: str
    message: str


class ErrorRecord(_ErrorRequired, total=False):
    """Why a turn or a conversation failed; besides these, the details of the failure (`status`, `url`, ...)."""

    actor: str
    turn_number: int
    fatal: bool
    status: int
    url: str
    code: str
    retries: int
    timeout: float
    traceback: str


class _TurnRequired(TypedDict):
    turn_number: int
    response: str
    actor: str
    request: Any
    full_json_response: Any


class Turn(_TurnRequired, total=False):
    """One message of the conversation, the request that produced it and the answer as received."""

    latency_ms: float
    connect_ms: float
    usage: dict[str, Any] | None
    error: ErrorRecord | None
    notes: list[str]
    reply_chars: int
    stop_signal: str
    reasoning: str


class _PersonaRequired(TypedDict):
    name: str
    profile: str


class PersonaRecord(_PersonaRequired, total=False):
    """The persona the simulated user played."""

    tone: str | None
    meta_data: dict[str, Any] | str | None


class UsageByActor(TypedDict):
    """Tokens of the user side, the app side and both."""

    user: Usage
    assistant: Usage
    total: Usage


class _LatencyRequired(TypedDict):
    per_turn: list[float]


class Latency(_LatencyRequired, total=False):
    """Latencies of a conversation, in milliseconds."""

    app_mean: float | None
    app_max: float | None
    user_total: float
    app_total: float


class _MetaDataRequired(TypedDict):
    persona: PersonaRecord
    task: str
    stop_reason: str
    turn_count: int
    usage: UsageByActor
    latency_ms: Latency


class MetaData(_MetaDataRequired, total=False):
    """How the conversation went and ended; the runner adds the simulation it belongs to."""

    stop_detail: str | None
    is_error: bool
    error: ErrorRecord | None
    max_conversation_turns: int
    user: dict[str, Any]
    app: dict[str, Any]
    started_at: str
    finished_at: str
    duration_ms: float
    notes: list[str]
    # written by the runner
    simulation: str
    repeat: int
    tags: list[str]
    min_passes: int | None
    required: bool
    replay: dict[str, Any]


class _CheckOutcomeRequired(TypedDict):
    name: str
    status: str
    message: str


class CheckOutcome(_CheckOutcomeRequired, total=False):
    """One check's verdict on a conversation, with its evidence."""

    check: str
    evidence: dict[str, Any]
    #: the fingerprint of the check's configuration (and, for a judge check, of the judge and its prompt)
    config_sha: str
    #: the base run's verdict on the same conversation (an identical replay), not judged again
    reused_from_baseline: bool


class Evaluation(TypedDict, total=False):
    """A conversation's verdict: `pass`, `fail` or `error`, and what each check said (the runner writes
    every key; the schema requires none)."""

    status: str
    checks: list[CheckOutcome]
    failed: list[str]
    errors: list[str]


class StateRecord(TypedDict, total=False):
    """A request about the app's state (setup, teardown, an outcome check's), as results keep it: the
    URL without secrets, headers as recorded requests show them, the answer (when small) or the error."""

    name: str
    #: what tells the request apart, placeholders unfilled: an outcome check finds its answer again by it
    key: str
    method: str
    url: str | None
    headers: dict[str, str]
    status: int
    retries: int
    latency_ms: float
    answer: Any
    answer_cut: str
    answer_snippet: str
    error: str
    #: what happened to the answer on the way in (lone surrogates replaced)
    notes: list[str]


class StateRequests(TypedDict, total=False):
    """The state requests made around a conversation, in the order they were made."""

    setup: list[StateRecord]
    outcome: list[StateRecord]
    teardown: list[StateRecord]
    #: when the outcome requests were last made (a `simulator check --requery` makes them again)
    outcome_at: str


class _ConversationResultRequired(TypedDict):
    conversation_id: str
    conversation: list[Turn]
    meta_data: MetaData


class ConversationResult(_ConversationResultRequired, total=False):
    """One simulated conversation: a line of conversations.jsonl, what `Simulator.simulate()` returns."""

    evaluation: Evaluation | None
    state_requests: StateRequests


# --- summary.json ----------------------------------------------------------------------------------------


class GateConfig(TypedDict, total=False):
    """The manifest's `gate:`: what the run must reach to pass."""

    min_pass_rate: float
    max_error_rate: float
    required: list[str]


class SimulationVerdict(TypedDict):
    """A simulation's verdict from its conversations' verdicts, with pass@k and pass^k."""

    status: str
    runs: int
    passes: int
    failures: int
    errors: int
    pass_rate: float | None
    min_passes: int | None
    required: bool
    pass_hat_k: dict[str, float | None]
    pass_at_k: dict[str, float | None]
    failed_checks: dict[str, int]


class GateVerdict(TypedDict):
    """The run's verdict: `pass`, `fail` (the app misbehaved beyond the gate) or `error`, and why."""

    status: str
    reasons: list[str]
    #: errors beyond the gate (too many, missing conversations, a required simulation without a
    #: verdict, an internal error), whatever the failures made `status`
    errored: bool
    pass_rate: float | None
    error_rate: float | None
    passes: int
    failures: int
    errors: int
    missing: int
    simulations_passed: int
    simulations_failed: int
    simulations_errored: int
    pass_hat_k: dict[str, float | None]
    config: GateConfig


class LatencyTotals(TypedDict):
    """App latency over a group of conversations, in milliseconds."""

    app_p50: float | None
    app_p95: float | None
    app_max: float | None


class Totals(TypedDict):
    """Counts, latency and tokens of a group of conversations (the run, or one simulation)."""

    conversations: int
    turns: int
    errors: int
    error_rate: float
    stop_reasons: dict[str, int]
    latency_ms: LatencyTotals
    tokens: Usage
    duration_ms: float


class SimulationSummary(Totals):
    """One simulation in summary.json: its totals and verdict."""

    persona: str
    task: str
    tags: list[str]
    verdict: SimulationVerdict


class RunInfo(TypedDict, total=False):
    """summary.json's `run`: when and how the run went, what is missing and what went wrong."""

    manifest: str
    started_at: str
    finished_at: str
    wall_time_ms: float
    concurrency: int
    interrupted: bool
    shard: str | None
    #: `--filter` and `--tag`, when the run played only the simulations they select
    filters: list[str]
    tags: list[str]
    resumed: int
    rechecked_at: str
    merged_from: list[str]
    # what was planned and what is missing
    planned: int
    finished: int
    missing_count: int
    missing: list[str]
    not_run: list[str]
    unseen_shards: list[int]
    skipped: str
    skipped_simulations: list[str]
    # what went wrong
    fatal_error: str | None
    lost: list[str]
    storage_error: str | None
    internal_errors: list[str]
    #: what went wrong in the last `simulator check` (each check replaces it); counts like internal_errors
    check_errors: list[str]
    warnings: list[str]
    gate_narrowed: list[str]
    replay: dict[str, Any]


class _SummaryRequired(TypedDict):
    run: RunInfo
    gate: GateVerdict
    totals: Totals
    #: a dict, or for a run of many simulations a read-only mapping that reads them from disk
    simulations: Mapping[str, SimulationSummary]


class Summary(_SummaryRequired, total=False):
    """summary.json: the run, its gate verdict, the totals and each simulation; with a base run,
    `comparison`: what changed since it and the evidence (`report.change_evidence.comparison_record`)."""

    comparison: dict[str, Any]


# --- plan.json ----------------------------------------------------------------------------------------


class _PlanRecordRequired(TypedDict):
    order: list[str] | None
    gate: GateConfig | None


class PlanRecord(_PlanRecordRequired, total=False):
    """plan.json: the conversations a run means to play, as keys or as simulations and repeats."""

    version: int
    created_at: str
    manifest: str
    manifest_sha256: str | None
    keys: list[str]
    simulations: list[list[Any]]
    shard: list[int] | None
    options: dict[str, Any]
    planned: int
    planned_total: int
    # merged shards: the shards that were not given
    unseen_count: int
    unseen_shards: list[int]
