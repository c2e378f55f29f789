"""Checks on finished conversations, the LLM judge, and the run's pass/fail gate.

Takes: a conversation_result and the simulation's `expect` settings.
Gives: `build_checks` (one `Check` per `expect` key, listed in `CHECK_KINDS`), `evaluate` (every
check of a conversation, judge calls included), `gate` (the run's verdict from the counts) and
`reuse` (a base run's verdicts for conversations replayed word for word).
Used by: `manifest` (builds the checks), `run` (evaluates each conversation), `results.summary`,
`report` (the gate's words).
"""

from .base import ERROR, FAIL, PASS, Check, CheckResult
from .evaluate import CHECK_KINDS, EvaluationContext, build_checks, evaluate
from .gate import decide_gate, pass_at_k, pass_hat_k, simulation_verdict

__all__ = [
    "CHECK_KINDS",
    "ERROR",
    "FAIL",
    "PASS",
    "Check",
    "CheckResult",
    "EvaluationContext",
    "build_checks",
    "decide_gate",
    "evaluate",
    "pass_at_k",
    "pass_hat_k",
    "simulation_verdict",
]
