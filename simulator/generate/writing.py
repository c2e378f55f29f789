"""The generated simulations written as YAML a reviewer can read, and checked as `simulator validate` checks it.

Written as text, so comments can say where each simulation came from and which checks are
proposals; values go through `yaml.safe_dump`, so any text the model wrote is quoted as YAML needs.
Names follow the manifest's pattern and are unique in the file. A new file is a whole manifest
(the target, user, judge and defaults copied from the manifest generation read); `--append` inserts
the simulations at the end of an existing manifest's `simulations:` list and changes no other byte.
Either way the result is loaded with `load_manifest` before it replaces anything: a file that would
not validate is never written in its place.
"""

from __future__ import annotations

import os
import re
import unicodedata
from pathlib import Path
from typing import Any

import yaml

from ..errors import ConfigError, GenerationError
from ..manifest import ManifestError, load_manifest
from .candidates import Candidate
from .dedup import STOPWORDS

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
NAME_WORDS = 5
PREFIXES = {"docs": "docs", "prompt": "prompt", "logs": "logs"}
JUDGE_NOTE = "# the judge of the proposed rubrics (added by simulator generate): the user model, until you pick one"


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    words = [w for w in re.findall(r"[a-z0-9]+", ascii_text) if w not in STOPWORDS]
    return "-".join(words[:NAME_WORDS])


def names_for(candidates: list[Candidate], taken: set[str]) -> list[str]:
    """A unique, valid name for each: `docs-return-unworn-boots`, `attack-jailbreak-2`."""
    used = {n.casefold() for n in taken}
    names = []
    for candidate in candidates:
        base = candidate.prefix or "-".join(p for p in (PREFIXES.get(candidate.origin, ""), _slug(candidate.task)) if p)
        base = re.sub(r"-+", "-", base).strip("-.")[:60] or "generated"
        name, number = base, 2
        while name.casefold() in used:
            name, number = f"{base}-{number}", number + 1
        assert NAME_PATTERN.match(name), name
        used.add(name.casefold())
        names.append(name)
    return names


def _dump(key: str, value: Any, flow: bool = False) -> list[str]:
    text = yaml.safe_dump(
        {key: value}, sort_keys=False, allow_unicode=True, width=100, default_flow_style=None if flow else False
    )
    return text.rstrip("\n").split("\n")


def simulation_lines(candidate: Candidate, name: str) -> list[str]:
    """One item of `simulations:`, at column 0 (the caller indents it), its comments above."""
    lines = [f"# {note}" for note in candidate.notes]
    if candidate.merged:
        lines.append(f"# also stands for near-duplicates from {', '.join(candidate.merged)}")
    fields = [
        _dump("name", name),
        _dump("persona", candidate.persona),
        _dump("task", candidate.task),
        _dump("tags", candidate.tags, flow=True),
    ]
    if candidate.setup:
        fields.append(_dump("setup", candidate.setup))
    if candidate.teardown:
        fields.append(_dump("teardown", candidate.teardown))
    if candidate.expect:
        fields.append([*(f"# {line}" for line in candidate.proposed), *_dump("expect", candidate.expect)])
    body = [line for field in fields for line in field]
    first = next(i for i, line in enumerate(body) if not line.startswith("#"))
    lines += body[:first] + [f"- {body[first]}"] + [f"  {line}" if line else line for line in body[first + 1 :]]
    return lines


def _indent(lines: list[str], column: int) -> str:
    pad = " " * column
    return "".join(f"{pad}{line}\n" if line else "\n" for line in lines)


def items_text(candidates: list[Candidate], names: list[str], column: int) -> str:
    """The simulations as items of a block list whose dashes are at `column`, one blank line apart."""
    blocks = [_indent(simulation_lines(c, n), column) for c, n in zip(candidates, names, strict=True)]
    return "\n".join(blocks)


def _relocated(target: Any, base_folder: Path, out_folder: Path) -> Any:
    """A `file.py:function` callback's path made relative to the new file's folder."""
    if not isinstance(target, dict) or not isinstance(target.get("callback"), str):
        return target
    module, colon, function = target["callback"].rpartition(":")
    if not module.endswith(".py") or Path(module).is_absolute():
        return target
    moved = os.path.relpath((base_folder / module).resolve(), out_folder.resolve())
    return {**target, "callback": f"{Path(moved).as_posix()}{colon}{function}"}


def manifest_text(
    header: list[str],
    base: dict[str, Any],
    base_folder: Path,
    out: Path,
    candidates: list[Candidate],
    names: list[str],
) -> str:
    """A whole manifest: the header's comments, the base's target, user, judge and defaults, the simulations."""
    lines = [f"# {line}" if line else "#" for line in header]
    lines.append("version: 1")
    top = {
        "target": _relocated(base.get("target"), base_folder, out.parent),
        "user": base.get("user"),
        "judge": base.get("judge"),
        "defaults": base.get("defaults"),
    }
    for key, value in top.items():
        if value is None and key == "judge" and needs_judge(candidates) and base.get("user"):
            lines.append(JUDGE_NOTE)
            value = base["user"]
        if value is None and key == "target":
            lines.append("# the app under test: see docs/guides/your-app.md")
            value = {"url": "${APP_URL}"}
        if value is not None:
            lines += _dump(key, value)
    lines.append("simulations:")
    return "\n".join(lines) + "\n" + items_text(candidates, names, 2)


def insertion_point(text: str, source: str) -> tuple[int, int, bool]:
    """Where `--append` inserts: (offset, the column of the list's dashes, whether `simulations:`
    must be added). After the last item's last line, before any comment or blank line that follows."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: cannot be read as YAML ({exc}); fix it before --append") from None
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{source}: not a manifest (a mapping with version and simulations); --append needs one")
    for key, value in node.value:
        if getattr(key, "value", None) != "simulations":
            continue
        if not isinstance(value, yaml.SequenceNode) or value.flow_style or not value.value:
            raise ConfigError(
                f"{source}:{key.start_mark.line + 1}: simulations is not a block list ('- name: ...' items); "
                "--append adds items to a block list: rewrite it as one, or generate into a new file"
            )
        end = value.value[-1].end_mark
        lines = text.splitlines(keepends=True)
        line = min(end.line if end.column > 0 else end.line - 1, len(lines) - 1)
        while line > 0 and (not lines[line].strip() or lines[line].lstrip().startswith("#")):
            line -= 1
        return sum(len(x) for x in lines[: line + 1]), value.start_mark.column, False
    return len(text), 2, True


def appended_text(
    text: str, source: str, header: list[str], candidates: list[Candidate], names: list[str], user: dict[str, Any]
) -> str:
    """`text` with the simulations inserted into its `simulations:` list (or a new one at the end),
    and, when the proposed rubrics need one and it has none, a `judge` (`user`) added at its end."""
    offset, column, new_key = insertion_point(text, source)
    before, after = text[:offset], text[offset:]
    glue = "" if not before or before.endswith("\n") else "\n"
    items = _indent([f"# {line}" for line in header], column) + items_text(candidates, names, column)
    joined = f"{before}{glue}simulations:\n{items}{after}" if new_key else f"{before}{glue}\n{items}{after}"
    has_judge = isinstance(yaml.safe_load(text), dict) and yaml.safe_load(text).get("judge") is not None
    if needs_judge(candidates) and not has_judge:
        ending = "" if joined.endswith("\n") else "\n"
        judge = "\n".join([JUDGE_NOTE, *_dump("judge", user)])
        joined = f"{joined}{ending}{judge}\n"
    return joined


def needs_judge(candidates: list[Candidate]) -> bool:
    return any("rubric" in c.expect or "goal_completed" in c.expect for c in candidates)


def write_checked(text: str, out: Path) -> list[str]:
    """Write `text` to `out` once `load_manifest` accepts it (its warnings returned). A text it
    refuses is kept beside `out` (`.rejected`) for a bug report, and `out` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    trial = out.with_name(f".{out.name}.generating")
    trial.write_text(text, encoding="utf-8")
    try:
        manifest = load_manifest(trial, need=())
    except ManifestError as exc:
        rejected = out.with_name(f"{out.name}.rejected")
        os.replace(trial, rejected)
        problems = "\n".join(f"  - {p}" for p in exc.problems[:10])
        raise GenerationError(
            f"the generated manifest does not validate, so {out} was not written; it is kept at {rejected}:\n{problems}"
        ) from None
    except BaseException:
        trial.unlink(missing_ok=True)
        raise
    os.replace(trial, out)
    return [w.replace(str(trial), str(out)) for w in manifest.warnings]
