"""`simulator validate` and `simulator run` agree on URL targets: one set of checks, every problem at once.

Each bad target below is loaded as a manifest (every problem named as `file:line: field: message`)
and built the way a run builds it; both must name the same problems.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from simulator import ConfigError
from simulator.cli import main
from simulator.manifest import ManifestError, deep_merge, load_manifest
from simulator.run.connections import build_target
from simulator.targets import HttpTarget
from simulator.targets.http import TargetConfigError, target_problems

SIMULATION = "simulations:\n  - {name: a, persona: jane, task: t, turns: [hi]}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "simulations.yml"
    path.write_text(textwrap.dedent(text))
    return path


def load_problems(path: Path) -> list[tuple[int, str]]:
    """(line, message) of each problem `load_manifest` names."""
    with pytest.raises(ManifestError) as err:
        load_manifest(path, environ={})
    located = []
    for problem in err.value.problems:
        match = re.fullmatch(rf"{re.escape(str(path))}:(\d+): (.*)", problem, re.S)
        assert match, f"no file:line in {problem!r}"
        located.append((int(match[1]), match[2]))
    return located


def run_problems(config: Mapping[str, Any], source: str, folder: Path) -> list[str]:
    """What building the target the way `simulator run` does raises, one message a line."""
    with pytest.raises(ConfigError) as err:
        build_target(dict(config), folder, source=source)
    return str(err.value).splitlines()


# --- targets the schema accepts: the manifest names exactly what the run would raise ----------------

#: (the top-level target's lines, which start at line 3; the line of each problem)
TOP_LEVEL = {
    "unknown placeholder in url": ('url: "http://app.test/chat/{{nope}}"', [3]),
    "unknown placeholder in body": (
        """\
        url: http://app.test/chat
        format: http
        request:
          body:
            text: "{{questoin}}"
            items: ["{{question}}", "{{histroy}}"]
        response: data.reply.text""",
        [7, 8],
    ),
    "unknown placeholder in a header": ('url: http://app.test/chat\nheaders:\n  X-Id: "{{conversation}}"', [5]),
    "unknown placeholder in the query": (
        """\
        url: http://app.test/chat
        format: http
        request:
          method: GET
          query:
            q: "{{histroy}}"
        response: data.reply.text""",
        [8],
    ),
    "format http without response": ("url: http://app.test/chat\nformat: http\nrequest: {body: {m: x}}", [2]),
    "bad response path": ("url: http://app.test/chat\nresponse: data..text", [4]),
    "bad json session path": ('url: http://app.test/chat\nsession:\n  read: "json:a..b"', [5]),
    "session_id with no session": (
        'url: http://app.test/chat\nformat: http\nrequest:\n  body: {s: "{{session_id}}"}\nresponse: r',
        [6],
    ),
    "GET with a body": (
        "url: http://app.test/chat\nformat: http\nrequest:\n  method: GET\n  body: {m: x}\nresponse: r",
        [7],
    ),
    "POST without a body": ("url: http://app.test/chat\nformat: http\nrequest:\n  method: POST\nresponse: r", [5]),
    "openai-only fields on promptflow": (
        "url: http://app.test/chat\nformat: promptflow\nstream: true\nmodel: gpt-4o-mini",
        [6, 5],
    ),
    "a request template on openai": ("url: http://app.test/v1\nformat: openai\nrequest:\n  body: {m: x}", [5]),
    "not an http url": ("url: ftp://app.test/chat", [3]),
    "credentials in the url and an Authorization header": (
        'url: "http://user:PassWord@app.test/chat"\nheaders: {authorization: "Bearer t0ken"}',
        [3],
    ),
    "every problem at once": (
        """\
        url: "http://app.test/{{nope}}"
        format: http
        headers: {X-A: "{{who}}"}
        request:
          body: {m: "{{qestion}}", s: "{{session_id}}"}
        response: "a["
        session: {read: "json:a..b"}""",
        [8, 9, 3, 5, 7],
    ),
}


@pytest.mark.parametrize("name", list(TOP_LEVEL))
def test_the_manifest_names_what_the_run_would_raise(tmp_path: Path, name: str) -> None:
    lines, expected_lines = TOP_LEVEL[name]
    target = textwrap.indent(textwrap.dedent(lines), "  ")
    path = write(tmp_path, f"version: 1\ntarget:\n{target}\n{SIMULATION}")
    found = load_problems(path)
    config = yaml.safe_load(path.read_text())["target"]
    assert [message for _, message in found] == run_problems(config, "target", tmp_path)
    assert [line for line, _ in found] == expected_lines, found
    assert target_problems(config, "target") == [message for _, message in found]


def test_the_run_names_the_simulation_as_the_runner_does(tmp_path: Path) -> None:
    config = {"url": "http://app.test/chat/{{nope}}", "stream": True}
    problems = run_problems(config, "simulations[3].target", tmp_path)
    assert problems == target_problems(config, "simulations[3].target")
    assert [p.split(": ", 1)[0] for p in problems] == ["simulations[3].target.stream", "simulations[3].target.url"]


def test_every_problem_is_raised_at_once_when_building() -> None:
    config = {"url": "nope", "format": "http", "timeout": -1, "history": "all", "request": {"method": "DELETE"}}
    with pytest.raises(TargetConfigError) as err:
        HttpTarget.from_config(config)
    assert err.value.problems == target_problems(config)
    assert [p.split(":", 1)[0] for p in err.value.problems] == [
        "target.url",
        "target.request.method",
        "target.history",
        "target.timeout",
        "target.response",
    ]


def test_a_simulation_override_is_checked_where_it_was_written(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        target:
          url: "http://app.test/{{nope}}"
        simulations:
          - {name: a, persona: jane, task: t, turns: [hi]}
          - name: b
            persona: jane
            task: t
            turns: [hi]
            target:
              format: http
              request: {body: {m: "{{qestion}}"}}
              response: reply
        """,
    )
    found = load_problems(path)
    assert [(line, message.split(": ", 1)[0]) for line, message in found] == [
        (3, "target.url"),  # the top level's own problem, once
        (12, "simulations[1].target.request.body.m"),
    ]
    data = yaml.safe_load(path.read_text())
    merged = deep_merge(data["target"], data["simulations"][1]["target"])
    run = run_problems(merged, "simulations[1].target", tmp_path)
    assert run == ["simulations[1].target.url" + found[0][1][len("target.url") :], found[1][1]]
    assert run_problems(data["target"], "target", tmp_path) == [found[0][1]]


# --- targets the schema refuses: every problem is still named at its line ---------------------------

#: a simulation's override (its lines start at line 10) over a good top-level target
OVERRIDES = {
    "unknown field": "colour: blue",
    "bad format": "format: soap",
    "bad history": "history: some",
    "bad max_reply_bytes": "max_reply_bytes: 100",
    "bad session spec": "session: {read: 'query:sid'}",
    "bad timeout": "timeout: 0",
    "bad retry": "retry: {attempts: -1}",
    "several": "format: openai\nstream: 'yes'\nmodel: 7\nmax_reply_bytes: 2000000000\nheaders: {X-A: '{{who}}'}",
}


@pytest.mark.parametrize("name", list(OVERRIDES))
def test_schema_problems_and_run_problems_are_all_named(tmp_path: Path, name: str) -> None:
    override = textwrap.indent(OVERRIDES[name], "      ")
    path = write(
        tmp_path,
        "version: 1\ntarget:\n  url: http://app.test/chat\nsimulations:\n  - name: a\n    persona: jane\n"
        f"    task: t\n    turns: [hi]\n    target:\n{override}\n",
    )
    data = yaml.safe_load(path.read_text())
    merged = deep_merge(data["target"], data["simulations"][0]["target"])
    found = [f"{path}:{line}: {message}" for line, message in load_problems(path)]
    run = run_problems(merged, "simulations[0].target", tmp_path)
    assert run
    for message in run:
        named = message.split(": ", 1)[0]
        # at the override's lines: the run's own message, or the schema's about the very same field
        at_its_line = re.compile(rf"{re.escape(str(path))}:1[0-9]: ({re.escape(message)}|{re.escape(named)}: .*)", re.S)
        assert any(at_its_line.fullmatch(p) for p in found), (message, found)


# --- what validates runs -------------------------------------------------------------------------


def test_validate_exits_2_on_an_unknown_placeholder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, f'version: 1\ntarget:\n  url: "http://127.0.0.1:1/{{{{nope}}}}"\n{SIMULATION}')
    assert main(["validate", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"{path}:3: target.url: unknown placeholder {{{{nope}}}}" in error


def test_validate_refuses_credentials_in_the_url_and_an_authorization_header(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The client cannot send both (every turn would fail): validate names both fields and says to use one."""
    target = (
        'target:\n  url: "http://user:PassWord@127.0.0.1:1/chat"\n  headers: {Authorization: "Bearer ${APP_TOKEN}"}\n'
    )
    path = write(tmp_path, f"version: 1\n{target}{SIMULATION}")  # the token unset: validate still sees the header
    assert main(["validate", str(path)]) == 2
    error = capsys.readouterr().err
    assert (
        f"{path}:3: target.url: carries credentials (user:password@) and target.headers.Authorization sets them too, "
        "but a request can send only one: use one of them" in error
    ), error
    with pytest.raises(TargetConfigError, match="use one of them"):
        HttpTarget("http://user@127.0.0.1:1/chat", headers={"AUTHORIZATION": "Basic dXNlcjo="})
    for one in ("http://user:PassWord@127.0.0.1:1/chat", "http://127.0.0.1:1/chat"):  # either alone is fine
        headers = {} if "@" in one else {"Authorization": "Bearer t"}
        assert HttpTarget(one, headers=headers).url == one


def test_validate_refuses_state_requests_that_would_send_credentials_twice(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Setup, teardown and outcome requests: their own URL's credentials, or the target's that `{{base}}`
    passes on, beside an Authorization header of their own."""
    path = write(
        tmp_path,
        """\
        version: 1
        target: {url: "http://app:Secret@127.0.0.1:1/chat"}
        simulations:
          - name: a
            persona: jane
            task: t
            turns: [hi]
            setup: {method: PUT, url: "http://admin:Pw@127.0.0.1:1/orders/5", headers: {Authorization: "Bearer x"}}
          - name: b
            persona: jane
            task: t
            turns: [hi]
            expect:
              outcome: {url: "{{base}}/orders/5", headers: {Authorization: "Bearer x"}, path: status, equals: ok}
          - name: c
            persona: jane
            task: t
            turns: [hi]
            teardown: {method: DELETE, url: "{{base}}/orders/5", headers: {X-Key: "k"}}
        """,
    )
    assert main(["validate", str(path)]) == 2
    error = capsys.readouterr().err
    assert (
        f"{path}:8: simulations[0].setup.url: carries credentials (user:password@) and "
        "simulations[0].setup.headers.Authorization sets them too, but a request can send only one: use one of them"
    ) in error, error
    assert (
        f"{path}:2: target.url: carries credentials (user:password@) that {{{{base}}}} passes on to "
        "simulations[1].expect.outcome, whose headers.Authorization sets them too, but a request can send only one: "
        "use one of them"
    ) in error, error
    assert "simulations[2]" not in error  # credentials from {{base}} and no Authorization of its own: fine


def test_a_simulation_switching_format_leaves_the_other_formats_fields(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        target:
          url: http://app.test/chat
          format: http
          request: {body: {m: "{{question}}"}}
          response: data.reply.text
        simulations:
          - {name: a, persona: jane, task: t, turns: [hi]}
          - {name: b, persona: jane, task: t, turns: [hi], target: {url: "http://app.test/pf", format: promptflow}}
          - {name: c, persona: jane, task: t, turns: [hi], target: {format: openai, stream: true, response: x}}
        """,
    )
    manifest = load_manifest(path, environ={})
    a, b, c = manifest.simulations
    assert a.target["request"] == {"body": {"m": "{{question}}"}}
    assert "request" not in b.target and b.target["response"] == "data.reply.text"
    assert "request" not in c.target and c.target["stream"] is True
    for sim in manifest.simulations:
        assert isinstance(build_target(sim.target, tmp_path, source=f"simulations[{sim.index}].target"), HttpTarget)


def test_an_unreadable_variable_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, f'version: 1\ntarget:\n  url: "${{APP_URL}}"\n{SIMULATION}')
    found = load_problems(path)
    assert len(found) == 1 and "environment variable APP_URL is not set" in found[0][1]


def test_callback_targets_are_left_to_their_own_checks(tmp_path: Path) -> None:
    path = write(tmp_path, f"version: 1\ntarget:\n  callback: 'my_app:respond'\n{SIMULATION}")
    assert load_manifest(path, environ={}).simulations[0].target == {"callback": "my_app:respond"}
