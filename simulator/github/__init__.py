"""The GitHub Action: a thin layer over the library for the runner.

Takes: the runner's `INPUT_*` and `GITHUB_*` environment, its event file and the REST API.
Gives: `action.main` (entrypoint.py's work: validate, run through `run.pipeline`, upload the
results artifact, post or update the one PR comment, write the job summary and outputs).
Used by: `entrypoint.py` only; the library never imports it.
"""
