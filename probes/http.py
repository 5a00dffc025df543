"""The HTTP probe: one HTTP/1.1 GET over a connected ByteStream (plain TCP or TLS), via h11.

The response is untrusted and possibly hostile (a block page, a middlebox, a 1 GB stream, a
drip): the head and the body have separate time budgets, the body is capped (reading stops
there), headers and title are bounded, and nothing the peer sends makes this raise. A failure
keeps whatever was received before it.

The redirect chain is the caller's loop: each hop is one `fetch`, whose `location` is the next
absolute URL (already normalised and safe to request).
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import re
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urljoin, urlsplit, urlunsplit

import h11

from core.errors import TargetError
from core.failures import HTTP_INVALID_REDIRECT
from core.html_title import extract_title
from core.observations import HTTPRequest
from core.times import Clock
from probes.config import ProbeConfig
from probes.failure_mapping import classify_http
from probes.streams import CHUNK, ByteStream

ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
ACCEPT_LANGUAGE = "en-US,en;q=0.9"
MAX_HEADERS = 100
MAX_HEADER_VALUE = 8 * 1024
#: The largest response head we parse (h11's own default, 16 KiB, rejects some real sites).
MAX_HEAD = 64 * 1024
DEFAULT_PORTS = {"http": 80, "https": 443}
# Characters left as they are when percent-encoding a path or query (RFC 3986 reserved, and %).
_SAFE = "!#$%&'()*+,/:;=?@[]~"
# A DNS name (letters, digits, '-', '_'; no empty label; an optional final dot) or IPv4 literal.
_HOST = re.compile(r"(?:[A-Za-z0-9_-]{1,63}\.)*[A-Za-z0-9_-]{1,63}\.?")


def normalise_url(url: str) -> str | None:
    """An absolute http(s) URL that is safe to request, or None when `url` cannot be one.

    Non-ASCII host names become IDNA, unsafe path and query characters are percent-encoded (as a
    browser does), credentials are dropped.
    """
    url = url.strip()
    if not url or any(ord(c) < 0x20 or c == "\x7f" for c in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
        host = parts.hostname
        if parts.scheme not in DEFAULT_PORTS or not host:
            return None
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
    except (ValueError, UnicodeError):
        return None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return None
        netloc = f"[{host}]"
    elif _HOST.fullmatch(host):
        netloc = host
    else:
        return None
    if port is not None:
        netloc += f":{port}"
    path = quote(parts.path or "/", safe=_SAFE)
    query = quote(parts.query, safe=_SAFE)
    return urlunsplit((parts.scheme, netloc, path, query, quote(parts.fragment, safe=_SAFE)))


def redirect_location(base: str, value: str) -> str | None:
    """The absolute URL a Location header points to, or None when it is unusable."""
    value = value.strip()
    if not value:
        return None
    try:
        # RFC 3986: a reference with a scheme is absolute. (urljoin would resolve "http://" or
        # "http:x" against a base of the same scheme, which no browser does.)
        joined = value if urlsplit(value).scheme else urljoin(base, value)
    except ValueError:
        return None
    return normalise_url(joined)


def request_headers(url: str, config: ProbeConfig) -> tuple[tuple[str, str], ...]:
    """The headers we send for `url` (a normalised URL): a browser's, minus compression."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    if parts.port is not None and parts.port == DEFAULT_PORTS[parts.scheme]:
        host = host.rsplit(":", 1)[0]
    return (
        ("Host", host),
        ("User-Agent", config.user_agent),
        ("Accept", ACCEPT),
        ("Accept-Language", ACCEPT_LANGUAGE),
        ("Accept-Encoding", "identity"),
        ("Connection", "close"),
    )


def _is_html(content_type: str | None) -> bool:
    return content_type is None or "html" in content_type.lower() or "xml" in content_type.lower()


@dataclass
class _Exchange:
    """The mutable state of one round trip, so that a failure keeps what came before it."""

    stream: ByteStream
    cap: int
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT, MAX_HEAD))
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    location_header: str | None = None
    body: bytearray = field(default_factory=bytearray)
    body_length: int = 0
    truncated: bool = False
    sha256: hashlib._Hash = field(default_factory=hashlib.sha256)
    first_byte: float | None = None  # monotonic time of the first response byte
    last_byte: float | None = None  # ... and of the last body byte
    prefix: bytes = b""

    async def send_request(self, target: str, headers: tuple[tuple[str, str], ...]) -> None:
        request = h11.Request(method="GET", target=target, headers=list(headers))
        data = (self.conn.send(request) or b"") + (self.conn.send(h11.EndOfMessage()) or b"")
        await self.stream.write(data)

    def _check_prefix(self, data: bytes) -> None:
        """Fail fast on a peer that answers with something other than HTTP (a middlebox, junk):
        h11 alone would wait for a blank line that may never come."""
        if len(self.prefix) >= 5:
            return
        self.prefix = (self.prefix + data).lstrip(b"\r\n")[:5]
        if self.prefix != b"HTTP/"[: len(self.prefix)]:
            raise h11.RemoteProtocolError("the response does not start with HTTP/", 400)

    async def next_event(self) -> object:
        while True:
            event = self.conn.next_event()
            if event is not h11.NEED_DATA:
                return event
            data = await self.stream.read(CHUNK)
            if data:
                if self.first_byte is None:
                    self.first_byte = time.monotonic()
                self._check_prefix(data)
                self.conn.receive_data(data)
                continue
            # The peer closed. h11 decides whether that ends the message (a body delimited by
            # the close) or cuts it short; for us a cut is an EOF, not a protocol violation.
            self.conn.receive_data(b"")
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise EOFError("the connection closed in the middle of the response") from exc
            if isinstance(event, h11.ConnectionClosed):
                raise EOFError("the connection closed before the response")
            return event

    async def read_head(self) -> None:
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                break
            # 1xx responses (h11.InformationalResponse) precede the real one.
        self.status = event.status_code
        raw = list(event.headers.raw_items())
        for name, value in raw:
            if name.lower() == b"location":
                self.location_header = value.decode("latin-1")
                break
        self.headers = tuple(
            (name.decode("latin-1"), value.decode("latin-1")[:MAX_HEADER_VALUE])
            for name, value in raw[:MAX_HEADERS]
        )

    async def read_body(self) -> None:
        while True:
            event = await self.next_event()
            if isinstance(event, h11.EndOfMessage):
                return
            if not isinstance(event, h11.Data):
                continue
            chunk = bytes(event.data)
            self.last_byte = time.monotonic()
            self.body_length += len(chunk)
            room = self.cap - len(self.body)
            kept = chunk[:room] if room < len(chunk) else chunk
            self.body += kept
            self.sha256.update(kept)
            if len(kept) < len(chunk):
                self.truncated = True  # the cap: stop reading, without a failure
                return

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name), None)

    def goodput(self) -> float | None:
        if self.body_length < 1 or self.first_byte is None or self.last_byte is None:
            return None
        elapsed = self.last_byte - self.first_byte
        return round(self.body_length / elapsed, 3) if elapsed > 0 else None


async def fetch(
    stream: ByteStream, url: str, address: str, port: int, clock: Clock, config: ProbeConfig
) -> HTTPRequest:
    """GET `url` over `stream` (connected to `address`:`port`) and record the round trip.

    The stream is not closed (its opener closes it). Raises TargetError only for a `url` that is
    not an absolute http(s) URL; every network outcome is recorded in the returned observation.
    """
    normalised = normalise_url(url)
    if normalised is None:
        raise TargetError(f"not an absolute http(s) URL: {url!r}")
    parts = urlsplit(normalised)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    headers = request_headers(normalised, config)
    exchange = _Exchange(stream=stream, cap=config.body_cap)
    failure: str | None = None
    t0 = clock.now()
    try:
        async with asyncio.timeout(config.timeouts.http):
            await exchange.send_request(target, headers)
            await exchange.read_head()
        async with asyncio.timeout(config.timeouts.http_body):
            await exchange.read_body()
    except (OSError, EOFError, h11.ProtocolError) as exc:  # TimeoutError is an OSError
        failure = classify_http(exc)
        if exchange.status is not None:
            exchange.truncated = True  # the body was cut short (drip, reset, close)
    location = None
    is_redirect = exchange.status is not None and 300 <= exchange.status < 400
    if is_redirect and exchange.location_header is not None:
        location = redirect_location(normalised, exchange.location_header)
        if location is None and failure is None:
            failure = HTTP_INVALID_REDIRECT
    content_type = exchange.header("content-type")
    body = bytes(exchange.body)
    return HTTPRequest(
        t0=t0,
        t=clock.now(),
        url=url,
        address=address,
        port=port,
        failure=failure,
        request_headers=headers,
        status=exchange.status,
        headers=exchange.headers,
        title=extract_title(body, content_type) if _is_html(content_type) else None,
        body=body,
        body_length=exchange.body_length,
        body_sha256=exchange.sha256.hexdigest() if exchange.status is not None else None,
        body_truncated=exchange.truncated,
        goodput=exchange.goodput(),
        location=location,
    )
