"""The censor's transparent HTTP proxy: a blockpage for blocked Host headers, a relay otherwise.

The router diverts the client's port-80 traffic to it (`iptables -t nat -A PREROUTING -i IF -p
tcp --dport 80 -j REDIRECT --to-ports PORT`). It reads the request head and decides by the Host
header, as the ISPs' proxies do: a blocked name gets the blockpage; any other request goes to the
address the client really dialled (SO_ORIGINAL_DST), unchanged, and the answer comes back
unchanged. So a blocked and an unblocked site can share one address, and only the first is hit.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import struct

from tests.fakes.servers import HTTPServer, Reply

SO_ORIGINAL_DST = 80  # <linux/netfilter_ipv4.h>, at level SOL_IP
_CONNECT_TIMEOUT = 5.0
_CHUNK = 64 * 1024


def original_destination(writer: asyncio.StreamWriter) -> tuple[str, int]:
    """Where the client meant to go before the REDIRECT (IPv4 sockaddr_in)."""
    sock = writer.get_extra_info("socket")
    raw = sock.getsockopt(socket.SOL_IP, SO_ORIGINAL_DST, 16)
    port, address = struct.unpack_from("!H4s", raw, 2)
    return socket.inet_ntoa(address), port


def host_of(head: bytes) -> str:
    """The Host header's name, lower case, without a port."""
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "host":
            return re.sub(r":\d+$", "", value.strip().lower())
    return ""


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF, then pass the EOF on (half-close)."""
    with contextlib.suppress(OSError):
        while data := await reader.read(_CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()


class TransparentProxy(HTTPServer):
    """An HTTP proxy that serves `blockpage` for the names in `blocked` (see the module doc)."""

    def __init__(self, blocked: set[str], blockpage: Reply, host: str, port: int) -> None:
        super().__init__({}, host=host, port=port)
        self.blocked = {name.lower() for name in blocked}
        self.blockpage = blockpage

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if host_of(head) in self.blocked:
            await self._respond(self.blockpage, writer)
            return
        address, port = original_destination(writer)
        up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(address, port),
                                                      _CONNECT_TIMEOUT)
        try:
            up_writer.write(head)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
