"""The probe's own network: is the link up, is there a route, do the gateway and resolver answer?

Checked before a campaign, and again when everything failed, so that a dead Wi-Fi link is never
reported as a national shutdown. Reads Linux's /sys and /proc (paths injectable for tests) and
makes at most two tiny exchanges: a TCP connect to the default gateway (a refusal proves it is
there) and one DNS query to the system resolver. Never raises.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import struct
from pathlib import Path

from core import failures
from core.netstate import NetState
from core.times import Clock, utc_now

#: Interface name prefixes that are not a path to the Internet.
_VIRTUAL_PREFIXES = ("lo", "docker", "veth-", "virbr", "br-")


def interfaces_up(sys_net: Path = Path("/sys/class/net")) -> tuple[str, ...]:
    """Non-virtual interfaces whose operstate is up (or unknown, as tun and ppp devices report)."""
    found = []
    try:
        entries = sorted(sys_net.iterdir())
    except OSError:
        return ()
    for entry in entries:
        if entry.name.startswith(_VIRTUAL_PREFIXES):
            continue
        try:
            state = (entry / "operstate").read_text().strip()
        except OSError:
            continue
        if state in ("up", "unknown"):
            found.append(entry.name)
    return tuple(found)


def default_gateway(proc_net: Path = Path("/proc/net")) -> tuple[bool, str | None]:
    """(has a default route, its IPv4 gateway or None), from /proc/net/route and ipv6_route."""
    has_route, gateway = False, None
    try:
        lines = (proc_net / "route").read_text().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:
        cols = line.split()
        # Iface Destination Gateway Flags ...; destination 0 with flag RTF_UP is the default.
        if len(cols) >= 4 and cols[1] == "00000000" and int(cols[3], 16) & 0x1:
            has_route = True
            raw = int(cols[2], 16)
            if raw:
                gateway = socket.inet_ntoa(struct.pack("<I", raw))
                break
    if not has_route:
        try:
            for line in (proc_net / "ipv6_route").read_text().splitlines():
                cols = line.split()
                # A ::/0 route that is not the kernel's "unreachable" placeholder (lo, reject flag).
                if len(cols) >= 10 and cols[0] == "0" * 32 and cols[1] == "00" and cols[9] != "lo":
                    has_route = True
                    break
        except OSError:
            pass
    return has_route, gateway


def system_resolvers(resolv_conf: Path = Path("/etc/resolv.conf")) -> tuple[str, ...]:
    """The nameserver addresses of resolv.conf, in order."""
    found = []
    try:
        for line in resolv_conf.read_text(errors="replace").splitlines():
            cols = line.split()
            if len(cols) >= 2 and cols[0] == "nameserver":
                try:
                    found.append(str(ipaddress.ip_address(cols[1].split("%")[0])))
                except ValueError:
                    continue
    except OSError:
        pass
    return tuple(found)


async def gateway_answers(gateway: str, timeout: float = 2.0) -> bool:
    """A connect to the gateway that succeeds or is refused shows the gateway is there."""
    for port in (53, 80):
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(gateway, port), timeout)
            writer.close()
            return True
        except ConnectionRefusedError:
            return True
        except (OSError, TimeoutError):
            continue
    return False


async def resolver_answers(resolver: str, timeout: float = 2.0) -> bool:
    """Any DNS response at all, even an error code, shows the resolver is reachable."""
    from probes import dns  # imported here: dns is the heavier module, this module stays light

    query = await dns.query_udp(".", "NS", resolver, Clock(), timeout, 0.0)
    return bool(query.responses) or query.failure == failures.DNS_MALFORMED


async def check_network(
    *,
    probe_upstream: bool = True,
    sys_net: Path = Path("/sys/class/net"),
    proc_net: Path = Path("/proc/net"),
    resolv_conf: Path = Path("/etc/resolv.conf"),
    timeout: float = 2.0,
) -> NetState:
    """Look at the link and route; with `probe_upstream`, ask the gateway and the resolver too."""
    ifaces = interfaces_up(sys_net)
    has_route, gateway = default_gateway(proc_net)
    resolvers = system_resolvers(resolv_conf)
    gw_ok: bool | None = None
    res_ok: bool | None = None
    if probe_upstream and ifaces and has_route:
        checks = []
        if gateway:
            checks.append(gateway_answers(gateway, timeout))
        if resolvers:
            checks.append(resolver_answers(resolvers[0], timeout))
        results = await asyncio.gather(*checks, return_exceptions=True)
        answers = [r is True for r in results]
        if gateway:
            gw_ok = answers.pop(0)
        if resolvers:
            res_ok = answers.pop(0)
    return NetState(
        checked=utc_now(),
        interfaces=ifaces,
        default_route=has_route,
        gateway=gateway,
        gateway_reachable=gw_ok,
        resolvers=resolvers,
        resolver_reachable=res_ok,
    )
