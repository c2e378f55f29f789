"""From production logs: the intents users actually bring, clustered, one simulation per cluster.

Two steps. The model names each sampled conversation's intent in a few words (batches of
conversations, the users' messages already scrubbed: `logs`); the intents are then grouped here,
with no model, by the words they share (`dedup.similarity`), the largest groups first. Each group
becomes one simulation, its persona drawn from how those users write: how long their messages
are, how often they shout, what they wrote first (measured here, shown to the model).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..text.clip import clip
from .asking import Call
from .candidates import PLACEHOLDER as PLACEHOLDERS
from .candidates import Candidate, Job, expect_from, has_placeholder, persona_from
from .dedup import similarity, tokens
from .logs import Log, LoggedConversation
from .schemas import FIELDS_TEXT, TASK_FIELDS, array, obj, text

#: conversations named in one call, and the most characters of them
LABEL_BATCH = 25
LABEL_CHARS = 8000
#: two intents at least this similar are one cluster
SAME_INTENT = 0.5
#: what a cluster's call is expected to cost, before the clusters are known (for the estimate)
CLUSTER_CALL_CHARS = 3000


def label_calls(log: Log) -> list[tuple[Call, list[LoggedConversation]]]:
    """Calls that name the intent of every sampled conversation, a batch at a time."""
    batches: list[list[LoggedConversation]] = [[]]
    size = 0
    for conversation in log.conversations:
        chars = sum(len(m) for m in conversation.messages)
        if batches[-1] and (len(batches[-1]) >= LABEL_BATCH or size + chars > LABEL_CHARS):
            batches.append([])
            size = 0
        batches[-1].append(conversation)
        size += chars
    calls = []
    for batch in batches:
        ids = {f"C{i}": c for i, c in enumerate(batch, 1)}
        listing = "\n".join(f"[{cid}] " + " | ".join(c.messages) for cid, c in ids.items())
        prompt = (
            "Conversations users had with the app (personal data replaced by [EMAIL], [PHONE], [CARD], [NAME]); "
            f"each shows what the user wrote, messages separated by |:\n\n{listing}\n\n"
            "For each conversation, name the user's intent: what they came for, in 3 to 8 words, general enough "
            "that conversations wanting the same thing get the same words (no names, numbers or ids), e.g. "
            '"return a damaged item for a refund".\n\n'
            'Answer as JSON: {"intents": [{"id": "C1", "intent": ...}, ...]}'
        )
        schema = obj({"intents": array(obj({"id": {"enum": list(ids)}, "intent": text(80)}), len(ids), 1)})
        label = f"logs {log.source} lines {batch[0].line}-{batch[-1].line}"
        calls.append((Call(label, prompt, schema, "log_intents", expected_tokens=20 * len(ids)), batch))
    return calls


@dataclass
class Cluster:
    """Conversations that want the same thing."""

    intent: str
    members: list[LoggedConversation]


def cluster(labelled: list[tuple[LoggedConversation, str]]) -> list[Cluster]:
    """Intents grouped by shared words, the largest group first (ties: the one seen first)."""
    groups: list[tuple[Cluster, frozenset[str]]] = []
    for conversation, intent in labelled:
        words = tokens(intent)
        home = next((c for c, w in groups if similarity(words, w) >= SAME_INTENT), None)
        if home is None:
            groups.append((Cluster(" ".join(intent.split()), [conversation]), words))
        else:
            home.members.append(conversation)
    ordered = sorted(enumerate(groups), key=lambda item: (-len(item[1][0].members), item[0]))
    return [c for _, (c, _) in ordered]


def intents(answer: dict[str, Any], batch: list[LoggedConversation]) -> list[tuple[LoggedConversation, str]]:
    """The (conversation, intent) pairs of a labelling answer (a conversation it skipped is left out)."""
    ids = {f"C{i}": c for i, c in enumerate(batch, 1)}
    seen: dict[str, str] = {}
    for item in answer["intents"]:
        seen.setdefault(item["id"], item["intent"])
    return [(ids[cid], seen[cid]) for cid in ids if cid in seen]


def style(members: list[LoggedConversation]) -> str:
    """How these users write, measured: message length, `!`, CAPITALS, all lower case."""
    messages = [PLACEHOLDERS.sub("", m) for c in members for m in c.messages]
    if not messages:
        return ""
    count = len(messages)
    words = sum(len(m.split()) for m in messages) / count
    loud = sum("!" in m for m in messages) / count
    caps = sum(bool(re.search(r"\b[A-Z]{3,}\b", m)) for m in messages)
    lower = sum(m == m.lower() and any(ch.isalpha() for ch in m) for m in messages) / count
    traits = [
        word
        for word, holds in (
            ("terse", words < 8),
            ("long-winded", words > 30),
            ("angry", loud > 0.3 or caps / count > 0.3),
            ("casual", lower > 0.5),
        )
        if holds
    ]
    return (
        f"{', '.join(traits) + ': ' if traits else ''}{words:.0f} words a message on average; {loud:.0%} use "
        f'"!"; {caps / count:.0%} write a word in CAPITALS; {lower:.0%} write all in lower case'
    )


def cluster_jobs(clusters: list[Cluster], quota: int, log: Log, state_url: str, grounding: str) -> list[Job]:
    """One call per cluster, the largest `quota` clusters. `grounding` (the documents' and prompt's
    `words`) is what a proposed `contains` phrase must be in: logs alone ground none."""
    return [_cluster_job(c, log, state_url, grounding) for c in clusters[:quota]]


def _cluster_job(group: Cluster, log: Log, state_url: str, grounding: str) -> Job:
    sampled = len(log.conversations)
    examples = "\n".join(f'- "{clip(c.messages[0], 200)}"' for c in group.members[:6])
    measured = style(group.members)
    prompt = (
        f'Users of the app came with this intent: "{group.intent}" ({len(group.members)} of {sampled} '
        f"conversations sampled from its logs).\nHow they write, measured over their messages: {measured}.\n"
        f"What some of them wrote first (personal data replaced):\n{examples}\n\n"
        "Write one simulation of such a user:\n"
        f"{FIELDS_TEXT}\nThe persona writes like these users: their message length, tone, spelling and language. "
        "Never use the placeholders [EMAIL], [PHONE], [CARD] or [NAME]: make up plausible values instead.\n\n"
        'Answer as JSON: {"task": ..., "facts": [...], "persona": {...}, "expect": {...}}'
    )
    lines = [c.line for c in group.members]
    shown = ", ".join(str(n) for n in lines[:8]) + (", ..." if len(lines) > 8 else "")
    label = f'logs {log.source}: intent "{clip(group.intent, 60)}"'

    def check(answer: dict[str, Any]) -> str:
        values = [answer["task"], answer["persona"]["name"], *(f["value"] for f in answer["facts"])]
        if has_placeholder(*values):
            return "it uses a placeholder such as [EMAIL] or [NAME]: write plausible made-up values instead"
        return ""

    call = Call(label, prompt, obj(TASK_FIELDS), "log_simulation", check, expected_tokens=350)

    def build(answer: dict[str, Any]) -> list[Candidate]:
        expect, proposed = expect_from(answer["expect"], grounding, state_url)
        where = f"{log.source}:{lines[0]}"
        notes = [
            f'from {log.source}: {len(lines)} of {sampled} sampled conversations want "{group.intent}" (lines {shown})',
            f"how they write: {measured}",
        ]
        candidate = Candidate(
            "logs",
            0,
            " ".join(answer["task"].split()),
            persona_from(answer["persona"], answer["facts"]),
            expect,
            where,
            ["generated", "from-logs", f"source:{where}"],
            notes,
            proposed,
        )
        return [candidate]

    return Job(call, "logs", 1, build)
