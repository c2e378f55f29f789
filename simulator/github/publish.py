"""Publishing a run the ways a pull request shows it: the log, annotations, the comment, the artifact.

Each step that fails (no permission, no artifact service) warns and the others go on: publishing
never loses results.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

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


#: transcripts printed in the log per simulation (failed and errored ones first); all are in the artifact
LOGGED_PER_SIMULATION = 20


def log_simulations(summary: Summary, results: Callable[[], Iterable[ConversationResult]]) -> None:
    by_name: dict[str, list[ConversationResult]] = {}
    for result in results():  # one pass; a few per simulation, failures first
        kept = by_name.setdefault(result["meta_data"].get("simulation", "?"), [])
        passed = (result.get("evaluation") or {}).get("status") == "pass"
        if len(kept) < LOGGED_PER_SIMULATION:
            kept.append(result)
        elif not passed:
            index = next((i for i, r in enumerate(kept) if (r.get("evaluation") or {}).get("status") == "pass"), None)
            if index is not None:
                kept[index] = result
    for name, sim in summary["simulations"].items():
        verdict = sim["verdict"]
        with commands.group(f"{name}: {verdict['status']} ({verdict['passes']}/{verdict['runs']} passed)"):
            shown = by_name.get(name, [])
            for result in shown:
                evaluation = result.get("evaluation") or {}
                print(f"--- #{result['meta_data'].get('repeat', 1)}: {evaluation.get('status', 'error')}", flush=True)
                lines = [
                    f"[{t['turn_number']}] {t['actor']}: {t['response'] or t.get('error')}"
                    for t in result["conversation"]
                ]
                lines += [f"  {c['status']}: {c['name']}: {c['message']}" for c in evaluation.get("checks", [])]
                lines += [f"  error: {e}" for e in evaluation.get("errors", [])]
                commands.print_untrusted("\n".join(lines))
            if verdict["runs"] > len(shown):
                print(f"({verdict['runs'] - len(shown)} more conversation(s) are in the results artifact)", flush=True)


def annotate(summary: Summary, manifest: Manifest | None, ctx: GitHubContext) -> None:
    for name, sim in summary["simulations"].items():
        verdict = sim["verdict"]
        if verdict["status"] == "pass":
            continue
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
