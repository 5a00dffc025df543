"""Probe settings: timeouts, resolvers, limits. One frozen object passed down to every step."""

from __future__ import annotations

from dataclasses import dataclass, field

#: Public resolvers queried directly when the user names none: one per large operator, so a
#: censor that blocks one does not blind the probe. Each is documented in the README.
DEFAULT_RESOLVERS: tuple[str, ...] = ("8.8.8.8", "1.1.1.1", "9.9.9.9")
#: DNS over HTTPS endpoint used as the encrypted (harder to tamper with) alternative.
DEFAULT_DOH_URL = "https://dns.google/dns-query"
#: A name that no censor blocks, for the harmless-SNI handshake that tells SNI filtering apart.
DEFAULT_HARMLESS_SNI = "example.com"
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36"
)


@dataclass(frozen=True)
class Timeouts:
    """Per-step limits in seconds. Every step is bounded by one of these, so nothing hangs."""

    dns: float = 5.0
    # After the first UDP answer, keep listening this long for a second (injected) one.
    dns_listen: float = 0.5
    tcp: float = 10.0
    tls: float = 10.0
    # Time to the response headers, and the whole body read (a slow drip is cut here).
    http: float = 15.0
    http_body: float = 20.0


@dataclass(frozen=True)
class ProbeConfig:
    """Everything a measurement needs to know besides the target."""

    timeouts: Timeouts = field(default_factory=Timeouts)
    resolvers: tuple[str, ...] = DEFAULT_RESOLVERS  # "IP" or "IP:port"
    doh_url: str | None = None
    dns_over_tcp: bool = False
    ca_bundle: str | None = None  # PEM file; None means the system store
    body_cap: int = 1 << 20  # 1 MiB
    max_redirects: int = 10
    harmless_sni: str = DEFAULT_HARMLESS_SNI
    user_agent: str = USER_AGENT
    ipv6: bool = True
    # Ask getaddrinfo too (what the user's apps see). Off only where the system resolver must not
    # be used: loopback tests and benchmarks, whose names exist only on a fake resolver.
    system_resolver: bool = True
