"""Gradio apps (`gr.ChatInterface`, or any event of a Blocks app with an API name): the user's message
in, the app's new message out, the earlier turns kept by the app per session.

`url` is the app's root (where its page is served) and `api` the endpoint's name (`/chat`). A turn
is `POST <url>/gradio_api/run/<api>` with `{"data": [<message>, <history>], "session_hash": <id>}`
and its answer `{"data": [<output>, ...]}`. A `ChatInterface` keeps each session's history on the
server, in a `gr.State` that the second data item only stands in for, so each conversation sends one
`session_hash` of its own on every turn, made anew for each run (an app that lives on between runs
never continues an earlier run's conversation). The history still goes as that second item, as
`{"role", "content"}` messages, for a Blocks app whose second input is its `Chatbot`.

The run route answers at once, past the app's queue. Where the app refuses it (`queue(api_open=
False)`, or a Space that only serves the queue: HTTP 404) or where it gives only the first piece of a
reply the app streams (a generator: `"is_generating": true`), the turn goes through the queue
instead, and so does every later turn of the target: `POST <url>/gradio_api/call/<api>` with the same
body answers `{"event_id": <id>}`, and `GET <url>/gradio_api/call/<api>/<id>` streams `event:
generating` (the outputs so far), `event: heartbeat` and, at the end, `event: complete` (the outputs)
or `event: error`. A session that saw the first piece of a streamed reply holds it in its history,
so the queue gets a session of its own.

The reply is the first output that holds one: text, or a message (`{"role": "assistant",
"content": ...}`, content as text or a list of parts), or a list of messages, whose last assistant
message with text is the reply. A `ChatInterface` returns its new message first; a Blocks app that
returns `("", chat_history)` has the reply in the history's last assistant message.
"""

from __future__ import annotations

import hashlib
import json
import logging
import secrets
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit, urlunsplit

from ...parsing import strict_json
from ...text import known_secrets
from ..redaction import safe_url
from .answer import Answer, snippet
from .format import HttpFormat, MissingReply, Send, UnusableAnswer
from .problems import Problems
from .sse import Lines

if TYPE_CHECKING:
    from yarl import URL

log = known_secrets.scrub_logs(logging.getLogger("simulator.targets.http.gradio"))

#: where a Gradio app (version 5 and later) serves its API, under its root
API_ROOT = "/gradio_api"
RUN, CALL = "run", "call"
#: what Gradio answers on the run route of an app that takes calls through its queue only
QUEUE_ONLY = "does not accept direct HTTP POST requests"
#: the SSE events of a queued call's result
COMPLETE, ERROR, GENERATING = "complete", "error", "generating"
#: Gradio's own answer when no endpoint has the name (or the route itself fails)
BARE_500 = "Internal Server Error"


class GradioFormat(HttpFormat):
    """`api` is this format's own; the route (run or queue) is learnt from the app's first answers."""

    name = "gradio"
    keys = ("api",)
    default_response = "data"

    def __init__(self, api: str, source: str = "target") -> None:
        #: the endpoint's name, without its leading slash
        self.api = api
        self.source = source
        #: the route turns take: RUN until the app refuses it or streams, then CALL for good
        self.route = RUN
        #: makes this run's session ids differ from every other run's
        self._salt = secrets.token_hex(8)

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str, problems: Problems) -> HttpFormat | None:
        where = f"{source}.api"
        api = config.get("api")
        hint = (
            "the name of the app's endpoint, e.g. /chat: a gr.ChatInterface's is its function's name "
            "unless it sets api_name (/chat in Gradio 5); the app's 'Use via API' page lists them"
        )
        if api is None:
            problems.add(("api",), f"{where}: required for format gradio: {hint}")
            return None
        name = api.strip().removeprefix("/") if isinstance(api, str) else ""
        if not name or "/" in name or any(char.isspace() for char in name):
            problems.add(("api",), f"{where}: must be {hint} (one name, no spaces); got {api!r}")
            return None
        return cls(name, source)

    # --- the request -------------------------------------------------------------------------------

    def endpoint(self, url: str) -> str:
        """The run route under the app's root, its query kept (a turn may go to the queue instead)."""
        parts = urlsplit(url)
        return urlunsplit(parts._replace(path=_route_path(parts.path.rstrip("/"), RUN, self.api)))

    def body(self, question: str, history: list[dict[str, str]], values: Mapping[str, Any], session: bool) -> Any:
        """For the run route; `exchange` gives a turn through the queue its own session."""
        messages = [{"role": m["role"], "content": m["content"]} for m in history]
        session_hash = self._session(str(values.get("conversation_id") or ""))
        return {"data": [question, messages], "session_hash": session_hash}

    def _session(self, conversation: str) -> str:
        """The conversation's session on the run route: the same on every turn, another in every run."""
        return hashlib.sha256(f"{self._salt}\0{conversation}".encode()).hexdigest()[:20]

    # --- the turn: the run route, else the queue ---------------------------------------------------

    async def exchange(self, send: Send, url: URL, body: Any) -> Answer:
        """`url` is the run route (`endpoint`); the queue's route is beside it."""
        queue = _with_route(url, CALL)
        if self.route == RUN:
            answer = await send("POST", url, body)
            why = _not_run(answer)
            if why is None:
                return answer  # the reply, or an error the target reports
            if self.route == RUN:  # not yet learnt by another conversation meanwhile
                self.route = CALL
                log.info(
                    "%s: the app at %s %s; turns go through its queue (%s) from now on",
                    self.source,
                    safe_url(str(url)),
                    why,
                    safe_url(str(queue)),
                )
        return await self._call(send, queue, {**body, "session_hash": _queued(body["session_hash"])})

    async def _call(self, send: Send, url: URL, body: Any) -> Answer:
        """Join the queue, then read the call's result stream to its end."""
        joined = await send("POST", url, body)
        if not 200 <= joined.status < 300:
            return joined  # a full queue (503) and the like: the target retries and reports
        event_id = _event_id(joined)
        if event_id is None:
            raise UnusableAnswer('answered the queue\'s call without its "event_id"', joined)
        result_url = _below(url, event_id)
        shown = safe_url(str(result_url))
        got = await send("GET", result_url, raw=True)
        if not 200 <= got.status < 300:
            raise UnusableAnswer(
                f"answered GET {shown} (the call's result) with an error", got, retry=got.status >= 429
            )
        if got.cut:
            raise UnusableAnswer(
                f"sent more than {len(got.content):,} bytes of events at {shown} before its call completed "
                f"({self.source}.max_reply_bytes): raise {self.source}.max_reply_bytes if the app's answers are "
                "that big",
                got,
            )
        events = list(_events(got.content))
        outputs: Any = None
        for name, data in events:
            if name == ERROR:
                raise UnusableAnswer(f"answered the call with an error: {_error_text(data)}", got, retry=True)
            if name in (GENERATING, COMPLETE) and isinstance(data, list):
                outputs = data  # each generating event holds the outputs so far, the complete one all of them
            if name == COMPLETE:
                break
        else:
            seen = ", ".join(dict.fromkeys(name for name, _ in events)) or "none"
            raise UnusableAnswer(
                f"ended the call's result stream at {shown} before its {COMPLETE} or {ERROR} event (events: {seen})",
                got,
                retry=True,
            )
        document = {"event_id": event_id, "event": COMPLETE, "data": outputs}
        answer = Answer(status=got.status, headers=got.headers, content=json.dumps(document).encode())
        answer.latency_ms = _total(joined.latency_ms, got.latency_ms)
        answer.connect_ms = _total(joined.connect_ms, got.connect_ms)
        return answer

    # --- the reply -----------------------------------------------------------------------------------

    def reply(self, value: Any) -> Any:
        found = _reply_in(value)
        if found is None:
            raise MissingReply(f"no output is text or an assistant message (outputs: {snippet(_shown(value), 160)})")
        return found

    def missing_reply(self, source: str) -> str:
        return (
            f"; set {source}.response to the output that holds the reply, e.g. data.1 for an app whose second "
            "output is the chat history"
        )

    def rejection(self, status: int, text: str) -> str | None:
        if status == 503 and "queue is full" in text.lower():
            return (
                f"its queue is full ({_detail(text)}): run fewer conversations at a time (--concurrency) or let the "
                "app queue more (demo.queue(max_size=...))"
            )
        if status == 500 and text.strip() == BARE_500:
            return (
                f"no endpoint answers to the name /{self.api}, as Gradio says so for a name it does not know: set "
                f"{self.source}.api to one the app's 'Use via API' page (its {API_ROOT}/info) lists"
            )
        if status == 404:
            return (
                f"no Gradio app serves its API there ({_detail(text)}): set {self.source}.url to the app's root, "
                f"the address its page is served at (Gradio 5 and later serve their API under {API_ROOT}/)"
            )
        return None


# --- routes ------------------------------------------------------------------------------------------


def _route_path(root: str, route: str, api: str) -> str:
    return f"{root}{API_ROOT}/{route}/{quote(api, safe='')}"


def _with_route(url: URL, route: str) -> URL:
    from yarl import URL

    parts = urlsplit(str(url))
    segments = parts.path.split("/")
    segments[-2] = route
    return URL(urlunsplit(parts._replace(path="/".join(segments))), encoded=True)


def _below(url: URL, name: str) -> URL:
    """`url` with one more segment (percent-encoded whole) at the end of its path, its query kept."""
    from yarl import URL

    parts = urlsplit(str(url))
    return URL(urlunsplit(parts._replace(path=f"{parts.path}/{quote(name, safe='')}")), encoded=True)


def _queued(session_hash: str) -> str:
    """The session a conversation takes through the queue: not the run route's, which may hold the first
    piece of a streamed reply in its history."""
    return hashlib.sha256(f"{CALL}\0{session_hash}".encode()).hexdigest()[:20]


def _not_run(answer: Answer) -> str | None:
    """Why the run route's answer is not the turn's (the queue is), or None when it is."""
    if answer.status == 404:
        return "refuses calls past its queue (HTTP 404 on the run route)"
    if 200 <= answer.status < 300 and not answer.cut:
        document = _json(answer.content)
        if isinstance(document, dict) and document.get("is_generating") is True:
            return "streams its replies (the run route gives only their first piece)"
    return None


def _json(content: bytes | str) -> Any:
    """The JSON value, None when it is none (or cannot be trusted)."""
    try:
        return strict_json.loads(content, max_depth=strict_json.EMBEDDED_MAX_DEPTH)
    except ValueError:
        return None


def _event_id(answer: Answer) -> str | None:
    document = None if answer.cut else _json(answer.content)
    event_id = document.get("event_id") if isinstance(document, dict) else None
    return event_id if isinstance(event_id, str) and event_id else None


def _events(content: bytes) -> Iterator[tuple[str, Any]]:
    """(event name, data: JSON parsed, else text) of each event of a result stream."""
    lines = Lines()
    name = "message"
    data: list[str] = []
    for line in [*lines.feed(content), lines.end(), ""]:
        if line:
            field, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                name = value
            elif field == "data":
                data.append(value)
            continue
        if data:
            payload = "\n".join(data)
            parsed = _json(payload)
            yield name, payload if parsed is None and payload.strip() != "null" else parsed
        name, data = "message", []


def _error_text(data: Any) -> str:
    """What an error event says: Gradio's `{"error": <message>}` (null unless the app shows errors)."""
    message = data.get("error") if isinstance(data, dict) else data
    if isinstance(message, str) and message.strip():
        return snippet(message, 300)
    return "the app hides its errors' messages (launch it with show_error=True to see them in the answer)"


def _detail(text: str) -> str:
    """The `detail` of a FastAPI error answer, else its beginning."""
    document = _json(text)
    detail = document.get("detail") if isinstance(document, dict) else None
    return snippet(detail if isinstance(detail, str) else text, 160)


def _total(*parts: float | None) -> float | None:
    known = [part for part in parts if part is not None]
    return sum(known) if known else None


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


# --- the reply in the outputs --------------------------------------------------------------------------


def _reply_in(value: Any) -> str | None:
    """The reply in the outputs (a list that is no list of messages) or in one output; None: none.

    The first output with text wins; an empty one counts only when no other has any."""
    outputs = value if isinstance(value, list) and not _messages(value) else [value]
    empty = False
    for output in outputs:
        text = _text(output)
        if text:
            return text
        empty = empty or text == ""
    return "" if empty else None


def _messages(value: list[Any]) -> bool:
    """A list of chat messages (and None for a gap), not a list of outputs."""
    return any(_message(item) for item in value) and all(item is None or _message(item) for item in value)


def _message(item: Any) -> bool:
    return isinstance(item, dict) and "content" in item


def _text(output: Any) -> str | None:
    """The reply text in one output: text, a message, or a list of messages (its last assistant one)."""
    if isinstance(output, str):
        return output
    if isinstance(output, (int, float)) and not isinstance(output, bool):
        return str(output)
    if _message(output):
        return _content(output["content"]) if output.get("role", "assistant") == "assistant" else None
    if isinstance(output, list) and _messages(output):
        for item in reversed(output):
            if item is not None and item.get("role", "assistant") == "assistant":
                text = _content(item["content"])
                if text:
                    return text
    return None


def _content(content: Any) -> str | None:
    """A message's text: its content as text, or the text parts of a list of parts (files have none)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        text = content.get("text")  # {"type": "text", "text": ...}, a multimodal {"text", "files"}
        return text if isinstance(text, str) else None
    if isinstance(content, list):
        parts = [text for text in map(_content, content) if text]
        return "\n\n".join(parts) if parts else None
    return None
