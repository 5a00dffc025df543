"""Measure one target: resolve, connect, handshake, fetch, and ask the follow-up questions.

The steps of DESIGN.md "Measuring one target", in order:

1. DNS: the system resolver plus direct queries to each configured resolver (`probes.dns`).
2. TCP connect to every address returned (IPv4 and IPv6), concurrently, bounded in number.
3. TLS handshake with the target's SNI on each reachable address; where it fails with a reset,
   timeout or EOF, the same handshake with a harmless SNI on a fresh connection (SNI filtering
   versus IP blocking).
4. HTTP GET over the first connection that got through, following redirects (bounded); each hop
   that changes host resolves and connects again, so a failure is pinned to the hop it hit.

Every step appends observations; nothing here raises for a network failure.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from core import failures
from core.observations import (
    DNSQuery,
    HTTPRequest,
    Measurement,
    Observation,
    TCPConnect,
    TLSHandshake,
)
from core.target import Target
from core.times import Clock, utc_now
from probes import dns, dns_wire, http, tcp, tls
from probes.config import ProbeConfig
from probes.streams import ByteStream

#: At most this many addresses per family are connected to: enough to see per-address
#: blocking, bounded so a resolver that returns 50 addresses cannot multiply the work.
MAX_ADDRESSES_PER_FAMILY = 4
#: Handshake failures after which the harmless-SNI question is worth asking.
_SNI_QUESTION = frozenset(
    {failures.CONNECTION_RESET, failures.GENERIC_TIMEOUT, failures.EOF_ERROR}
)


def candidate_addresses(queries: Iterable[DNSQuery], ipv6: bool = True) -> list[str]:
    """Addresses to connect to: the system resolver's first, then the others', per family capped."""
    ordered = sorted(queries, key=lambda q: q.engine != "system")
    v4: list[str] = []
    v6: list[str] = []
    for query in ordered:
        for address in query.all_addresses:
            try:
                version = ipaddress.ip_address(address).version
            except ValueError:
                continue
            bucket = v4 if version == 4 else v6
            if address not in bucket and len(bucket) < MAX_ADDRESSES_PER_FAMILY:
                bucket.append(address)
    return v4 + (v6 if ipv6 else [])


AddressFilter = Callable[[str], bool]


class _Recorder:
    """Collects observations for one measurement, in the order the steps finished."""

    def __init__(self, allowed: AddressFilter | None = None) -> None:
        self.clock = Clock()
        self.observations: list[Observation] = []
        self.allowed = allowed or (lambda address: True)

    def add(self, *obs: Observation) -> None:
        self.observations.extend(obs)


async def _connect(
    rec: _Recorder, address: str, port: int, sni: str | None, config: ProbeConfig
) -> ByteStream | None:
    """TCP connect and, when `sni` is given, the TLS handshake; the stream if both worked."""
    t = config.timeouts
    conn_obs, stream = await tcp.connect(address, port, rec.clock, t.tcp)
    rec.add(conn_obs)
    if stream is None or sni is None:
        return stream
    tls_obs, tls_stream = await tls.handshake(
        stream, address, port, sni, rec.clock, t.tls, ca_bundle=config.ca_bundle
    )
    rec.add(tls_obs)
    if tls_stream is None:
        await stream.close()
        if tls_obs.failure in _SNI_QUESTION and config.harmless_sni != sni:
            await _harmless_sni(rec, address, port, config)
    return tls_stream


async def _harmless_sni(rec: _Recorder, address: str, port: int, config: ProbeConfig) -> None:
    """Repeat the handshake to the same address with an innocuous SNI (the SNI-filtering test)."""
    t = config.timeouts
    conn_obs, stream = await tcp.connect(address, port, rec.clock, t.tcp)
    rec.add(conn_obs)
    if stream is None:
        return
    tls_obs, tls_stream = await tls.handshake(
        stream,
        address,
        port,
        config.harmless_sni,
        rec.clock,
        t.tls,
        ca_bundle=config.ca_bundle,
        purpose="harmless_sni",
    )
    rec.add(tls_obs)
    await (tls_stream or stream).close()


async def _reach_all(
    rec: _Recorder, addresses: list[str], port: int, sni: str | None, config: ProbeConfig
) -> dict[str, ByteStream]:
    """Connect (and handshake) to every address concurrently; the streams that got through."""
    streams = await asyncio.gather(*(_connect(rec, a, port, sni, config) for a in addresses))
    return {a: s for a, s in zip(addresses, streams, strict=True) if s is not None}


async def _fetch_chain(
    rec: _Recorder, target: Target, first: tuple[str, ByteStream] | None, config: ProbeConfig
) -> None:
    """GET the target URL over `first`, then follow redirects, each hop measured in full."""
    url = target.url
    hops = 0
    current = first
    while current is not None:
        address, stream = current
        port = urlsplit(url).port or (443 if url.startswith("https:") else 80)
        obs = await http.fetch(stream, url, address, port, rec.clock, config)
        await stream.close()
        rec.add(obs)
        if obs.failure or not obs.location:
            return
        hops += 1
        if hops > config.max_redirects:
            rec.observations[-1] = dataclasses.replace(
                obs, failure=failures.HTTP_TOO_MANY_REDIRECTS
            )
            return
        url = obs.location
        if not _valid_hop(url):
            rec.observations[-1] = dataclasses.replace(obs, failure=failures.HTTP_INVALID_REDIRECT)
            return
        current = await _open_hop(rec, url, config)


def _valid_hop(url: str) -> bool:
    """A redirect target we can follow: http(s), a host that can be looked up, a sane port."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        _ = parts.port  # raises ValueError for a port out of range
        if parts.scheme not in ("http", "https") or not host:
            return False
        if dns_wire.ip_literal(host) is None:
            dns_wire.build_query(host, "A")
    except ValueError:
        return False
    return True


async def _open_hop(rec: _Recorder, url: str, config: ProbeConfig) -> tuple[str, ByteStream] | None:
    """Resolve and connect for one redirect hop; None when the hop failed (already recorded)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    query = await _resolve_hop(host, rec.clock, config)
    rec.add(query)
    addresses = [a for a in candidate_addresses([query], config.ipv6) if rec.allowed(a)][:1]
    if not addresses:
        return None
    port = parts.port or (443 if parts.scheme == "https" else 80)
    sni = host if parts.scheme == "https" else None
    stream = await _connect(rec, addresses[0], port, sni, config)
    return (addresses[0], stream) if stream is not None else None


async def _resolve_hop(host: str, clock: Clock, config: ProbeConfig) -> DNSQuery:
    """A redirect hop resolves like an app would: the system resolver, else the first configured."""
    if config.system_resolver or not config.resolvers or dns_wire.ip_literal(host):
        return await dns.resolve_system(host, clock, config.timeouts.dns)
    t = config.timeouts
    return await dns.query_udp(host, "A", config.resolvers[0], clock, t.dns, t.dns_listen)


async def measure(
    target: Target,
    config: ProbeConfig,
    extra_addresses: Sequence[str] = (),
    allowed: AddressFilter | None = None,
) -> Measurement:
    """Measure one target completely. Never raises for network failures.

    `extra_addresses` are connected to as well as the resolved ones: the test helper uses them
    to measure the union of its own and the probe's addresses. `allowed`, when given, decides
    which addresses may be contacted at all (the helper refuses private ones); the others are
    resolved and recorded but never connected to.
    """
    rec = _Recorder(allowed)
    started = utc_now()
    queries = await dns.resolve_all(target.hostname, config, rec.clock)
    rec.add(*queries)
    addresses = candidate_addresses(queries, config.ipv6)
    for address in extra_addresses:
        if address not in addresses and (config.ipv6 or ":" not in address):
            addresses.append(address)
    addresses = [a for a in addresses if rec.allowed(a)]
    sni = target.hostname if target.uses_tls else None
    streams = await _reach_all(rec, addresses, target.port, sni, config)
    first = next(((a, streams.pop(a)) for a in addresses if a in streams), None)
    for stream in streams.values():
        await stream.close()
    if target.uses_http:
        await _fetch_chain(rec, target, first, config)
    elif first is not None:
        await first[1].close()
    return Measurement(
        target=target,
        started=started,
        runtime=rec.clock.now(),
        observations=tuple(rec.observations),
    )


def connected(m: Measurement) -> bool:
    """True when at least one TCP connect to the target succeeded."""
    return any(isinstance(o, TCPConnect) and o.failure is None for o in m.observations)


def fetched(m: Measurement) -> HTTPRequest | None:
    """The last HTTP hop, if any."""
    hops = m.of(HTTPRequest)
    return hops[-1] if hops else None


def handshakes(m: Measurement) -> list[TLSHandshake]:
    """The TLS handshakes made with the target's own SNI."""
    return [h for h in m.of(TLSHandshake) if h.purpose == "target"]
