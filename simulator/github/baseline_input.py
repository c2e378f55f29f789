"""The action's `baseline` input: `auto` (the base branch's newest results artifact), a folder in
the workspace, or none.

The baseline is looked for before the run, which replays its users (input `replay`), and nothing
here fails the job: when there is no baseline (not a pull request, no artifact yet, no
`actions: read`, an archive refused), the comment and job summary say why in one line and the
report goes on. A shard fetches the base branch's merged artifact for its replay only: the job
that merges the shards compares, once, with the whole base run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..report import load_baseline
from ..results.folder import RESULTS_FILE
from . import commands
from .artifact import safe_name
from .baseline_artifact import ArtifactReader, BaseArtifact, BaselineUnavailable
from .inputs import GitHubContext, Inputs
from .safe_unzip import UnsafeArchive, extract

#: what the comparison reads of a base artifact; nothing else is unpacked
WANTED = ("summary.json", RESULTS_FILE)
#: candidates tried when the newest expired between listing and download
DOWNLOAD_TRIES = 3
MERGE_COMPARES = "the job that merges the shards compares"


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
    #: a shard's: `folder` is replayed, `summary` is None, and the merge job compares
    replay_only: bool = False


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
    if inputs.shard and not inputs.replay:
        raise BaselineUnavailable(
            "a shard is not compared on its own (the job that merges the shards compares) and replay is false"
        )
    if ctx.pr_number is None:
        raise BaselineUnavailable(f"not a pull request ({ctx.event_name or 'no event'}): nothing to compare with")
    if not ctx.base_ref:
        raise BaselineUnavailable("the event names no base branch")
    if not inputs.github_token:
        raise BaselineUnavailable("no github-token to read the base branch's artifacts with", warn=True)
    name = safe_name(inputs.baseline_artifact or inputs.artifact_name)
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
        run_url = f"{ctx.server_url}/{ctx.repository}/actions/runs/{artifact.run_id}"
        _say_unusable(reader)
        if inputs.shard:
            return _for_replay(artifact, folder, run_url)
        try:
            summary = load_baseline(folder)
        except ConfigError:
            raise BaselineUnavailable(f"{_describe(artifact)} holds no readable summary.json", warn=True) from None
        return Baseline(summary, folder, _describe(artifact), f"Compared with {_describe(artifact)}.", run_url)
    _say_unusable(reader)
    hint = f"the workflow must also run on push to {ctx.base_ref} to leave one"
    if inputs.shard and not inputs.baseline_artifact:
        hint += "; a shard with an artifact-name of its own sets baseline-artifact to the merge job's artifact"
    raise BaselineUnavailable(
        f"no artifact {name} from a run on {ctx.base_ref} of this repository yet (or they expired); {hint}"
    )


def _say_unusable(reader: ArtifactReader) -> None:
    """Newer artifacts passed over because GitHub listed them with numbers that cannot be used."""
    if reader.unusable:
        more = f" (and {len(reader.unusable) - 1} more)" if len(reader.unusable) > 1 else ""
        commands.warning(f"Passed over {reader.unusable[0]}{more}.", title="Base artifact skipped")


def _for_replay(artifact: BaseArtifact, folder: Path, run_url: str) -> Baseline:
    """A shard's baseline: the base run's conversations to replay, nothing to compare with."""
    if not (folder / RESULTS_FILE).is_file():
        raise BaselineUnavailable(f"{_describe(artifact)} holds no {RESULTS_FILE} to replay", warn=True)
    note = f"Replaying the users of {_describe(artifact)}; {MERGE_COMPARES}."
    return Baseline(folder=folder, label=_describe(artifact), note=note, run_url=run_url, replay_only=True)


def replayed_note(base: Baseline, replay: Mapping[str, Any] | None) -> str:
    """A shard's line for its job summary once it ran: what it replayed (`run.replay` of its
    summary.json, None when nothing could be replayed) and who compares."""
    if not replay:
        return f"No replay: the conversations of {base.label} could not be replayed; {MERGE_COMPARES}."
    if not replay.get("conversations"):
        return (
            f"Nothing to replay from {base.label}: no LLM-played conversation of this shard is in it; {MERGE_COMPARES}."
        )
    return (
        f"Replayed the users of {replay['conversations']} base conversation(s) of {base.label}: "
        f"{replay.get('identical', 0)} identical, {replay.get('diverged', 0)} diverged; "
        f"user-model calls saved {replay.get('llm_calls_saved', 0)}, made {replay.get('llm_calls_made', 0)}; "
        f"{MERGE_COMPARES}."
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
