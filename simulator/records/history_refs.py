"""Recorded requests without the transcript they repeat: `$turns` references to `conversation[]`.

Every request to the app (and to the user model) carries the conversation so far. Kept as sent, a
result line grows with the square of its turns: 20 replies of 100,000 characters made a 23 MB line,
19 MB of it the same history again and again. So a recorded request stands in for the history it
repeats with a reference to the turns that hold it, and `expand_request` puts the history back.

A reference is `{"$turns": [first, last]}`: the messages of the turns numbered first..last in
`conversation[]` (turns with an error carry no message and are skipped), each
`{"role": <actor>, "content": <response>}`. With `"$as"` the messages take another shape:

- `"swapped"`: roles user and assistant exchanged (the user model sees the conversation so);
- `"promptflow"`: Prompt flow's `chat_history` pairs,
  `{"inputs": {"question": <user>}, "outputs": {"answer": <assistant>}}`; a flow whose chat input
  and output have other names gets `"$names": {"input": <name>, "output": <name>}` beside it.

Where a value was the whole list it is the reference; as an item of a list it stands for its
messages spliced in there (`"messages": [<system>, {"$turns": [0, 5]}, <new message>]`). A string
that held the history as JSON text (`{{history}}` inside a longer body string) becomes
`{"$text": [<text>, <reference>, <text>, ...]}`: the pieces joined, each reference as the JSON
`json.dumps(messages, ensure_ascii=False)` writes. A request's own object that happens to have a
`$turns`, `$text` or `$literal` key is kept as `{"$literal": <object>}`. A history is only replaced
where its expansion gives the very same value, so expanding a recorded request always gives back
the request as recorded (`expand_request`, `expand_value`).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

TURNS = "$turns"
SHAPE = "$as"
NAMES = "$names"
TEXT = "$text"
LITERAL = "$literal"
MARKERS = frozenset({TURNS, TEXT, LITERAL})
#: the shapes a history is sent in, besides plain `{role, content}` messages
SHAPES = ("messages", "swapped", "promptflow")
#: the names a Prompt flow pair uses when none are given: those of Prompt flow's chat flow template
PROMPTFLOW_INPUT = "question"
PROMPTFLOW_OUTPUT = "answer"


def promptflow_pairs(
    messages: Sequence[Mapping[str, Any]], input: str = PROMPTFLOW_INPUT, output: str = PROMPTFLOW_OUTPUT
) -> list[dict[str, Any]]:
    """Prompt flow's `chat_history`: each user message with the assistant reply that followed it, under
    the flow's own names of its chat input and chat output (a flow reads earlier turns by them)."""
    pairs = []
    pending: str | None = None
    for message in messages:
        if message.get("role") == "user":
            pending = message.get("content", "")
        elif message.get("role") == "assistant" and pending is not None:
            pairs.append({"inputs": {input: pending}, "outputs": {output: message.get("content", "")}})
            pending = None
    return pairs


def pair_names(item: Any) -> tuple[str, str] | None:
    """The chat input and output names of a Prompt flow pair `{"inputs": {name: ...}, "outputs": {name: ...}}`."""
    if not (isinstance(item, dict) and set(item) == {"inputs", "outputs"}):
        return None
    inputs, outputs = item["inputs"], item["outputs"]
    if not (isinstance(inputs, dict) and isinstance(outputs, dict) and len(inputs) == len(outputs) == 1):
        return None
    return next(iter(inputs)), next(iter(outputs))


def history_messages(
    turns: Sequence[Mapping[str, Any]], shape: str = "messages", names: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The messages `turns` stand for, in one of `SHAPES`; `names` (input, output) are a pair's names."""
    messages = [{"role": t["actor"], "content": t["response"]} for t in turns]
    if shape == "messages":
        return messages
    if shape == "swapped":
        return [{"role": "assistant" if m["role"] == "user" else "user", "content": m["content"]} for m in messages]
    if shape == "promptflow":
        names = names or {}
        return promptflow_pairs(messages, names.get("input", PROMPTFLOW_INPUT), names.get("output", PROMPTFLOW_OUTPUT))
    raise ValueError(f"unknown history shape {shape!r}; known: {', '.join(SHAPES)}")


def compact_request(request: Any, turns: Sequence[Mapping[str, Any]]) -> Any:
    """`request` as a result keeps it: every copy of the history `turns` replaced by a reference.

    `turns` are the recorded turns the request's side was given as the conversation so far: every
    turn without an error up to then, in order. `request` itself is left as it is.
    """
    if not turns or request is None:
        return request
    return _Compactor(turns).value(request)


Form = tuple[dict[str, Any], list[dict[str, Any]]]


class _Compactor:
    def __init__(self, turns: Sequence[Mapping[str, Any]]) -> None:
        self.turns = turns
        self.span = [turns[0]["turn_number"], turns[-1]["turn_number"]]
        self.forms: list[Form] = []
        for shape in SHAPES:
            form = history_messages(turns, shape)
            if form:  # an empty form would match every empty list
                reference = {TURNS: list(self.span)} if shape == "messages" else {TURNS: list(self.span), SHAPE: shape}
                self.forms.append((reference, form))
        self.shortest_text = sum(len(t["response"]) for t in turns)
        self._texts: list[tuple[dict[str, Any], str]] | None = None
        #: Prompt flow pairs under a flow's own names, made when a request holds such a pair
        self._named: dict[tuple[str, str], list[Form]] = {}

    def forms_at(self, item: Any) -> list[Form]:
        """The forms a history starting with `item` may have: Prompt flow pairs under the names it uses too."""
        names = pair_names(item)
        if names is None or names == (PROMPTFLOW_INPUT, PROMPTFLOW_OUTPUT):
            return self.forms
        if names not in self._named:
            given = {"input": names[0], "output": names[1]}
            form = history_messages(self.turns, "promptflow", given)
            reference = {TURNS: list(self.span), SHAPE: "promptflow", NAMES: given}
            self._named[names] = [(reference, form)] if form else []
        return self._named[names] or self.forms

    def value(self, node: Any) -> Any:
        """A node in a value's place: a whole-list history becomes the reference itself."""
        if isinstance(node, list):
            for reference, form in self.forms_at(node[0]) if node else ():
                if len(node) == len(form) and node == form:
                    return copy.deepcopy(reference)
            return self.items(node)
        if isinstance(node, dict):
            if MARKERS.intersection(node):
                return {LITERAL: node}
            return {key: self.value(item) for key, item in node.items()}
        if isinstance(node, str):
            return self.text(node)
        return node

    def items(self, node: list[Any]) -> list[Any]:
        """A list's items: a run of them that is the history becomes one reference, spliced in."""
        out: list[Any] = []
        index = 0
        while index < len(node):
            for reference, form in self.forms_at(node[index]):
                end = index + len(form)
                if end <= len(node) and node[index] == form[0] and node[index:end] == form:
                    out.append(copy.deepcopy(reference))
                    index = end
                    break
            else:
                item = node[index]
                out.append(self.items(item) if isinstance(item, list) else self.value(item))
                index += 1
        return out

    def text(self, node: str) -> Any:
        if len(node) < self.shortest_text:
            return node
        if self._texts is None:
            self._texts = [(ref, json.dumps(form, ensure_ascii=False)) for ref, form in self.forms]
        for reference, text in self._texts:
            if text in node:
                pieces: list[Any] = []
                for index, piece in enumerate(node.split(text)):
                    if index:
                        pieces.append(dict(reference))
                    if piece:
                        pieces.append(piece)
                return {TEXT: pieces}
        return node


def expand_request(result: Mapping[str, Any], turn: int | Mapping[str, Any]) -> Any:
    """A turn's recorded request with its history put back: the request as it was sent.

    `turn` is the turn's number in `result["conversation"]`, or the turn itself. For an HTTP target,
    `simulator.targets.http.encode_body(expanded["body"])` gives the very bytes sent; values recorded
    as "***" (credentials) stay hidden.
    """
    turns = _conversation(result)
    if isinstance(turn, Mapping):
        return _Expander(turns).value(turn.get("request"))
    found = next((t for t in turns if isinstance(t, dict) and t.get("turn_number") == turn), None)
    if found is None:
        raise ValueError(f"the conversation has no turn {turn!r}")
    return _Expander(turns).value(found.get("request"))


def expand_value(result: Mapping[str, Any], value: Any) -> Any:
    """Any recorded value (a request, an error's detail) with its history references put back."""
    return _Expander(_conversation(result)).value(value)


def _conversation(result: Mapping[str, Any]) -> list[Any]:
    turns = result.get("conversation") if isinstance(result, Mapping) else None
    if not isinstance(turns, list):
        raise ValueError("expanding a recorded request needs a conversation_result with a 'conversation' list")
    return turns


class _Expander:
    def __init__(self, turns: list[Any]) -> None:
        self.turns = turns

    def messages(self, reference: dict[str, Any]) -> list[dict[str, Any]]:
        span, shape, names = reference.get(TURNS), reference.get(SHAPE, "messages"), reference.get(NAMES)
        if not (
            set(reference) <= {TURNS, SHAPE, NAMES}
            and isinstance(span, list)
            and len(span) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) for n in span)
            and shape in SHAPES
            and (names is None or (shape == "promptflow" and _pair_names(names)))
        ):
            raise ValueError(f"not a history reference: {json.dumps(reference)[:200]}")
        first, last = span
        chosen = [
            t
            for t in self.turns
            if isinstance(t, dict) and first <= t.get("turn_number", -1) <= last and t.get("error") is None
        ]
        return history_messages(chosen, shape, names)

    def piece(self, piece: Any) -> str:
        """A piece of a `$text`: text as it is, a reference as the JSON text of its messages."""
        if isinstance(piece, str):
            return piece
        if isinstance(piece, dict):
            return json.dumps(self.messages(piece), ensure_ascii=False)
        raise ValueError(f"a $text piece must be text or a history reference, got {json.dumps(piece)[:200]}")

    def value(self, node: Any) -> Any:
        if isinstance(node, dict):
            if TURNS in node:
                return self.messages(node)
            if set(node) == {LITERAL}:
                return node[LITERAL]
            if set(node) == {TEXT} and isinstance(node[TEXT], list):
                return "".join(self.piece(piece) for piece in node[TEXT])
            return {key: self.value(item) for key, item in node.items()}
        if isinstance(node, list):
            out: list[Any] = []
            for item in node:
                if isinstance(item, dict) and TURNS in item:
                    out.extend(self.messages(item))
                else:
                    out.append(self.value(item))
            return out
        return node


def _pair_names(names: Any) -> bool:
    """`names` is a reference's `$names`: the input and output names of its Prompt flow pairs."""
    return (
        isinstance(names, dict)
        and set(names) == {"input", "output"}
        and all(isinstance(value, str) for value in names.values())
    )
