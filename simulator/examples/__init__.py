"""Bundled examples: a small store assistant to simulate against, and a quickstart script."""
