"""Address facts the analysis needs: bogons, endpoints, host names in one comparable form.

A *bogon* is an address that no public site can legitimately resolve to: private (RFC 1918,
ULA), loopback, link-local, shared (CGNAT), documentation, benchmarking, multicast, reserved.
A resolver that answers one for a public name is lying, unless the operator said that range is
public for this run (`Context.public_ranges`: the censorship lab uses 198.18.0.0/15, a
special-purpose range, as its "internet").

These helpers run for every answer of every measurement, so the pure lookups are cached.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@lru_cache(maxsize=65536)
def parse_ip(text: str) -> IPAddress | None:
    """The address in `text`, or None when it is not an IP address (a CNAME, junk)."""
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def is_ip(text: str) -> bool:
    """True when `text` is an IPv4 or IPv6 address."""
    return parse_ip(text) is not None


@lru_cache(maxsize=65536)
def _special(text: str) -> bool:
    """True for an address outside the global unicast space (the bogon test, without ranges)."""
    address = parse_ip(text)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not address.is_global or address.is_multicast or address.is_unspecified


def is_bogon(text: str, public_ranges: tuple[Network, ...] = ()) -> bool:
    """True when `text` is an address no public name should resolve to.

    Addresses inside `public_ranges` count as public even when special-purpose. Text that is not
    an address is not a bogon (it is not an address at all).
    """
    if not _special(text):
        return False
    if public_ranges:
        address = parse_ip(text)
        if address is not None and any(
            address.version == net.version and address in net for net in public_ranges
        ):
            return False
    return True


def split_endpoint(text: str) -> tuple[str, int] | None:
    """("1.2.3.4", 443) from "1.2.3.4:443", ("::1", 443) from "[::1]:443"; None if malformed."""
    text = text.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        return None
    if ":" in host and not text.startswith("["):
        return None  # a bare IPv6 address with a port is ambiguous
    number = int(port)
    if not 0 < number < 65536 or parse_ip(host) is None:
        return None
    return host, number


def join_endpoint(address: str, port: int) -> str:
    """"1.2.3.4:443", "[::1]:443": the inverse of `split_endpoint` (IPv6 told by its colon)."""
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


@lru_cache(maxsize=16384)
def norm_host(name: str) -> str:
    """A host name in one comparable form: lower case, no trailing dot, IDNA (punycode).

    OONI's queries carry the punycode form (`xn--d1acpjx3f.xn--p1ai`) while the input URL may
    carry Unicode (`яндекс.рф`); both must compare equal.
    """
    name = name.strip().rstrip(".").lower()
    if name.isascii():
        return name
    try:
        return name.encode("idna").decode("ascii")
    except UnicodeError:
        return name
