"""Async plumbing: deadlines that keep a cancellation, blocking wrappers, the run's HTTP sessions.

Takes: coroutines and their time limits.
Gives: `deadlines.deadline` (a timeout that never swallows Ctrl-C, and a turn's that stops while a
rate limit is waited out), `event_loops` (the thin sync wrappers over the async core, signals
included), `http_sessions` (the aiohttp sessions every request of a run goes through), `limiter`
(one endpoint's rate limit shared by every conversation: one pause after a 429, AIMD on the
requests in flight) and `rate_headers` (`Retry-After`, `retry-after-ms`, `x-ratelimit-*` read).
Used by: `llm`, `targets`, `state`, `conversation`, `run`.
"""
