"""The action's inputs and what the runner tells the container about the run."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..parsing import strict_json
from ..run.exit_codes import FAIL_ON
from ..run.plan import parse_shard
from ..text import known_secrets
from . import commands
from .artifact import safe_name

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


def _field(node: Any, key: str | None = None) -> dict[str, Any]:
    """An object of the event payload (`node[key]`), or {} when it is anything else."""
    value = node.get(key) if key is not None and isinstance(node, dict) else node
    return value if isinstance(value, dict) else {}


def _number(value: object) -> int | None:
    """A pull request's number from the event, only when it is one (it goes into API paths)."""
    return value if type(value) is int and 0 < value < 2**53 else None


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
    #: "auto" (the base branch's newest artifact), "" (none) or a folder in the workspace
    baseline: str = "auto"
    #: the artifact `baseline: auto` looks for; "" = `artifact_name` (what an unsharded run uploads)
    baseline_artifact: str = ""
    #: where this run's report.html is published; the comment links each failed conversation there
    report_url: str = ""
    #: replay the baseline's user messages while the app answers as it did (paired comparison)
    replay: bool = True
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


def _baseline(text: str | None) -> str:
    """`auto` when not given (action.yml's default), "" for none, else the folder as written."""
    if text is None:
        return "auto"
    value = text.strip()
    if value.lower() in ("", "none", "false"):
        return ""
    return "auto" if value.lower() == "auto" else value


def _baseline_artifact(text: str) -> str:
    """Empty when not given; else the name as the upload stores it (`safe_name`), so the same text
    given to a base run's `artifact-name` and to this input names the same artifact."""
    value = text.strip()
    return safe_name(value) if value else ""


def _report_url(text: str) -> str:
    value = text.strip()
    if value and not re.match(r"https?://[^\s/]+", value):
        raise ConfigError(f"input report-url: must be an http(s) URL where report.html is published, got {value!r}")
    return value


def _given(name: str) -> str | None:
    """The input's value, or None when the runner passed no such variable at all."""
    names = {f"INPUT_{name.upper()}", f"INPUT_{name.upper().replace('-', '_')}"}
    return commands.get_input(name) if any(n in os.environ for n in names) else None


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
        baseline=_baseline(_given("baseline")),
        baseline_artifact=_baseline_artifact(get("baseline-artifact")),
        report_url=_report_url(get("report-url")),
        replay=_boolean(get("replay") or "true", "replay"),
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
    #: the pull request's base branch ("" outside pull request events)
    base_ref: str = ""
    event: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GitHubContext:
        payload: dict[str, Any] = {}
        event_path = env.get("GITHUB_EVENT_PATH")
        if event_path and Path(event_path).is_file():
            try:
                payload = strict_json.loads(Path(event_path).read_bytes())
            except (OSError, ValueError):
                payload = {}
        payload = _field(payload)
        pull = _field(payload, "pull_request")
        base_ref = _field(pull, "base").get("ref")
        head_repo = _field(_field(pull, "head"), "repo").get("full_name")
        base_repo = _field(_field(pull, "base"), "repo").get("full_name")
        return cls(
            workspace=Path(env.get("GITHUB_WORKSPACE") or "."),
            repository=env.get("GITHUB_REPOSITORY", ""),
            api_url=env.get("GITHUB_API_URL", "https://api.github.com"),
            server_url=env.get("GITHUB_SERVER_URL", "https://github.com"),
            run_id=env.get("GITHUB_RUN_ID", ""),
            workflow=env.get("GITHUB_WORKFLOW", ""),
            job=env.get("GITHUB_JOB", ""),
            pr_number=_number(pull.get("number")),
            is_fork=bool(head_repo and base_repo and head_repo != base_repo),
            event_name=env.get("GITHUB_EVENT_NAME", ""),
            sha=env.get("GITHUB_SHA", ""),
            base_ref=env.get("GITHUB_BASE_REF") or (base_ref if isinstance(base_ref, str) else ""),
            event=payload if isinstance(payload, dict) else {},
        )

    @property
    def run_url(self) -> str | None:
        if not (self.repository and self.run_id):
            return None
        return f"{self.server_url}/{self.repository}/actions/runs/{self.run_id}"
