"""From a manifest to a finished run: plan, connect, play, keep every result.

Takes: a `Manifest` and the command's options.
Gives: `plan` (which conversations: simulations × repeats, filtered, sharded), `connections`
(the app target and the user for each simulation, one rate limiter per endpoint), `runner` (plays
them concurrently and writes each the moment it ends; `playing` is one conversation's part,
`completion` says when the run is done with a simulation),
`state_hooks` (setup → conversation → outcome checks → teardown),
`replay` (the base run's users on both sides of a comparison), `resume`, `recheck`,
`exit_codes` and `pipeline` (the one way every front end runs).
Used by: the CLI (`simulator.cli`) and the action (`simulator.github`).
"""
