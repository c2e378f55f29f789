"""Fault injection through the real runner: app faults, user-LLM faults, signals, results folders."""
