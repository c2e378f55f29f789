"""The reply read out of an app's answer: the text at the response path of a JSON answer, or what
an event stream added up to, with the usage and a session id; an answer that holds no usable reply
(cut, empty, not JSON, an object where text should be) is an app error that says what to set."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from ...parsing import strict_json
from ...parsing.json_path import PathError, extract, format_path, parse_path
from ...text.known_secrets import scrub, scrub_text
from ...text.unicode_safety import replace_lone_surrogates, surrogate_note
from ..base import AppReply
from . import errors
from .answer import Answer, StreamReply, snippet
from .config import HttpSettings
from .format import MissingReply
from .session import Conversation

#: what a reading of the reply gives: the text, the usage, and the parts of a multi-part reply
Reading = tuple[str, dict[str, Any] | None, list[str] | None]


def _kind(value: Any) -> str:
    return "objects" if isinstance(value, dict) else "lists"


class ReplyReader:
    """Reads the replies of one target's answers, as its settings say; `source` is the manifest field
    the target was written in (`target`, `simulations[2].target`), named in what an error tells."""

    def __init__(self, settings: HttpSettings, source: str) -> None:
        self.settings = settings
        self.source = source
        self.dialect = settings.format
        self.format = settings.format.name
        self.session = settings.session
        self.response = settings.response
        self.max_reply_bytes = settings.max_reply_bytes

    def reply(self, answer: Answer, record: dict[str, Any], state: Conversation) -> AppReply:
        """The turn's reply from a successful answer; what the conversation learns (a session id,
        cookies) goes to `state`, and `record` is the request as results keep it."""
        raw: dict[str, Any] = {"status": answer.status}
        if answer.retries:
            raw["retries"] = answer.retries
        notes: list[str] = []
        if answer.stream is not None:
            text, usage, parts = self._read_stream(answer.stream, answer, record, raw, notes)
            session = answer.stream.session
            replaced = answer.stream.replaced
        else:
            # lone surrogates (a `"\\ud800"` escape) become U+FFFD as the answer is read: its session id,
            # reply and raw answer never hold text UTF-8 cannot hold
            document, replaced = replace_lone_surrogates(self._document(answer, record))
            raw["body"] = document
            text, usage, parts = self._text_from_document(document, answer, record)
            session = None
            if self.session is not None and self.session.json_path is not None:
                with contextlib.suppress(PathError):
                    session = extract(document, self.session.json_path)
        if parts is not None:
            raw["parts"] = parts
        if replaced:
            notes.append(surrogate_note(replaced, "the app's answer"))
        if not text.strip():
            place = "the stream" if answer.stream is not None else f"path {self.settings.response_path()!r}"
            raise errors.app_error(f"gave an empty reply (the text at {place} is empty)", answer, record)
        state.learn(self.session, answer.headers, session)
        return AppReply(
            text=scrub_text(text),
            raw=scrub(raw),
            request=dict(record),
            usage=usage,
            notes=notes,
            latency_ms=answer.latency_ms,
            connect_ms=answer.connect_ms,
        )

    def _over_limit(self) -> str:
        return f"sent more than {self.max_reply_bytes:,} bytes ({self.source}.max_reply_bytes)"

    def _raise_limit(self) -> str:
        return f"raise {self.source}.max_reply_bytes if the app's answers are that big"

    def _document(self, answer: Answer, record: dict[str, Any]) -> Any:
        """The JSON answer, read whole; a cut, empty or non-JSON answer is an app error."""
        if answer.cut:
            raise errors.app_error(
                f"{self._over_limit()}; the connection was closed there and the cut JSON cannot be parsed: "
                f"{self._raise_limit()}",
                answer,
                record,
            )
        try:
            document = (
                strict_json.loads(answer.content, max_depth=strict_json.EMBEDDED_MAX_DEPTH)
                if answer.content.strip()
                else None
            )
        except strict_json.NotJSON:
            document = None
        except strict_json.JSONError as exc:  # JSON, but which value is meant, or what a number is, cannot be known
            raise errors.app_error(
                f"answered with JSON that cannot be used: {exc}", answer, record, mistake=True
            ) from None
        if document is None:
            what = "an empty body" if not answer.content.strip() else "a body that is not JSON"
            ctype = answer.headers.get("content-type", "no content type")
            raise errors.app_error(f"answered with {what} ({ctype})", answer, record, mistake=True)
        return document

    def _text_from_document(self, document: Any, answer: Answer, record: dict[str, Any]) -> Reading:
        usage = self.dialect.usage(document)
        if self.dialect.withheld(document):
            raise errors.withheld_error(answer, record)
        path = self.settings.response_path()
        try:
            value = self.dialect.reply(extract(document, self.settings.path or path))
        except (PathError, MissingReply) as exc:
            fix = self.dialect.missing_reply(self.source) if self.response is None else ""
            raise errors.app_error(
                f"answered without the reply text: {exc}{fix}", answer, record, mistake=True
            ) from None
        if isinstance(value, list):
            parts = []
            for index, part in enumerate(value):
                if isinstance(part, (dict, list)):
                    raise errors.app_error(
                        f"answered with {_kind(part)} at path {path!r} (item {index}), not text; "
                        f"point {self.source}.response at the text inside, e.g. messages[*].text",
                        answer,
                        record,
                        mistake=True,
                    )
                if part is not None:
                    parts.append(part if isinstance(part, str) else str(part))
            return "\n\n".join(parts), usage, parts
        if isinstance(value, dict):
            keys = ", ".join(map(str, list(value)[:12]))
            raise errors.app_error(
                f"answered with an object at path {path!r} (keys: {keys}), not text; point {self.source}.response "
                "at the text inside it",
                answer,
                record,
                mistake=True,
            )
        return ("" if value is None else value if isinstance(value, str) else str(value)), usage, None

    def new_stream(self) -> StreamReply:
        """An empty reply for an event stream's events to add up to, as they are read."""
        session = self.session.json_path if self.session is not None else None
        return StreamReply(parse_path(self.settings.response_path(stream=True)), self.dialect, session)

    def _read_stream(
        self, stream: StreamReply, answer: Answer, record: dict[str, Any], raw: dict[str, Any], notes: list[str]
    ) -> Reading:
        """The reply an event stream added up to; the first events go to `raw`."""
        if answer.cut and not stream.count:
            raise errors.app_error(
                f"{self._over_limit()}; no event was complete by then: {self._raise_limit()}", answer, record
            )
        raw["events"] = stream.events
        if stream.count > len(stream.events):
            raw["events_total"] = stream.count  # only the first ones are kept
        if not stream.count:
            raise errors.app_error("sent an event stream with no events", answer, record, mistake=True)
        if stream.filtered is not None:
            raise errors.withheld_error(answer, record)
        if not stream.found:
            raise errors.app_error(self._no_reply_in(stream), answer, record, mistake=True)
        if answer.cut:
            raw["cut_at_bytes"] = self.max_reply_bytes
            notes.append(
                f"the app {self._over_limit()}: the connection was closed there and the {stream.count:,} "
                "events completed before are the reply"
            )
        return stream.text, stream.usage, None

    def _no_reply_in(self, stream: StreamReply) -> str:
        """What a JSON event stream with no reply text at the path means, and what to set."""
        complete = stream.count == len(stream.events)
        said = self.dialect.stream_without_reply(stream.events, self.source) if complete else None
        if said is not None:
            return said
        path = format_path(stream.path)
        first = snippet(json.dumps(stream.events[0]), 120)
        found = f"sent {stream.count} events but none has the reply text at path {path!r} (first event: {first})"
        if self.dialect.stream_response_fixed:  # `response` does not apply to this format's events
            return (
                f"{found}; format {self.format} reads each event's text there: for an app whose events have a "
                f"shape of their own, use format: http with {self.source}.response"
            )
        return f"{found}; set {self.source}.response to the path of the text piece in each event"
