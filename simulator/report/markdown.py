"""The run as Markdown: one renderer for the PR comment, the job summary and the report file.

App and LLM text is untrusted: it goes into code blocks with a fence longer than any backtick
run in it, or is escaped for inline use (no raw HTML, no @mention pings, no broken tables).
The output is kept under a size budget by dropping the least important parts with a note.
Known credentials are scrubbed from what is rendered before any text is escaped or cut, and
control characters and bidi overrides (ANSI escapes, carriage returns, U+202E) become visible escapes.
Every part is measured as written (escaped, controls made visible), so the budget counts what is
posted; a comment still too long is cut between lines, with what was opened closed and the footer kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from ..checks.gate import percent
from ..records import ConversationResult, RunInfo, Summary
from ..text.known_secrets import scrub, scrub_text
from ..text.unicode_safety import visible_controls
from .changes_markdown import changes_section, comparison_summary, vs_base
from .escape import inline
from .failures_markdown import ICONS, conversation_details, failures_to_show
from .mermaid import pass_rate_chart

COMMENT_LIMIT = 65_536  # GitHub's maximum comment body
SUMMARY_LIMIT = 1_048_576  # GitHub's maximum job summary per step


def _ms(value: float | None) -> str:
    """Whole milliseconds; under one, the first digit that is not 0 (a callback answers in 0.02 ms,
    which "0 ms" would hide)."""
    if value is None:
        return "–"
    return f"{value:,.0f} ms" if value >= 1 or value == 0 else f"{float(f'{value:.1g}'):g} ms"


def _rate(value: float | None, against: float | None = None) -> str:
    return "–" if value is None else percent(value, against)


@dataclass
class Links:
    """Where the reader can go next; any may be missing."""

    run_url: str | None = None
    artifact_url: str | None = None
    artifact_name: str | None = None
    report_note: str | None = None
    #: the base run compared with
    baseline_url: str | None = None
    #: where report.html can be opened in a browser; each failed conversation links into it
    report_url: str | None = None


def plan_line(run: RunInfo, totals: Mapping[str, Any] | None = None) -> str:
    """ "N planned, M finished, K missing", the same words in every command and report; with the
    summary's `totals`, the conversations an interrupt cut short are counted apart from finished
    ones (they have a result, an error, and `--resume` plays them again)."""
    cut = int(((totals or {}).get("stop_reasons") or {}).get("cancelled") or 0)
    finished = f"{run.get('finished', 0) - cut} finished" + (f", {cut} cut short" if cut else "")
    if "planned" not in run:
        return f"{finished} (the run kept no plan)"
    return f"{run['planned']} planned, {finished}, {run.get('missing_count', 0)} missing"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def replay_line(replay: Mapping[str, Any]) -> str | None:
    """What a replay of the base run cost, in one line: "6 conversations identical to base; 0 LLM
    calls; 30 saved" (the LLM calls are every user-model and judge completion of the run; saved, the
    user messages replayed and the judge verdicts reused). None for a summary without these counts."""
    keys = ("conversations", "identical", "llm_calls_total", "llm_calls_saved", "judge_calls_saved")
    counts = {key: replay.get(key) for key in keys}
    if not all(isinstance(value, int) and not isinstance(value, bool) and value >= 0 for value in counts.values()):
        return None
    conversations, identical = int(counts["conversations"] or 0), int(counts["identical"] or 0)
    of = "" if identical == conversations else f" of {conversations}"
    users, verdicts = int(counts["llm_calls_saved"] or 0), int(counts["judge_calls_saved"] or 0)
    return (
        f"{identical}{of} {'conversation' if conversations == 1 else 'conversations'} identical to base; "
        f"{_plural(int(counts['llm_calls_total'] or 0), 'LLM call')}; {users + verdicts} saved "
        f"({_plural(users, 'user message')} replayed, {_plural(verdicts, 'judge verdict')} reused)"
    )


def gate_section(summary: Summary, title: str = "Conversation simulations") -> str:
    gate = summary["gate"]
    status = gate["status"]
    totals = summary["totals"]
    min_rate, max_errors = gate["config"]["min_pass_rate"], gate["config"]["max_error_rate"]
    lines = [
        f"## {ICONS.get(status, '')} {title}: {status.upper()}",
        "",
        f"**{gate['passes']} passed**, **{gate['failures']} failed**, **{gate['errors']} errors** "
        f"of {totals['conversations']} conversations · pass rate {_rate(gate['pass_rate'], min_rate)} "
        f"(gate ≥ {_rate(min_rate, min_rate)}) · error rate {_rate(gate['error_rate'], max_errors)} "
        f"(gate ≤ {_rate(max_errors, max_errors)}) · {totals['turns']} turns · "
        f"{totals['tokens']['total_tokens']:,} tokens",
    ]
    run = summary.get("run") or {}
    if run.get("missing_count"):
        missing = ", ".join(inline(key, 80) for key in run.get("missing", [])[:10])
        more = "…" if run["missing_count"] > 10 else ""
        lines += [
            "",
            f"> ⚠️ {plan_line(run, totals)}: the missing ones count as errors ({missing}{more}).",
        ]
    if run.get("interrupted"):
        lines += ["", "> ⚠️ The run was interrupted (finished conversations were kept)."]
    if run.get("fatal_error"):
        lines += ["", f"> ⚠️ Stopped early: {inline(run['fatal_error'], 500)}"]
    if run.get("storage_error"):
        lines += ["", f"> ⚠️ Results could not be stored: {inline(run['storage_error'], 600)}"]
    for warning in (run.get("warnings") or [])[:5]:
        lines += ["", f"> ⚠️ {inline(warning, 400)}"]
    if run.get("gate_narrowed"):
        names = ", ".join(inline(name, 80) for name in run["gate_narrowed"][:10])
        lines += ["", f"> ℹ️ Not required of this run (not selected, or in another shard): {names}"]
    if run.get("skipped"):
        lines += ["", f"> ⏭️ {inline(run['skipped'], 500)}"]
    replayed = replay_line(run["replay"]) if isinstance(run.get("replay"), Mapping) else None
    if replayed:
        lines += ["", f"> ♻️ Replay: {replayed}"]
    if gate["reasons"]:
        lines += [""] + [f"- {inline(reason, 300)}" for reason in gate["reasons"]]
    return "\n".join(lines)


def _first(simulations: Mapping[str, Any], count: int) -> Iterator[tuple[str, Any]]:
    """The first `count` simulations, scrubbed: a summary of many reads them from disk, past the
    scrubbing the rest of the summary had (`render_markdown`)."""
    for name, sim in islice(simulations.items(), max(count, 0)):
        yield scrub_text(name), scrub(sim)


def simulations_table(
    summary: Summary, max_rows: int = 200, changes: Mapping[str, dict[str, Any]] | None = None
) -> str:
    with_base = changes is not None
    rows = [
        "| | Simulation | Pass rate | Passed | Errors | Turns | p50 | p95 | Tokens |"
        + (" vs base |" if with_base else ""),
        "|---|---|---|---|---|---|---|---|---|" + ("---|" if with_base else ""),
    ]
    simulations = summary["simulations"]
    for name, sim in _first(simulations, max_rows):
        verdict = sim["verdict"]
        required = " (required)" if verdict.get("required") else ""
        rows.append(
            f"| {ICONS.get(verdict['status'], '')} | {inline(name, 80)}{required} | {_rate(verdict['pass_rate'])} "
            f"| {verdict['passes']}/{verdict['runs']} | {verdict['errors']} | {sim['turns']} "
            f"| {_ms(sim['latency_ms']['app_p50'])} | {_ms(sim['latency_ms']['app_p95'])} "
            f"| {sim['tokens']['total_tokens']:,} |"
            + (f" {vs_base(changes.get(name))} |" if changes is not None else "")
        )
    if len(simulations) > max_rows:
        rows.append(f"\n_{len(simulations) - max_rows} more simulations are in the artifact's summary.json._")
    return "\n".join(rows)


_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")


def cut_to_fit(markdown: str, room: int, note: str) -> str:
    """`markdown` in at most `room` characters: when longer, as many of its first whole lines as
    fit with `note` and the closing of whatever they leave open (a code fence, `<details>`), so
    nothing after it is swallowed into a code block or a fold.

    A `<details>` is ours: untrusted text has its `<` escaped, or is in a fence, where a
    `</details>` is only text and is not counted.
    """
    if len(markdown) <= room:
        return markdown
    fence = ""  # the code fence open after the lines so far
    folds = 0  # <details> open after the lines so far
    kept, best, best_closing = 0, 0, ""
    for line in markdown.split("\n"):
        if kept > room:
            break
        closing = (f"\n{fence}" if fence else "") + "\n\n</details>" * folds
        if kept + len(closing) + 2 + len(note) <= room:
            best, best_closing = kept, closing
        opened = _FENCE.match(line)
        if not fence:
            fence = opened.group(1) if opened else ""
            folds += 0 if opened else line.count("<details>") - line.count("</details>")
        elif opened and opened.group(1)[0] == fence[0] and len(opened.group(1)) >= len(fence):
            fence = "" if not line[opened.end() :].strip() else fence
        kept += len(line) + 1
    if not best:
        return note[:room]
    return markdown[:best].rstrip("\n") + best_closing + "\n\n" + note


def _footer(links: Links) -> str:
    items = []
    if links.run_url:
        items.append(f"[workflow run]({links.run_url})")
    if links.artifact_url:
        items.append(f"[results artifact `{inline(links.artifact_name or 'results', 80)}`]({links.artifact_url})")
    if links.baseline_url:
        items.append(f"[base run]({links.baseline_url})")
    if links.report_note:
        items.append(inline(links.report_note, 300))
    return " · ".join(items)


def _head(
    summary: Summary,
    changes: Mapping[str, dict[str, Any]] | None,
    header: str,
    note: str | None,
    room: int,
    chart: bool,
) -> str:
    """Gate and table, or with a baseline: gate, what changed, then the table folded; then the
    pass-rate chart, the first part to go when the comment is short of room."""
    parts = [header] if header else []
    parts.append(gate_section(summary))
    picture = pass_rate_chart(summary, changes) if chart else None
    if changes is None:
        if note:
            parts.append(f"> ℹ️ {inline(note, 500)}")
        parts.append(simulations_table(summary))
        with_picture = "\n\n".join(parts + ([picture] if picture else []))
        return with_picture if len(with_picture) <= room else "\n\n".join(parts)
    parts.append(changes_section(changes, note, (summary.get("comparison") or {}).get("run")))
    folded = "\n\n".join(
        [comparison_summary(changes, len(summary["simulations"])), simulations_table(summary, changes=changes)]
    )
    parts.append(folded + "\n\n</details>")
    if picture and len("\n\n".join([*parts, picture])) <= room:
        return "\n\n".join([*parts, picture])
    head = "\n\n".join(parts)
    if len(head) > room:  # the folded table goes first: a cut inside it would leave <details> open
        parts[-1] = "_The table of every simulation is in the artifact's report.md._"
        head = "\n\n".join(parts)
    return head


def render_markdown(
    summary: Summary,
    results: Iterable[ConversationResult] = (),
    links: Links | None = None,
    limit: int = COMMENT_LIMIT,
    header: str = "",
    changes: Mapping[str, dict[str, Any]] | None = None,
    baseline_note: str | None = None,
    chart: bool = True,
) -> str:
    """The report, at most `limit` characters: gate, table, links, then as many failures as fit.

    With `changes` (from `baseline.compare`), what changed since the base run comes first and the
    table, with a "vs base" column, is folded below it. `baseline_note` is one line on what was
    compared with, or why nothing was. `chart` adds the pass-rate chart where it helps (GitHub
    draws it; a terminal would only show its code).
    """
    # scrubbed before rendering: escaping (`_` -> `\_`) or a cut would leave a credential unrecognisable
    summary, changes = scrub(summary), scrub(changes)
    links = links or Links()
    footer = _footer(links)
    head = _head(summary, changes, header, baseline_note, room=limit - len(footer) - 200, chart=chart)
    bad, bad_count = failures_to_show(results, changes)
    if len(head) + len(footer) + 200 > limit:  # even the table is too long: cut it between rows
        head = cut_to_fit(head, max(0, limit - len(footer) - 300), "_The table was cut to fit; see the artifact._")
    body = [head]
    used = len(head) + len(footer) + 400
    shown = 0
    if bad:
        body.append(f"### Failed and errored conversations ({bad_count})")
        used += 60
        for result in bad:
            block = conversation_details(scrub(result), links.report_url)
            if used + len(block) + 2 > limit:
                break
            body.append(block)
            used += len(block) + 2
            shown += 1
        if shown < bad_count:
            body.append(
                f"_{bad_count - shown} more failed or errored conversation(s) are not shown here to stay "
                "within GitHub's size limit; they are in the results artifact._"
            )
    # the parts were escaped as they were measured; once more, whole, so that nothing from an app or
    # an LLM steers a terminal or reorders the page whichever way it came in
    text = visible_controls(scrub_text("\n\n".join(body)))
    footer = visible_controls(scrub_text(footer))
    if len(text) + len(footer) + 2 > limit:  # cut between lines, what was opened closed, the footer kept
        text = cut_to_fit(text, max(0, limit - len(footer) - 2), "_(cut to fit; the rest is in the results artifact)_")
    return "\n\n".join(part for part in (text, footer) if part)
