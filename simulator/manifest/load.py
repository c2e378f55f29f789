"""Loading a manifest, one way: read → fill in `${VAR}` → resolve → build, one list of problems.

Every problem is collected and reported at once, each as `file:line: field: what is wrong`;
nothing runs until the manifest is valid.

A manifest may come from an untrusted pull request, so what it can reach is bounded:

- `${VAR}` never reads the runner's credentials, and `SIMULATOR_ALLOWED_VARS` narrows what it
  reads (see `variables`); the same rule applies to `api_key_env`.
- Persona files and `file.py:function` callbacks must lie inside the root (see `resolve_root`).
- Loaded with `trusted=False`, a manifest is data only: callback targets (module or file) and
  persona files are refused, since they would run or read what the manifest's own source chose.

A command needs only part of a manifest (`need`): `check` never calls the app, so an unset
`APP_URL` must not stop it, and `validate` runs nothing at all. Unset variables in the sections a
command does not use are warnings (`Manifest.warnings`), not problems.

The credentials a manifest reads become known secrets, scrubbed from all the run produces
(`register_secrets`).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from pathlib import Path

from ..parsing.yaml_source import format_path, paused_gc
from ..text.unicode_safety import replace_lone_surrogates, surrogate_note
from .build import build_simulations, cut_script_warnings
from .files import FileAccess, callback_problems, resolve_root
from .personas import PersonaResolver, persona_file_problems
from .read import in_file_order, read_manifest
from .resolve import Resolver, written_entries
from .rows import dataset_simulations
from .types import UNTRUSTED_NOTE, Manifest, ManifestError
from .variables import SECTIONS, fill_variables


def load_manifest(
    path: str | Path,
    root: str | Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    app_url: str | None = None,
    trusted: bool = True,
    untrusted_note: str = UNTRUSTED_NOTE,
    need: Collection[str] | None = None,
) -> Manifest:
    """Read, interpolate and validate a manifest; raise `ManifestError` listing every problem.

    Persona files and `file.py:function` callbacks must lie inside `root` (default: the current
    directory if the manifest lies inside it, else the manifest's folder; see `resolve_root`).
    `${VAR}` reads `environ` (default `os.environ`) under the rule of `variable_refusal`.

    `need` names the sections (`SECTIONS`: target, user, judge, checks, simulations) whose
    variables must be set; default all of them, as `run` uses. An unset variable elsewhere keeps
    its `${VAR}` text and is listed in `Manifest.warnings`.

    `trusted=False` is for a manifest whose folder holds content nobody vouched for: it is read
    as data only, and every callback target (module or file, top level and per simulation) and
    every persona file is a problem ending with `untrusted_note` (say why, and how to allow it);
    predefined and inline personas still work.
    """
    need = SECTIONS if need is None else frozenset(need)
    if not need <= SECTIONS:
        raise ValueError(f"need: unknown section(s) {sorted(need - SECTIONS)}; known: {sorted(SECTIONS)}")
    path = Path(path)
    source = str(path)
    allowed_root = resolve_root(path, root)
    access = FileAccess(path.parent, allowed_root, None if trusted else untrusted_note)
    environ = os.environ if environ is None else environ
    with paused_gc():  # thousands of simulations build many objects and no cycles
        doc, problems, warnings = read_manifest(path)
        if problems:  # nothing further is checked but the files the manifest names
            files = persona_file_problems(doc, PersonaResolver(access))
            raise ManifestError(source, in_file_order([*problems, *files], source))
        variables = fill_variables(doc, environ, need, app_url)
        data, problems = variables.data, variables.problems
        problems.extend(callback_problems([(data.get("target"), ("target",), doc)], access))
        resolver = Resolver(data, doc, access, problems)
        resolved = resolver.resolve(doc, written_entries(data))
        rows = dataset_simulations(data, doc, access, resolver, problems)
        resolver.report_to(problems)
        counts = rows.counts if rows is not None else None
        simulations = build_simulations(resolved, data, doc, access, problems, counts)
        if rows is not None:
            rows.required = frozenset((data.get("gate") or {}).get("required") or [])
    if problems:
        raise ManifestError(source, list(dict.fromkeys(problems)))
    for sim in simulations:
        notes = [(at, n) for at, n in variables.replaced if at[:2] == ("simulations", sim.index)]
        sim.notes = [surrogate_note(n, _field(at)) for at, n in notes]
    cut = [*cut_script_warnings(simulations, doc), *(rows.warnings() if rows is not None else [])]
    replacements = [f"{doc.where(at)}: {_field(at)}: {surrogate_note(n, 'its text')}" for at, n in variables.replaced]
    return Manifest(
        path=path,
        simulations=simulations,
        target=data.get("target"),
        user=data.get("user"),
        data=data,
        judge=data.get("judge"),
        gate=data.get("gate"),
        variables=variables.used,
        root=allowed_root,
        rows=rows,
        warnings=list(dict.fromkeys([*variables.warnings, *replacements, *warnings, *cut])),
    )


def _field(path: tuple) -> str:
    """A field's path as messages spell it, its keys valid text."""
    return format_path(tuple(replace_lone_surrogates(part)[0] for part in path))
