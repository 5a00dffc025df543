"""DNS decisions without I/O: resolver specs, query building, reading replies, deriving failures.

`probes.dns` does the network I/O (UDP, TCP, DoH, getaddrinfo) and drives these functions, so
every rule about what a reply means is written once and can be tested without a socket:

- `parse_resolver` / `format_endpoint`: "IP", "IP:port", "[v6]:port" <-> (host, port).
- `build_query`: a dnspython query message (random id, RD set, no EDNS: what a stub sends).
- `read_reply`: raw bytes -> the parsed reply if it answers *our* query, else None (garbage,
  a stray datagram, or an answer to some other question are all "not a reply").
- `to_response`: a parsed reply -> `DNSResponse` (rcode, A/AAAA addresses, CNAME targets, TTL).
- `response_failure`: what the first reply means for the query (rcode, or no address of the type
  we asked for).
"""

from __future__ import annotations

import ipaddress

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype

from core import failures
from core.errors import ConfigError, TargetError
from core.observations import DNSResponse

DNS_PORT = 53
#: Address record types, and the IP version each carries.
ADDRESS_TYPES = {"A": 4, "AAAA": 6}


def ip_literal(text: str) -> str | None:
    """The normalised address if `text` is an IP literal (brackets allowed), else None."""
    candidate = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def parse_resolver(spec: str) -> tuple[str, int]:
    """Split a resolver spec into (IP, port); port 53 unless given.

    Accepted: "8.8.8.8", "8.8.8.8:5353", "2001:db8::1", "[2001:db8::1]", "[2001:db8::1]:53".
    Resolvers must be IP literals: resolving a resolver's name would go through the very system
    resolver we are checking. Raises ConfigError (option `--resolver`) on anything else.
    """
    text = spec.strip()
    port_text: str | None = None
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ConfigError(f"bad resolver {spec!r}: expected [IPv6]:port", "--resolver")
        port_text = rest[1:] if rest else None
        if ":" not in host:
            raise ConfigError(f"bad resolver {spec!r}: brackets are for IPv6 addresses",
                              "--resolver")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        # No colon: IPv4; several: a bare IPv6 address (its last group is never a port).
        host = text
    address = ip_literal(host)
    if address is None:
        raise ConfigError(f"bad resolver {spec!r}: not an IP address", "--resolver")
    if port_text is None:
        return address, DNS_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"bad resolver {spec!r}: port must be 1-65535", "--resolver")
    return address, int(port_text)


def format_endpoint(host: str, port: int) -> str:
    """"IP:port", with brackets around IPv6 (the form `parse_resolver` reads back)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def build_query(hostname: str, qtype: str, query_id: int | None = None) -> dns.message.Message:
    """A recursive query for `hostname`; a random id unless one is given (DoH uses 0).

    Raises TargetError for a name that cannot be put on the wire (bad target, not a network
    problem) or an unknown query type.
    """
    try:
        return dns.message.make_query(hostname, qtype, id=query_id)
    except (dns.exception.DNSException, UnicodeError) as exc:
        raise TargetError(f"cannot query {hostname!r} {qtype}: {exc}") from exc


def read_reply(query: dns.message.Message, wire: bytes) -> dns.message.Message | None:
    """Parse `wire`; return it if it is a reply to `query` (id, opcode and question), else None.

    Bytes from the network are untrusted: any parse error means "garbage", never an exception.
    Trailing bytes are tolerated because injectors are sloppy and we still want their answer.
    """
    try:
        reply = dns.message.from_wire(wire, ignore_trailing=True)
        return reply if query.is_response(reply) else None
    except Exception:  # any malformed input is garbage, by design
        return None


def _address_version(address: str) -> int:
    return 6 if ":" in address else 4


def to_response(reply: dns.message.Message, t: float) -> DNSResponse:
    """The recorded form of one reply: A/AAAA addresses and CNAME targets in answer order."""
    addresses: dict[str, None] = {}
    cnames: dict[str, None] = {}
    ttls: list[int] = []
    for rrset in reply.answer:
        if rrset.rdclass != dns.rdataclass.IN:
            # We asked in class IN; a record of another class answers nothing, and dnspython
            # reads an A of class 5 as opaque data (no address: reading one raised, and lost
            # the reply an injector sent).
            continue
        ttls.append(rrset.ttl)
        for rdata in rrset:
            if rrset.rdtype in (dns.rdatatype.A, dns.rdatatype.AAAA):
                addresses.setdefault(str(ipaddress.ip_address(rdata.address)), None)
            elif rrset.rdtype == dns.rdatatype.CNAME:
                cnames.setdefault(rdata.target.to_text(omit_final_dot=True), None)
    return DNSResponse(
        t=t,
        rcode=dns.rcode.to_text(reply.rcode()),
        addresses=tuple(addresses),
        cnames=tuple(cnames),
        ttl=min(ttls) if ttls else None,
    )


def response_failure(response: DNSResponse, qtype: str) -> str | None:
    """What one reply means: the rcode's failure, or dns_no_answer for NOERROR without an
    address of the asked type (an A record in reply to AAAA does not count)."""
    failure = failures.dns_rcode_failure(response.rcode)
    if failure is not None:
        return failure
    version = ADDRESS_TYPES.get(qtype.upper())
    if version is None:
        return None  # a type we do not interpret: NOERROR is all we can say
    if not any(_address_version(a) == version for a in response.addresses):
        return failures.DNS_NO_ANSWER
    return None


def sort_addresses(addresses: list[str]) -> tuple[str, ...]:
    """Deduplicate, IPv4 first then IPv6, otherwise keeping the resolver's order."""
    unique = list(dict.fromkeys(addresses))
    return tuple(a for a in unique if _address_version(a) == 4) + tuple(
        a for a in unique if _address_version(a) == 6
    )
