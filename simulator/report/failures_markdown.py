"""The failed and errored conversations of a run in Markdown: which of them come first (those of
simulations that regressed since the base run), and each one folded, its failing checks with their
evidence and the turns around them, small enough for many to fit in a PR comment."""

from __future__ import annotations

import heapq
import html
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

from ..records import ConversationResult, Evaluation
from ..text.unicode_safety import visible_controls
from .baseline import NEW
from .escape import clipped, html_text, inline
from .significance import REGRESSED, WITHIN_NOISE

DETAIL_LIMIT = 6_000  # one failed conversation's details
TURN_TEXT_LIMIT = 600
#: failed conversations kept while rendering: more never fit GitHub's limits
SHOWN_AT_MOST = 500

#: a verdict's icon: a conversation's here, a simulation's and the gate's in `markdown`
ICONS = {"pass": "✅", "fail": "❌", "error": "⚠️", "skipped": "⏭️"}


def code_block(text: str, language: str = "text") -> str:
    """Untrusted multi-line text in a fence it cannot close."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"


def deep_link(report_url: str, simulation: str, repeat: int) -> str:
    """report.html's address that opens one conversation's transcript: `#<simulation>/<repeat>`."""
    return f"{report_url.split('#', 1)[0]}#{quote(simulation, safe='')}/{repeat}"


def _turn_numbers(evaluation: Evaluation) -> set[int]:
    numbers: set[int] = set()
    for check in evaluation.get("checks", []):
        if check.get("status") == "pass":
            continue
        evidence = check.get("evidence") or {}
        if isinstance(evidence.get("turn"), int):
            numbers.add(evidence["turn"])
    return numbers


def _transcript(result: ConversationResult, focus: set[int]) -> str:
    turns = result["conversation"]
    keep = {n + d for n in focus for d in (-1, 0)} if focus else {t["turn_number"] for t in turns[-4:]}
    lines: list[str] = []
    skipped = False
    for turn in turns:
        if turn["turn_number"] not in keep:
            skipped = True
            continue
        if skipped and lines:
            lines.append("…")
        skipped = False
        error = turn.get("error")
        text = f"[no reply: {error.get('message', '')}]" if error else turn["response"]
        text = clipped(text, TURN_TEXT_LIMIT, visible_controls)  # counted as written: "\x1b" is 4
        marker = " ◀" if turn["turn_number"] in focus else ""
        latency = f" ({turn['latency_ms']:,.0f} ms)" if turn["actor"] == "assistant" and "latency_ms" in turn else ""
        actor = visible_controls(str(turn["actor"]))
        lines.append(f"[{turn['turn_number']}] {actor}{latency}{marker}: {text}")
    return "\n".join(lines)


def conversation_details(result: ConversationResult, report_url: str | None = None) -> str:
    """A failed or errored conversation, folded: failing checks with evidence, then the turns.

    The summary line is HTML on GitHub (Markdown escapes would show), and with `report_url` its
    name links to the conversation's transcript in report.html.
    """
    meta = result["meta_data"]
    evaluation = result.get("evaluation") or {}
    status = evaluation.get("status", "error")
    name = meta.get("simulation") or meta["persona"]["name"]
    repeat = meta.get("repeat", 1)
    first = (evaluation.get("failed") or evaluation.get("errors") or [meta["stop_reason"]])[0]
    label = f"{html_text(name, 80)} #{repeat}"
    if report_url:
        label = f'<a href="{html.escape(deep_link(report_url, name, repeat))}">{label}</a>'
    lines = [
        f"<details><summary>{ICONS.get(status, '')} {label}: {html_text(first, 160)}</summary>",
        "",
        f"**Persona** {inline(meta['persona']['name'], 60)} · **Task** {inline(meta['task'], 200)} · "
        f"**Ended** {inline(meta['stop_reason'], 40)} "
        f"after {meta.get('turn_count', len(result['conversation']))} turns",
        "",
    ]
    findings = [
        f"- {ICONS.get(check['status'], '')} {inline(check['name'], 120)}: {inline(check['message'], 400)}"
        + (f" — “{inline(check['evidence']['text'], 200)}”" if (check.get("evidence") or {}).get("text") else "")
        for check in evaluation.get("checks", [])
        if check["status"] != "pass"
    ]
    findings += [
        f"- ⚠️ {inline(error, 400)}"
        for error in evaluation.get("errors", [])
        if not any(error.startswith(c["name"]) for c in evaluation.get("checks", []))
    ]
    if len(findings) > 12:
        findings = findings[:12] + [f"- … {len(findings) - 12} more"]
    lines += findings
    head = "\n".join(lines)
    transcript = _transcript(result, _turn_numbers(evaluation))
    fences = len(code_block(transcript)) - len(transcript)  # a fence grows with the backticks inside
    room = DETAIL_LIMIT - len(head) - 40 - fences
    if len(transcript) > room:  # trim the plain text before fencing it, so the fence always closes
        transcript = transcript[: max(room, 200)] + "\n…"
    return "\n".join([head, "", code_block(transcript), "", "</details>"])


#: with a baseline, the failed conversations of these simulations come first: they are what the
#: change did, and the size limit must not push them out behind failures that were there before
_CHANGE_RANK = {REGRESSED: 0, NEW: 1, WITHIN_NOISE: 2}


def failures_to_show(
    results: Iterable[ConversationResult], changes: Mapping[str, dict[str, Any]] | None = None
) -> tuple[list[ConversationResult], int]:
    """The few failed or errored conversations that can be shown, and how many there are: those of
    simulations that regressed since the base run (or are new) first, then failures before errors.

    A large run is streamed through, never held.
    """
    moved = {name: _CHANGE_RANK.get(str(change.get("verdict")), 3) for name, change in (changes or {}).items()}
    count = 0

    def not_passed() -> Iterator[ConversationResult]:
        nonlocal count
        for result in results:
            if (result.get("evaluation") or {}).get("status", "error") != "pass":
                count += 1
                yield result

    shown = heapq.nsmallest(
        SHOWN_AT_MOST,
        not_passed(),
        key=lambda r: (
            moved.get(r["meta_data"].get("simulation", ""), 3),
            (r.get("evaluation") or {}).get("status") != "fail",
            r["meta_data"].get("simulation", ""),
        ),
    )
    return shown, count
