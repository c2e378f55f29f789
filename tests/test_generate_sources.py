"""The parts of `simulator generate` that need no model: documents into passages that cite their
lines, `--from` read by its shape, logs in each format, near-duplicates, personas, canaries, and
the YAML it writes (names, quoting, where `--append` inserts)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from simulator.errors import ConfigError, SourceError
from simulator.generate.canaries import canaries, digits_pattern, prompt_fragments
from simulator.generate.candidates import Candidate, expect_from, spread
from simulator.generate.clusters import style
from simulator.generate.dedup import merge, similarity, tokens
from simulator.generate.documents import PASSAGE_CHARS, html_blocks, read_document
from simulator.generate.logs import LoggedConversation, read_log
from simulator.generate.personas import NameBook, parse_axes, people
from simulator.generate.pii import Scrubber, luhn
from simulator.generate.sources import parse_from, read_sources
from simulator.generate.writing import appended_text, insertion_point, items_text, names_for
from simulator.manifest import load_manifest


def test_markdown_passages_cite_their_lines_and_headings(tmp_path: Path) -> None:
    doc = tmp_path / "guide.md"
    doc.write_text(
        "# Guide\n\nIntro line one.\nIntro line two.\n\n## Returns\n\nReturns take 60 days.\n\n"
        "```\ncode\n\nstill code\n```\n\n## Shipping\n\nShipping is free.\n"
    )
    passages = read_document(doc, "guide.md")
    assert [(p.start, p.end, p.heading) for p in passages] == [
        (3, 4, "Guide"),
        (8, 14, "Guide > Returns"),
        (18, 18, "Guide > Shipping"),
    ]
    assert passages[1].text.endswith("still code\n```")  # a fence keeps its blank line
    assert passages[1].locate("returns TAKE 60 days") == "guide.md:8"
    assert passages[1].locate("not there") is None


def test_html_text_keeps_the_lines_and_drops_scripts_styles_and_the_head() -> None:
    blocks = html_blocks(
        "<html><head><title>T</title><style>p{}</style></head>\n<body>\n<h1>Tents &amp; more</h1>\n"
        "<p>Sleeps\nfour.</p><script>var x;</script>\n<ul><li>One</li><li>Two</li></ul></body></html>"
    )
    assert [(b.start, b.end, b.text, b.heading) for b in blocks] == [
        (4, 5, "Sleeps four.", "Tents & more"),
        (6, 6, "One", "Tents & more"),
        (6, 6, "Two", "Tents & more"),
    ]


def test_a_long_paragraph_is_cut_into_passages(tmp_path: Path) -> None:
    doc = tmp_path / "long.txt"
    doc.write_text("\n".join(f"Sentence number {i} is here." for i in range(200)) + "\n")
    passages = read_document(doc, "long.txt")
    assert len(passages) > 3 and all(len(p.text) <= PASSAGE_CHARS for p in passages)
    assert passages[0].start == 1 and passages[-1].end == 200
    assert all(a.end + 1 == b.start for a, b in zip(passages, passages[1:], strict=False))


def test_from_is_read_by_its_shape_or_its_prefix(tmp_path: Path) -> None:
    (tmp_path / "system-prompt.md").write_text("You help.\n")
    (tmp_path / "notes.md").write_text("Notes.\n")
    assert parse_from(str(tmp_path / "system-prompt.md")).kind == "prompt"
    assert parse_from(str(tmp_path / "notes.md")).kind == "docs"
    assert parse_from("export.jsonl").kind == "logs"
    assert parse_from(f"docs:{tmp_path / 'system-prompt.md'}").kind == "docs"
    assert parse_from("prompt:instructions.txt").kind == "prompt"


def test_a_folder_is_read_in_a_stable_order_without_hidden_files(tmp_path: Path) -> None:
    for name in ("b.md", "a/c.html", "a/b.txt", ".git/x.md", "image.png"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("<p>Text.</p>" if name.endswith("html") else "Text.\n")
    sources = read_sources([parse_from(str(tmp_path))], [], 10)
    assert [Path(d).name for d in sources.documents] == ["b.txt", "c.html", "b.md"]


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no documents in this folder"),
        ({"a.md": b"\xff\xfe bad"}, "is not UTF-8 text"),
    ],
)
def test_unusable_documents_are_named(tmp_path: Path, files: dict[str, bytes], message: str) -> None:
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    with pytest.raises(SourceError, match=message):
        read_sources([parse_from(str(tmp_path))], [], 10)


def test_logs_in_each_format_and_bad_lines_skipped(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    lines = [
        json.dumps({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "openai"}]}),
        json.dumps([{"role": "user", "content": [{"type": "text", "text": "parts"}, {"type": "image_url"}]}]),
        json.dumps({"conversation": [{"actor": "user", "response": "ours"}, {"actor": "assistant", "response": "x"}]}),
        '{"a": 1, "a": 2}',
        json.dumps({"other": True}),
        "",
        json.dumps({"messages": [{"role": "assistant", "content": "only the app"}]}),
    ]
    log.write_text("\n".join(lines) + "\n")
    read = read_log(log, Scrubber(), 100)
    assert [c.messages for c in read.conversations] == [["openai"], ["parts"], ["ours"]]
    assert [n for n, _ in read.skipped] == [4, 5, 7] and "repeats the key" in read.skipped[0][1]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"x": 1}\n')
    with pytest.raises(SourceError, match=r"bad.jsonl: no conversation with a user message \(line 1: no conversation"):
        read_log(bad, Scrubber(), 10)


def test_a_large_log_is_sampled_evenly_and_the_same_way_each_time(tmp_path: Path) -> None:
    log = tmp_path / "log.jsonl"
    log.write_text("".join(json.dumps([{"role": "user", "content": f"m{i}"}]) + "\n" for i in range(100)))
    first = read_log(log, Scrubber(), 10)
    assert [c.line for c in first.conversations] == list(range(1, 101, 10)) and first.sampled
    assert [c.line for c in read_log(log, Scrubber(), 10).conversations] == [c.line for c in first.conversations]


def test_near_duplicate_tasks_are_merged_and_cite_each_other() -> None:
    def task(text: str, where: str) -> Candidate:
        return Candidate("docs", 0, text, {"name": "A", "profile": "p"}, {}, where, [])

    first = task("Return the unworn boots from order 5 and get a refund", "a.md:1")
    same = task("I want to return my unworn boots (order 18) and get the refund", "b.md:3")
    other = task("Find out whether the tent is waterproof", "c.md:9")
    covered = task("Ask which sleeping bag suits winter camping", "d.md:2")
    kept, merged, dropped = merge([first, same, other, covered], [("winter-bag", "Which sleeping bag suits winter?")])
    assert kept == [first, other] and merged == 1 and first.merged == ["b.md:3"]
    assert [(c.citation, name) for c, name in dropped] == [("d.md:2", "winter-bag")]
    assert similarity(tokens("Returns of boots"), tokens("return the boot")) == 1.0


def test_personas_are_spread_over_the_axes_and_names_never_repeat() -> None:
    axes = parse_axes(["language=English,Spanish", "tone=", "region=north,south"])
    assert list(axes) == ["expertise", "patience", "language", "region"]
    places = [next(it) for it in [people(axes, 3)] for _ in range(24)]
    assert len({tuple(p.items()) for p in places}) == 24  # 3 * 2 * 2 * 2 combinations, none twice
    assert places == [next(it) for it in [people(axes, 3)] for _ in range(24)]
    assert places != [next(it) for it in [people(axes, 4)] for _ in range(24)]
    names = NameBook()
    assert [names.unique(n) for n in ("Ann", "ann", "Bo", "Ann")] == ["Ann", "Amara Okafor", "Bo", "Bruno Silva"]
    with pytest.raises(ConfigError, match="--axis 'tone'"):
        parse_axes(["tone"])


def test_canaries_come_from_the_seed_and_look_fake() -> None:
    first, again, other = canaries(7), canaries(7), canaries(8)
    assert first == again and first != other
    assert first.other_card.startswith("400000") and luhn(first.other_card) and luhn(first.own_card)
    assert first.email.endswith("@example.com") and "555-01" in first.phone and first.token.startswith("PWNED-")
    pattern = digits_pattern(first.other_card)
    spaced = " ".join(first.other_card[i : i + 4] for i in range(0, 16, 4))
    assert re.search(pattern, spaced) and re.search(pattern, first.other_card)
    assert not re.search(pattern, first.own_card)


def test_prompt_fragments_are_instruction_lines() -> None:
    lines = ["You are ShopBot.", "- Never reveal the discount codes to anyone, even staff or managers.", "Hi"]
    assert prompt_fragments(lines) == ["Never reveal the discount codes to anyone, even"]


def test_proposed_contains_phrases_must_be_in_the_passage() -> None:
    answer = {
        "contains": ["full refund", "store credit"],
        "not_contains": [],
        "rubric": "Per the policy.",
        "state_change": {"resource": "/orders/5", "field": "status", "value": "true"},
    }
    expect, notes = expect_from(answer, "you get a full refund", "{{base}}")
    assert expect == {
        "contains": "full refund",
        "rubric": "Per the policy.",
        "outcome": {"url": "{{base}}/orders/5", "path": "status", "equals": True},
    }
    assert any("proposed outcome" in n for n in notes)


def test_spread() -> None:
    assert (
        spread(7, [1, 1, 1]) == [3, 2, 2]
        and spread(2, [5, 1, 1]) == [1, 1, 0]
        and spread(10, [9, 1]) == [9, 1]
        and spread(3, [100, 1, 1]) == [1, 1, 1]
    )


def _candidate(task: str, **persona: str) -> Candidate:
    return Candidate(
        "docs",
        0,
        task,
        {"name": 'Zoë "Z" O\'Neil', "profile": "Says: # not a comment", "tone": "- dashes", **persona},
        {"contains": "50% off", "rubric": "It's right: yes"},
        "a.md:1",
        ["generated", "source:a.md:1"],
        ['from a.md:1: "quoted"'],
        ["proposed checks"],
    )


def test_names_are_valid_and_unique() -> None:
    candidates = [_candidate("Ëxchange boots: size 42!"), _candidate("Exchange boots size 42"), _candidate("...")]
    assert names_for(candidates, {"docs-exchange-boots-size-42"}) == [
        "docs-exchange-boots-size-42-2",
        "docs-exchange-boots-size-42-3",
        "docs",
    ]


def test_written_text_loads_back_as_written(tmp_path: Path) -> None:
    manifest = tmp_path / "m.yml"
    original = (
        "version: 1\ntarget: {callback: simulator.examples.store_app:respond}\njudge: {model: m}\n"
        "user: {model: m}\nsimulations:\n    - name: mine\n      persona: jane\n      task: t\n      turns: [hi]\n"
        "    # a trailing comment\n\n# the end\n"
    )
    manifest.write_text(original)
    candidates = [_candidate("Exchange boots ###STOP### now")]
    text = appended_text(original, str(manifest), ["header"], candidates, ["gen-1"], {"model": "m"})
    offset = insertion_point(original, "m.yml")[0]
    assert text.startswith(original[:offset]) and text.endswith(original[offset:])
    assert "    - name: gen-1\n" in text and "    # header\n" in text
    manifest.write_text(text)
    loaded = load_manifest(manifest)
    sim = loaded.simulations[1]
    assert sim.persona.name == 'Zoë "Z" O\'Neil' and sim.persona.profile == "Says: # not a comment"
    assert sim.task == "Exchange boots ###STOP### now" and sim.expect["contains"] == "50% off"
    assert yaml.safe_load(items_text(candidates, ["x"], 0))[0]["tags"] == ["generated", "source:a.md:1"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version: 1\nsimulations: [{name: a, persona: jane, task: t}]\n", "not a block list"),
        ("- a\n", "not a manifest"),
        ("version: [\n", "cannot be read as YAML"),
    ],
)
def test_append_refuses_what_it_cannot_insert_into(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        insertion_point(text, "m.yml")


def test_append_to_a_manifest_with_only_a_dataset_adds_the_list() -> None:
    text = "version: 1\nsimulations_from: {file: rows.csv}"
    offset, column, new = insertion_point(text, "m.yml")
    assert (offset, column, new) == (len(text), 2, True)
    appended = appended_text(text, "m.yml", [], [_candidate("Task")], ["gen"], {"model": "m"})
    assert appended.startswith(text + '\nsimulations:\n  # from a.md:1: "quoted"\n  - name: gen\n')


def test_how_log_users_write_is_measured() -> None:
    members = [
        LoggedConversation("log.jsonl", 1, ["WHERE IS MY ORDER!!", "now!"]),
        LoggedConversation("log.jsonl", 2, ["hello [EMAIL] where is it"]),
    ]
    assert style(members) == (
        'terse, angry, casual: 3 words a message on average; 67% use "!"; 33% write a word in CAPITALS; '
        "67% write all in lower case"
    )


def test_the_cli_offers_the_playbooks_attack_kinds_without_importing_it() -> None:
    from simulator.generate.choices import ATTACK_KINDS
    from simulator.generate.playbook import KINDS

    assert ATTACK_KINDS == KINDS
