"""The lab's DNS injector, without the kernel: the forged reply and the netlink framing.

Pure functions, so these run anywhere (no root, no namespaces, no network).
"""

from __future__ import annotations

import socket
import struct

import dns.flags
import dns.message

from tests.lab.injector import (
    NFNL_SUBSYS_QUEUE,
    NFQNL_MSG_VERDICT,
    attr,
    attrs,
    forge,
    message,
    messages,
)

CLIENT, RESOLVER = "198.18.1.2", "198.18.2.53"


def udp_query(name: str, qtype: str = "A", dport: int = 53) -> tuple[bytes, int]:
    """An IPv4/UDP packet carrying a DNS query from the client to the resolver, and its id."""
    query = dns.message.make_query(name, qtype)
    payload = query.to_wire()
    udp = struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, socket.IPPROTO_UDP, 0,
                     socket.inet_aton(CLIENT), socket.inet_aton(RESOLVER))
    return ip + udp, query.id


def test_forges_a_reply_from_the_queried_resolver() -> None:
    packet, query_id = udp_query("Inj.Lab.Test.")
    made = forge(packet, "inj.lab.test", "198.18.2.99")
    assert made is not None
    raw, destination = made
    assert destination == CLIENT
    assert raw[0] == 0x45 and raw[9] == socket.IPPROTO_UDP
    assert socket.inet_ntoa(raw[12:16]) == RESOLVER and socket.inet_ntoa(raw[16:20]) == CLIENT
    assert struct.unpack_from("!HH", raw, 20) == (53, 40000)
    assert struct.unpack_from("!H", raw, 2)[0] == len(raw)
    reply = dns.message.from_wire(raw[28:])
    assert reply.id == query_id and reply.flags & dns.flags.QR
    assert [r.address for r in reply.answer[0]] == ["198.18.2.99"]


def test_leaves_other_packets_alone() -> None:
    assert forge(udp_query("ok.lab.test")[0], "inj.lab.test", "198.18.2.99") is None
    assert forge(udp_query("inj.lab.test", "AAAA")[0], "inj.lab.test", "198.18.2.99") is None
    assert forge(udp_query("inj.lab.test", dport=5353)[0], "inj.lab.test", "198.18.2.99") is None
    packet = udp_query("inj.lab.test")[0]
    assert forge(packet[:28] + b"\xff\xff", "inj.lab.test", "198.18.2.99") is None  # not DNS
    assert forge(packet[:20], "inj.lab.test", "198.18.2.99") is None  # truncated
    tcp = packet[:9] + bytes([socket.IPPROTO_TCP]) + packet[10:]
    assert forge(tcp, "inj.lab.test", "198.18.2.99") is None


def test_netlink_framing_round_trips() -> None:
    body = attr(2, struct.pack("!II", 1, 42)) + attr(10, b"abc")
    assert len(body) % 4 == 0
    data = message(NFQNL_MSG_VERDICT, 1, 7, body)
    (kind, payload), _ = list(messages(data + data))
    assert kind == (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_VERDICT
    assert struct.unpack_from("!BBH", payload) == (socket.AF_UNSPEC, 0, 7)
    assert attrs(payload[4:]) == {2: struct.pack("!II", 1, 42), 10: b"abc"}
