"""An on-path DNS injector for the lab's censor router: NFQUEUE, driven from the standard library.

    python -m tests.lab.injector --queue N --name NAME --forged IP [--max-seconds S]

The router sends forwarded UDP queries to port 53 into netfilter queue N (`iptables ... -j NFQUEUE
--queue-num N --queue-bypass`). For each queued packet this program decides:

* an A query for NAME (to whatever resolver): it first sends a forged reply, spoofed from the
  queried resolver, then releases the real query. The real answer can only arrive after the
  forgery: two answers to one query, the signature of on-path injection (as the GFW does it).
* anything else: released at once, untouched.

NFQUEUE is spoken over a netlink socket (AF_NETLINK, NETLINK_NETFILTER = 12) with the messages of
<linux/netfilter/nfnetlink_queue.h>; no libnetfilter_queue binding is needed. Prints "ready" once
bound; ends cleanly (queue unbound, socket closed) on SIGTERM/SIGINT or after --max-seconds, so
a forgotten injector cannot outlive its test. `--queue-bypass` on the rule lets packets through
whenever no injector is bound.
"""

from __future__ import annotations

import argparse
import errno
import random
import signal
import socket
import struct
import sys
import time
from collections.abc import Iterator

import dns.exception
import dns.message
import dns.rdatatype
import dns.rrset

NETLINK_NETFILTER = 12
NLM_F_REQUEST, NLM_F_ACK = 0x1, 0x4
NLMSG_ERROR = 2
NFNL_SUBSYS_QUEUE = 3
NFQNL_MSG_PACKET, NFQNL_MSG_VERDICT, NFQNL_MSG_CONFIG = 0, 1, 2
NFQA_CFG_CMD, NFQA_CFG_PARAMS, NFQA_CFG_MASK, NFQA_CFG_FLAGS = 1, 2, 4, 5
NFQNL_CFG_CMD_BIND, NFQNL_CFG_CMD_UNBIND = 1, 2
NFQNL_COPY_PACKET = 2
NFQA_CFG_F_FAIL_OPEN = 0x1
NFQA_PACKET_HDR, NFQA_VERDICT_HDR, NFQA_PAYLOAD = 1, 2, 10
NF_ACCEPT = 1
_NLA_TYPE_MASK = 0x3FFF  # strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
_POLL = 0.2  # how often the loop looks at the stop flag and the deadline


# --- netlink framing ------------------------------------------------------------------------------


def _align(n: int) -> int:
    return (n + 3) & ~3


def attr(kind: int, data: bytes) -> bytes:
    """One netlink attribute (struct nlattr + data), padded to 4 bytes."""
    return (struct.pack("=HH", 4 + len(data), kind) + data).ljust(_align(4 + len(data)), b"\0")


def attrs(data: bytes) -> dict[int, bytes]:
    """The attributes in `data`, by type."""
    found: dict[int, bytes] = {}
    offset = 0
    while offset + 4 <= len(data):
        length, kind = struct.unpack_from("=HH", data, offset)
        if length < 4:
            break
        found[kind & _NLA_TYPE_MASK] = data[offset + 4 : offset + length]
        offset += _align(length)
    return found


def message(kind: int, flags: int, queue: int, body: bytes, seq: int = 0) -> bytes:
    """A queue-subsystem netlink message: nlmsghdr + nfgenmsg (AF_UNSPEC, v0, queue) + body."""
    payload = struct.pack("!BBH", socket.AF_UNSPEC, 0, queue) + body
    header = struct.pack("=IHHII", 16 + len(payload), (NFNL_SUBSYS_QUEUE << 8) | kind, flags,
                         seq, 0)
    return header + payload


def messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, payload) of each netlink message in one datagram."""
    offset = 0
    while offset + 16 <= len(data):
        length, kind = struct.unpack_from("=IH", data, offset)
        if length < 16:
            break
        yield kind, data[offset + 16 : offset + length]
        offset += _align(length)


class Queue:
    """One bound netfilter queue."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        self.sock.bind((0, 0))
        self.sock.settimeout(2.0)
        self._seq = 0
        try:
            # EPERM here: another program holds this queue number.
            self._config(attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_BIND, 0)))
            # Whole packets (DNS queries are small); fail open if our queue ever fills up.
            self._config(attr(NFQA_CFG_PARAMS, struct.pack("!IB", 0xFFFF, NFQNL_COPY_PACKET))
                         + attr(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))
                         + attr(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)))
        except BaseException:
            self.sock.close()
            raise
        self.sock.settimeout(_POLL)

    def _config(self, body: bytes) -> None:
        """Send one config message and wait for the kernel's acknowledgement."""
        self._seq += 1
        self.sock.send(message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, self.number, body,
                               self._seq))
        while True:
            for kind, payload in messages(self.sock.recv(65536)):
                if kind == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, f"NFQUEUE config: {errno.errorcode.get(code, code)}")
                    return

    def packets(self) -> Iterator[tuple[int, bytes]]:
        """(packet id, IP packet) of the packets queued so far; nothing after _POLL seconds."""
        try:
            data = self.sock.recv(1 << 17)
        except TimeoutError:
            return
        except OSError as exc:
            if exc.errno == errno.ENOBUFS:  # the kernel dropped some (fail-open lets them pass)
                return
            raise
        for kind, payload in messages(data):
            if kind != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET:
                continue
            found = attrs(payload[4:])  # after the nfgenmsg
            if NFQA_PACKET_HDR in found:
                packet_id = struct.unpack_from("!I", found[NFQA_PACKET_HDR])[0]
                yield packet_id, found.get(NFQA_PAYLOAD, b"")

    def accept(self, packet_id: int) -> None:
        """Let a queued packet go on its way."""
        body = attr(NFQA_VERDICT_HDR, struct.pack("!II", NF_ACCEPT, packet_id))
        self.sock.send(message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, self.number, body))

    def close(self) -> None:
        """Unbind (queued packets go back to the kernel; the rule's bypass applies) and close."""
        try:
            self.sock.settimeout(2.0)
            self._config(attr(NFQA_CFG_CMD, struct.pack("!BxH", NFQNL_CFG_CMD_UNBIND, 0)))
        except OSError:
            pass  # closing the socket unbinds too
        finally:
            self.sock.close()


# --- the forgery ----------------------------------------------------------------------------------


def forge(packet: bytes, name: str, forged: str) -> tuple[bytes, str] | None:
    """The forged IPv4/UDP reply to `packet` if it is an A query for `name`, and where it goes."""
    if len(packet) < 28 or packet[0] >> 4 != 4 or packet[9] != socket.IPPROTO_UDP:
        return None
    ihl = (packet[0] & 0x0F) * 4
    src, dst = packet[12:16], packet[16:20]
    sport, dport = struct.unpack_from("!HH", packet, ihl)
    if dport != 53:
        return None
    try:
        query = dns.message.from_wire(packet[ihl + 8 :])
    except dns.exception.DNSException:
        return None
    if len(query.question) != 1:
        return None
    question = query.question[0]
    if question.rdtype != dns.rdatatype.A or question.name.to_text(True).lower() != name:
        return None
    reply = dns.message.make_response(query)
    reply.answer.append(dns.rrset.from_text(question.name, 300, "IN", "A", forged))
    payload = reply.to_wire()
    udp = struct.pack("!HHHH", 53, sport, 8 + len(payload), 0) + payload  # checksum 0: none
    # From the resolver that was asked, to the client: the kernel fills in the IP checksum.
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), random.randrange(1, 65536), 0,
                     64, socket.IPPROTO_UDP, 0, dst, src)
    return ip + udp, socket.inet_ntoa(src)


def serve(queue: Queue, name: str, forged: str, deadline: float) -> int:
    """Answer queued packets until SIGTERM/SIGINT or the deadline; the number of forgeries."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    sender = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    count = 0
    try:
        print("ready", flush=True)
        while not stopping and time.monotonic() < deadline:
            for packet_id, packet in queue.packets():
                made = forge(packet, name, forged)
                if made is not None:
                    sender.sendto(made[0], (made[1], 0))
                    count += 1
                # After the forgery, never before: the real answer must come second.
                queue.accept(packet_id)
    finally:
        sender.close()
    return count


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.lab.injector", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queue", type=int, required=True, help="netfilter queue number")
    parser.add_argument("--name", required=True, help="the name whose A queries get forged")
    parser.add_argument("--forged", required=True, help="the address in the forged answers")
    parser.add_argument("--max-seconds", type=float, default=120.0,
                        help="end after this long even if nobody stops us (default 120)")
    args = parser.parse_args(argv)
    queue = Queue(args.queue)
    try:
        count = serve(queue, args.name.lower().rstrip("."), args.forged,
                      time.monotonic() + args.max_seconds)
    finally:
        queue.close()
    print(f"forged {count} answers", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
