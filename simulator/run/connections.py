"""Build the two sides of a conversation from manifest settings: the app target and the user."""

from __future__ import annotations

import importlib
import importlib.util
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..aio.limiter import Limiters
from ..checks import EvaluationContext
from ..conversation.users import ScriptedUser, UserSide
from ..errors import ConfigError, MissingCredentialError
from ..llm.models import FixHints, OpenAIChatCompletionsModel
from ..llm.token_managers import PlainTokenManager
from ..manifest import DEFAULT_KEY_VARS, Manifest, Simulation, default_root, is_inside, variable_refusal
from ..state.client import StateClient
from ..targets import CallbackTarget, HttpTarget, Target
from ..targets.redaction import safe_url


def load_callback(spec: str, folder: Path, root: Path | None = None) -> Callable[..., Any]:
    """`package.module:function`, or `path/to/file.py:function` relative to `folder`.

    A callback file must lie inside `root` (symlinks resolved; default: the current directory if
    `folder` lies inside it, else `folder`, as for `load_manifest`). Module callbacks are imported
    as usual.
    """
    module_name, _, attribute = spec.rpartition(":")
    try:
        if module_name.endswith(".py"):
            root = Path(root).resolve() if root is not None else default_root(folder)
            if not is_inside(folder / module_name, root):
                raise ConfigError(f"callback file {module_name!r} is outside {root}; callback files must lie inside it")
            file = (folder / module_name).resolve()
            if not file.is_file():
                raise ConfigError(f"callback file {file} not found")
            unique = f"simulator_callback_{abs(hash(str(file)))}"
            module_spec = importlib.util.spec_from_file_location(unique, file)
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"cannot load {file} as Python")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[unique] = module
            module_spec.loader.exec_module(module)
        else:
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            module = importlib.import_module(module_name)
    except ConfigError:
        raise
    except ImportError as exc:
        raise ConfigError(f"cannot import {module_name!r}: {exc}") from None
    except Exception as exc:  # the user's module failed while importing
        raise ConfigError(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}") from None
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"{module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"{spec!r} is not callable")
    return target


def build_target(config: dict[str, Any], folder: Path, source: str = "target", root: Path | None = None) -> Target:
    """The app under test described by a manifest `target` mapping (callback files inside `root`)."""
    if "callback" in config:
        try:
            return CallbackTarget(load_callback(config["callback"], folder, root), name=config["callback"])
        except ConfigError as exc:
            raise ConfigError(f"{source}.callback: {exc}") from None
    return HttpTarget.from_config(config, source=source)


def build_model(config: dict[str, Any], source: str = "user") -> OpenAIChatCompletionsModel:
    """The LLM that plays personas, from a manifest `user` mapping."""
    manager = None
    key_env = config.get("api_key_env")
    if key_env and key_env not in DEFAULT_KEY_VARS and (why := variable_refusal(str(key_env), {})):
        raise ConfigError(f"{source}.api_key_env: environment variable {key_env} {why}")
    if config.get("api_key_env"):
        manager = PlainTokenManager(env_var=config["api_key_env"], auth_header=config.get("auth_header"))
        try:
            manager.get_token_sync()
        except MissingCredentialError as exc:
            raise MissingCredentialError(f"{source}.api_key_env: {exc}") from None
    options = {
        key: config[key]
        for key in (
            "max_tokens",
            "temperature",
            "reasoning",
            "reasoning_effort",
            "timeout",
            "max_retries",
            "rate_limit_wait",
        )
        if key in config
    }
    try:
        model = OpenAIChatCompletionsModel(
            endpoint_url=config.get("endpoint") or None,
            token_manager=manager,
            api_version=config.get("api_version") or None,
            name=config["model"],
            **options,
        )
    except ConfigError as exc:
        raise type(exc)(f"{source}: {exc}") from None
    default_key_env = "AZURE_OPENAI_API_KEY" if model.is_azure else "OPENAI_API_KEY"
    model.fix_hints = FixHints.for_manifest(source, key_env, default_key_env)
    return model


#: configuration problems `prepare` lists one by one; the rest are counted
MAX_PROBLEMS = 20


class Connections:
    """Builds each distinct app target and user model once, so conversations share connections;
    and one rate limiter per endpoint (the app, the user model, the judge), shared by every
    setting that calls it, so a 429 pauses all of them (`simulator.aio.limiter`)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self._targets: dict[str, Target] = {}
        self._users: dict[str, Any] = {}
        self.evaluation = EvaluationContext()
        #: sends the simulations' setup, teardown and outcome requests
        self.state = StateClient()
        #: the run's limiters, one per endpoint; `warm` sets their ceiling to the run's concurrency
        self.limiters = Limiters()

    def prepare(self, simulations: Iterable[Simulation]) -> None:
        """Build everything up front: configuration problems surface before any conversation starts.

        One pass, so the simulations may be a stream (a dataset's rows, built one at a time).
        """
        problems: list[str] = []
        more = 0
        judge, judge_built = self.manifest.judge, False  # built for the first simulation that needs it
        for sim in simulations:
            if judge and not judge_built and any(c.needs_judge for c in sim.checks):
                judge_built = True
                try:
                    self.evaluation.judge = self._limited(build_model(judge, source="judge"), "judge")
                except ConfigError as exc:
                    problems.insert(0, f"{self.manifest.path}: {exc}")
            try:
                self.sides(sim)
            except ConfigError as exc:
                message = f"{self.manifest.path}:{sim.line or ''}: {sim.name}: {exc}"
                if len(problems) >= MAX_PROBLEMS:
                    more += 1
                elif message not in problems:
                    problems.append(message)
        if more:
            problems.append(f"… and {more} more simulation(s) with a problem")
        if problems:
            raise ConfigError("\n".join(problems))

    def missing_credentials(self, simulations: Iterable[Simulation]) -> dict[str, str]:
        """Simulations that need an LLM (user or judge) whose credential is absent, with why."""
        missing: dict[str, str] = {}
        judge_problem = None
        if self.manifest.judge:
            try:
                build_model(self.manifest.judge, source="judge")
            except MissingCredentialError as exc:
                judge_problem = str(exc)
        for sim in simulations:
            if sim.name in missing:
                continue
            if judge_problem and any(c.needs_judge for c in sim.checks):
                missing[sim.name] = judge_problem
            elif sim.needs_llm:
                try:
                    self._user(sim)
                except MissingCredentialError as exc:
                    missing[sim.name] = str(exc)
        return missing

    def sides(self, sim: Simulation) -> tuple[Target, Any]:
        """The app target and the user side of a simulation; targets and models are built once per
        setting and shared (a script's user is built for each conversation: it is a list's cursor)."""
        return self._target(sim), self._user(sim)

    def _target(self, sim: Simulation) -> Target:
        key = json.dumps(sim.target, sort_keys=True)
        if key not in self._targets:
            # messages name the field where the value was written: the top-level target when it is shared
            source = "target" if sim.target == self.manifest.target else f"simulations[{sim.index}].target"
            target = build_target(sim.target, self.manifest.folder, source=source, root=self.manifest.root)
            if isinstance(target, HttpTarget) and target.retry.limiter is not None:
                model = getattr(target.dialect, "model", None)
                endpoint = f"{safe_url(target.url)} {model or ''}"
                target.retry = replace(target.retry, limiter=self.limiters.get(endpoint, "app", slow_start=False))
            self._targets[key] = target
        return self._targets[key]

    def _user(self, sim: Simulation) -> UserSide | Any:
        if not sim.needs_llm:
            return ScriptedUser(sim.turns or [])
        key = json.dumps(sim.user, sort_keys=True)
        if key not in self._users:
            source = "user" if sim.user == self.manifest.user else f"simulations[{sim.index}].user"
            self._users[key] = self._limited(build_model(sim.user or {}, source=source), "user model")
        return self._users[key]

    def _limited(self, model: OpenAIChatCompletionsModel, name: str) -> OpenAIChatCompletionsModel:
        """`model`, waiting out rate limits with every other model of the run at its endpoint."""
        model.share_limiter(self.limiters.get(model.limit_key, name))
        return model

    def llm_calls(self) -> tuple[int, int]:
        """The completions asked so far of the user models and of the judge."""
        users = sum(getattr(model, "calls", 0) for model in self._users.values())
        return users, getattr(self.evaluation.judge, "calls", 0)

    async def warm(self, concurrency: int = 1) -> None:
        """Build every client before the first conversation starts, so no turn's clock holds it.

        Built lazily, the first conversations' clocks held the SDK import and the connection
        pools, and with several conversations at once every request in flight waited for them.
        """
        self.state.warm(concurrency)
        self.limiters.set_ceiling(concurrency)
        for target in self._targets.values():
            await target.warm(concurrency)
        for model in [*self._users.values(), self.evaluation.judge]:
            if isinstance(model, OpenAIChatCompletionsModel):
                await model.warm(concurrency)

    async def aclose(self) -> None:
        for target in self._targets.values():
            await target.aclose()
        for model in self._users.values():
            await model.aclose()
        if self.evaluation.judge is not None:
            await self.evaluation.judge.aclose()
        await self.state.aclose()
