"""A results folder on disk: conversations.jsonl, summary.json and the reports beside them.

Writing is append-and-flush per conversation; reading validates every line; an older run in the
folder is moved aside rather than mixed with a new one; shards' folders merge into one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import time
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema

from .errors import ConfigError
from .known_secrets import scrub
from .report import HTML_FILE, MARKDOWN_FILE
from .schema_check import load_schema, schema_errors
from .summary import summarize

log = logging.getLogger("simulator.results")
RESULTS_FILE = "conversations.jsonl"
SUMMARY_FILE = "summary.json"
#: where an older run's files go when a new run starts in the same folder
PREVIOUS_DIR = "previous"
#: the files a run leaves in its folder (the CLI and the action write the reports beside the results)
RUN_FILES = (RESULTS_FILE, SUMMARY_FILE, MARKDOWN_FILE, HTML_FILE)


@cache
def _result_validator() -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(load_schema("conversation_result"))


def write_results(path: Path, results: list[dict[str, Any]]) -> None:
    """A whole results file at once, replaced atomically (merges and re-checks)."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for result in results:
            handle.write(json.dumps(scrub(result), ensure_ascii=False) + "\n")
    os.chmod(tmp, 0o644)
    tmp.replace(path)


class ResultWriter:
    """Appends one JSON line per conversation and flushes it before anything else happens."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.results: list[dict[str, Any]] = []
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            reason = _why_not_a_folder(path.parent, exc)
            raise ConfigError(f"{path.parent}: cannot create the results folder: {reason}") from None
        try:
            self._file = path.open("w", encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot write results: {exc.strerror or exc}") from None
        # results are read by later workflow steps that may not run as this user
        os.chmod(path, 0o644)

    def write(self, result: dict[str, Any]) -> None:
        result = scrub(result)  # known credentials never reach the file (see known_secrets)
        self._file.write(json.dumps(result, ensure_ascii=False) + "\n")
        self._file.flush()
        self.results.append(result)

    def close(self) -> None:
        self._file.close()


def _why_not_a_folder(folder: Path, exc: OSError) -> str:
    """mkdir says "File exists" or "Not a directory" when a file stands where a folder must be; name that file."""
    for part in (folder, *folder.parents):
        if part.exists() and not part.is_dir():
            return f"{part} is a file, not a folder"
    return exc.strerror or str(exc)


def _run_label(out: Path) -> str:
    """When the run in `out` started (its summary's `run.started_at`), else its files' mtime; safe as a file name."""
    started = None
    with contextlib.suppress(OSError, ValueError, LookupError, TypeError):  # no summary, or not ours
        started = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))["run"]["started_at"]
    if not isinstance(started, str) or not started.strip():
        times = [(out / name).stat().st_mtime for name in RUN_FILES if (out / name).exists()]
        started = datetime.fromtimestamp(max(times, default=time.time()), timezone.utc).strftime("%Y-%m-%dT%H-%M-%SZ")
    return re.sub(r"[^0-9A-Za-z._-]+", "-", started.strip())[:64].strip(".-") or "run"


def move_previous_run(out: Path) -> Path | None:
    """Move an older run's files out of the way, into `out/previous/<when it started>/`.

    A new run rewrites conversations.jsonl from its first line and summary.json at its end, so in
    a folder that already holds a run the old results would be lost, or read together with the new
    ones (a stale summary or report next to new conversations). Moving them aside keeps both
    apart; returns where they went, or None when the folder held no run.
    """
    if not ((out / RESULTS_FILE).exists() or (out / SUMMARY_FILE).exists()):
        return None
    label = _run_label(out)
    dest = out / PREVIOUS_DIR / label
    number = 1
    while dest.exists():
        number += 1
        dest = out / PREVIOUS_DIR / f"{label}-{number}"
    try:
        dest.mkdir(parents=True)
        for name in RUN_FILES:
            if (out / name).exists():
                os.replace(out / name, dest / name)
    except OSError as exc:
        raise ConfigError(f"{out}: holds an older run that cannot be moved to {dest}: {exc.strerror or exc}") from None
    log.warning("%s held an older run: moved its files to %s", out, dest)
    return dest


def write_summary(out: Path, summary: dict[str, Any]) -> Path:
    path = out / SUMMARY_FILE
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(scrub(summary), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.chmod(tmp, 0o644)
    tmp.replace(path)
    return path


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """Conversation results from a JSONL file; a damaged line is an error naming file and line.

    Every line must be a conversation_result (its JSON Schema) with, when present, an `evaluation`
    as the runner writes it; anything else (truncated lines, other JSON, bad UTF-8, absurd
    nesting) is a `ConfigError`, never another exception. Lines end only at "\\n": U+2028 and
    U+0085, which JSON keeps unescaped inside strings, are text.
    """
    path = Path(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read results: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL character in the path
        raise ConfigError(f"{path!r}: cannot read results: {exc}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise ConfigError(f"{path}:{line}: results are not UTF-8 text ({exc.reason})") from None
    results = []
    for number, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        try:
            result = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{path}:{number}: not a JSON line ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise ConfigError(f"{path}:{number}: not a conversation_result (nested too deeply)") from None
        except ValueError as exc:  # e.g. an integer of more than 4300 digits
            raise ConfigError(f"{path}:{number}: not a usable JSON line ({str(exc).split(':')[0]})") from None
        if not isinstance(result, dict) or "conversation_id" not in result or "meta_data" not in result:
            raise ConfigError(f"{path}:{number}: not a conversation_result")
        where = f"{path}:{number}: not a conversation_result"
        try:
            problems = (
                []
                if _result_validator().is_valid(result)
                else schema_errors(result, "conversation_result", source=where)
            )
        except RecursionError:
            problems = [f"{where}: nested too deeply"]
        if problems:
            raise ConfigError(problems[0])
        results.append(result)
    return results


def merge_results(out_dir: str | Path, shard_dirs: list[str | Path]) -> dict[str, Any]:
    """Join the outputs of several shards into one results folder and summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    move_previous_run(out)
    seen: set[str] = set()
    merged: list[dict[str, Any]] = []
    runs = []
    gate_configs: list[dict[str, Any] | None] = []
    for folder in shard_dirs:
        folder = Path(folder)
        for result in read_results(folder / RESULTS_FILE):
            if result["conversation_id"] in seen:
                raise ConfigError(f"{folder}: conversation {result['conversation_id']} appears in two shards")
            seen.add(result["conversation_id"])
            merged.append(result)
        summary_path = folder / SUMMARY_FILE
        if summary_path.is_file():
            shard_summary = json.loads(summary_path.read_text(encoding="utf-8"))
            runs.append(shard_summary.get("run", {}))
            gate_configs.append((shard_summary.get("gate") or {}).get("config"))
    write_results(out / RESULTS_FILE, merged)
    run = {
        "merged_from": [str(Path(f)) for f in shard_dirs],
        "interrupted": any(r.get("interrupted") for r in runs),
        "fatal_error": next((r["fatal_error"] for r in runs if r.get("fatal_error")), None),
        "not_run": [key for r in runs for key in r.get("not_run", [])],
        "planned": sum(r.get("planned", 0) for r in runs),
    }
    gates = [g for g in gate_configs if g is not None]
    summary = summarize(merged, run, gate=gates[0] if gates else None)
    write_summary(out, summary)
    return summary
