"""The action's `baseline` input: `auto` (the base branch's newest results artifact), a folder in
the workspace, or none.

The run's results are finished before the baseline is looked for, and nothing here fails the
job: when there is no baseline (not a pull request, no artifact yet, no `actions: read`, an
archive refused), the comment and job summary say why in one line and the report goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..report import load_baseline
from ..results_folder import RESULTS_FILE
from . import commands
from .artifact import safe_name
from .baseline_artifact import ArtifactReader, BaseArtifact, BaselineUnavailable
from .inputs import GitHubContext, Inputs
from .safe_unzip import UnsafeArchive, extract

#: what the comparison reads of a base artifact; nothing else is unpacked
WANTED = ("summary.json", RESULTS_FILE)
#: candidates tried when the newest expired between listing and download
DOWNLOAD_TRIES = 3


@dataclass(frozen=True)
class Baseline:
    """What the run is compared with; all None but `note` when there is nothing to compare with."""

    summary: dict[str, Any] | None = None
    #: the base run's results folder (its conversations are shown beside this run's)
    folder: Path | None = None
    #: names the base run in report.html
    label: str | None = None
    #: one line for the comment and job summary: what was compared with, or why nothing was
    note: str | None = None
    run_url: str | None = None


def _from_folder(inputs: Inputs, ctx: GitHubContext) -> Baseline:
    folder = ctx.workspace / inputs.baseline
    try:
        summary = load_baseline(folder)
    except ConfigError as exc:
        commands.warning(f"input baseline: {exc}; reporting without a comparison.")
        return Baseline(note=f"No baseline: input baseline: {exc}")
    return Baseline(summary, folder, inputs.baseline, f"Compared with {inputs.baseline}.")


def _describe(artifact: BaseArtifact) -> str:
    sha = f"commit {artifact.head_sha[:7]}, " if artifact.head_sha else ""
    return f"artifact {artifact.name} of run {artifact.run_id} on {artifact.branch} ({sha}{artifact.created_at})"


def _fetch(inputs: Inputs, ctx: GitHubContext, scratch: Path) -> Baseline:
    """The newest live artifact of this repository's base branch, unpacked into `scratch`."""
    if inputs.shard:
        raise BaselineUnavailable("a shard is not compared on its own; the job that merges the shards compares")
    if ctx.pr_number is None:
        raise BaselineUnavailable(f"not a pull request ({ctx.event_name or 'no event'}): nothing to compare with")
    if not ctx.base_ref:
        raise BaselineUnavailable("the event names no base branch")
    if not inputs.github_token:
        raise BaselineUnavailable("no github-token to read the base branch's artifacts with", warn=True)
    name = safe_name(inputs.artifact_name)
    reader = ArtifactReader(ctx.api_url, ctx.repository, inputs.github_token)
    archive, folder = scratch / "artifact.zip", scratch / "results"
    for tries, artifact in enumerate(reader.candidates(name, ctx.base_ref, exclude_run=ctx.run_id), 1):
        archive.unlink(missing_ok=True)
        if not reader.download(artifact, archive):  # expired since it was listed: the next newest
            if tries >= DOWNLOAD_TRIES:
                break
            continue
        folder.mkdir()
        try:
            extract(archive, folder, wanted=WANTED)
        except UnsafeArchive as exc:
            raise BaselineUnavailable(f"{_describe(artifact)} was refused: {exc}", warn=True) from None
        finally:
            archive.unlink()
        try:
            summary = load_baseline(folder)
        except ConfigError:
            raise BaselineUnavailable(f"{_describe(artifact)} holds no readable summary.json", warn=True) from None
        run_url = f"{ctx.server_url}/{ctx.repository}/actions/runs/{artifact.run_id}"
        return Baseline(summary, folder, _describe(artifact), f"Compared with {_describe(artifact)}.", run_url)
    raise BaselineUnavailable(
        f"no artifact {name} from a run on {ctx.base_ref} of this repository yet (or they expired); "
        f"the workflow must also run on push to {ctx.base_ref} to leave one"
    )


def resolve_baseline(inputs: Inputs, ctx: GitHubContext, scratch: Path) -> Baseline:
    """The baseline the `baseline` input asks for; `scratch` is an empty folder for a download."""
    if not inputs.baseline:
        return Baseline()
    if inputs.baseline != "auto":
        return _from_folder(inputs, ctx)
    try:
        baseline = _fetch(inputs, ctx, scratch)
    except BaselineUnavailable as exc:
        note = f"No baseline: {exc}."
        if exc.warn:
            commands.warning(note, title="No baseline")
        else:
            print(note, flush=True)
        return Baseline(note=note)
    except OSError as exc:  # the scratch folder could not be written
        commands.warning(f"No baseline: the base artifact could not be unpacked ({exc.strerror or exc}).")
        return Baseline(note=f"No baseline: the base artifact could not be unpacked ({exc.strerror or exc}).")
    print(baseline.note, flush=True)
    return baseline
