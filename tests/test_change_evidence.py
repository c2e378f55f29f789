"""What a move since the base run rests on: a changed reply to the same messages (caused), counts,
or an app that answers the same messages differently (noise), at the small `repeat` teams use."""

from __future__ import annotations

from typing import Any

import pytest

from simulator.report import compare
from simulator.report.change_evidence import add_evidence
from simulator.report.changes_markdown import changes_section
from simulator.report.significance import benjamini_hochberg, fisher_exact, mcnemar_exact, repeat_needed
from simulator.results.summary import summarize

USER = ["I want to return my shoes", "order 55, size 42", "how do I send them back?"]
LABEL = "I have emailed you a prepaid return label."
NO_LABEL = "Please find a box and post them to us."


def conversation(
    simulation: str,
    repeat: int,
    replies: list[str],
    passed: bool,
    user: list[str] = USER,
    replay: dict[str, Any] | None = None,
) -> dict[str, Any]:
    turns: list[dict[str, Any]] = []
    for message, reply in zip(user, replies, strict=True):
        turns.append({"turn_number": len(turns), "actor": "user", "response": message})
        turns.append({"turn_number": len(turns), "actor": "assistant", "response": reply})
    status = "pass" if passed else "fail"
    check = {"name": "contains 'return label'", "kind": "contains", "status": status, "message": "", "evidence": {}}
    meta: dict[str, Any] = {
        "simulation": simulation,
        "repeat": repeat,
        "persona": {"name": "Jane"},
        "task": "return shoes",
        "stop_reason": "user_done",
        "turn_count": len(turns),
        "usage": {},
    }
    if replay is not None:
        meta["replay"] = replay
    return {
        "conversation_id": f"{simulation}-{repeat}",
        "conversation": turns,
        "meta_data": meta,
        "evaluation": {"status": status, "checks": [check], "failed": [] if passed else [check["name"]], "errors": []},
    }


def changed_at(turn: int) -> dict[str, Any]:
    return {
        "from": "base",
        "identical": False,
        "diverged_at_turn": turn,
        "diverged_because": "the app's reply differs from the baseline's",
        "llm_calls_saved": 3,
        "llm_calls_made": 0,
    }


def compared(base: list[dict], head: list[dict]) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    changes = compare(summarize(head), summarize(base))
    run = add_evidence(changes, head, base)
    return changes, run


SIMULATIONS = ("returns-0", "returns-1", "returns-2")


def test_a_reply_changed_at_turn_3_is_a_caused_regression_at_repeat_2() -> None:
    base = [conversation(s, r, ["Sure.", "Thanks.", LABEL], True) for s in SIMULATIONS for r in (1, 2)]
    head = [
        conversation(s, r, ["Sure.", "Thanks.", NO_LABEL], False, replay=changed_at(5))
        for s in SIMULATIONS
        for r in (1, 2)
    ]
    changes, run = compared(base, head)
    for name in SIMULATIONS:
        change = changes[name]
        assert change["p_value"] == pytest.approx(1 / 3)  # the counts alone: 2/2 → 0/2 is within noise
        assert change["verdict"] == "regressed" and change["evidence"] == "caused"
        assert change["paired"]["caused_down"] == 2 and change["paired"]["turn"] == 5
        assert change["paired"]["example"]["base"] == LABEL and change["paired"]["example"]["head"] == NO_LABEL
    assert run["verdict"] == "regressed"
    assert run["p_value"] == pytest.approx(fisher_exact(6, 0, 0, 6)) and run["p_value"] < 0.01  # 6/6 → 0/6
    assert run["paired"] == {"down": 6, "up": 0, "p_value": pytest.approx(1 / 32)}
    text = changes_section(changes, run=run)
    first = text.splitlines()[1]
    assert first.startswith("**Run as a whole: 📉 regressed** — 6/6 → 0/6 passed (p = 0.002)")
    assert "**📉 Regressed** (3):" in text and "within noise" not in text
    assert "caused by the app's changed reply at turn 5: 2 of 2 conversation(s) sent the base run's messages" in text
    assert f"base “{LABEL}” → now “{NO_LABEL}”" in text


def test_scripted_users_pair_without_a_replay() -> None:
    base = [conversation("returns", r, ["Sure.", "Thanks.", LABEL], True) for r in (1, 2)]
    head = [conversation("returns", r, ["Sure.", "Thanks.", NO_LABEL], False) for r in (1, 2)]
    changes, _ = compared(base, head)
    assert changes["returns"]["evidence"] == "caused" and changes["returns"]["paired"]["turn"] == 5


def test_an_app_that_answers_the_same_messages_differently_is_judged_by_counts() -> None:
    # the base run itself: the same three messages, two different third replies
    base = [
        conversation("returns", 1, ["Sure.", "Thanks.", LABEL], True),
        conversation("returns", 2, ["Sure.", "Thanks.", "A label is on its way to you by email, return label."], True),
    ]
    head = [conversation("returns", r, ["Sure.", "Thanks.", NO_LABEL], False, replay=changed_at(5)) for r in (1, 2)]
    changes, run = compared(base, head)
    change = changes["returns"]
    assert change["verdict"] == "within noise" and change["evidence"] == "counts"
    assert (
        "the base run's returns#1 and returns#2 sent the same messages and got different replies at turn 5"
        in (change["nondeterministic"])
    )
    assert run["verdict"] == "within noise"
    assert "the app answers the same messages differently" in changes_section(changes, run=run)


def test_a_same_app_rerun_of_a_sampling_app_is_noise() -> None:
    sampled = ["Hi!", "Hello there.", "Hey."]
    base = [conversation("returns", r, [sampled[r - 1], "Thanks.", LABEL], r != 2) for r in (1, 2)]
    head = [conversation("returns", r, [sampled[r], "Thanks.", LABEL], r == 2, replay=changed_at(1)) for r in (1, 2)]
    changes, run = compared(base, head)
    assert changes["returns"]["nondeterministic"]
    assert changes["returns"]["verdict"] in ("within noise", "unchanged") and run["verdict"] != "regressed"


def test_live_users_who_wrote_other_messages_are_judged_by_counts() -> None:
    base = [conversation("returns", r, ["Sure.", "Thanks.", LABEL], True) for r in (1, 2)]
    other = ["hello", "where are my shoes", "bye"]
    head = [conversation("returns", r, ["Sure.", "Thanks.", NO_LABEL], False, user=other) for r in (1, 2)]
    changes, _ = compared(base, head)
    assert changes["returns"]["evidence"] == "counts" and "paired" not in changes["returns"]
    assert changes["returns"]["verdict"] == "within noise" and changes["returns"]["repeat_needed"] == 4


def test_a_first_reply_that_changed_is_not_called_caused_without_seeing_the_app_answer_alike() -> None:
    base = [conversation("returns", 1, [LABEL, "Thanks.", "Bye."], True)]
    head = [conversation("returns", 1, [NO_LABEL, "Thanks.", "Bye."], False, replay=changed_at(1))]
    changes, _ = compared(base, head)
    assert changes["returns"]["evidence"] == "counts" and changes["returns"]["verdict"] == "within noise"


def test_benjamini_hochberg_matches_the_step_up_definition() -> None:
    q = benjamini_hochberg({"a": 0.01, "b": 0.04, "c": 0.03, "d": 0.2})
    assert q == pytest.approx({"a": 0.04, "b": 0.0533333, "c": 0.0533333, "d": 0.2})


def test_mcnemar_and_the_repeat_that_would_settle_a_move() -> None:
    assert mcnemar_exact(6, 0) == pytest.approx(1 / 32)
    assert mcnemar_exact(3, 3) == 1.0 and mcnemar_exact(0, 0) == 1.0
    assert repeat_needed(1.0, 0.0, 2) == 4  # 4/4 → 0/4: p = 0.029
    assert repeat_needed(0.8, 0.6, 5) is not None and repeat_needed(0.8, 0.6, 5) > 20
    assert repeat_needed(0.5, 0.5, 2) is None and repeat_needed(0.51, 0.5, 2) is None
