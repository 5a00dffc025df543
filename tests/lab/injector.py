"""An on-path DNS injector for the lab's censor router (standard library + dnspython).

    python -m tests.lab.injector IFACE NAME FORGED_IP

Watches UDP queries to port 53 crossing IFACE (whatever resolver they are sent to) and, for
NAME, answers at once with a forged A record that appears to come from the queried resolver.
The real query goes on untouched, so the real answer arrives second: two answers to one query,
the signature of injection. Prints "ready" once listening; ends on SIGTERM.
"""

from __future__ import annotations

import random
import signal
import socket
import struct
import sys

import dns.message
import dns.rdatatype
import dns.rrset

ETH_P_IP = 0x0800


def forge(packet: bytes, name: str, forged: str) -> tuple[bytes, str] | None:
    """The forged IPv4/UDP reply to a query in `packet` for `name`, and where to send it."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_UDP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    src, dst = packet[12:16], packet[16:20]
    sport, dport = struct.unpack("!HH", packet[ihl : ihl + 4])
    if dport != 53:
        return None
    try:
        query = dns.message.from_wire(packet[ihl + 8 :])
    except Exception:
        return None
    if not query.question:
        return None
    question = query.question[0]
    if question.name.to_text().rstrip(".").lower() != name or question.rdtype != dns.rdatatype.A:
        return None
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(question.name, 60, "IN", "A", forged))
    payload = reply.to_wire()
    udp = struct.pack("!HHHH", 53, sport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), random.randrange(1, 65535), 0,
                     64, socket.IPPROTO_UDP, 0, dst, src)
    return ip + udp, socket.inet_ntoa(src)


def main(argv: list[str]) -> int:
    iface, name, forged = argv[0], argv[1].lower().rstrip("."), argv[2]
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
    sniff.bind((iface, 0))
    sniff.settimeout(0.2)
    send = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    print("ready", flush=True)
    while running:
        try:
            packet, (_, _, pkttype, *_rest) = sniff.recvfrom(65535)
        except TimeoutError:
            continue
        if pkttype == socket.PACKET_OUTGOING:
            continue
        made = forge(packet, name, forged)
        if made is not None:
            send.sendto(made[0], (made[1], 0))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
