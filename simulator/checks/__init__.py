"""Checks on finished conversations, the LLM judge, and the run's pass/fail gate."""

from .base import ERROR, FAIL, PASS, Check, CheckResult
from .evaluate import REGISTRY, EvaluationContext, build_checks, evaluate
from .gate import decide_gate, pass_at_k, pass_hat_k, simulation_verdict

__all__ = [
    "ERROR",
    "FAIL",
    "PASS",
    "REGISTRY",
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
