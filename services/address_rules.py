"""Which IP addresses count as public: the rule that keeps the test helper from being used to
reach the networks it runs on (loopback, private ranges, cloud metadata at 169.254.169.254).

An IPv6 address can carry an IPv4 address inside it, and some stack, tunnel or translator on the
way may deliver a connection to that IPv4 address: `::7f00:1` (IPv4-compatible) or
`::ffff:0:7f00:1` (SIIT) can reach 127.0.0.1, `64:ff9b:1::a9fe:a9fe` a local NAT64's view of
169.254.169.254. So each IPv6 form that embeds IPv4 is either refused whole (the deprecated and
local-use forms, which no public target needs) or judged by the IPv4 address it embeds (mapped,
6to4, well-known NAT64, whose embedded address is where the packets really go). The decision never
rests on `ipaddress`'s own `is_global` for these forms: what it says about them changed between
Python patch releases.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: IPv6 prefixes refused whole, whatever they embed.
DENIED_V6: tuple[ipaddress.IPv6Network, ...] = tuple(ipaddress.IPv6Network(n) for n in (
    "::/96",  # IPv4-compatible (RFC 4291, deprecated); also holds :: and ::1
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT, RFC 2765)
    "64:ff9b:1::/48",  # local-use NAT64 (RFC 8215): where the IPv4 sits depends on the prefix
    "2001::/32",  # Teredo: a server's and an obfuscated client's IPv4
    "fec0::/10",  # site-local (RFC 3879, deprecated): private, yet not in ipaddress's private list
))
#: IPv4-mapped (RFC 4291): a dual-stack socket connects to the IPv4 address over IPv4.
MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
#: Well-known NAT64 prefix (RFC 6052): the translator connects to the last 32 bits.
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: 6to4 (RFC 3056): the relay sends to the IPv4 address in bits 16-47.
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address leads to (mapped, 6to4, well-known NAT64), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip in MAPPED or ip in NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip in SIX_TO_FOUR:
        return ipaddress.IPv4Address((int(ip) >> 80) & 0xFFFFFFFF)
    return None


def is_public(ip: IPAddress, public_ranges: Sequence[Network] = ()) -> bool:
    """Globally routable unicast, or inside one of `public_ranges` (labs choose these).

    An IPv6 address in `DENIED_V6` is never public; one that embeds IPv4 is as public as the
    IPv4 address it embeds.
    """
    if any(ip in net for net in public_ranges):
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in DENIED_V6):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return is_public(inner, public_ranges)
    return ip.is_global and not ip.is_multicast

