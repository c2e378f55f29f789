"""The simulations manifest: what loads, and one clear message per problem for what does not."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path

import pytest

from simulator.errors import ConfigError
from simulator.manifest import ManifestError, interpolate, load_manifest
from simulator.run.plan import parse_shard, plan_jobs

REPO = Path(__file__).resolve().parent.parent

GOOD = """\
version: 1
target:
  url: ${APP_URL}
  format: promptflow
  headers: {Authorization: "Bearer ${APP_TOKEN:-none}"}
user:
  model: gpt-4o-mini
  endpoint: http://127.0.0.1:9/v1
defaults: {max_turns: 4, repeat: 2, tags: [smoke]}
simulations:
  - name: jane-returns-tent
    persona: jane
    task: Return the tent
    tags: [returns]
  - name: custom-file
    persona: people/ann.yaml
    task: Book a shift
    repeat: 1
    max_turns: 8
    turns: ["hi", "bye"]
  - name: inline
    persona: {name: Bo, profile: A student, tone: curious}
    task: Ask about fees
    target: {headers: {X-Extra: "1"}, timeout: 5}
    user: {temperature: 0.7}
"""


def write(tmp_path: Path, text: str, name: str = "simulations.yml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def good(tmp_path: Path) -> Path:
    (tmp_path / "people").mkdir()
    (tmp_path / "people" / "ann.yaml").write_text("name: Ann\nprofile: A nurse\n")
    return write(tmp_path, GOOD)


ENV = {"APP_URL": "https://app.example.test/chat"}


def test_a_valid_manifest_resolves_everything(good: Path) -> None:
    manifest = load_manifest(good, environ=ENV)
    jane, ann, bo = manifest.simulations
    assert jane.persona.name == "Jane" and jane.max_turns == 4 and jane.repeat == 2
    assert jane.tags == ["returns", "smoke"] and jane.needs_llm
    assert jane.target["url"] == "https://app.example.test/chat"
    assert jane.target["headers"] == {"Authorization": "Bearer none"}
    assert ann.persona.name == "Ann" and ann.repeat == 1 and ann.max_turns == 8 and not ann.needs_llm
    assert ann.turns == ["hi", "bye"] and jane.line == 11
    assert bo.persona.tone == "curious"
    assert bo.target == {
        "url": "https://app.example.test/chat",
        "format": "promptflow",
        "timeout": 5,
        "headers": {"Authorization": "Bearer none", "X-Extra": "1"},
    }
    assert bo.user == {"model": "gpt-4o-mini", "endpoint": "http://127.0.0.1:9/v1", "temperature": 0.7}


def test_app_url_overrides_the_target(good: Path) -> None:
    manifest = load_manifest(good, environ=ENV, app_url="http://127.0.0.1:5000/pr-42")
    assert {s.target["url"] for s in manifest.simulations} == {"http://127.0.0.1:5000/pr-42"}


@pytest.mark.parametrize(
    ("written", "app_url", "expected"),
    [
        ("${APP_URL}/chat", "https://pr-42.example.com", "https://pr-42.example.com/chat"),
        ("${APP_URL}/chat?v=2", "https://pr-42.example.com/", "https://pr-42.example.com/chat?v=2"),
        ("${APP_URL:-http://localhost:8000}/api/chat", "http://10.0.0.7:9000", "http://10.0.0.7:9000/api/chat"),
        ("https://prod.example.com/v1/chat", "https://pr-42.example.com", "https://pr-42.example.com/v1/chat"),
        ("${APP_URL}/chat", "https://pr-42.example.com/other/route", "https://pr-42.example.com/other/route"),
        ("${APP_URL}", "https://pr-42.example.com", "https://pr-42.example.com"),
        ("https://${HOST}.example.com/chat", "https://pr-42.example.com", "https://pr-42.example.com/chat"),
        ("${SCHEME}://app.example.com/chat", "https://pr-42.example.com", "https://pr-42.example.com"),
    ],
)
def test_an_app_url_that_is_an_origin_keeps_the_manifests_path(
    tmp_path: Path, written: str, app_url: str, expected: str
) -> None:
    """The action's `app-url` is the preview deployment's origin; the manifest says where the chat lives."""
    path = tmp_path / "simulations.yml"
    path.write_text(
        f"version: 1\ntarget: {{url: '{written}'}}\nsimulations:\n"
        "  - {name: a, persona: jane, task: t, turns: [hi]}\n"
        "  - {name: b, persona: jane, task: t, turns: [hi], target: {url: 'http://own.example.com/x'}}\n"
    )
    manifest = load_manifest(path, environ={}, app_url=app_url)  # APP_URL and HOST unset: not needed
    assert manifest.target is not None and manifest.target["url"] == expected
    assert [s.target["url"] for s in manifest.simulations] == [expected, "http://own.example.com/x"]


OVERRIDDEN_BODY = """\
version: 1
target:
  url: ${APP_URL}
  format: http
  request:
    body: {text: "{{question}}", session: "{{conversation_id}}", options: {lang: en, tone: warm}, tags: [a, b]}
  response: data.reply.text
  headers: {X-Team: blue}
  timeout: 9
simulations:
  - name: as-is
    persona: jane
    task: t
    turns: [hi]
  - name: changed
    persona: jane
    task: t
    turns: [hi]
    target:
      request: {body: {session: null, options: {lang: fr, tone: null, new: {kept: 1, gone: null}}, tags: [c]}}
      headers: {X-Team: null}
      timeout: null
"""


def test_a_simulations_target_merges_key_by_key_at_every_depth_and_null_removes_a_key(tmp_path: Path) -> None:
    """A simulation changes one key of the top-level body, keeps the others, and removes one with null."""
    from simulator.run.connections import build_target
    from tests.servers.chat_app import FakeChatApp

    with FakeChatApp() as app:
        manifest = load_manifest(write(tmp_path, OVERRIDDEN_BODY), environ={"APP_URL": app.url + "/chat"})
        as_is, changed = manifest.simulations
        assert changed.target["request"]["body"] == {
            "text": "{{question}}",
            "options": {"lang": "fr", "new": {"kept": 1}},
            "tags": ["c"],  # a list replaces the list above
        }
        assert "headers" in as_is.target and changed.target["headers"] == {}
        assert "timeout" not in changed.target  # the default again, not an error
        assert as_is.target["request"]["body"]["session"] == "{{conversation_id}}"
        target = build_target(changed.target, tmp_path)

        async def turn() -> None:
            try:
                await target.respond("hi", [], {"conversation_id": "c1", "turn_number": 1})
            finally:
                await target.aclose()

        asyncio.run(turn())
    assert app.last_request.body == {"text": "hi", "options": {"lang": "fr", "new": {"kept": 1}}, "tags": ["c"]}
    assert "x-team" not in app.last_request.headers


def test_the_bundled_example_manifest_is_valid() -> None:
    manifest = load_manifest(REPO / "examples" / "simulations.yml", environ={})
    assert len(manifest.simulations) == 3 and not any(s.needs_llm for s in manifest.simulations)


def test_interpolation_rules() -> None:
    problems: list = []
    env = {"A": "x", "EMPTY": ""}
    assert interpolate("${A}-${B:-dflt}-$${A}-${EMPTY:-e}", env, (), problems) == "x-dflt-${A}-e"
    assert problems == []
    interpolate({"k": ["${MISSING}"]}, env, (), problems)
    assert problems == [(("k", 0), "MISSING")]
    assert interpolate("${A}", {"A": "key: [1"}) == "key: [1"  # values never become YAML


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 2\nsimulations: []\n", ["version: 1 was expected", ":1:"]),
        ("simulations:\n  - {name: a, persona: jane, task: t, turns: [x]}\n", ["version: required field is missing"]),
        ("version: 1\nsimulations: []\n", ["simulations: [] should be non-empty", ":2:"]),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulatons: []\n",
            ["simulatons: unknown field (did you mean 'simulations'?)", ":3:"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - name: a\n    persona: jane\n",
            ["simulations[0].task: required field is missing", ":4:"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: 'bad name', persona: jane, task: t}\n",
            ["simulations[0].name: 'bad name' is not a simulation name"],
        ),
        (
            "version: 1\ntarget: {url: 'http://x', format: soap}\nsimulations:\n  - {name: a, persona: jane, task: t}\n",
            ["target.format: 'soap' is not one of"],
        ),
        (
            "version: 1\ntarget: {url: 'http://x', session: {read: 'query:sid'}}\n"
            "simulations:\n  - {name: a, persona: jane, task: t}\n",
            ["target.session.read: 'query:sid' is not json:PATH, header:NAME or cookie:NAME"],
        ),
        (
            "version: 1\ntarget: {url: 'http://x', callback: 'm:f'}\nsimulations:\n  - {name: a, persona: jane, task: t}\n",
            ["target"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\ndefaults: {max_turns: 0}\n"
            "simulations:\n  - {name: a, persona: jane, task: t}\n",
            ["defaults.max_turns: 0 is less than the minimum of 1", ":3:"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: a, persona: jane, task: t, repeat: 'two'}\n",
            ["simulations[0].repeat: expected integer, got str"],
        ),
        ("version: 1\nsimulations:\n  - {name: a, persona: jane, task: t\n", ["invalid YAML", ":3:", "expected ','"]),
        ("", ["expected a mapping", "empty"]),
        ("- a\n- b\n", ["expected a mapping", "list"]),
    ],
)
def test_schema_problems_name_file_line_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_manifest(path, environ={})
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "version: 1\ntarget: {url: '${NOPE}/chat'}\nsimulations:\n  - {name: a, persona: jane, task: t, turns: [x]}\n",
            ["environment variable NOPE is not set", ":2:", "target.url"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: a, persona: jane, task: t, turns: [x]}\n"
            "  - {name: a, persona: walter, task: t, turns: [x]}\n",
            ["duplicate simulation name 'a' (first used at line 4)", ":5:"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: a, persona: nobody, task: t, turns: [x]}\n",
            ["simulations[0].persona", "'nobody' is neither a persona file nor a predefined persona", ":4:"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: a, persona: missing.yaml, task: t, turns: [x]}\n",
            ["persona file not found"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: a, persona: {name: Bo}, task: t, turns: [x]}\n",
            ["simulations[0].persona", "profile: required field is missing"],
        ),
        (
            "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: a, persona: jane, task: t}\n",
            ["no 'turns' and no 'user' model"],
        ),
        (
            "version: 1\nsimulations:\n  - {name: a, persona: jane, task: t, turns: [x]}\n",
            ["no target"],
        ),
        (
            "version: 1\ntarget: {url: 'http://x'}\nsimulations:\n"
            "  - {name: a, persona: jane, task: t, turns: [x], target: {format: soap}}\n",
            ["simulations[0].target.format: 'soap' is not one of", ":4:"],
        ),
    ],
)
def test_semantic_problems_name_file_line_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ManifestError) as err:
        load_manifest(path, environ={})
    message = str(err.value)
    for part in expected:
        assert part in message, message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
        version: 1
        target: {url: "${APP_URL}", headers: {Authorization: "Bearer ${APP_TOKEN}"}}
        simulations:
          - {name: a, persona: nobody, task: t, turns: [x]}
          - {name: a, persona: jane, task: t, turns: [x]}
        """,
    )
    with pytest.raises(ManifestError) as err:
        load_manifest(path, environ={})
    assert len(err.value.problems) == 4, err.value.problems
    assert str(err.value).startswith(f"{path}: 4 problems:")


def test_missing_manifest_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="manifest not found"):
        load_manifest(tmp_path / "nope.yml")


def test_app_url_with_a_callback_target_is_an_error(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\ntarget: {callback: 'm:f'}\nsimulations:\n  - {name: a, persona: jane, task: t, turns: [x]}\n",
    )
    with pytest.raises(ManifestError, match="--app-url given but the target is a callback"):
        load_manifest(path, environ={}, app_url="http://x")


# --- planning and sharding ---------------------------------------------------------------------


def test_filters_tags_and_repeat(good: Path) -> None:
    manifest = load_manifest(good, environ=ENV)
    assert [j.key for j in plan_jobs(manifest)] == [
        "jane-returns-tent#1",
        "jane-returns-tent#2",
        "custom-file#1",
        "inline#1",
        "inline#2",
    ]
    assert [j.key for j in plan_jobs(manifest, filters=["jane"])] == ["jane-returns-tent#1", "jane-returns-tent#2"]
    assert [j.key for j in plan_jobs(manifest, filters=["c*"], repeat=1)] == ["custom-file#1"]
    assert [j.key for j in plan_jobs(manifest, tags=["returns"], repeat=3)][-1] == "jane-returns-tent#3"
    with pytest.raises(ConfigError, match="no simulation matches zzz; the manifest has: jane-returns-tent"):
        plan_jobs(manifest, filters=["zzz"])


@pytest.mark.parametrize("count", [1, 2, 3, 7])
def test_shards_cover_every_job_exactly_once(good: Path, count: int) -> None:
    manifest = load_manifest(good, environ=ENV)
    everything = [j.key for j in plan_jobs(manifest, repeat=5)]
    shards = [[j.key for j in plan_jobs(manifest, repeat=5, shard=(i, count))] for i in range(1, count + 1)]
    assert sorted(k for shard in shards for k in shard) == sorted(everything)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
    again = [[j.key for j in plan_jobs(manifest, repeat=5, shard=(i, count))] for i in range(1, count + 1)]
    assert again == shards


@pytest.mark.parametrize("text", ["0/2", "3/2", "1", "a/b", "1/0"])
def test_bad_shard_specs(text: str) -> None:
    with pytest.raises(ConfigError, match="shard"):
        parse_shard(text)


def test_untrusted_manifest_is_data_only(tmp_path: Path) -> None:
    """trusted=False: callbacks (module or file) and persona files are refused, all at once."""
    ann = "name: Ann\nprofile: A teacher who wants a refund\n"
    folder = tmp_path / "m"
    (folder / "people").mkdir(parents=True)
    (folder / "people" / "ann.yaml").write_text(ann)
    (folder / "ann").write_text(ann)  # a bare name that is a file, not a predefined persona
    (folder / "jane").write_text(ann)  # a file named like a predefined persona: untrusted, the predefined one
    (folder / "app.py").write_text("raise SystemExit('never imported')\ndef respond(q, h, m):\n    return q\n")
    path = folder / "simulations.yml"
    path.write_text(
        "version: 1\n"
        "target: {callback: 'app.py:respond'}\n"
        "simulations:\n"
        "  - {name: a, persona: people/ann.yaml, task: t, turns: [x]}\n"
        "  - {name: b, persona: jane, task: t, turns: [x]}\n"
        "  - {name: c, persona: {name: Bo, profile: A student}, task: t, turns: [x]}\n"
        "  - {name: d, persona: ann, task: t, turns: [x], target: {callback: 'os:system'}}\n"
    )
    trusted = load_manifest(path)
    assert [s.persona.name for s in trusted.simulations] == ["Ann", "Ann", "Bo", "Ann"]
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, trusted=False, untrusted_note="not here; ask the owner")
    assert caught.value.problems == [
        f"{path}:2: target.callback: 'app.py:respond' would run Python code; not here; ask the owner",
        f"{path}:4: simulations[0].persona: 'people/ann.yaml' would read a persona file "
        "(a predefined persona or an inline mapping is fine); not here; ask the owner",
        f"{path}:7: simulations[3].persona: 'ann' would read a persona file "
        "(a predefined persona or an inline mapping is fine); not here; ask the owner",
        f"{path}:7: simulations[3].target.callback: 'os:system' would run Python code; not here; ask the owner",
    ]
    with pytest.raises(ManifestError, match=r"refused: the manifest was loaded with trusted=False"):
        load_manifest(path, trusted=False)

    path.write_text(
        "version: 1\ntarget: {url: 'http://127.0.0.1:9/chat'}\nsimulations:\n"
        "  - {name: b, persona: jane, task: t, turns: [x]}\n"
        "  - {name: c, persona: {name: Bo, profile: A student}, task: t, turns: [x]}\n"
    )
    data_only = load_manifest(path, trusted=False)
    assert [s.persona.name for s in data_only.simulations] == ["Jane", "Bo"]
