"""A Python function as the app under test: `fn(question, conversation_history, meta_data)`."""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import json
import re
import time
import traceback
from collections.abc import Callable
from typing import Any

from ..aio.event_loops import beside_caller_loop
from ..errors import ConfigError, TurnError
from ..parsing import strict_json
from .base import AppReply, Target

ANSWER_KEY = "answer"
_OTHER_LOOP = re.compile(r"different (event )?loop")


def _jsonable(value: Any, name: str) -> Any:
    """Results are JSON lines: anything else a callback returns is kept as its string form; what
    no results line could hold and every reader take back (NaN, a loop, nesting past the limit) is
    the app's error, named."""
    try:
        return strict_json.loads(json.dumps(value, default=str), max_depth=strict_json.EMBEDDED_MAX_DEPTH)
    except (ValueError, RecursionError) as exc:
        raise TurnError(
            "app_error",
            f"callback {name} returned a value that cannot be recorded as JSON ({exc}); "
            "return text, finite numbers, lists and dicts",
        ) from None


def _callback_name(fn: Callable[..., Any]) -> str:
    if isinstance(fn, functools.partial):  # "functools:partial" would not say which app ran
        return f"{_callback_name(fn.func)} (partial)"
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or type(fn).__name__
    return f"{module}:{name}" if module else name


def _other_loop_advice(exc: Exception) -> str:
    """What to do when an async callback used an object of the caller's event loop from the private
    loop that a blocking `simulate()` runs on (a notebook, an async web app)."""
    # asyncio says "attached to a different loop", "belongs to a different loop" or "is bound to a
    # different event loop", depending on the object
    if not (beside_caller_loop() and isinstance(exc, (RuntimeError, ValueError)) and _OTHER_LOOP.search(str(exc))):
        return ""
    return (
        ". simulate() was called inside a running event loop, so the conversation ran on a separate "
        "loop in a worker thread, where objects of your loop (a client session, a lock, a future) "
        "cannot be used; call `await simulator.simulate_async(...)` instead"
    )


class CallbackTarget(Target):
    """Calls a sync or async function; a sync one runs in a worker thread so others go on."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None) -> None:
        """`name` is how messages and results call the callback: a manifest's `file.py:function`
        spec reads better than the private module name its file was loaded under."""
        if not callable(fn):
            raise ConfigError(f"simulate_callback must be callable, got {type(fn).__name__}")
        self.fn = fn
        self.name = name or _callback_name(fn)
        self._is_async = inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
            getattr(fn, "__call__", None)  # noqa: B004 - callable objects with an async __call__
        )

    async def respond(self, question: str, history: list[dict[str, str]], meta_data: dict[str, Any]) -> AppReply:
        request = {"question": question, "conversation_history": history, "meta_data": meta_data}
        # the app gets its own copies: one that appends to the history or edits meta_data in place
        # must change neither the persona (shared by later conversations) nor the recorded request
        history, meta_data = copy.deepcopy((history, meta_data))
        try:
            if self._is_async:
                started = time.perf_counter()
                result = await self.fn(question, history, meta_data)
                took = time.perf_counter() - started
            else:
                # timed in the worker thread: the app's own time, not the wait for a thread
                result, took = await asyncio.to_thread(self._call, question, history, meta_data)
                if inspect.isawaitable(result):
                    started = time.perf_counter()
                    result = await result
                    took += time.perf_counter() - started
        except TurnError:
            raise
        except Exception as exc:  # the app under test failing is a result, not a crash
            tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
            raise TurnError(
                "app_error",
                f"callback {self.name} raised {type(exc).__name__}: {exc}{_other_loop_advice(exc)}",
                detail={"traceback": tail},
            ) from None
        reply = self._reply(result, request)
        reply.latency_ms = took * 1000
        return reply

    def _call(self, *args: Any) -> tuple[Any, float]:
        started = time.perf_counter()
        result = self.fn(*args)
        return result, time.perf_counter() - started

    def _reply(self, result: Any, request: dict[str, Any]) -> AppReply:
        if isinstance(result, str):
            return AppReply(text=result, raw=result, request=request)
        if isinstance(result, dict):
            raw = _jsonable(result, self.name)
            answer = result.get(ANSWER_KEY)
            if not isinstance(answer, str):
                found = "no 'answer' key" if answer is None else f"'answer' is a {type(answer).__name__}"
                raise TurnError(
                    "app_error",
                    f"callback {self.name} returned a dict with {found} (keys: {', '.join(map(str, result))}); "
                    "return a string or a dict whose 'answer' is a string",
                    detail={"response": raw},
                )
            usage = result.get("usage") if isinstance(result.get("usage"), dict) else None
            return AppReply(text=answer, raw=raw, request=request, usage=usage)
        raise TurnError(
            "app_error",
            f"callback {self.name} returned {type(result).__name__}; return a string or a dict with 'answer'",
            detail={"response": _jsonable(result, self.name)},
        )

    def describe(self) -> dict[str, Any]:
        return {"kind": "callback", "callback": self.name}
