"""Indexed views of a measurement and of its control, built once per verdict.

The stage analyses ask the same questions many times ("which host did this address come from?",
"did the control connect to this endpoint?", "which hops make up the fetch?"); the views answer
them from dictionaries built in one pass over the observations.

The *fetch path* is the target URL followed by every redirect target, each with its host and
port. A hop whose connection failed has no HTTPRequest (the probe, like OONI's, records the
failed TCP connect or TLS handshake instead), yet it is on the path: that is how a failure after a
redirect is pinned to the hop, and the stage, where it happened.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from urllib.parse import urlsplit

from core import failures
from core.addresses import is_ip, norm_host
from core.observations import DNSQuery, HTTPRequest, Measurement, TCPConnect, TLSHandshake

ENCRYPTED_ENGINES = frozenset({"doh", "dot"})
#: The failure that explains "no address", most telling first.
_DNS_FAILURE_RANK = {
    failures.DNS_NXDOMAIN: 0,
    failures.DNS_NO_ANSWER: 1,
    failures.DNS_SERVFAIL: 2,
    failures.DNS_REFUSED: 3,
    failures.GENERIC_TIMEOUT: 4,
}
#: Failures of the client following the server's answer, not of the network.
SITE_FAILURES = frozenset({failures.HTTP_INVALID_REDIRECT, failures.HTTP_TOO_MANY_REDIRECTS})


@dataclass
class Resolution:
    """What one resolver said about one name, over all its queries (A, AAAA, ANY)."""

    host: str
    engine: str
    resolver: str
    queries: list[DNSQuery] = field(default_factory=list)
    addresses: list[str] = field(default_factory=list)  # unique, first seen first
    failure: str | None = None  # why no address came back, when none did

    @property
    def encrypted(self) -> bool:
        return self.engine in ENCRYPTED_ENGINES

    @property
    def injected(self) -> bool:
        return any(q.injected for q in self.queries)

    @property
    def who(self) -> str:
        """The resolver, named for a human: "the system resolver", "resolver 8.8.8.8:53"."""
        if self.engine == "system" or not self.resolver:
            return "the system resolver"
        if self.encrypted:
            return f"the {self.engine.upper()} resolver {self.resolver}"
        return f"resolver {self.resolver}"


def resolutions(queries: Iterable[DNSQuery]) -> dict[str, list[Resolution]]:
    """The queries grouped by name, then by resolver (engine and address)."""
    by_key: dict[tuple[str, str, str], Resolution] = {}
    for q in queries:
        host = norm_host(q.hostname)
        key = (host, q.engine, q.resolver)
        res = by_key.get(key)
        if res is None:
            res = by_key[key] = Resolution(host, q.engine, q.resolver)
        res.queries.append(q)
        for response in q.responses:
            for address in response.addresses:
                if address not in res.addresses and is_ip(address):
                    res.addresses.append(address)
    grouped: dict[str, list[Resolution]] = {}
    for res in by_key.values():
        if not res.addresses:
            res.failure = _no_address_failure(res.queries)
        grouped.setdefault(res.host, []).append(res)
    return grouped


def _no_address_failure(queries: list[DNSQuery]) -> str:
    found = [q.failure for q in queries if q.failure]
    if not found:
        return failures.DNS_NO_ANSWER  # answered, but with no address (a lone CNAME)
    return min(found, key=lambda f: _DNS_FAILURE_RANK.get(f, 99))


@dataclass(frozen=True)
class PathHop:
    """One URL of the fetch: the target, then each redirect target."""

    url: str
    host: str
    port: int
    tls: bool
    request: HTTPRequest | None  # None when the hop failed before its request


@lru_cache(maxsize=16384)
def _endpoint(url: str) -> tuple[str, int, bool] | None:
    """(host, port, uses TLS) of a URL; cached, since a campaign fetches the same URLs daily."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    host = norm_host(parts.hostname or "")
    if not host:
        return None
    scheme = parts.scheme.lower()
    if port is None:
        port = {"http": 80, "https": 443, "tls": 443}.get(scheme)
    if port is None:
        return None
    return host, port, scheme in ("https", "tls")


def fetch_path(target_url: str, hops: list[HTTPRequest]) -> list[PathHop]:
    """The target URL and the redirect targets, paired with the hop that fetched each."""
    urls = [target_url] + [h.location for h in hops if h.location]
    path: list[PathHop] = []
    for i, url in enumerate(urls):
        endpoint = _endpoint(url)
        if endpoint is not None:
            request = hops[i] if i < len(hops) else None
            path.append(PathHop(url, endpoint[0], endpoint[1], endpoint[2], request))
    return path


def handshake_completed(h: TLSHandshake) -> bool:
    """The server answered the ClientHello: success, or a certificate it sent was refused."""
    return h.failure is None or h.failure in failures.CERTIFICATE_FAILURES


class ProbeView:
    """The probe's measurement, indexed."""

    def __init__(self, m: Measurement) -> None:
        self.target = m.target
        self.scheme = m.target.scheme.lower()
        queries: list[DNSQuery] = []
        self.tcp: list[TCPConnect] = []
        self.tls: list[TLSHandshake] = []
        self.harmless: list[TLSHandshake] = []
        self.hops: list[HTTPRequest] = []
        for o in m.observations:
            if isinstance(o, DNSQuery):
                queries.append(o)
            elif isinstance(o, TCPConnect):
                self.tcp.append(o)
            elif isinstance(o, TLSHandshake):
                (self.harmless if o.purpose == "harmless_sni" else self.tls).append(o)
            elif isinstance(o, HTTPRequest):
                self.hops.append(o)
        self.dns = resolutions(queries)
        self.verified: dict[str, set[str]] = {}  # host -> addresses with a valid certificate
        for h in self.tls:
            if h.failure is None and h.cert_verified:
                self.verified.setdefault(norm_host(h.sni), set()).add(h.address)
        self.final = self.hops[-1] if self.hops else None

    # The indexes below are built on first use: a control needs few of them.

    @cached_property
    def path(self) -> list[PathHop]:
        return fetch_path(self.target.url, self.hops)

    @cached_property
    def hosts_by_address(self) -> dict[str, set[str]]:
        index: dict[str, set[str]] = {}
        for host, group in self.dns.items():
            for res in group:
                for address in res.addresses:
                    index.setdefault(address, set()).add(host)
        return index

    @cached_property
    def path_ports(self) -> dict[str, set[int]]:
        """Fetch-path host -> the ports it is fetched on."""
        ports: dict[str, set[int]] = {}
        for hop in self.path:
            ports.setdefault(hop.host, set()).add(hop.port)
        return ports

    @cached_property
    def tls_ports(self) -> dict[str, set[int]]:
        """Fetch-path host -> the ports it is fetched on over TLS."""
        ports: dict[str, set[int]] = {}
        for hop in self.path:
            if hop.tls:
                ports.setdefault(hop.host, set()).add(hop.port)
        return ports

    def hosts_of(self, address: str) -> set[str]:
        """The names that resolved to `address` (the address itself for an IP-literal URL)."""
        hosts = self.hosts_by_address.get(address, set())
        return hosts | {address} if address in self.path_ports else hosts

    def on_path(self, address: str, port: int) -> set[str]:
        """The fetch-path hosts that `address`:`port` serves."""
        return {h for h in self.hosts_of(address) if port in self.path_ports.get(h, ())}

    def tcp_reached(self, host: str, port: int) -> bool:
        """Some TCP connect to an address of `host` on `port` succeeded."""
        return any(
            c.failure is None and c.port == port and host in self.hosts_of(c.address)
            for c in self.tcp
        )

    def tls_reached(self, host: str, port: int) -> bool:
        """Some handshake with `host` as SNI on `port` completed."""
        return any(
            handshake_completed(h) and h.port == port and norm_host(h.sni) == host
            for h in self.tls
        )

    def harmless_completed(self, address: str, port: int) -> bool:
        """A harmless-SNI handshake to the same endpoint went through (SNI filtering test)."""
        return any(
            h.address == address and h.port == port and handshake_completed(h)
            for h in self.harmless
        )

    def hop_host(self, hop: HTTPRequest) -> str:
        endpoint = _endpoint(hop.url)
        return endpoint[0] if endpoint else ""

    def hop_verified(self, hop: HTTPRequest) -> bool:
        """The hop went over TLS with a valid certificate for its host (content is authentic)."""
        if not hop.url.lower().startswith("https:"):
            return False
        addresses = self.verified.get(self.hop_host(hop), set())
        return bool(addresses) and (not hop.address or hop.address in addresses or "" in addresses)

    def connection_failed(self, hop: HTTPRequest) -> bool:
        """The hop's TCP connect or TLS handshake failed: the earlier stage owns its failure."""
        host = self.hop_host(hop)
        endpoint = _endpoint(hop.url)
        port = hop.port or (endpoint[1] if endpoint else 0)
        tcp = [c for c in self.tcp if c.port == port and (
            c.address == hop.address if hop.address else host in self.hosts_of(c.address))]
        if tcp and not any(c.failure is None for c in tcp):
            return True
        if not hop.url.lower().startswith("https:"):
            return False
        tls = [h for h in self.tls if h.port == port and norm_host(h.sni) == host and (
            not hop.address or not h.address or h.address == hop.address)]
        return bool(tls) and not any(h.failure is None for h in tls)

    @property
    def reached(self) -> bool:
        """The probe got what the target serves: a final response, or for a bare endpoint
        (tcp://, tls://) a connection (with a valid certificate for tls://)."""
        if self.scheme in ("http", "https"):
            final = self.final
            return final is not None and final.failure is None and final.status is not None
        if self.scheme == "tls":
            return any(h.failure is None and h.cert_verified for h in self.tls)
        return any(c.failure is None for c in self.tcp)

    @property
    def verified_success(self) -> bool:
        """Reached over TLS with a valid certificate: nothing on the path could alter it."""
        if not self.reached:
            return False
        if self.scheme == "tls":
            return True
        return self.final is not None and self.hop_verified(self.final)


@dataclass(frozen=True)
class ControlDNS:
    """The control's resolution of one name: resolved | nxdomain | no_answer | failed."""

    status: str
    addresses: frozenset[str]


class ControlView:
    """The control measurement, indexed."""

    def __init__(self, m: Measurement) -> None:
        self.target = m.target
        probe_like = self.view = ProbeView(m)
        self.dns: dict[str, ControlDNS] = {}
        for host, group in probe_like.dns.items():
            addresses = frozenset(a for res in group for a in res.addresses)
            self.dns[host] = ControlDNS(_control_status(group, addresses), addresses)
        self.tcp: dict[tuple[str, int], str | None] = {}
        for c in probe_like.tcp:
            if self.tcp.get((c.address, c.port), "missing") is not None:
                self.tcp[(c.address, c.port)] = c.failure
        self.tls: dict[tuple[str, int], TLSHandshake] = {}
        for h in probe_like.tls:
            kept = self.tls.get((h.address, h.port))
            if kept is None or kept.failure is not None:
                self.tls[(h.address, h.port)] = h
        self.verified = probe_like.verified
        self.hops = probe_like.hops
        self.final = probe_like.final
        self.reached = probe_like.reached
        self.usable = (
            any(d.status != "failed" for d in self.dns.values())
            or bool(self.tcp)
            or any(h.status is not None for h in self.hops)
        )

    def hop_for(self, url: str) -> HTTPRequest | None:
        """The control's hop for `url` if it fetched that URL, else its final hop."""
        return next((h for h in self.hops if h.url == url), self.final)


def _control_status(group: list[Resolution], addresses: frozenset[str]) -> str:
    if addresses:
        return "resolved"
    found = {res.failure for res in group}
    if failures.DNS_NXDOMAIN in found:
        return "nxdomain"
    if failures.DNS_NO_ANSWER in found:
        return "no_answer"
    return "failed"
