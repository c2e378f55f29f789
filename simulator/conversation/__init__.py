"""One conversation: the user (an LLM in persona or a script) and the turn loop.

Takes: a `Persona`, a task, a user side (`users`) and a `Target`.
Gives: `loop.Simulator` (plays the turns and records each as a `conversation_result`) and
`users` (`LLMUser`, `ScriptedUser`, the stop and give-up signals).
Used by: the public API (`from simulator import Simulator`), `run.runner`, `run.replay`.
"""
