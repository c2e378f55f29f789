"""Tasks from the documents and from the app's system prompt: the calls, and their answers as candidates.

Documents are sent in groups of passages, each task naming the passage it rests on and quoting it;
the quote is looked up, so the comment cites the paragraph's lines (or says the quote is not in the
passage, for the reviewer to check). The system prompt is sent with its line numbers: the model
names what the app promises and what it refuses, and writes tasks that probe both, each citing
its line. Each task's persona is given its place on the axes beforehand (`personas.assign`).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..text.clip import clip
from .asking import Call
from .candidates import Candidate, Job, evenly, expect_from, persona_from, spread
from .documents import Passage, chunks, words
from .personas import describe
from .schemas import FIELDS_TEXT, task_item, tasks_schema, text
from .sources import SystemPrompt

#: the most characters of documents sent in one call
CHUNK_CHARS = 6000
#: the most tasks asked of one call (small models lose the thread in long answers)
MAX_PER_CALL = 6
#: the prompt lines one call of the system prompt's focuses on
PROMPT_LINES_PER_CALL = 40


def asked(wanted: int) -> int:
    """How many to ask for to keep `wanted` after near-duplicates are merged."""
    return min(MAX_PER_CALL, wanted + (wanted + 3) // 4)


def _users(axes: list[dict[str, str]]) -> str:
    return "\n".join(f"Task {i}: {describe(a) or 'any realistic user'}" for i, a in enumerate(axes, 1))


def document_jobs(passages: list[Passage], quota: int, people: Iterator[dict[str, str]], state_url: str) -> list[Job]:
    """Calls that ask for `quota` tasks in all, spread over the documents by their size."""
    groups = chunks(passages, CHUNK_CHARS)
    groups = [groups[i] for i in evenly(quota, len(groups))]
    jobs = []
    for group, wanted in zip(groups, spread(quota, [sum(len(p.text) for p in g) for g in groups]), strict=True):
        if wanted:
            jobs.append(_document_job(group, wanted, [next(people) for _ in range(asked(wanted))], state_url))
    return jobs


def _document_job(group: list[Passage], wanted: int, axes: list[dict[str, str]], state_url: str) -> Job:
    ids = {f"P{i}": passage for i, passage in enumerate(group, 1)}
    listing = "\n\n".join(
        f"[{pid}] {p.citation}{f' ({p.heading})' if p.heading else ''}\n{p.text}" for pid, p in ids.items()
    )
    prompt = (
        f"The app's documents, as passages with ids:\n\n{listing}\n\n"
        f"Write {len(axes)} different tasks that real users of this app would come to its chat with, each "
        "resting on one passage above: something the passage says the app does, answers or decides. Use "
        "different passages where you can.\n\nFor each task:\n"
        '- "passage": the id of the passage it rests on\n'
        '- "quote": the words of that passage it rests on, copied exactly (one sentence at most)\n'
        f"{FIELDS_TEXT}\n\nThe users, one per task:\n{_users(axes)}\n\n"
        'Answer as JSON: {"tasks": [{"passage": ..., "quote": ..., "task": ..., "facts": [...], '
        '"persona": {...}, "expect": {...}}, ...]}'
    )
    first, last = group[0], group[-1]
    span = f"{first.citation}" if len(group) == 1 else f"{first.citation} to {last.citation}"
    schema = tasks_schema(task_item({"passage": {"enum": list(ids)}, "quote": text(400)}), len(axes))
    call = Call(f"documents {span}", prompt, schema, "document_tasks", expected_tokens=300 * len(axes))

    def build(answer: dict[str, Any]) -> list[Candidate]:
        found = []
        for index, item in enumerate(answer["tasks"]):
            passage = ids[item["passage"]]
            cited = passage.locate(item["quote"])
            expect, proposed = expect_from(item["expect"], words(passage.text), state_url)
            heading = f" ({passage.heading})" if passage.heading else ""
            quote = (
                f'"{clip(" ".join(item["quote"].split()), 200)}"'
                if cited
                else "the quote the model gave is not in the passage word for word: check the task against it"
            )
            where = cited or passage.citation
            notes = [f"from {where}{heading}: {quote}"]
            if index < len(axes) and axes[index]:
                notes.append(f"persona: {describe(axes[index])}")
            found.append(
                Candidate(
                    "docs",
                    0,
                    " ".join(item["task"].split()),
                    persona_from(item["persona"], item["facts"]),
                    expect,
                    where,
                    ["generated", "from-docs", f"source:{where}"],
                    notes,
                    proposed,
                )
            )
        return found

    return Job(call, "docs", wanted, build)


def prompt_jobs(prompt: SystemPrompt, quota: int, people: Iterator[dict[str, str]], state_url: str) -> list[Job]:
    """Calls that find what the prompt promises and refuses, and ask for `quota` tasks probing both;
    a long prompt's calls each look at their own lines, so they do not all find the same."""
    numbered = [n for n, line in enumerate(prompt.lines, 1) if line.strip()]
    spans = [numbered[i : i + PROMPT_LINES_PER_CALL] for i in range(0, len(numbered), PROMPT_LINES_PER_CALL)]
    spans = [spans[i] for i in evenly(quota, len(spans))]
    jobs = []
    for span, wanted in zip(spans, spread(quota, [len(s) for s in spans]), strict=True):
        if wanted:
            axes = [next(people) for _ in range(asked(wanted))]
            jobs.append(_prompt_job(prompt, (span[0], span[-1]), wanted, axes, state_url, len(spans) > 1))
    return jobs


def _prompt_job(
    prompt: SystemPrompt, span: tuple[int, int], wanted: int, axes: list[dict[str, str]], state_url: str, part: bool
) -> Job:
    focus = f" Use lines {span[0]} to {span[1]}." if part else ""
    body = (
        f"The app's system prompt, with line numbers:\n\n{prompt.numbered()}\n\n"
        "Find what the app promises to do for its users and what it must refuse or never do. Then write "
        f"{len(axes)} tasks that probe them: for a promise, a user who needs exactly that; for a refusal, an "
        f"ordinary user (not an attacker) who asks for the refused thing in good faith. Mix both.{focus}\n\n"
        'For each task:\n- "kind": "promise" or "refusal"\n'
        '- "line": the number of the prompt line it rests on\n'
        '- "quote": the words of that line it rests on, copied exactly\n'
        f'{FIELDS_TEXT}\nFor a refusal, leave "contains" empty, list in "not_contains" what would show the app '
        'gave in, and let the "rubric" say the assistant declines politely and offers what it can do.\n\n'
        f"The users, one per task:\n{_users(axes)}\n\n"
        'Answer as JSON: {"tasks": [{"kind": ..., "line": ..., "quote": ..., "task": ..., "facts": [...], '
        '"persona": {...}, "expect": {...}}, ...]}'
    )
    lines = prompt.lines
    own = {
        "kind": {"enum": ["promise", "refusal"]},
        "line": {"type": "integer", "minimum": 1, "maximum": max(1, len(lines))},
        "quote": text(400),
    }
    label = f"system prompt {prompt.source}" + (f" lines {span[0]}-{span[1]}" if part else "")
    call = Call(label, body, tasks_schema(task_item(own), len(axes)), "prompt_tasks", expected_tokens=300 * len(axes))

    def build(answer: dict[str, Any]) -> list[Candidate]:
        found = []
        for index, item in enumerate(answer["tasks"]):
            quote = words(item["quote"])
            line = item["line"]
            if quote and quote not in words(lines[line - 1]):
                line = next((n for n, t in enumerate(lines, 1) if quote in words(t)), line)
            held = bool(quote) and quote in words(lines[line - 1])
            refusal = item["kind"] == "refusal"
            expect, proposed = expect_from(item["expect"], words(prompt.text), state_url, refusal=refusal)
            where = prompt.citation(line)
            said = (
                f'"{clip(" ".join(item["quote"].split()), 200)}"' if held else "the quote is not on that line: check it"
            )
            notes = [f"probes a {item['kind']} of {where}: {said}"]
            if index < len(axes) and axes[index]:
                notes.append(f"persona: {describe(axes[index])}")
            found.append(
                Candidate(
                    "prompt",
                    0,
                    " ".join(item["task"].split()),
                    persona_from(item["persona"], item["facts"]),
                    expect,
                    where,
                    ["generated", "from-prompt", item["kind"], f"source:{where}"],
                    notes,
                    proposed,
                )
            )
        return found

    return Job(call, "prompt", wanted, build)
