"""The simulations manifest, loaded one way: read → check → resolve → build.

Takes: a manifest file, the environment and the command's needs.
Gives: a `Manifest` of typed `Simulation`s, or a `ManifestError` listing every problem as
`file:line: field: what is wrong`.
Flow: `load` reads the YAML with positions (`parsing.yaml_source`) and checks it against the
schema; `variables` fills in `${VAR}`; `simulations` resolves personas, defaults, checks and
state requests; `targets` checks each URL target as the run will build it. Each step adds to one
list of problems and none calls back into an earlier one.
Used by: `run` (plans and plays it), the CLI's `validate` and the action.
"""
