"""What sets one HTTP format apart from another, so the target itself speaks none in particular.

A format (`HttpFormat`) owns its own manifest fields and their checks, what it learns from the app
before the first request (`prepare`), the address (`endpoint`) and body of each request (the
history included), the requests a turn takes (one, unless the app answers in steps: `exchange`),
where the reply text sits in a JSON answer and in streamed events (`reply` for a shape of its
own), what counts as the app's content filter, and what an error answer says about the settings
(`missing_reply`, `rejection`). Everything else (the client, the bounded reading, retries,
sessions, recording, error messages) is the same for every format. Formats are listed in
`registry.FORMATS`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from ...parsing.template import PLACEHOLDER
from .problems import Problems

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

    from ..retry import RetryPolicy
    from .answer import Answer

#: placeholders usable in url, header values and a format's templates: values of the turn
PLACEHOLDERS = ("question", "conversation_id", "session_id", "turn_number", "persona", "task")


@dataclass(frozen=True)
class Template:
    """A configured value rendered anew each turn (strings anywhere inside), and the names it may use."""

    field: tuple[str, ...]
    value: Any
    known: tuple[str, ...] = PLACEHOLDERS


class Send(Protocol):
    """One request of a turn, read as the target reads every answer (within `max_reply_bytes`, cookies
    kept): `body` is a JSON value (None: no body) and becomes the turn's recorded request; `raw` reads
    the body as bytes even when it is an event stream."""

    async def __call__(self, method: str, url: URL, body: Any = None, *, raw: bool = False) -> Answer: ...


class PrepareSettings(Protocol):
    """What `HttpFormat.prepare` reads of a target's checked settings (`config.HttpSettings` is one)."""

    @property
    def url(self) -> str: ...

    @property
    def headers(self) -> dict[str, str]: ...

    @property
    def timeout(self) -> float: ...

    @property
    def retry(self) -> RetryPolicy: ...


class UnusableAnswer(Exception):
    """A format's `exchange` found an answer it cannot use; the turn fails with an `app_error` that
    names the request and says `what` ("answered ..."), retried when `retry` (the next try may pass),
    stopping the run when `fatal`."""

    def __init__(self, what: str, answer: Answer, *, retry: bool = False, fatal: bool = False) -> None:
        super().__init__(what)
        self.what = what
        self.answer = answer
        self.retry = retry
        self.fatal = fatal


class MissingReply(ValueError):
    """`HttpFormat.reply` found no reply in the value at the reply's path; the message says what was there."""


def only_placeholder(value: Any, name: str) -> bool:
    """True when `value` is exactly `{{name}}` (such a value may become a list or be left out)."""
    if not isinstance(value, str):
        return False
    match = PLACEHOLDER.fullmatch(value.strip())
    return bool(match and match.group(1) == name)


class HttpFormat(ABC):
    """One way of talking to a chat app over HTTP. Subclasses set the class attributes and override
    what differs; an instance holds the format's own settings, already checked."""

    #: the `format:` value in a manifest
    name: ClassVar[str] = ""
    #: manifest fields only this format reads (beside url, headers, response, session, ...)
    keys: ClassVar[tuple[str, ...]] = ()
    #: the path of the reply text in a JSON answer when `response` is not set; None: `response` is required
    #: (an instance may set its own, e.g. from what `prepare` learned)
    default_response: str | None = None
    #: the path of a piece of the reply text in each streamed event when `response` is not set (an
    #: instance may set its own: a flow streams its chat output under that output's name)
    stream_response: str = "delta"
    #: the events have a shape of their own: `response` (for JSON answers) does not apply to them
    stream_response_fixed: ClassVar[bool] = False
    #: the request's method; only a format that sends no body may use GET
    method: str = "POST"

    @classmethod
    def from_config(cls, config: Mapping[str, Any], source: str, problems: Problems) -> HttpFormat | None:
        """This format's settings from the target mapping. Each problem of its own fields goes to
        `problems` (then no target is built, but the format may still be returned so its templates are
        checked too); None when the fields are too broken to look into."""
        return cls()

    def endpoint(self, url: str) -> str:
        """Where the requests go, from the target's `url` (checked already): the URL itself unless the
        format knows its route under a base URL."""
        return url

    async def prepare(self, session: aiohttp.ClientSession, settings: PrepareSettings) -> None:  # noqa: B027 - optional
        """Learn from the app what the requests need (e.g. its own field names), once: the target's `warm`
        calls it before the first conversation, and every request too (at once when done); never raises."""

    async def exchange(self, send: Send, url: URL, body: Any) -> Answer:
        """The turn's answer: one request with `body` to `url`. A format whose app answers in steps (join
        a queue, then read the result) makes each with `send`, and may raise `UnusableAnswer`."""
        return await send(self.method, url, body)

    def reply(self, value: Any) -> Any:
        """The reply in what a JSON answer holds at the reply's path: that value itself, unless the
        format's answers hold the reply in a shape of their own (a list of chat messages). Raises
        `MissingReply` when there is none."""
        return value

    def templates(self) -> list[Template]:
        """The format's own values rendered per turn, so their placeholders are checked up front."""
        return []

    @abstractmethod
    def body(self, question: str, history: list[dict[str, str]], values: Mapping[str, Any], session: bool) -> Any:
        """The JSON body of a turn (None: no body). `history` is what `history:` lets through; `values`
        are the placeholders' values; `session` is whether the app has issued a session id yet."""

    def query(self, values: Mapping[str, Any], session: bool) -> dict[str, str]:
        """Query parameters added to the URL's own, rendered."""
        return {}

    def default_headers(self) -> dict[str, str]:
        """Headers sent unless the target configures them."""
        return {}

    def sent_values(self) -> tuple[dict[str, str], Any]:
        """The configured query and body, for the credentials they may carry."""
        return {}, None

    def usage(self, document: Any) -> dict[str, Any] | None:
        """Token usage in a JSON answer or a streamed event, if the format reports any."""
        return None

    def withheld(self, document: Any) -> bool:
        """The app's content filter withheld this answer (or streamed event)."""
        return False

    def refused(self, status: int, text: str) -> bool:
        """An error answer says the content filter refused the question."""
        return False

    def stream_without_reply(self, events: list[Any], source: str) -> str | None:
        """What happened when a JSON event stream held no reply text at the path, said after "the app at
        <url> " (None: the target says which path it read and what to set). `events` are all the events,
        as read."""
        return None

    def missing_reply(self, source: str) -> str:
        """What to set when a JSON answer lacks the reply text where the format looks by default
        (`response` not set), as the end of the message: "; set ..." (empty: nothing to add)."""
        return ""

    def rejection(self, status: int, text: str) -> str | None:
        """What an error answer says is wrong with the settings, and what to set (None: nothing known).
        Such an error recurs on every request, so it stops the run."""
        return None
