"""What changed since the base run, in Markdown: regressions first, each move with the counts
behind it, and a move the counts cannot tell from chance named "within noise"."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .escape import inline

#: how a simulation moved since the base run (`baseline.compare`), as shown in the comment
MOVES = {
    "regressed": "📉 regressed",
    "improved": "📈 improved",
    "within noise": "〰️ within noise",
    "unchanged": "unchanged",
    "new": "🆕 new",
    "removed": "removed",
    "not run": "not run here",
}


def _counts(side: dict[str, Any]) -> str:
    errors = f" +{side['errors']} errors" if side.get("errors") else ""
    return f"{side['passes']}/{side['passes'] + side['failures']}{errors}"


def _p(value: float | None) -> str:
    return "" if value is None else ("p < 0.001" if value < 0.001 else f"p = {value:.3f}")


#: a latency moved when it changed by at least this many milliseconds and this share of the base's
LATENCY_MOVE_MS, LATENCY_MOVE_SHARE = 5.0, 0.10


def _figures(change: dict[str, Any]) -> list[str]:
    """Latency and turns, base → head, where they moved (latency: by ≥ 5 ms and ≥ 10%), and where
    a replay of the base run's users first got a different app reply."""
    base, head = change["base"], change["head"]
    parts = []
    for key, label in (("p50_ms", "p50"), ("p95_ms", "p95")):
        before, now = base.get(key), head.get(key)
        if before is None or now is None:
            continue
        if abs(now - before) >= max(LATENCY_MOVE_MS, LATENCY_MOVE_SHARE * before):
            parts.append(f"{label} {before:,.0f} → {now:,.0f} ms")
    before, now = base.get("turns_per_conversation"), head.get("turns_per_conversation")
    if before is not None and now is not None and before != now:
        parts.append(f"turns/conversation {before:g} → {now:g}")
    replay = change.get("replay")
    if replay and replay.get("first_diverged_at_turn") is not None:
        parts.append(
            f"replay diverged at turn {replay['first_diverged_at_turn']} "
            f"({replay['diverged']} of {replay['conversations']} conversations)"
        )
    elif replay:
        parts.append(f"replay identical ({replay['conversations']} conversations)")
    return parts


def vs_base(change: dict[str, Any] | None) -> str:
    """The "vs base" cell: the move, the counts behind it, and latency or turns that changed."""
    if not change:
        return ""
    move = MOVES.get(change["verdict"], change["verdict"])
    if "base" not in change or "head" not in change:
        return move
    p_value = _p(change.get("p_value"))
    counts = f"{_counts(change['base'])} → {_counts(change['head'])}" + (f", {p_value}" if p_value else "")
    return " · ".join([f"{move} ({counts})", *_figures(change)])


def _more(items: list[str], shown: int) -> str:
    return f" and {len(items) - shown} more" if len(items) > shown else ""


#: a verdict that moved while every conversation replayed the base run's exactly: not the app's doing
SAME_CONVERSATIONS = "the conversations were the base run's, reply for reply: the checks judged them differently"


def _same_conversations(change: dict[str, Any]) -> bool:
    """Every conversation of the simulation replayed the base run's with the same app replies."""
    replay, head = change.get("replay") or {}, change.get("head") or {}
    return bool(replay) and not replay["diverged"] and replay["conversations"] >= head.get("runs", 0) > 0


def _cause(change: dict[str, Any]) -> str | None:
    """The paired evidence of a move the app's change caused: which reply, how many conversations."""
    paired = change.get("paired") or {}
    example = paired.get("example")
    if change.get("evidence") != "caused" or not example:
        return None
    moved = paired["caused_down"] or paired["caused_up"]
    way = "pass → fail" if paired["caused_down"] else "fail → pass"
    return (
        f"caused by the app's changed reply at turn {example['turn']}: {moved} of {paired['pairs']} "
        f"conversation(s) sent the base run's messages and went {way} — base {_said(example['base'])} → "
        f"now {_said(example['head'])}"
    )


def _said(text: str) -> str:
    return f"“{inline(text, 120)}”" if text else "(no reply)"


def _settle(change: dict[str, Any]) -> str:
    """What would tell a move within noise apart from chance."""
    if change.get("nondeterministic"):
        return f"the app answers the same messages differently ({inline(change['nondeterministic'], 300)})"
    needed = change.get("repeat_needed")
    if needed:
        return f"at these rates `repeat: {needed}` would tell them apart"
    return "too few conversations to tell a change from chance"


def run_line(run: dict[str, Any] | None) -> str | None:
    """The run as a whole: pooled counts, and the paired test of replayed conversations."""
    if not run or "p_value" not in run:
        return None
    base, head = run["base"], run["head"]
    parts = [f"{_counts(base)} → {_counts(head)} passed ({_p(run['p_value'])})"]
    paired = run.get("paired")
    if paired:
        parts.append(
            f"conversations with the base run's messages: {paired['down']} pass → fail, {paired['up']} "
            f"fail → pass (paired, {_p(paired['p_value'])})"
        )
    return f"**Run as a whole: {MOVES.get(run['verdict'], run['verdict'])}** — " + " · ".join(parts)


def _lead_line(name: str, change: dict[str, Any]) -> str:
    p_value = _p(change.get("p_value"))
    parts = [f"{_counts(change['base'])} → {_counts(change['head'])} passed" + (f" ({p_value})" if p_value else "")]
    cause = _cause(change)
    if cause:
        parts.append(cause)
    elif change.get("nondeterministic"):
        parts.append("the app answers the same messages differently: judged by counts")
    parts += _figures(change)
    if _same_conversations(change):
        parts.append(SAME_CONVERSATIONS)
    if change.get("new_failing_checks"):
        parts.append("newly failing: " + "; ".join(inline(c, 100) for c in change["new_failing_checks"][:5]))
    return f"- **{inline(name, 80)}**: " + " · ".join(parts)


def changes_section(
    changes: Mapping[str, dict[str, Any]], note: str | None = None, run: dict[str, Any] | None = None
) -> str:
    """What changed since the base run: the run as a whole, then regressions first, each with what it
    rests on (a changed reply to the same messages, or counts); moves within noise are named as such,
    with what would settle them."""
    by_move: dict[str, list[str]] = {}
    for name, change in changes.items():
        by_move.setdefault(change["verdict"], []).append(name)
    lines = ["### What changed since base"] + ([inline(note, 500)] if note else [])
    whole = run_line(run)
    if whole:
        lines.append(whole)
    if by_move.get("regressed") or by_move.get("improved"):
        lines.append(
            "_Regressed or improved: a replayed conversation got a different reply to the base run's messages "
            "(caused), or the pass/fail counts differ beyond chance (Fisher's exact test, p < 0.05 after "
            "Benjamini–Hochberg across simulations)._"
        )
    for move, title in (("regressed", "📉 Regressed"), ("improved", "📈 Improved")):
        names = sorted(by_move.get(move, []), key=lambda n: changes[n].get("p_value") or 0)
        if names:
            lines += ["", f"**{title}** ({len(names)}):"]
            lines += [_lead_line(name, changes[name]) for name in names]
    others = [
        f"**{title}:** " + ", ".join(inline(n, 80) for n in by_move[move][:20]) + _more(by_move[move], 20)
        for move, title in (
            ("new", "New"),
            ("removed", "Removed"),
            ("not run", "Not run here (only the base run has results)"),
        )
        if by_move.get(move)
    ]
    moved = [
        (name, change)
        for name, change in changes.items()
        if change["verdict"] in ("within noise", "unchanged")
        and change["status_before"] is not None
        and change["change"] not in ("same", "new", "removed", "not run")
    ]
    for same, title, why in (
        (False, "Verdict flipped, within noise", None),
        (True, "Verdict flipped, same conversations", SAME_CONVERSATIONS),
    ):
        flipped = [
            f"{inline(name, 80)} {inline(change['status_before'], 20)} → {inline(change['head']['status'], 20)} "
            f"({_counts(change['base'])} → {_counts(change['head'])}" + ("" if same else f"; {_settle(change)}") + ")"
            for name, change in moved
            if _same_conversations(change) == same
        ]
        if flipped:
            others.append(
                f"**{title}:** " + "; ".join(flipped[:20]) + _more(flipped, 20) + (f" — {why}" if why else "")
            )
    if others:
        lines += ["", *others]
    if not (by_move.get("regressed") or by_move.get("improved") or others):
        counts = ", ".join(f"{len(by_move[m])} {m}" for m in ("within noise", "unchanged") if by_move.get(m))
        lines += ["", "Nothing changed beyond noise" + (f" ({counts})." if counts else ".")]
    return "\n".join(lines)


def comparison_summary(changes: Mapping[str, dict[str, Any]], count: int) -> str:
    """The line a folded table of every simulation opens with: how many moved which way."""
    moves: dict[str, int] = {}
    for change in changes.values():
        moves[change["verdict"]] = moves.get(change["verdict"], 0) + 1
    tally = " · ".join(f"{moves[m]} {m}" for m in MOVES if moves.get(m))
    return f"<details><summary>All {count} simulations, vs base: {tally}</summary>"
