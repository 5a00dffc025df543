"""What one client may hold on the helper's and the collector's HTTP servers (`http_base`).

A per-read socket timeout does not bound a request: a client that sends one byte just before
each timeout keeps its connection, and its thread, for ever, and a few dozen such clients fill
every connection slot (issue 11, section 4). Two bounds close that:

- `DeadlineReader`: every read from the client must finish before a deadline for the whole
  request head, then one for the whole body, however the bytes trickle in;
- `Admission`: a cap on open connections overall and per client address, decided in the
  accepting thread before a handler thread is spent, so one address cannot take every slot.
"""

from __future__ import annotations

import io
import ipaddress
import math
import socket
import threading
import time
from collections import Counter
from typing import Protocol

RETRY_AFTER = 5  # seconds, in a 503 "busy" answer


class ServerLimits(Protocol):
    """The fields of a server's config (HelperConfig, CollectorConfig) that bound its clients."""

    max_connections: int  # open connections overall (503 beyond)
    max_connections_per_address: int  # open connections from one client address (503 beyond)
    io_timeout: float  # each socket read or write
    head_deadline: float  # seconds from accepting a connection to the end of the request head
    body_deadline: float  # seconds from the end of the head to the end of the body


def _busy(message: str) -> bytes:
    body = b'{"error": "busy: %s, retry later"}' % message.encode()
    return (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
            b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
            % (RETRY_AFTER, len(body), body))


BUSY = _busy("too many connections")
BUSY_ADDRESS = _busy("too many connections from your address")


def client_key(host: str) -> str:
    """Whom a connection counts against: the IPv4 address, or the /64 of an IPv6 one (one
    subscriber usually holds a whole /64, so counting single IPv6 addresses would bound nothing).
    An IPv4-mapped address (a dual-stack listener) counts as its IPv4 address."""
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return host
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class Admission:
    """Counts open connections, overall and per client key; `admit` says who may come in."""

    def __init__(self, total: int, per_address: int) -> None:
        self._total, self._per_address = total, per_address
        self._open: Counter[str] = Counter()
        self._lock = threading.Lock()

    def admit(self, host: str) -> bytes | None:
        """None if a connection from `host` may be served (and is now counted), else the 503
        answer to send it instead."""
        key = client_key(host)
        with self._lock:
            if self._open[key] >= self._per_address:
                return BUSY_ADDRESS
            if self._open.total() >= self._total:
                return BUSY
            self._open[key] += 1
        return None

    def release(self, host: str) -> None:
        """A connection admitted for `host` has ended."""
        key = client_key(host)
        with self._lock:
            self._open[key] -= 1
            if self._open[key] <= 0:
                del self._open[key]  # the counter must not grow with every address ever seen

    def open(self, host: str | None = None) -> int:
        """Connections open now: from `host`'s key, or overall."""
        with self._lock:
            return self._open.total() if host is None else self._open[client_key(host)]


class DeadlineReader(io.RawIOBase):
    """The client side of a socket as a raw stream whose reads all end by `deadline` (a
    `time.monotonic()` value; move it on between the head and the body). Past it, a read raises
    TimeoutError, as a socket timeout does, so http.server and `read_body` treat it alike."""

    def __init__(self, sock: socket.socket, io_timeout: float,
                 deadline: float = math.inf) -> None:
        super().__init__()
        self._sock, self._io_timeout = sock, io_timeout
        self.deadline = deadline

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request did not arrive in time")
        self._sock.settimeout(min(self._io_timeout, left))
        try:
            return self._sock.recv_into(buffer)
        finally:
            self._sock.settimeout(self._io_timeout)  # writes keep the plain per-call timeout
