"""Persona: loading, predefined personas, export round-trip, the prompt, and bad files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from simulator import GIVE_UP_MARKER, STOP_MARKER, Persona, PersonaError, TemplateError, predefined_personas

REPO = Path(__file__).resolve().parent.parent


def test_jane_yaml_from_the_reference_loads_as_is(tmp_path: Path) -> None:
    path = tmp_path / "jane.yaml"
    path.write_bytes((REPO / "tests" / "fixtures" / "reference_jane.yaml").read_bytes())
    jane = Persona.load(path=str(path))
    assert jane.name == "Jane"
    assert jane.tone == "happy"
    assert jane.profile.startswith("Jane Doe is a 28-year-old outdoor enthusiast")
    assert "TrailMaster X4 Tent" in jane.meta_data["customer_info"]
    assert "order_number: 5" in jane.meta_data["customer_info"]


def test_predefined_jane_keeps_the_references_content_as_structured_facts() -> None:
    """The reference's facts are one collapsed pseudo-Markdown string; ours are fields a prompt shows
    line by line, with the same values."""
    reference = Persona.load(REPO / "tests" / "fixtures" / "reference_jane.yaml")
    jane = Persona.load("jane")
    assert re.sub(r"\.(?=[A-Z])", ". ", reference.profile) == jane.profile
    assert not re.search(r"\.[A-Z]", jane.profile)  # "status.Jane" read as one word
    info = jane.meta_data["customer_info"]
    assert info["name"] == "Jane Doe" and info["age"] == 28 and info["loyalty_program_level"] == "Bronze"
    orders = {o["order_number"]: o["items"][0]["description"] for o in jane.meta_data["recent_purchases"]}
    assert orders == {5: "TrailMaster X4 Tent", 18: "Pathfinder Pro-1 Adventure Compass", 28: "CozyNights Sleeping Bag"}
    for value in ("555-987-6543", "jane.doe@example.com", "789 Broadway St, Seattle, WA 98101", "$39.99"):
        assert value in reference.meta_data["customer_info"] and value in jane.render("t")
    assert "\n  email: jane.doe@example.com\n" in jane.render("Return the tent")


def test_at_least_six_predefined_personas_all_load_and_differ() -> None:
    names = predefined_personas()
    assert "jane" in names and len(names) >= 6
    personas = [Persona.load(name) for name in names]
    assert len({p.profile for p in personas}) == len(personas)
    assert len({p.tone for p in personas}) == len(personas)
    assert all(p.name and p.profile and p.tone for p in personas)


def test_predefined_name_is_case_insensitive_and_unknown_name_lists_choices() -> None:
    assert Persona.load("JANE") == Persona.load("jane")
    with pytest.raises(PersonaError) as err:
        Persona.load("nobody")
    assert "'nobody'" in str(err.value) and "jane" in str(err.value)


def test_export_then_load_gives_an_equal_persona(tmp_path: Path) -> None:
    custom = Persona(
        name="Random Person",
        profile="50 years old engineer",
        tone="bored",
        meta_data={"customer_id": 50, "address": "1 Main St"},
    )
    out = tmp_path / "customPersona.yaml"
    custom.export(path=str(out))
    assert Persona.load(path=str(out)) == custom
    jane = Persona.load("jane")
    jane.export(tmp_path / "jane_copy.yaml")
    assert Persona.load(tmp_path / "jane_copy.yaml") == jane


def test_custom_template_and_vars_round_trip(tmp_path: Path) -> None:
    persona = Persona(
        name="Ann",
        profile="A nurse.",
        prompt_template="You are {{name}} at {{hospital}}. Goal: {{task}}",
        template_vars={"hospital": "St Mary"},
    )
    persona.export(tmp_path / "ann.yaml")
    again = Persona.load(tmp_path / "ann.yaml")
    assert again == persona
    assert again.render("book a shift") == "You are Ann at St Mary. Goal: book a shift"


def test_template_holds_every_field_and_the_rules() -> None:
    jane = Persona.load("jane")
    prompt = jane.render("Return the tent and get a refund")
    for expected in ("Jane", jane.profile[:60], "happy", "Return the tent and get a refund", "555-987-6543"):
        assert expected in prompt
    assert STOP_MARKER in prompt and GIVE_UP_MARKER in prompt
    assert "never speak as the assistant" in prompt
    assert "one message per turn" in prompt
    assert "{{" not in prompt


def test_template_property_is_rendered_but_keeps_the_task_slot() -> None:
    jane = Persona.load("jane")
    assert "{{task}}" in jane.template
    assert "{{name}}" not in jane.template and "Jane" in jane.template
    assert jane.template.replace("{{task}}", "X") == jane.render("X")


def test_persona_without_tone_or_meta_data_still_renders() -> None:
    bare = Persona(name="Sam", profile="A student.")
    prompt = bare.render("ask about fees")
    assert "Sam" in prompt and "(none given)" in prompt and "{{" not in prompt


def test_template_from_file_and_extra_render_vars(tmp_path: Path) -> None:
    template = tmp_path / "t.txt"
    template.write_text("{{name}} wants {{task}} in {{language}}")
    with pytest.raises(TemplateError, match="language"):
        Persona(name="Lu", profile="p", prompt_template_file=template)  # nobody provides {{language}}
    persona = Persona(name="Lu", profile="p", prompt_template_file=template, template_vars={"language": "Welsh"})
    assert persona.render("tea") == "Lu wants tea in Welsh"
    assert persona.render("tea", language="French") == "Lu wants tea in French"
    other = Persona.load("jane").with_template("{{name}}/{{task}}/{{city}}", city="Seattle")
    assert other.render("go") == "Jane/go/Seattle"


def test_unknown_placeholder_is_an_error_not_a_blank() -> None:
    with pytest.raises(TemplateError) as err:
        Persona(name="A", profile="B", prompt_template="Hi {{nmae}}, do {{task}}")
    message = str(err.value)
    assert "{{nmae}}" in message and "name" in message


def test_template_vars_cannot_shadow_builtins() -> None:
    with pytest.raises(PersonaError, match="name"):
        Persona(name="A", profile="B", template_vars={"name": "C"})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("name: A\n", ["profile: required field is missing"]),
        ("name: A\nprofile: B\nproflie: C\n", ["proflie: unknown field (did you mean 'profile'?)", ":3:"]),
        ("name: A\nprofile: [1, 2]\n", ["profile: expected string", ":2:"]),
        ("name: ''\nprofile: B\n", ["name: must not be empty"]),
        ("- just\n- a list\n", ["expected a mapping"]),
        ("", ["empty"]),
        ("name: A\nprofile: 'unterminated\n", ["invalid YAML"]),
        ("name: A\nprofile: B\nmeta_data: 3\n", ["meta_data: expected object or string or null"]),
    ],
)
def test_bad_persona_files_name_the_file_and_the_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(PersonaError) as err:
        Persona.load(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message


def test_missing_file_and_directory_are_clear(tmp_path: Path) -> None:
    with pytest.raises(PersonaError, match="persona file not found"):
        Persona.load(tmp_path / "missing.yaml")
    with pytest.raises(PersonaError, match="not a file"):
        Persona.load(tmp_path)


def test_constructor_validates_fields() -> None:
    with pytest.raises(PersonaError, match="profile"):
        Persona(name="A", profile=None)  # type: ignore[arg-type]
    with pytest.raises(PersonaError, match="meta_data"):
        Persona(name="A", profile="B", meta_data=[1, 2])  # type: ignore[arg-type]


def test_export_writes_plain_yaml(tmp_path: Path) -> None:
    Persona(name="A", profile="B").export(tmp_path / "a.yaml")
    assert yaml.safe_load((tmp_path / "a.yaml").read_text()) == {"name": "A", "profile": "B"}


@pytest.mark.parametrize("meta_data", [{}, "", None, {"note": ""}])
def test_empty_meta_data_round_trips_equal(tmp_path: Path, meta_data: object) -> None:
    persona = Persona(name="A", profile="B", tone="", meta_data=meta_data)  # type: ignore[arg-type]
    persona.export(tmp_path / "a.yaml")
    assert Persona.load(tmp_path / "a.yaml") == persona
