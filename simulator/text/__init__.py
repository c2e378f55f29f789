"""Text on its way in and out: cut to a length, lone surrogates replaced, known secrets scrubbed.

Takes: any text the run handles (an app's reply, a model's answer, a message for the log).
Gives: `clip` (a length with a mark where it was cut), `unicode_safety` (U+FFFD for lone
surrogates, visible escapes for control characters) and `known_secrets` (every credential the run
knows becomes "***" in whatever leaves the process).
Used by: every other package; it imports nothing of the simulator's own.
"""
