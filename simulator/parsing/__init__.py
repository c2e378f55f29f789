"""Reading what users and servers write, each problem named at its line.

Takes: text from outside (YAML manifests and persona files, JSON answers, HTTP headers,
`{{name}}` templates, JSON paths into a reply).
Gives: `yaml_source` (YAML with the line of every value), `schema_check` (JSON Schema problems as
`file:line: field: what is wrong`), `schema_fast` (a schema compiled into one predicate),
`strict_json` (the one JSON reader: no repeated keys, no NaN, bounded depth), `header_numbers`,
`template` and `json_path`.
Used by: `persona`, `manifest`, `llm`, `targets`, `checks`, `results`; it sits on `errors` and `text` only.
"""
