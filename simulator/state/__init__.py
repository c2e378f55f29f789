"""Requests about the app's state around a conversation: `setup`, `teardown` and outcome queries.

Takes: the manifest's request specs (`requests`) and a target's way of sending (`client`).
Gives: `StateRequest` and `request_list` (read and checked specs) and `StateClient` (sends them
the way the target sends its turns, and reads the answers).
Used by: `manifest` (builds the specs), `checks.outcome` (asks), `run.state_hooks` (orders setup,
conversation, checks and teardown). It knows nothing of checks or conversations.
"""
