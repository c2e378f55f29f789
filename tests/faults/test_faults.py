"""App and user-LLM faults through the real runner: one simulation is hit, the rest stay intact.

The case table and the survival criteria live in `harness.py` (bench/faults_report.py reuses them);
each case here fails with every criterion it broke.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from simulator.conversation.loop import MAX_REPLY_CHARS, bounded_reply
from tests.faults.harness import Case, all_cases, problems, run_case


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.id)
def test_the_run_survives_the_fault(case: Case, tmp_path: Path, record_property) -> None:
    run = run_case(case, tmp_path)
    found = problems(run)
    record_property("survived", not found)
    assert not found, f"{case.id}:\n  - " + "\n  - ".join(found)


def test_a_cut_reply_keeps_the_raw_answer_small_and_its_shape() -> None:
    text = "y" * (MAX_REPLY_CHARS * 3)
    kept, raw, extra = bounded_reply(text, {"status": 200, "body": {"answer": text, "sources": ["a"]}})
    assert len(kept) == MAX_REPLY_CHARS and extra["reply_chars"] == len(text) and "cut" in extra["notes"][0]
    assert raw["status"] == 200 and raw["body"]["sources"] == ["a"]
    assert len(raw["body"]["answer"]) == MAX_REPLY_CHARS + 1  # the cut is marked with an ellipsis
    # a stream of many small events cannot be cut string by string: only its beginning is kept
    events = [{"delta": "z" * 50}] * (MAX_REPLY_CHARS // 10)
    _, raw, _ = bounded_reply("z" * 50 * len(events), {"status": 200, "events": events})
    assert raw["status"] == 200 and "cut" in raw and len(json.dumps(raw)) < 3 * MAX_REPLY_CHARS
    assert bounded_reply("short", {"answer": "short"}) == ("short", {"answer": "short"}, {})
