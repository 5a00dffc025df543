"""A scriptable fake DNS server on loopback: UDP and TCP on one port, plus a DoH variant.

Each name gets a `Rule`: addresses, an rcode, silence, garbage, a delay, or an on-path injection
(a forged reply first, the real one `inject_delay` seconds later: two replies to one query).
Injection is a UDP race, so over TCP and DoH only the real reply is sent.

In a test (the server runs in its own thread and event loop, so it works around asyncio.run()):

    with FakeDNSServer({"example.test": Rule(addresses=["192.0.2.1"])}) as server:
        asyncio.run(query_udp("example.test", "A", server.address, Clock(), 1.0, 0.1))
        assert server.queries == [("example.test", "A")]

As a process (the censorship lab), with a JSON object of name -> Rule fields ("*" is the default):

    python -m tests.fakes.dns_server --listen 127.0.0.1:5353 --rules rules.json

It prints "ready HOST:PORT" once listening and exits cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import http.server
import json
import signal
import socket
import ssl
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

_FAMILY_OF_TYPE = {dns.rdatatype.A: 4, dns.rdatatype.AAAA: 6}
# A reply header (QR|RD|RA, one question, one answer) followed by a name that is a compression
# pointer past the end of the message: every DNS parser must reject it.
_GARBAGE_BODY = b"\x81\x80\x00\x01\x00\x01\x00\x00\x00\x00\xff\xff\xff"


@dataclass
class Rule:
    """How to answer one name. Fields as in the JSON rules file of the process mode."""

    addresses: list[str] = field(default_factory=list)  # A or AAAA, by the question's type
    rcode: str = "NOERROR"  # or NXDOMAIN, SERVFAIL, REFUSED
    silent: bool = False  # never answer
    garbage: bool = False  # answer with malformed bytes (keeping the query's id)
    inject: list[str] | None = None  # a forged reply with these addresses, before the real one
    inject_delay: float = 0.05
    delay: float = 0.0
    cname: str | None = None  # answer with a CNAME to this name, and the addresses under it
    ttl: int = 60

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule from a JSON object; unknown keys are an error, not silently ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown rule fields: {sorted(unknown)}")
        return cls(**data)


def _key(name: str) -> str:
    return name.lower().rstrip(".")


class Responder:
    """The answering logic, shared by the UDP, TCP and DoH front ends (no I/O here)."""

    def __init__(self, rules: Mapping[str, Rule], default: Rule | None = None) -> None:
        self.rules = {_key(name): rule for name, rule in rules.items()}
        self.default = default if default is not None else Rule(rcode="NXDOMAIN")
        self._queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self._queries)

    def plan(self, wire: bytes, stream: bool = False) -> list[tuple[float, bytes]]:
        """The replies to send for one query, as (delay in seconds, bytes), in sending order.

        `stream` (TCP, DoH) carries one reply, the real one. Unparseable queries get nothing.
        """
        try:
            query = dns.message.from_wire(wire)
            question = query.question[0]
        except Exception:  # a fake server ignores what it cannot read, as many real ones do
            return []
        name = question.name.to_text(omit_final_dot=True)
        with self._lock:
            self._queries.append((name, dns.rdatatype.to_text(question.rdtype)))
        rule = self.rules.get(_key(name), self.default)
        if rule.silent:
            return []
        if rule.garbage:
            return [(rule.delay, wire[:2] + _GARBAGE_BODY)]
        real = (rule.delay, _reply(query, rule, rule.addresses, rule.rcode))
        if rule.inject is None or stream:
            return [real]
        forged = (rule.delay, _reply(query, rule, rule.inject, "NOERROR"))
        return [forged, (rule.delay + rule.inject_delay, real[1])]


def _reply(query: dns.message.Message, rule: Rule, addresses: list[str], rcode: str) -> bytes:
    response = dns.message.make_response(query)
    response.flags |= dns.flags.RA
    response.set_rcode(dns.rcode.from_text(rcode))
    question = query.question[0]
    family = _FAMILY_OF_TYPE.get(question.rdtype)
    if rcode == "NOERROR" and family is not None:
        owner = question.name
        if rule.cname:
            target = dns.name.from_text(rule.cname)
            response.answer.append(
                dns.rrset.from_text_list(owner, rule.ttl, "IN", "CNAME", [target.to_text()])
            )
            owner = target
        wanted = [a for a in addresses if (6 if ":" in a else 4) == family]
        if wanted:
            rdtype = dns.rdatatype.to_text(question.rdtype)
            response.answer.append(dns.rrset.from_text_list(owner, rule.ttl, "IN", rdtype, wanted))
    # Rules list addresses in the order tests expect to read them: no round-robin shuffle.
    return response.to_wire(want_shuffle=False)


class _UDPFront(asyncio.DatagramProtocol):
    def __init__(self, responder: Responder) -> None:
        self.responder = responder
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's selector datagram transport does not subclass DatagramTransport in 3.11.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        loop = asyncio.get_running_loop()
        for delay, reply in self.responder.plan(data):
            loop.call_later(delay, self._send, reply, addr)

    def _send(self, reply: bytes, addr: tuple[str | int, ...]) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


def _bind_pair(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """A UDP and a TCP socket bound to the same port (an ephemeral one when `port` is 0)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50 if port == 0 else 1):
        udp = socket.socket(family, socket.SOCK_DGRAM)
        tcp = socket.socket(family, socket.SOCK_STREAM)
        try:
            udp.bind((host, port))
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            tcp.bind((host, udp.getsockname()[1]))
            tcp.listen(64)
            return udp, tcp
        except OSError:
            udp.close()
            tcp.close()
            if port != 0:
                raise
    raise OSError(f"no port free for both UDP and TCP on {host}")


class FakeDNSServer:
    """UDP and TCP DNS on one loopback port, served from a background thread."""

    def __init__(self, rules: Mapping[str, Rule], default: Rule | None = None,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.responder = Responder(rules, default)
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def address(self) -> str:
        """"HOST:PORT" ("[::1]:PORT" for IPv6): the form resolvers are configured with."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def queries(self) -> list[tuple[str, str]]:
        """Every (name, type) received so far, in arrival order."""
        return self.responder.queries

    def start(self) -> FakeDNSServer:
        if self._thread is not None:
            raise RuntimeError("FakeDNSServer already started")
        udp, tcp = _bind_pair(self.host, self.port)
        self.port = udp.getsockname()[1]
        ready = threading.Event()
        errors: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(udp, tcp, ready, errors),
                                        name=f"fake-dns-{self.port}", daemon=True)
        self._thread.start()
        ready.wait(10)
        if errors:
            self._thread.join(5)
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread is not None:
            with contextlib.suppress(RuntimeError):  # the loop already ended
                self._loop.call_soon_threadsafe(self._stopping.set)
            self._thread.join(10)

    def __enter__(self) -> FakeDNSServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, udp: socket.socket, tcp: socket.socket, ready: threading.Event,
             errors: list[BaseException]) -> None:
        try:
            asyncio.run(self._serve(udp, tcp, ready))
        except BaseException as exc:  # reported to start() when it happens during startup
            errors.append(exc)
            udp.close()
            tcp.close()
        finally:
            ready.set()

    async def _serve(self, udp: socket.socket, tcp: socket.socket, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: _UDPFront(self.responder), sock=udp
        )
        server = await asyncio.start_server(self._serve_tcp, sock=tcp)
        ready.set()
        try:
            await self._stopping.wait()
        finally:
            transport.close()
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            await server.wait_closed()

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            while True:  # several queries may share one connection
                length = int.from_bytes(await reader.readexactly(2), "big")
                wire = await reader.readexactly(length)
                for delay, reply in self.responder.plan(wire, stream=True):
                    await asyncio.sleep(delay)
                    writer.write(len(reply).to_bytes(2, "big") + reply)
                    await writer.drain()
        except (EOFError, OSError):
            pass  # the client went away
        finally:
            self._tasks.discard(task)
            writer.close()


class _DoHHandler(http.server.BaseHTTPRequestHandler):
    server: _DoHHTTPServer

    def do_POST(self) -> None:
        length = min(int(self.headers.get("Content-Length") or 0), 65535)
        wire = self.rfile.read(length)
        if self.path.split("?")[0] != "/dns-query":
            self.send_error(404)
            return
        if self.server.status != 200:
            self.send_error(self.server.status)
            return
        plan = self.server.responder.plan(wire, stream=True)
        if not plan:  # silent: hold the request until the client gives up or we stop
            self.server.stopping.wait(30)
            self.close_connection = True
            return
        delay, reply = plan[-1]
        time.sleep(delay)
        self.send_response(200)
        self.send_header("Content-Type", "application/dns-message")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # tests stay quiet


class _DoHHTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], responder: Responder, status: int,
                 ssl_context: ssl.SSLContext | None) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _DoHHandler)
        self.responder = responder
        self.status = status
        self.ssl_context = ssl_context
        self.stopping = threading.Event()

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs in the request's own thread, never in the accept loop.
        if self.ssl_context is not None:
            request = self.ssl_context.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # failed handshakes and dropped clients are what the tests provoke


class FakeDoHServer:
    """DNS over HTTP(S) on loopback: POST /dns-query with application/dns-message (RFC 8484).

    `status` other than 200 answers every query with that HTTP status; `ssl_context` serves
    HTTPS (e.g. a `trustme` certificate) instead of plain HTTP.
    """

    def __init__(self, rules: Mapping[str, Rule], default: Rule | None = None,
                 host: str = "127.0.0.1", status: int = 200,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self.responder = Responder(rules, default)
        self._server = _DoHHTTPServer((host, 0), self.responder, status, ssl_context)
        self._thread: threading.Thread | None = None
        scheme = "https" if ssl_context is not None else "http"
        netloc = f"[{host}]" if ":" in host else host
        self.url = f"{scheme}://{netloc}:{self._server.server_address[1]}/dns-query"

    @property
    def queries(self) -> list[tuple[str, str]]:
        return self.responder.queries

    def __enter__(self) -> FakeDoHServer:
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={
            "poll_interval": 0.05}, name="fake-doh", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)


def load_rules(path: str) -> tuple[dict[str, Rule], Rule | None]:
    """Rules from a JSON object of name -> Rule fields; the key "*" is the default rule."""
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object of name -> rule")
    rules = {name: Rule.from_dict(fields) for name, fields in data.items()}
    return rules, rules.pop("*", None)


def _parse_listen(spec: str) -> tuple[str, int]:
    host, sep, port = spec.rpartition(":")
    if not sep or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {spec!r}")
    return host.strip("[]"), int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--listen", type=_parse_listen, default=("127.0.0.1", 0),
                        help="HOST:PORT to serve UDP and TCP on (port 0: any free port)")
    parser.add_argument("--rules", help="JSON file: name -> Rule fields; '*' is the default")
    args = parser.parse_args(argv)
    rules, default = load_rules(args.rules) if args.rules else ({}, None)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    host, port = args.listen
    with FakeDNSServer(rules, default, host=host, port=port) as server:
        print(f"ready {server.address}", flush=True)
        while not stop.wait(0.2):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
