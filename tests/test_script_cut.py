"""A script longer than `max_turns` is cut; `validate` warns at its `turns`, and the result says where.

`max_turns` counts both sides (6 by default): a script of 4 messages takes 8 turns, and cut at
turn 6 it loses its last message without any error. That must show before the run and in it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.cli import EXIT_OK, main
from simulator.conversation.users import script_turns
from simulator.manifest import load_manifest

MANIFEST = """\
version: 1
target: {callback: simulator.examples.store_app:respond}
simulations:
  - name: cut
    persona: jane
    task: Return a tent
    turns: [hi, "I want to return order 5", "yes please", "thanks"]
  - name: fits
    persona: jane
    task: Return a tent
    max_turns: 8
    turns: [hi, "I want to return order 5", "yes please", "thanks"]
  - name: stops-in-time
    persona: jane
    task: Return a tent
    turns: [hi, "I want to return order 5", "thanks ###STOP###", "never sent"]
"""


@pytest.mark.parametrize(
    ("messages", "turns"),
    [
        (["a"], 2),
        (["a", "b", "c", "d"], 8),
        (["a", "b ###STOP###", "c"], 3),  # the app is not asked after a stop
        (["a", "###GIVE_UP###"], 2),  # a marker alone is no turn
    ],
)
def test_the_turns_a_script_takes(messages: list[str], turns: int) -> None:
    assert script_turns(messages) == turns


def test_validate_warns_at_the_turns_of_a_script_max_turns_cuts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "simulations.yml"
    path.write_text(MANIFEST)
    assert load_manifest(path).warnings == [
        f"{path}:7: simulations[0].turns: the script takes 8 turns but max_turns is 6: it is cut at turn 6 "
        "(set max_turns: 8 to play it all)"
    ]
    assert main(["validate", str(path)]) == EXIT_OK
    assert "1 warning(s)" in capsys.readouterr().out


def test_the_result_of_a_cut_script_says_where_it_was_cut(tmp_path: Path) -> None:
    path = tmp_path / "simulations.yml"
    path.write_text(MANIFEST)
    main(["run", str(path), "--out", str(tmp_path / "out")])
    results = {
        r["meta_data"]["simulation"]: r["meta_data"]
        for r in map(json.loads, (tmp_path / "out" / "conversations.jsonl").open())
    }
    assert results["cut"]["stop_reason"] == "max_turns"
    assert results["cut"]["stop_detail"] == (
        "reached max_conversation_turns=6; script cut at turn 6 of 8 (max_turns: 8 plays it all)"
    )
    # played whole: its last reply took the last turn, so it ends at max_turns with nothing cut
    assert results["fits"]["stop_detail"] == "reached max_conversation_turns=8"
    assert results["stops-in-time"]["stop_reason"] == "user_done"


def test_the_rows_of_a_dataset_are_warned_about_once(tmp_path: Path) -> None:
    (tmp_path / "tasks.csv").write_text("persona,max_turns\njane,6\njane,8\njane,4\n")
    path = tmp_path / "simulations.yml"
    path.write_text(
        "version: 1\ntarget: {callback: simulator.examples.store_app:respond}\n"
        "simulations_from:\n  file: tasks.csv\n  simulation: {task: t, turns: [a, b, c, d]}\n"
    )
    assert load_manifest(path).warnings == [
        f"{tmp_path}/tasks.csv:2: turns: the script takes 8 turns but max_turns is 6: it is cut at turn 6 "
        "(set max_turns: 8 to play it all) (and 1 more rows)"
    ]
