"""Bundled examples: a small store assistant to simulate against, and a quickstart script.

Takes: nothing; they use the public API (`from simulator import ...`) as a reader's code would.
Gives: `store_app` (a local chat app with state endpoints) and `quickstart` (a first run from Python).
Used by: the README's first command, the tests and the benches.
"""
