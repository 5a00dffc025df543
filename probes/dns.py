"""The DNS probe: resolve a name the ways a censor can interfere with, and record what came back.

- `resolve_system`: getaddrinfo, i.e. what the user's applications see.
- `query_udp`: one datagram to a resolver, then keep listening for `listen` seconds after the first
  reply: an on-path injector answers first and the real resolver later, so every reply to our
  query is kept (`DNSQuery.injected` compares them).
- `query_tcp`: the same question over TCP (an injector cannot race a TCP stream as easily).
- `query_doh`: DNS over HTTPS (RFC 8484), the encrypted path used as a weak control.
- `resolve_all`: all of the above for one name, concurrently, in a stable order.

Every call returns a `DNSQuery` and never raises for a network problem: the failure is data.
Bad input (a resolver that is not an IP, a name that cannot be encoded, a DoH URL that is not
http(s)) raises `ConfigError` or `TargetError` (InputErrors, so ValueErrors). What a reply
*means* is decided in `probes.dns_wire`, without I/O; this module only moves bytes and keeps time.
"""

from __future__ import annotations

import asyncio
import functools
import socket
import time
from urllib.parse import urlsplit

import dns.message
import requests

from core import failures
from core.errors import ConfigError, TargetError
from core.observations import DNSQuery, DNSResponse
from core.times import Clock
from probes import dns_wire, failure_mapping
from probes.config import ProbeConfig
from probes.dns_wire import parse_resolver

__all__ = ["parse_resolver", "query_doh", "query_tcp", "query_udp", "resolve_all", "resolve_system"]

#: A DNS message cannot exceed 65535 bytes; a DoH body past this is not DNS.
DOH_BODY_CAP = 64 * 1024
#: Extra time the event loop grants the DoH worker thread beyond its own socket timeouts, so the
#: thread's timeout normally fires first and no worker outlives the call.
_DOH_GRACE = 0.5
_DOH_HEADERS = {
    "Content-Type": "application/dns-message",
    "Accept": "application/dns-message",
    # A compressed body could expand past the cap; DNS messages are small anyway.
    "Accept-Encoding": "identity",
}


def _literal_query(hostname: str, address: str, clock: Clock) -> DNSQuery:
    """The record for a name that is already an address: nothing to resolve, nothing sent."""
    t = clock.now()
    response = DNSResponse(t=t, rcode="NOERROR", addresses=(address,))
    return DNSQuery(t0=t, t=t, hostname=hostname, query_type="ANY", engine="system",
                    resolver="", failure=None, responses=(response,))


async def resolve_system(hostname: str, clock: Clock, timeout: float) -> DNSQuery:
    """Resolve with getaddrinfo, as applications do: IPv4 and IPv6 in one call."""
    literal = dns_wire.ip_literal(hostname)
    if literal is not None:
        return _literal_query(hostname, literal, clock)
    t0 = clock.now()
    failure: str | None = None
    responses: tuple[DNSResponse, ...] = ()
    try:
        # SOCK_STREAM: one entry per address instead of one per socket type.
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(hostname, None, type=socket.SOCK_STREAM),
            timeout,
        )
    except UnicodeError as exc:  # the name cannot be IDNA-encoded: a bad target, not the network
        raise TargetError(f"cannot resolve {hostname!r}: {exc}") from exc
    except OSError as exc:  # socket.gaierror, and TimeoutError from wait_for
        failure = failure_mapping.classify_getaddrinfo(exc)
    else:
        found = [str(info[4][0]) for info in infos if info[0] in (socket.AF_INET, socket.AF_INET6)]
        addresses = dns_wire.sort_addresses(found)
        if addresses:
            responses = (DNSResponse(t=clock.now(), rcode="NOERROR", addresses=addresses),)
        else:
            failure = failures.DNS_NO_ANSWER
    return DNSQuery(t0=t0, t=clock.now(), hostname=hostname, query_type="ANY", engine="system",
                    resolver="", failure=failure, responses=responses)


class _Collector(asyncio.DatagramProtocol):
    """Keeps every reply to one UDP query; wakes the caller on the first datagram or error."""

    def __init__(self, query: dns.message.Message, clock: Clock) -> None:
        self.query = query
        self.clock = clock
        self.replies: list[DNSResponse] = []
        self.garbage = 0
        self.error: Exception | None = None
        self.first = asyncio.Event()

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        reply = dns_wire.read_reply(self.query, data)
        if reply is None:
            self.garbage += 1
        else:
            self.replies.append(dns_wire.to_response(reply, self.clock.now()))
        self.first.set()

    def error_received(self, exc: Exception) -> None:
        # An ICMP error (port unreachable -> ECONNREFUSED) matters only before any reply: a
        # late one after an answer says nothing about the answer.
        if not self.first.is_set():
            self.error = exc
            self.first.set()


async def query_udp(hostname: str, qtype: str, resolver: str, clock: Clock, timeout: float,
                    listen: float) -> DNSQuery:
    """Send one query over UDP and keep every reply that arrives until `listen` seconds after the
    first one (or until `timeout` overall). The failure is read from the first reply."""
    host, port = parse_resolver(resolver)
    query = dns_wire.build_query(hostname, qtype)
    record = functools.partial(DNSQuery, hostname=hostname, query_type=qtype.upper(),
                               engine="udp", resolver=dns_wire.format_endpoint(host, port))
    t0 = clock.now()
    collector = _Collector(query, clock)
    transport: asyncio.DatagramTransport | None = None
    setup_failure: str | None = None
    try:
        async with asyncio.timeout(timeout):
            # A connected socket of our own: the kernel drops datagrams from other sources
            # (an injector spoofs the resolver's address, so its replies still arrive) and
            # reports ICMP errors to us.
            transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: collector, remote_addr=(host, port),
                family=socket.AF_INET6 if ":" in host else socket.AF_INET,
            )
            transport.sendto(query.to_wire())
            await collector.first.wait()
            if collector.error is None:
                await asyncio.sleep(listen)
    except TimeoutError:
        pass  # nothing came, or the overall deadline cut the listen window: judged below
    except OSError as exc:  # the socket could not even be opened or connected
        setup_failure = failure_mapping.classify_dns(exc)
    finally:
        if transport is not None:
            transport.close()
    failure: str | None
    if collector.replies:
        failure = dns_wire.response_failure(collector.replies[0], qtype)
    elif setup_failure is not None:
        failure = setup_failure
    elif collector.error is not None:
        failure = failure_mapping.classify_dns(collector.error)
    elif collector.garbage:
        failure = failures.DNS_MALFORMED
    else:
        failure = failures.GENERIC_TIMEOUT
    return record(t0=t0, t=clock.now(), failure=failure, responses=tuple(collector.replies))


def _single_reply(query: dns.message.Message, wire: bytes, qtype: str,
                  clock: Clock) -> tuple[str | None, tuple[DNSResponse, ...]]:
    """Judge the one reply of a stream transport (TCP, DoH): unparseable is misbehaving."""
    reply = dns_wire.read_reply(query, wire)
    if reply is None:
        return failures.DNS_MALFORMED, ()
    response = dns_wire.to_response(reply, clock.now())
    return dns_wire.response_failure(response, qtype), (response,)


async def query_tcp(hostname: str, qtype: str, resolver: str, clock: Clock,
                    timeout: float) -> DNSQuery:
    """Send one query over TCP (RFC 1035 two-byte length prefix) and read one reply."""
    host, port = parse_resolver(resolver)
    query = dns_wire.build_query(hostname, qtype)
    record = functools.partial(DNSQuery, hostname=hostname, query_type=qtype.upper(),
                               engine="tcp", resolver=dns_wire.format_endpoint(host, port))
    t0 = clock.now()
    writer: asyncio.StreamWriter | None = None
    responses: tuple[DNSResponse, ...] = ()
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(host, port)
            wire = query.to_wire()
            writer.write(len(wire).to_bytes(2, "big") + wire)
            await writer.drain()
            length = int.from_bytes(await reader.readexactly(2), "big")
            data = await reader.readexactly(length)
        failure, responses = _single_reply(query, data, qtype, clock)
    except (OSError, EOFError) as exc:  # TimeoutError, refused, reset, IncompleteReadError
        failure = failure_mapping.classify_dns(exc)
    finally:
        if writer is not None:
            writer.close()
    return record(t0=t0, t=clock.now(), failure=failure, responses=responses)


def _doh_post(url: str, wire: bytes, timeout: float, ca_bundle: str | None) -> tuple[int, bytes]:
    """One RFC 8484 POST, run in a worker thread. Returns the status and the body; a body past
    DOH_BODY_CAP comes back cut to one byte over the cap so the caller can tell."""
    deadline = time.monotonic() + timeout
    with requests.Session() as session:
        # Environment proxies, netrc or a CA override would change what we measure.
        session.trust_env = False
        with session.post(url, data=wire, headers=_DOH_HEADERS, timeout=timeout, stream=True,
                          verify=ca_bundle or True, allow_redirects=False) as response:
            if response.status_code != 200:
                return response.status_code, b""
            body = bytearray()
            # read1 returns whatever has arrived, so the deadline is checked as bytes trickle
            # in: a slow drip never trips the per-read socket timeout.
            while chunk := response.raw.read1(4096, decode_content=False):
                body += chunk
                if len(body) > DOH_BODY_CAP:
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError("DoH body not received in time")
            return 200, bytes(body[: DOH_BODY_CAP + 1])


def _check_doh_url(url: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"bad DoH URL {url!r}: expected http(s)://host/path", "--doh")


async def query_doh(hostname: str, qtype: str, url: str, clock: Clock, timeout: float,
                    ca_bundle: str | None = None) -> DNSQuery:
    """Ask a DNS-over-HTTPS server (POST application/dns-message); `ca_bundle` for tests/labs."""
    _check_doh_url(url)
    # Id 0, as RFC 8484 recommends (HTTP matches replies to requests, and caches like it).
    query = dns_wire.build_query(hostname, qtype, query_id=0)
    t0 = clock.now()
    responses: tuple[DNSResponse, ...] = ()
    try:
        status, body = await asyncio.wait_for(
            asyncio.to_thread(_doh_post, url, query.to_wire(), timeout, ca_bundle),
            timeout + _DOH_GRACE,
        )
    except TimeoutError:
        failure: str | None = failures.GENERIC_TIMEOUT
    except Exception as exc:  # whatever requests raised in the thread is data, never a crash
        failure = failure_mapping.classify_requests(exc)
    else:
        if status != 200 or len(body) > DOH_BODY_CAP:
            failure = failures.DNS_MALFORMED
        else:
            failure, responses = _single_reply(query, body, qtype, clock)
    return DNSQuery(t0=t0, t=clock.now(), hostname=hostname, query_type=qtype.upper(),
                    engine="doh", resolver=url, failure=failure, responses=responses)


async def resolve_all(hostname: str, config: ProbeConfig, clock: Clock) -> list[DNSQuery]:
    """Every configured lookup of `hostname`, run concurrently.

    Order: system (unless config.system_resolver is off), then each resolver in config order
    (A before AAAA), then DoH. An IP literal yields one system record and no I/O at all.
    """
    literal = dns_wire.ip_literal(hostname)
    if literal is not None:
        return [_literal_query(hostname, literal, clock)]
    # Check the configuration before anything starts, so a mistake raises cleanly instead of
    # leaving half the lookups running.
    for resolver in config.resolvers:
        parse_resolver(resolver)
    if config.doh_url:
        _check_doh_url(config.doh_url)
    dns_wire.build_query(hostname, "A")
    limits = config.timeouts
    jobs = [resolve_system(hostname, clock, limits.dns)] if config.system_resolver else []
    for resolver in config.resolvers:
        for qtype in ("A", "AAAA") if config.ipv6 else ("A",):
            if config.dns_over_tcp:
                jobs.append(query_tcp(hostname, qtype, resolver, clock, limits.dns))
            else:
                jobs.append(query_udp(hostname, qtype, resolver, clock, limits.dns,
                                      limits.dns_listen))
    if config.doh_url:
        jobs.append(query_doh(hostname, "A", config.doh_url, clock, limits.dns, config.ca_bundle))
    return list(await asyncio.gather(*jobs))
