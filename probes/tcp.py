"""The TCP connect probe: one connection attempt to one address and port, as an observation.

Only address literals are accepted (IPv4 or IPv6, brackets optional): name resolution is the
DNS probe's job, and a hidden lookup here would both skew the timing and leak the name.
"""

from __future__ import annotations

import asyncio
import ipaddress

from core.observations import TCPConnect
from core.times import Clock
from probes.failure_mapping import classify_tcp
from probes.streams import ByteStream, TCPStream


def _literal(address: str) -> str:
    """The address without IPv6 brackets; ValueError when it is not an IP literal."""
    bare = address[1:-1] if address.startswith("[") and address.endswith("]") else address
    ipaddress.ip_address(bare)  # raises ValueError for a host name: that is misuse, not data
    return bare


async def connect(
    address: str, port: int, clock: Clock, timeout: float
) -> tuple[TCPConnect, ByteStream | None]:
    """Connect to `address`:`port` within `timeout` seconds.

    Returns the observation and, on success, the connected stream (the caller closes it).
    Network failures are data (`observation.failure`); a non-literal address raises ValueError.
    """
    bare = _literal(address)
    t0 = clock.now()
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(bare, port), timeout)
    except OSError as exc:  # TimeoutError, refused, unreachable, ... are all OSErrors
        return TCPConnect(t0, clock.now(), bare, port, classify_tcp(exc)), None
    return TCPConnect(t0, clock.now(), bare, port, None), TCPStream(reader, writer)
