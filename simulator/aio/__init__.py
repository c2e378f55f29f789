"""Async plumbing: deadlines that keep a cancellation, blocking wrappers, the run's HTTP sessions.

Takes: coroutines and their time limits.
Gives: `deadlines.deadline` (a timeout that never swallows Ctrl-C), `event_loops` (the thin sync
wrappers over the async core, signals included) and `http_sessions` (the aiohttp sessions every
request of a run goes through).
Used by: `llm`, `targets`, `state`, `conversation`, `run`.
"""
