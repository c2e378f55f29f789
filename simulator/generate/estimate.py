"""What a generation will cost, said before anything is spent: the calls, and their tokens
estimated from the prompts' characters (four to a token: no tokenizer, since a local model's is
unknown) and what each answer is expected to take."""

from __future__ import annotations

from dataclasses import dataclass

from .asking import Call
from .clusters import CLUSTER_CALL_CHARS

CHARS_PER_TOKEN = 4


@dataclass(frozen=True)
class Estimate:
    """The calls known now, those that follow once the logs' intents are known, and their tokens."""

    calls: int
    later: int
    prompt_tokens: int
    completion_tokens: int

    def line(self, model: str) -> str:
        later = f" ({self.calls} now, up to {self.later} once the logs' intents are clustered)" if self.later else ""
        return (
            f"Estimated cost: {self.calls + self.later} call(s) to {model}{later}, about "
            f"{self.prompt_tokens:,} prompt and {self.completion_tokens:,} completion tokens "
            f"({CHARS_PER_TOKEN} characters a token); an answer that needs repairing costs one call more"
        )


def estimate(calls: list[Call], later: int) -> Estimate:
    """The cost of `calls` and of `later` calls whose prompts are not known yet."""
    prompt = sum(call.chars for call in calls) + later * CLUSTER_CALL_CHARS
    completion = sum(call.expected_tokens for call in calls) + later * 350
    return Estimate(len(calls), later, -(-prompt // CHARS_PER_TOKEN), completion)


def call_lines(calls: list[Call], later: int) -> list[str]:
    """`--dry-run`: each call and the size of its prompt."""
    lines = [
        f"  {call.label}: {call.chars:,} characters, ~{call.expected_tokens:,} completion tokens" for call in calls
    ]
    if later:
        lines.append(
            f"  then up to {later} call(s), one per cluster of the logs' intents: ~{CLUSTER_CALL_CHARS:,} "
            "characters each"
        )
    return lines
