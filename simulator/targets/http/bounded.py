"""Reading an answer never past a byte limit, so an endless or huge answer costs bounded memory."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import aiohttp


class BoundedBody:
    """A response body in pieces, never more than `limit` bytes in all; `cut` once it went on past them."""

    def __init__(self, response: aiohttp.ClientResponse, limit: int) -> None:
        self.response = response
        self.limit = limit
        self.read = 0
        self.cut = False

    async def pieces(self) -> AsyncGenerator[bytes, None]:
        """The body's bytes as they arrive (decompressed), up to the limit."""
        async for chunk in self.response.content.iter_any():
            room = self.limit - self.read
            if len(chunk) > room:
                self.cut = True
                chunk = chunk[:room]
            self.read += len(chunk)
            if chunk:
                yield chunk
            if self.cut:
                return


async def read_body(response: aiohttp.ClientResponse, limit: int) -> tuple[bytes, bool]:
    """The body, or its first `limit` bytes and True when there was more."""
    body = BoundedBody(response, limit)
    parts = [piece async for piece in body.pieces()]
    return b"".join(parts), body.cut
