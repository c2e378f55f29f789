"""The GitHub Action: inputs in, the library's run, then results published the ways a PR shows them.

Everything here is a thin layer: loading, running, checking and rendering are the library's;
this module maps inputs and environment to it, and publishes outputs, the job summary, the
artifact, the sticky comment and annotations. Publishing never loses results: each step that
fails (no permission, no artifact service) warns and the others go on. Nothing it prints, writes
or posts shows a credential the run knows (`simulator.text.known_secrets`): the secret inputs and the
runner's tokens join those the library registers.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from pathlib import Path

from ..errors import ConfigError
from ..manifest import Manifest, load_manifest
from ..records import ConversationResult, Summary
from ..report import COMMENT_LIMIT, SUMMARY_LIMIT, Links, comparison_or_why, render_markdown, write_reports
from ..results.folder import RESULTS_FILE, iter_unique_results, write_summary
from ..results.shards import merge_results
from ..run.exit_codes import EXIT_CONFIG, EXIT_RUN_ERRORS, exit_code
from ..run.pipeline import RunSettings, run_manifest
from ..run.plan import Job, parse_shard
from ..run.replay import ReplayBook
from ..text import known_secrets
from ..text.known_secrets import SECRET_NAME, scrub_text
from . import commands
from .baseline_input import Baseline, replayed_note, resolve_baseline
from .inputs import RUNNER_SECRETS, GitHubContext, Inputs, read_inputs
from .publish import annotate, log_simulations, make_readable, post_comment, upload_results
from .untrusted import refuse_untrusted_code


def _mask_manifest_secrets(manifest: Manifest, env: Mapping[str, str]) -> None:
    """Values the manifest read from secret-looking variables, or put into request headers."""
    for name, paths in manifest.variables.items():
        if SECRET_NAME.search(name) or any(".headers." in p or p.endswith(".headers") for p in paths):
            commands.mask(env.get(name))
    for model in (manifest.user, manifest.judge, *(s.user for s in manifest.all_simulations())):
        if model and model.get("api_key_env"):
            commands.mask(env.get(model["api_key_env"]))


def _print_progress(job: Job, result: ConversationResult) -> None:
    meta = result["meta_data"]
    status = (result.get("evaluation") or {}).get("status", "error")
    print(f"{job.key}: {status} ({meta['stop_reason']} after {meta['turn_count']} turns)", flush=True)


def _run(
    inputs: Inputs, ctx: GitHubContext, out: Path, env: Mapping[str, str], base: Baseline
) -> tuple[Summary, Manifest | None, int]:
    """Play the manifest through the library's pipeline (or merge shards); returns the summary, the
    manifest and the exit code the outcome decides (`simulator.run.exit_codes.exit_code`)."""
    if inputs.merge:
        folders = [ctx.workspace / folder for folder in inputs.merge]
        missing = [str(f) for f in folders if not (f / RESULTS_FILE).is_file()]
        if missing:
            raise ConfigError(f"input merge: no {RESULTS_FILE} in {', '.join(missing)}")
        manifest_path = ctx.workspace / inputs.manifest
        manifest = load_manifest(manifest_path, root=ctx.workspace) if manifest_path.is_file() else None
        summary = merge_results(out, folders)
        return summary, manifest, exit_code(summary, fail_on=inputs.fail_on)
    manifest = load_manifest(
        ctx.workspace / inputs.manifest, root=ctx.workspace, app_url=inputs.app_url or None, environ=env
    )
    _mask_manifest_secrets(manifest, env)
    settings = RunSettings(
        out=out,
        concurrency=inputs.concurrency,
        filters=inputs.filters,
        shard=parse_shard(inputs.shard) if inputs.shard else None,
        resume=inputs.resume,
        skip_without_key=True,
        skip_reason="secrets are not passed to workflows run from forks" if ctx.is_fork else None,
        on_result=_print_progress,
        on_warning=lambda text: commands.warning(text),
    )
    if inputs.replay and base.folder is not None and (base.folder / RESULTS_FILE).is_file():
        try:
            settings.replays = ReplayBook.load(base.folder)
        except (ConfigError, OSError) as exc:  # a damaged base artifact costs the replay, not the run
            commands.warning(f"The base run's users cannot be replayed ({exc}); every conversation plays live.")
        else:
            print(f"Replaying the user messages of {len(settings.replays.scripts)} base conversation(s)", flush=True)
    outcome = run_manifest(manifest, settings)
    if outcome.skipped:
        commands.notice(outcome.summary["run"]["skipped"], title="LLM key not available")
    if outcome.storage_error:
        commands.error(f"Results could not be stored: {outcome.storage_error}", title="Results not stored")
    for problem in outcome.internal_errors[:10]:
        commands.error(problem, title="Internal error")
    if outcome.summary_error:
        commands.error(f"summary.json could not be written: {outcome.summary_error}", title="Results not stored")
    return outcome.summary, manifest, outcome.exit_code(inputs.fail_on)


def _config_error(exc: ConfigError) -> int:
    for line in str(exc).splitlines():
        match = re.match(r"\s*-?\s*(?P<file>[^:\s][^:]*):(?P<line>\d+): (?P<message>.*)", line)
        if match:
            commands.error(match["message"], file=match["file"], line=int(match["line"]), title="Invalid manifest")
    commands.error(str(exc), title="Configuration error")
    return EXIT_CONFIG


def run_action(env: Mapping[str, str] | None = None) -> int:
    """The whole action; returns the process exit code. All it prints goes out scrubbed, and it never
    ends in a traceback that reads as a pass: an unexpected failure is an error annotation, the
    `verdict` output `error`, and exit 3."""
    env = os.environ if env is None else env
    known_secrets.register_all(env.get(name) for name in RUNNER_SECRETS)
    known_secrets.scrub_package_logs()
    with known_secrets.scrubbed_output():
        try:
            return _run_action(env)
        except Exception as exc:  # a bug: its traceback may quote a credential too, so it goes out scrubbed
            commands.error(f"The action failed: {type(exc).__name__}: {exc}", title="Internal error")
            commands.print_untrusted(traceback.format_exc())
            with contextlib.suppress(Exception):
                commands.set_outputs({"verdict": "error"}, env)
            with contextlib.suppress(Exception):
                commands.append_file_command(
                    "GITHUB_STEP_SUMMARY",
                    f"## ⚠️ Conversation simulations: ERROR\n\nThe action failed: {type(exc).__name__}\n",
                    env,
                )
            return EXIT_RUN_ERRORS


def _run_action(env: Mapping[str, str]) -> int:
    try:
        inputs = read_inputs()
        os.environ.update(inputs.keys)  # the manifest and the models read keys from the environment
        ctx = GitHubContext.from_env(env)
        refuse_untrusted_code(ctx, inputs, os.environ)  # before anything of the manifest's can run
        out = ctx.workspace / inputs.results_dir
    except ConfigError as exc:
        return _config_error(exc)
    with tempfile.TemporaryDirectory(prefix="simulator-baseline-") as scratch:
        # looked for before the run: the run replays the base's users (input replay)
        base = _baseline(inputs, ctx, Path(scratch))
        try:
            summary, manifest, code = _run(inputs, ctx, out, os.environ, base)
        except ConfigError as exc:
            return _config_error(exc)
        if base.replay_only:  # a shard says what it replayed; the merge job compares
            base = replace(base, note=replayed_note(base, summary["run"].get("replay")))
            print(base.note, flush=True)
        return _publish(inputs, ctx, env, out, summary, manifest, code, base)


def _publish(
    inputs: Inputs,
    ctx: GitHubContext,
    env: Mapping[str, str],
    out: Path,
    summary: Summary,
    manifest: Manifest | None,
    code: int,
    base: Baseline,
) -> int:
    """Reports, artifact, job summary, comment and outputs of a finished run."""
    path = out / RESULTS_FILE

    def results() -> Iterator[ConversationResult]:  # a fresh pass over the file each time: nothing held in memory
        return iter_unique_results(path) if path.is_file() else iter(())

    make_readable(out)
    log_simulations(summary, results)
    annotate(summary, manifest, ctx)
    changes, why_not = comparison_or_why(summary, base.summary)
    if why_not:
        commands.warning(why_not, title="No comparison")
        base = replace(base, note=why_not)
    try:
        write_reports(
            out,
            summary,
            results,
            changes,
            Links(run_url=ctx.run_url, baseline_url=base.run_url),
            baseline_label=base.label if changes is not None else None,
            baseline_dir=base.folder if changes is not None else None,
            baseline_note=base.note,
        )
        if "comparison" in summary:  # what changed since the base run, in the artifact's summary.json
            write_summary(out, summary)
    except OSError as exc:
        commands.warning(f"The reports could not be written ({exc.strerror or exc}); the results are kept.")
    artifact_id, artifact_name = upload_results(inputs, ctx, out, env)
    artifact_url = (
        f"{ctx.server_url}/{ctx.repository}/actions/runs/{ctx.run_id}/artifacts/{artifact_id}" if artifact_id else None
    )
    links = Links(
        run_url=ctx.run_url,
        artifact_url=artifact_url,
        artifact_name=artifact_name,
        report_note="report.html in the artifact shows every conversation as a chat transcript",
        baseline_url=base.run_url,
        report_url=inputs.report_url or None,
    )

    def render(limit: int = COMMENT_LIMIT) -> str:
        return render_markdown(summary, results(), links, limit=limit, changes=changes, baseline_note=base.note)

    _write_step_summary(env, render, inputs.results_dir)
    comment_url = post_comment(inputs, ctx, summary, render)
    _set_outputs(env, inputs, summary, comment_url, artifact_id)
    return code


def _baseline(inputs: Inputs, ctx: GitHubContext, scratch: Path) -> Baseline:
    """The baseline, or a note on why there is none: a failure here never costs the report."""
    try:
        return resolve_baseline(inputs, ctx, scratch)
    except Exception as exc:  # a bug while looking: the run's report still goes out
        note = f"No baseline: looking for it failed ({type(exc).__name__}: {exc})."
        commands.warning(note, title="No baseline")
        return Baseline(note=note)


def _write_step_summary(env: Mapping[str, str], render: Callable[[int], str], results_dir: str) -> None:
    """The report in the job summary; a summary file that cannot take it costs only a warning."""
    summary_file = env.get("GITHUB_STEP_SUMMARY")
    if not summary_file:
        return  # outside a runner step: nothing asks for a summary
    try:
        used = Path(summary_file).stat().st_size if Path(summary_file).is_file() else 0
    except OSError:
        used = 0
    limit = max(SUMMARY_LIMIT - used - 1024, 4096)
    try:
        commands.append_file_command("GITHUB_STEP_SUMMARY", scrub_text(render(limit)) + "\n", env)
    except commands.FileCommandError as exc:
        commands.warning(
            f"The job summary could not be written: {exc}. The report is in {results_dir}/report.md "
            "(and in the pull request comment).",
            title="No job summary",
        )


def _set_outputs(
    env: Mapping[str, str], inputs: Inputs, summary: Summary, comment_url: str | None, artifact_id: str | None
) -> None:
    """The step's outputs; a file that cannot take them is an error annotation that names it, and
    the exit code stays the gate's."""
    gate = summary["gate"]
    relative = Path(inputs.results_dir).as_posix()
    outputs = {
        "verdict": gate["status"],
        "pass-rate": "" if gate["pass_rate"] is None else gate["pass_rate"],
        "passed": gate["passes"],
        "failed": gate["failures"],
        "errors": gate["errors"],
        "conversations": summary["totals"]["conversations"],
        "results-dir": relative,
        "report-path": f"{relative}/report.html",
        "comment-url": comment_url or "",
        "artifact-id": artifact_id or "",
    }
    try:
        commands.set_outputs(outputs, env)
    except commands.FileCommandError as exc:
        commands.error(
            f"The step's outputs could not be written: {exc}. Later steps reading steps.<id>.outputs get empty "
            f"values; the verdict was {gate['status']} and the results are in {relative}/.",
            title="Outputs not set",
        )
