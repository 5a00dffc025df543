"""The byte-stream seam between the transport probes: TCP gives one, TLS wraps one, HTTP uses one.

`ByteStream` is the smallest interface the steps need (read, write, close). The TCP probe
returns a `TCPStream`; the TLS probe wraps any ByteStream in its own stream; the HTTP probe speaks
over whichever it is handed. Tests and the measurement code can slot a fake in anywhere.

Ownership: whoever opened a stream closes it. `close()` is idempotent, bounded in time and never
raises, so callers may close in `finally` blocks without guarding.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Protocol

#: How much to ask for per read: large enough that a fast body costs few wake-ups.
CHUNK = 64 * 1024
#: A graceful close waits at most this long for the transport to finish, then aborts.
CLOSE_GRACE = 1.0


class ByteStream(Protocol):
    """A connected, ordered byte stream."""

    async def read(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` bytes; b"" on a clean end of stream. Raises OSError (or an
        ssl.SSLError) when the connection breaks."""
        ...

    async def write(self, data: bytes) -> None:
        """Send all of `data`. Raises OSError when the connection breaks."""
        ...

    async def close(self) -> None:
        """Release the connection. Never raises."""
        ...


class TCPStream:
    """A ByteStream over an asyncio (reader, writer) pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._closed = False

    async def read(self, max_bytes: int) -> bytes:
        return await self._reader.read(max_bytes)

    async def write(self, data: bytes) -> None:
        self._writer.write(data)
        await self._writer.drain()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        transport = self._writer.transport
        try:
            self._writer.close()
            # A peer that stops reading could keep unsent data (and us) waiting forever.
            await asyncio.wait_for(self._writer.wait_closed(), CLOSE_GRACE)
        except (OSError, TimeoutError, RuntimeError):
            with contextlib.suppress(Exception):
                transport.abort()
