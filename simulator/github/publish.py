"""Publishing a run the ways a pull request shows it: the log, annotations, the comment, the artifact.

Each step that fails (no permission, no artifact service) warns and the others go on: publishing
never loses results.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from ..manifest import Manifest
from ..records import ConversationResult, Summary
from ..report import COMMENT_LIMIT
from ..run.plan import parse_shard
from . import commands
from .artifact import ArtifactError, ArtifactUploader, runtime_available, safe_name
from .comment import MARKER, CommentError, PullRequestComments
from .inputs import GitHubContext, Inputs


def annotation_file(ctx: GitHubContext, manifest_path: Path) -> str:
    try:
        return manifest_path.resolve().relative_to(ctx.workspace.resolve()).as_posix()
    except ValueError:
        return manifest_path.as_posix()


#: simulations given a log group (those that did not pass first); the others get one line, and all are in the artifact
LOGGED_SIMULATIONS = 100
#: transcripts printed in the log per simulation (failed and errored ones first); all are in the artifact
LOGGED_PER_SIMULATION = 20
#: annotations of failed simulations (errors) and of those without a verdict (warnings), required ones
#: first: GitHub shows 10 of each per step, and the step keeps room for its own (no comment, no upload...)
ANNOTATED_FAILURES, ANNOTATED_NO_VERDICT = 8, 5

Verdict = Mapping[str, Any]


class _Pick:
    """At most `limit` simulations, those `preferred` picks before the others, each kept with its place
    in the summary; offered one at a time, so a run of 100,000 holds no more than it keeps."""

    def __init__(self, limit: int, preferred: Callable[[Verdict], bool]) -> None:
        self.limit, self.preferred = limit, preferred
        self.offered = self.offered_preferred = 0
        self._kept: tuple[list[tuple[int, str, Verdict]], list[tuple[int, str, Verdict]]] = ([], [])

    def offer(self, index: int, name: str, verdict: Verdict) -> None:
        self.offered += 1
        first = self.preferred(verdict)
        self.offered_preferred += first
        kept = self._kept[0 if first else 1]
        if len(kept) < self.limit:
            kept.append((index, name, verdict))

    def chosen(self) -> list[tuple[int, str, Verdict]]:
        """The picked simulations in summary order."""
        first, others = self._kept
        return sorted(first + others[: self.limit - len(first)])


def _not_passed(verdict: Verdict) -> bool:
    return verdict["status"] != "pass"


def _required(verdict: Verdict) -> bool:
    return bool(verdict.get("required"))


def _transcripts(results: Iterable[ConversationResult], wanted: Collection[str]) -> dict[str, list[ConversationResult]]:
    """A few conversations of each wanted simulation, failures first, from one pass over the results."""
    by_name: dict[str, list[ConversationResult]] = {}
    for result in results:
        name = result["meta_data"].get("simulation", "?")
        if name not in wanted:
            continue
        kept = by_name.setdefault(name, [])
        passed = (result.get("evaluation") or {}).get("status") == "pass"
        if len(kept) < LOGGED_PER_SIMULATION:
            kept.append(result)
        elif not passed:
            index = next((i for i, r in enumerate(kept) if (r.get("evaluation") or {}).get("status") == "pass"), None)
            if index is not None:
                kept[index] = result
    return by_name


def log_simulations(summary: Summary, results: Callable[[], Iterable[ConversationResult]]) -> None:
    """A log group per simulation with a few of its transcripts; past `LOGGED_SIMULATIONS`, groups for
    that many (those that did not pass first) and a line saying how many more the artifact has."""
    pick = _Pick(LOGGED_SIMULATIONS, _not_passed)
    for index, (name, sim) in enumerate(summary["simulations"].items()):
        pick.offer(index, name, sim["verdict"])
    chosen = pick.chosen()
    by_name = _transcripts(results(), {name for _, name, _ in chosen})
    for _, name, verdict in chosen:
        with commands.group(f"{name}: {verdict['status']} ({verdict['passes']}/{verdict['runs']} passed)"):
            shown = by_name.get(name, [])
            for result in shown:
                _log_conversation(result)
            if verdict["runs"] > len(shown):
                print(f"({verdict['runs'] - len(shown)} more conversation(s) are in the results artifact)", flush=True)
    if pick.offered > len(chosen):
        unlogged = pick.offered_preferred - sum(1 for _, _, verdict in chosen if pick.preferred(verdict))
        print(
            f"({pick.offered - len(chosen)} more simulation(s), {unlogged} of them failed or errored, "
            "are not logged here: every conversation is in the results artifact)",
            flush=True,
        )


def _log_conversation(result: ConversationResult) -> None:
    evaluation = result.get("evaluation") or {}
    print(f"--- #{result['meta_data'].get('repeat', 1)}: {evaluation.get('status', 'error')}", flush=True)
    lines = [f"[{t['turn_number']}] {t['actor']}: {t['response'] or t.get('error')}" for t in result["conversation"]]
    lines += [f"  {c['status']}: {c['name']}: {c['message']}" for c in evaluation.get("checks", [])]
    lines += [f"  error: {e}" for e in evaluation.get("errors", [])]
    commands.print_untrusted("\n".join(lines))


def annotate(summary: Summary, manifest: Manifest | None, ctx: GitHubContext) -> None:
    """An error per failed simulation and a warning per one without a verdict, at the manifest line
    that defines it; past the caps, the required ones first and a notice saying how many more."""
    failed, no_verdict = _Pick(ANNOTATED_FAILURES, _required), _Pick(ANNOTATED_NO_VERDICT, _required)
    for index, (name, sim) in enumerate(summary["simulations"].items()):
        if sim["verdict"]["status"] != "pass":
            (failed if sim["verdict"]["status"] == "fail" else no_verdict).offer(index, name, sim["verdict"])
    for _, name, verdict in sorted(failed.chosen() + no_verdict.chosen()):
        _annotate_simulation(name, verdict, manifest, ctx)
    more_failed, more_errored = failed.offered - len(failed.chosen()), no_verdict.offered - len(no_verdict.chosen())
    if more_failed or more_errored:
        commands.notice(
            f"{more_failed} more failed simulation(s) and {more_errored} more without a verdict are not annotated "
            "(GitHub shows 10 errors and 10 warnings a step): the job summary and the artifact have them all.",
            title="More simulations did not pass",
        )


def _annotate_simulation(name: str, verdict: Verdict, manifest: Manifest | None, ctx: GitHubContext) -> None:
    simulation = manifest.simulation(name) if manifest else None
    file = annotation_file(ctx, manifest.path) if manifest else None
    line = simulation.line if simulation else None
    checks = ", ".join(f"{check} ({count}×)" for check, count in verdict["failed_checks"].items())
    message = (
        f"Simulation {name} {'failed' if verdict['status'] == 'fail' else 'has no verdict'}: "
        f"{verdict['passes']}/{verdict['runs']} passed, {verdict['errors']} errors"
        + (f"; failing checks: {checks}" if checks else "")
    )
    if verdict["status"] == "fail":
        commands.error(message, file=file, line=line, title=f"Simulation {name} failed")
    else:
        commands.warning(message, file=file, line=line, title=f"Simulation {name} has no verdict")


def post_comment(inputs: Inputs, ctx: GitHubContext, summary: Summary, render: Callable[[int], str]) -> str | None:
    """The sticky comment; `render(limit)` writes the report in at most `limit` characters, the
    room GitHub's comment limit leaves beside the marker."""
    if inputs.comment == "never" or ctx.pr_number is None:
        return None
    if not inputs.github_token:
        commands.warning("No github-token: the pull request comment is skipped; the job summary has the report.")
        return None
    key = hashlib.sha256(f"{ctx.workflow}|{ctx.job}|{inputs.manifest}".encode()).hexdigest()[:12]
    marker = MARKER.format(key=key)
    comments = PullRequestComments(ctx.api_url, ctx.repository, ctx.pr_number, inputs.github_token)
    try:
        passing = summary["gate"]["status"] in ("pass", "skipped")
        if inputs.comment == "on-failure" and passing and comments.find(marker) is None:
            return None  # nothing failed and no earlier comment to bring up to date
        posted = comments.upsert(marker, render(COMMENT_LIMIT - len(marker) - 1))
    except CommentError as exc:
        _warn_about_authors(comments)
        if exc.no_permission:
            commands.warning(
                f"Cannot write the pull request comment ({exc}). Pull requests from forks get a read-only "
                "token; elsewhere grant `permissions: pull-requests: write`. The job summary has the report.",
                title="No pull request comment",
            )
        else:
            commands.warning(f"The pull request comment failed: {exc}. The job summary has the report.")
        return None
    _warn_about_authors(comments)
    print(f"{'Posted' if posted.created else 'Updated'} the pull request comment: {posted.url}", flush=True)
    return posted.url


def _warn_about_authors(comments: PullRequestComments) -> None:
    """Marked comments someone else wrote, or a token whose account could not be found."""
    for note in comments.notes():
        commands.warning(note, title="Pull request comment")


def upload_results(inputs: Inputs, ctx: GitHubContext, out: Path, env: Mapping[str, str]) -> tuple[str | None, str]:
    name = inputs.artifact_name
    if inputs.shard and name == "simulation-results":
        name = f"{name}-shard-{parse_shard(inputs.shard)[0]}"
    name = safe_name(name)
    if not runtime_available(env):
        commands.notice(
            f"The Actions results service is not available to this container (no ACTIONS_RUNTIME_TOKEN / "
            f"ACTIONS_RESULTS_URL), so the results stay in {inputs.results_dir}/. Add a step "
            f"`uses: actions/upload-artifact@v4` with `path: {inputs.results_dir}` to keep them.",
            title="Results not uploaded",
        )
        return None, name
    try:
        artifact_id, size = ArtifactUploader(env).upload(name, out)
    except (ArtifactError, KeyError) as exc:
        commands.warning(
            f"Uploading the results artifact failed: {exc}. The results stay in {inputs.results_dir}/: add a step "
            f"`uses: actions/upload-artifact@v4` with `if: always()` and `path: {inputs.results_dir}` to keep them.",
            title="Results not uploaded",
        )
        return None, name
    print(f"Uploaded artifact {name} ({size:,} bytes), id {artifact_id}", flush=True)
    return artifact_id, name


def make_readable(out: Path) -> None:
    """The container runs as root; later steps on the runner must read and remove what it wrote."""
    for path in [out, *out.rglob("*")]:
        with contextlib.suppress(OSError):
            path.chmod(0o755 if path.is_dir() else 0o644)
