"""Reading an answer never past a byte limit, so an endless or huge answer costs bounded memory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

import httpx2


class BoundedBody:
    """A response body in pieces, never more than `limit` bytes in all; `cut` once it went on past them."""

    def __init__(self, response: httpx2.Response, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.read = 0
        self.cut = False

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        """The body's bytes as they arrive, up to the limit."""
        async with contextlib.aclosing(self.response.aiter_bytes()) as chunks:
            async for chunk in chunks:
                room = self.limit - self.read
                if len(chunk) > room:
                    self.cut = True
                    chunk = chunk[:room]
                self.read += len(chunk)
                if chunk:
                    yield chunk
                if self.cut:
                    return


async def read_body(response: httpx2.Response, limit: int) -> tuple[bytes, bool]:
    """The body, or its first `limit` bytes and True when there was more."""
    body = BoundedBody(response, limit)
    parts = [piece async for piece in body.pieces()]
    return b"".join(parts), body.cut
