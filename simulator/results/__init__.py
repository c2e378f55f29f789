"""A results folder on disk: what is written, how it is read back, and what it adds up to.

Takes: conversation results as they finish.
Gives: `folder` (plan.json, conversations.jsonl and summary.json, written so that a crash loses
no finished conversation; `json_writing` holds what those files are written as), `reading`
(streamed, checked reading of conversations.jsonl), `summary` (summary.json as a function of the
results; `simulation_store` keeps each simulation's entry, on disk for a run of many, and
`streamed_json` writes it entry by entry), `record_groups` (records gathered by simulation, on
disk past a few thousand: two runs' conversations, compared; both keep what they move to disk in
a `spill_file`) and `shards` (merging shards' folders).
Used by: `run` (writes and resumes), `report` (reads), the CLI and the action.
"""
