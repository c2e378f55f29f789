"""The GitHub Action: inputs in, the library's run, then results published the ways a PR shows them.

Everything here is a thin layer: loading, running, checking and rendering are the library's;
this module maps inputs and environment to it, and publishes outputs, the job summary, the
artifact, the sticky comment and annotations. Publishing never loses results: each step that
fails (no permission, no artifact service) warns and the others go on. Nothing it prints, writes
or posts shows a credential the run knows (`simulator.known_secrets`): the secret inputs and the
runner's tokens join those the library registers.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import known_secrets
from ..errors import ConfigError
from ..exit_codes import EXIT_CONFIG, EXIT_RUN_ERRORS, FAIL_ON, exit_code
from ..known_secrets import SECRET_NAME, scrub_text
from ..manifest import Manifest, load_manifest
from ..pipeline import RunSettings, run_manifest
from ..plan import Job, parse_shard
from ..report import SUMMARY_LIMIT, Links, baseline_changes, render_markdown, write_reports
from ..results_folder import RESULTS_FILE, iter_results, merge_results
from . import commands
from .artifact import ArtifactError, ArtifactUploader, runtime_available, safe_name
from .comment import MARKER, CommentError, PullRequestComments
from .untrusted import refuse_untrusted_code

COMMENT_MODES = ("always", "on-failure", "never")
#: the YAML 1.2 core schema's spellings, which the runner's own boolean inputs accept
BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
KEY_INPUTS = {
    "openai-api-key": "OPENAI_API_KEY",
    "azure-openai-endpoint": "AZURE_OPENAI_ENDPOINT",
    "azure-openai-api-key": "AZURE_OPENAI_API_KEY",
    "azure-openai-api-version": "AZURE_OPENAI_API_VERSION",
}
SECRET_INPUTS = ("openai-api-key", "azure-openai-api-key", "github-token")
#: the runner's own credentials in the container's environment
RUNNER_SECRETS = ("ACTIONS_RUNTIME_TOKEN", "ACTIONS_ID_TOKEN_REQUEST_TOKEN", "GITHUB_TOKEN", "GH_TOKEN")


@dataclass
class Inputs:
    manifest: str = ".github/simulations.yml"
    app_url: str = ""
    github_token: str = ""
    comment: str = "always"
    artifact_name: str = "simulation-results"
    results_dir: str = "simulation-results"
    fail_on: str = "gate"
    concurrency: int = 8
    shard: str = ""
    filters: list[str] = field(default_factory=list)
    merge: list[str] = field(default_factory=list)
    baseline: str = ""
    resume: bool = False
    keys: dict[str, str] = field(default_factory=dict)
    allow_untrusted_code: bool = False


def _lines(text: str) -> list[str]:
    return [part.strip() for part in re.split(r"[,\n]", text) if part.strip()]


def _boolean(text: str, name: str) -> bool:
    value = text.strip() or "false"
    if value not in BOOLEANS:
        raise ConfigError(f"input {name}: must be true or false, got {value!r}")
    return BOOLEANS[value]


def read_inputs() -> Inputs:
    """The action's inputs; bad values are configuration errors that name the input."""
    get = commands.get_input
    for name in SECRET_INPUTS:
        commands.mask(get(name))
        known_secrets.register(get(name))
    comment = (get("comment") or "always").lower()
    if comment not in COMMENT_MODES:
        raise ConfigError(f"input comment: must be one of {', '.join(COMMENT_MODES)}, got {comment!r}")
    fail_on = (get("fail-on") or "gate").lower()
    if fail_on not in FAIL_ON:
        raise ConfigError(f"input fail-on: must be one of {', '.join(FAIL_ON)}, got {fail_on!r}")
    concurrency_text = get("concurrency") or "8"
    if not concurrency_text.isdigit() or int(concurrency_text) < 1:
        raise ConfigError(f"input concurrency: must be a whole number >= 1, got {concurrency_text!r}")
    shard = get("shard")
    if shard:
        parse_shard(shard)
    return Inputs(
        manifest=get("manifest") or ".github/simulations.yml",
        app_url=get("app-url"),
        github_token=get("github-token"),
        comment=comment,
        artifact_name=get("artifact-name") or "simulation-results",
        results_dir=get("results-dir") or "simulation-results",
        fail_on=fail_on,
        concurrency=int(concurrency_text),
        shard=shard,
        filters=_lines(get("filter")),
        merge=[line.strip() for line in get("merge").splitlines() if line.strip()],
        baseline=get("baseline"),
        resume=_boolean(get("resume"), "resume"),
        keys={env: value for name, env in KEY_INPUTS.items() if (value := get(name))},
        allow_untrusted_code=_boolean(get("allow-untrusted-code"), "allow-untrusted-code"),
    )


@dataclass
class GitHubContext:
    """What the runner tells a container about the run (workspace, repository, event)."""

    workspace: Path
    repository: str
    api_url: str
    server_url: str
    run_id: str
    workflow: str
    job: str
    pr_number: int | None
    is_fork: bool
    event_name: str = ""
    sha: str = ""
    event: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubContext:
        payload: dict[str, Any] = {}
        event_path = env.get("GITHUB_EVENT_PATH")
        if event_path and Path(event_path).is_file():
            try:
                payload = json.loads(Path(event_path).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                payload = {}
        pull = payload.get("pull_request") or {}
        head_repo = ((pull.get("head") or {}).get("repo") or {}).get("full_name")
        base_repo = ((pull.get("base") or {}).get("repo") or {}).get("full_name")
        return cls(
            workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL", "https://api.github.com"),
            server_url=env.get("GITHUB_SERVER_URL", "https://github.com"),
            run_id=env.get("GITHUB_RUN_ID", ""),
            workflow=env.get("GITHUB_WORKFLOW", ""),
            job=env.get("GITHUB_JOB", ""),
            pr_number=pull.get("number") if isinstance(pull.get("number"), int) else None,
            is_fork=bool(head_repo and base_repo and head_repo != base_repo),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            sha=env.get("GITHUB_SHA", ""),
            event=payload if isinstance(payload, dict) else {},
        )

    @property
    def run_url(self) -> str | None:
        if not (self.repository and self.run_id):
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"


def _mask_manifest_secrets(manifest: Manifest, env: Mapping[str, str]) -> None:
    """Values the manifest read from secret-looking variables, or put into request headers."""
    for name, paths in manifest.variables.items():
        if SECRET_NAME.search(name) or any(".headers." in p or p.endswith(".headers") for p in paths):
            commands.mask(env.get(name))
    for model in (manifest.user, manifest.judge, *(s.user for s in manifest.simulations)):
        if model and model.get("api_key_env"):
            commands.mask(env.get(model["api_key_env"]))


def _annotation_file(ctx: GitHubContext, manifest_path: Path) -> str:
    try:
        return manifest_path.resolve().relative_to(ctx.workspace.resolve()).as_posix()
    except ValueError:
        return manifest_path.as_posix()


def _print_progress(job: Job, result: dict[str, Any]) -> None:
    meta = result["meta_data"]
    status = (result.get("evaluation") or {}).get("status", "error")
    print(f"{job.key}: {status} ({meta['stop_reason']} after {meta['turn_count']} turns)", flush=True)


def _run(inputs: Inputs, ctx: GitHubContext, out: Path, env: Mapping[str, str]) -> tuple[dict, Manifest | None, int]:
    """Play the manifest through the library's pipeline (or merge shards); returns the summary, the
    manifest and the exit code the outcome decides (`simulator.exit_codes.exit_code`)."""
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


#: transcripts printed in the log per simulation (failed and errored ones first); all are in the artifact
LOGGED_PER_SIMULATION = 20


def _log_simulations(summary: dict[str, Any], results: Callable[[], Iterable[dict[str, Any]]]) -> None:
    by_name: dict[str, list[dict[str, Any]]] = {}
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


def _annotate(summary: dict[str, Any], manifest: Manifest | None, ctx: GitHubContext) -> None:
    for name, sim in summary["simulations"].items():
        verdict = sim["verdict"]
        if verdict["status"] == "pass":
            continue
        simulation = manifest.simulation(name) if manifest else None
        file = _annotation_file(ctx, manifest.path) if manifest else None
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


def _comment(inputs: Inputs, ctx: GitHubContext, summary: dict[str, Any], body: str) -> str | None:
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
        posted = comments.upsert(marker, body)
    except CommentError as exc:
        if exc.no_permission:
            commands.warning(
                f"Cannot write the pull request comment ({exc}). Pull requests from forks get a read-only "
                "token; elsewhere grant `permissions: pull-requests: write`. The job summary has the report.",
                title="No pull request comment",
            )
        else:
            commands.warning(f"The pull request comment failed: {exc}. The job summary has the report.")
        return None
    print(f"{'Posted' if posted.created else 'Updated'} the pull request comment: {posted.url}", flush=True)
    return posted.url


def _upload(inputs: Inputs, ctx: GitHubContext, out: Path, env: Mapping[str, str]) -> tuple[str | None, str]:
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
        commands.warning(f"Uploading the results artifact failed: {exc}. They stay in {inputs.results_dir}/.")
        return None, name
    print(f"Uploaded artifact {name} ({size:,} bytes), id {artifact_id}", flush=True)
    return artifact_id, name


def _make_readable(out: Path) -> None:
    """The container runs as root; later steps on the runner must read and remove what it wrote."""
    for path in [out, *out.rglob("*")]:
        with contextlib.suppress(OSError):
            path.chmod(0o755 if path.is_dir() else 0o644)


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
                commands.set_outputs({"verdict": "error"})
            summary_file = env.get("GITHUB_STEP_SUMMARY")
            if summary_file:
                with contextlib.suppress(OSError), open(summary_file, "a", encoding="utf-8", errors="replace") as out:
                    out.write(f"## ⚠️ Conversation simulations: ERROR\n\nThe action failed: {type(exc).__name__}\n")
            return EXIT_RUN_ERRORS


def _run_action(env: Mapping[str, str]) -> int:
    try:
        inputs = read_inputs()
        os.environ.update(inputs.keys)  # the manifest and the models read keys from the environment
        ctx = GitHubContext.from_env(env)
        refuse_untrusted_code(ctx, inputs, os.environ)  # before anything of the manifest's can run
        out = ctx.workspace / inputs.results_dir
        summary, manifest, code = _run(inputs, ctx, out, os.environ)
    except ConfigError as exc:
        return _config_error(exc)
    path = out / RESULTS_FILE

    def results() -> Iterator[dict[str, Any]]:  # a fresh pass over the file each time: nothing held in memory
        return iter_results(path) if path.is_file() else iter(())

    _make_readable(out)
    _log_simulations(summary, results)
    _annotate(summary, manifest, ctx)
    try:
        changes = baseline_changes(summary, ctx.workspace / inputs.baseline if inputs.baseline else None)
    except ConfigError as exc:
        commands.warning(f"input baseline: {exc}; reporting without a comparison.")
        changes = None
    try:
        write_reports(
            out, summary, results, changes, Links(run_url=ctx.run_url), baseline_label=inputs.baseline or None
        )
    except OSError as exc:
        commands.warning(f"The reports could not be written ({exc.strerror or exc}); the results are kept.")
    artifact_id, artifact_name = _upload(inputs, ctx, out, env)
    artifact_url = (
        f"{ctx.server_url}/{ctx.repository}/actions/runs/{ctx.run_id}/artifacts/{artifact_id}" if artifact_id else None
    )
    links = Links(
        run_url=ctx.run_url,
        artifact_url=artifact_url,
        artifact_name=artifact_name,
        report_note="report.html in the artifact shows every conversation as a chat transcript",
    )
    summary_file = env.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        used = Path(summary_file).stat().st_size if Path(summary_file).is_file() else 0
        with open(summary_file, "a", encoding="utf-8") as handle:
            limit = max(SUMMARY_LIMIT - used - 1024, 4096)
            handle.write(scrub_text(render_markdown(summary, results(), links, limit=limit, changes=changes)) + "\n")
    comment_url = _comment(inputs, ctx, summary, render_markdown(summary, results(), links, changes=changes))
    gate = summary["gate"]
    relative = Path(inputs.results_dir).as_posix()
    commands.set_outputs(
        {
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
    )
    return code
