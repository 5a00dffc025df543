"""The DNS probe against loopback fakes: UDP (with injection), TCP, DoH, getaddrinfo, resolve_all.

Every server here is started by the test on 127.0.0.1 (or ::1) on an ephemeral port; the only
system lookup is "localhost", which /etc/hosts answers. Nothing leaves the machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import socketserver
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import trustme

from core import failures
from core.observations import DNSQuery, DNSResponse, observation_from_dict, observation_to_dict
from core.times import Clock
from probes import failure_mapping
from probes.config import ProbeConfig, Timeouts
from probes.dns import (
    parse_resolver,
    query_doh,
    query_tcp,
    query_udp,
    resolve_all,
    resolve_system,
)
from probes.dns_wire import build_query, read_reply
from tests.fakes.dns_server import FakeDNSServer, FakeDoHServer, Responder, Rule

ROOT = Path(__file__).resolve().parent.parent
RULES = {
    "a.test": Rule(addresses=["192.0.2.1", "192.0.2.2", "2001:db8::1"]),
    "alias.test": Rule(cname="target.test", addresses=["192.0.2.5"]),
    "nx.test": Rule(rcode="NXDOMAIN"),
    "servfail.test": Rule(rcode="SERVFAIL"),
    "refused.test": Rule(rcode="REFUSED"),
    "v4only.test": Rule(addresses=["192.0.2.3"]),
    "silent.test": Rule(silent=True),
    "garbage.test": Rule(garbage=True),
    "injected.test": Rule(addresses=["192.0.2.10"], inject=["198.51.100.66"], inject_delay=0.05),
    "late.test": Rule(addresses=["192.0.2.11"], inject=["198.51.100.67"], inject_delay=0.6),
    "localhost": Rule(addresses=["127.0.0.1", "::1"]),
}
FAST = 0.05  # listen window for queries that expect a single answer


@pytest.fixture(scope="module")
def server() -> Iterator[FakeDNSServer]:
    with FakeDNSServer(RULES) as fake:
        yield fake


@pytest.fixture(scope="module")
def doh() -> Iterator[FakeDoHServer]:
    with FakeDoHServer(RULES) as fake:
        yield fake


def free_port() -> str:
    """A loopback port with nothing listening (bound then released): refused on UDP and TCP."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def timed(coro):  # -> (result, seconds)
    start = time.monotonic()
    result = asyncio.run(coro)
    return result, time.monotonic() - start


# --- UDP ---------------------------------------------------------------------------------------


def test_udp_a_and_aaaa_answers(server):
    a = asyncio.run(query_udp("a.test", "A", server.address, Clock(), 1.0, FAST))
    assert (a.engine, a.resolver, a.query_type, a.failure) == ("udp", server.address, "A", None)
    assert a.addresses == ("192.0.2.1", "192.0.2.2")
    assert a.responses[0].rcode == "NOERROR" and a.responses[0].ttl == 60
    assert len(a.responses) == 1 and not a.injected
    assert a.t0 <= a.responses[0].t <= a.t
    aaaa = asyncio.run(query_udp("a.test", "AAAA", server.address, Clock(), 1.0, FAST))
    assert aaaa.failure is None and aaaa.addresses == ("2001:db8::1",)
    assert ("a.test", "AAAA") in server.queries


def test_udp_cname_chain(server):
    q = asyncio.run(query_udp("alias.test", "A", server.address, Clock(), 1.0, FAST))
    assert q.failure is None
    assert q.responses[0].cnames == ("target.test",) and q.addresses == ("192.0.2.5",)


@pytest.mark.parametrize(
    ("name", "rcode", "failure"),
    [
        ("nx.test", "NXDOMAIN", failures.DNS_NXDOMAIN),
        ("servfail.test", "SERVFAIL", failures.DNS_SERVFAIL),
        ("refused.test", "REFUSED", failures.DNS_REFUSED),
        ("unlisted.test", "NXDOMAIN", failures.DNS_NXDOMAIN),  # the default rule
    ],
)
def test_udp_rcodes(server, name, rcode, failure):
    q = asyncio.run(query_udp(name, "A", server.address, Clock(), 1.0, FAST))
    assert q.failure == failure
    assert [r.rcode for r in q.responses] == [rcode] and q.addresses == ()


def test_udp_noerror_without_an_address_of_the_asked_type(server):
    q = asyncio.run(query_udp("v4only.test", "AAAA", server.address, Clock(), 1.0, FAST))
    assert q.failure == failures.DNS_NO_ANSWER
    assert q.responses[0].rcode == "NOERROR" and q.responses[0].addresses == ()


def test_udp_silence_is_a_bounded_timeout(server):
    q, elapsed = timed(query_udp("silent.test", "A", server.address, Clock(), 0.3, 0.1))
    assert q.failure == failures.GENERIC_TIMEOUT and q.responses == ()
    assert 0.25 <= elapsed < 1.0


def test_udp_garbage_only_is_misbehaving_without_waiting_for_timeout(server):
    q, elapsed = timed(query_udp("garbage.test", "A", server.address, Clock(), 3.0, 0.1))
    assert q.failure == failures.DNS_MALFORMED and q.responses == ()
    assert elapsed < 1.0  # the listen window after the garbage, not the 3 s timeout


def test_udp_two_answers_recorded_and_listen_window_respected(server):
    q, elapsed = timed(query_udp("injected.test", "A", server.address, Clock(), 3.0, 0.3))
    assert q.injected and len(q.responses) == 2
    assert q.addresses == ("198.51.100.66",)  # the forged answer came first
    assert q.all_addresses == ("198.51.100.66", "192.0.2.10")
    assert q.failure is None  # judged from the first answer, which had an A record
    assert 0.04 <= q.responses[1].t - q.responses[0].t < 0.3
    assert 0.28 <= q.t - q.responses[0].t < 0.6  # ~listen after the first answer
    assert elapsed < 1.5  # not the 3 s timeout


def test_udp_answer_after_the_listen_window_is_not_kept(server):
    q = asyncio.run(query_udp("late.test", "A", server.address, Clock(), 3.0, 0.1))
    assert q.addresses == ("198.51.100.67",) and len(q.responses) == 1 and not q.injected


def test_udp_timeout_bounds_the_listen_window(server):
    q, elapsed = timed(query_udp("a.test", "A", server.address, Clock(), 0.3, 10.0))
    assert q.failure is None and q.addresses == ("192.0.2.1", "192.0.2.2")
    assert elapsed < 1.0


def test_udp_refused_port():
    q, elapsed = timed(query_udp("a.test", "A", free_port(), Clock(), 2.0, FAST))
    assert q.failure == failures.CONNECTION_REFUSED and elapsed < 1.5


def test_udp_over_ipv6_loopback():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback on this machine: {exc}")
    with FakeDNSServer(RULES, host="::1") as fake:
        assert fake.address.startswith("[::1]:")
        q = asyncio.run(query_udp("a.test", "A", fake.address, Clock(), 1.0, FAST))
    assert q.failure is None and q.resolver == fake.address and q.addresses[0] == "192.0.2.1"


def test_bad_input_raises_instead_of_recording(server):
    with pytest.raises(ValueError):
        asyncio.run(query_udp("a.test", "A", "dns.google", Clock(), 1.0, FAST))
    with pytest.raises(ValueError):
        asyncio.run(query_udp("a..test", "A", server.address, Clock(), 1.0, FAST))
    with pytest.raises(ValueError):
        asyncio.run(query_doh("a.test", "A", "ftp://127.0.0.1/dns-query", Clock(), 1.0))


def test_read_reply_rejects_garbage_and_foreign_replies():
    query = build_query("a.test", "A")
    plan = Responder(RULES).plan(query.to_wire())
    assert read_reply(query, plan[0][1]) is not None
    other = build_query("a.test", "A", query_id=(query.id + 1) % 65536)
    assert read_reply(other, plan[0][1]) is None  # wrong id
    assert read_reply(build_query("b.test", "A", query_id=query.id), plan[0][1]) is None
    garbage = Responder(RULES).plan(build_query("garbage.test", "A", query.id).to_wire())
    assert read_reply(query, garbage[0][1]) is None
    assert read_reply(query, b"\x00") is None


# --- TCP ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "failure", "addresses"),
    [
        ("a.test", None, ("192.0.2.1", "192.0.2.2")),
        ("nx.test", failures.DNS_NXDOMAIN, ()),
        ("garbage.test", failures.DNS_MALFORMED, ()),
        ("injected.test", None, ("192.0.2.10",)),  # no race over a stream: the real answer
    ],
)
def test_tcp(server, name, failure, addresses):
    q = asyncio.run(query_tcp(name, "A", server.address, Clock(), 1.0))
    assert (q.engine, q.failure, q.addresses) == ("tcp", failure, addresses)
    assert len(q.responses) == (0 if failure == failures.DNS_MALFORMED else 1)


def test_tcp_silence_refusal_and_eof(server):
    q, elapsed = timed(query_tcp("silent.test", "A", server.address, Clock(), 0.3))
    assert q.failure == failures.GENERIC_TIMEOUT and elapsed < 1.0
    assert asyncio.run(query_tcp("a.test", "A", free_port(), Clock(), 1.0)).failure == (
        failures.CONNECTION_REFUSED
    )

    async def closing_server() -> DNSQuery:
        async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read(512)  # take the query, then close without a reply
            writer.close()

        listener = await asyncio.start_server(hang_up, "127.0.0.1", 0)
        async with listener:
            port = listener.sockets[0].getsockname()[1]
            return await query_tcp("a.test", "A", f"127.0.0.1:{port}", Clock(), 1.0)

    assert asyncio.run(closing_server()).failure == failures.EOF_ERROR


# --- DNS over HTTPS ----------------------------------------------------------------------------


def test_doh_answers(doh):
    q = asyncio.run(query_doh("a.test", "A", doh.url, Clock(), 2.0))
    assert (q.engine, q.resolver, q.failure) == ("doh", doh.url, None)
    assert q.addresses == ("192.0.2.1", "192.0.2.2")
    nx = asyncio.run(query_doh("nx.test", "A", doh.url, Clock(), 2.0))
    assert nx.failure == failures.DNS_NXDOMAIN and nx.responses[0].rcode == "NXDOMAIN"
    junk = asyncio.run(query_doh("garbage.test", "A", doh.url, Clock(), 2.0))
    assert junk.failure == failures.DNS_MALFORMED
    assert ("a.test", "A") in doh.queries


def test_doh_http_status_refused_port_and_silence(doh):
    with FakeDoHServer(RULES, status=500) as broken:
        q = asyncio.run(query_doh("a.test", "A", broken.url, Clock(), 2.0))
    assert q.failure == failures.DNS_MALFORMED and q.responses == ()
    url = f"http://{free_port()}/dns-query"
    assert asyncio.run(query_doh("a.test", "A", url, Clock(), 2.0)).failure == (
        failures.CONNECTION_REFUSED
    )
    q, elapsed = timed(query_doh("silent.test", "A", doh.url, Clock(), 0.3))
    assert q.failure == failures.GENERIC_TIMEOUT and elapsed < 1.5


@contextlib.contextmanager
def raw_http(reply: bytes, drip: float = 0.0) -> Iterator[str]:
    """A server that reads a request and sends `reply` verbatim (b"": hang up), then closes.
    With `drip`, the body (after the blank line) goes out one byte every `drip` seconds."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            # Read the whole request first: closing with unread bytes would send a reset.
            self.request.settimeout(2)
            data = b""
            while b"\r\n\r\n" not in data:
                data += self.request.recv(65536)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
            while len(body) < length:
                body += self.request.recv(65536)
            split = reply.find(b"\r\n\r\n") + 4 if drip else len(reply)
            self.request.sendall(reply[:split])
            for index in range(split, len(reply)):
                self.request.sendall(reply[index : index + 1])
                if done.wait(drip):
                    return

    done = threading.Event()
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/dns-query"
        finally:
            done.set()
            httpd.shutdown()
            thread.join(5)


def test_doh_oversized_body_and_hang_up():
    header = b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\n"
    huge = header + b"Content-Length: 70000\r\n\r\n" + b"\x00" * 70000
    with raw_http(huge) as url:
        assert asyncio.run(query_doh("a.test", "A", url, Clock(), 2.0)).failure == (
            failures.DNS_MALFORMED
        )
    with raw_http(b"") as url:
        assert asyncio.run(query_doh("a.test", "A", url, Clock(), 2.0)).failure == (
            failures.EOF_ERROR
        )


def test_doh_slow_body_is_cut_at_the_timeout():
    # Each byte arrives well within the socket timeout, so only the overall deadline stops it.
    head = b"HTTP/1.1 200 OK\r\nContent-Type: application/dns-message\r\n"
    with raw_http(head + b"Content-Length: 512\r\n\r\n" + b"\x00" * 512, drip=0.02) as url:
        q, elapsed = timed(query_doh("a.test", "A", url, Clock(), 0.5))
    assert q.failure == failures.GENERIC_TIMEOUT and elapsed < 1.5


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> tuple[trustme.CA, str]:
    authority = trustme.CA()
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    authority.cert_pem.write_to_path(str(path))
    return authority, str(path)


def https_context(authority: trustme.CA, name: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert(name).configure_cert(context)
    return context


def test_doh_over_https_and_certificate_failures(ca, doh):
    authority, bundle = ca
    with FakeDoHServer(RULES, ssl_context=https_context(authority, "127.0.0.1")) as good:
        q = asyncio.run(query_doh("a.test", "A", good.url, Clock(), 2.0, ca_bundle=bundle))
        assert q.failure is None and q.addresses == ("192.0.2.1", "192.0.2.2")
        untrusted = asyncio.run(query_doh("a.test", "A", good.url, Clock(), 2.0))
        assert untrusted.failure == failures.SSL_UNKNOWN_AUTHORITY
    with FakeDoHServer(RULES, ssl_context=https_context(authority, "doh.test")) as wrong:
        q = asyncio.run(query_doh("a.test", "A", wrong.url, Clock(), 2.0, ca_bundle=bundle))
        assert q.failure == failures.SSL_INVALID_HOSTNAME
    plain = doh.url.replace("http://", "https://")  # TLS to a server that speaks plain HTTP
    q = asyncio.run(query_doh("a.test", "A", plain, Clock(), 2.0, ca_bundle=bundle))
    assert q.failure == failures.SSL_FAILED_HANDSHAKE


def test_classify_requests_timeouts_and_unknowns():
    assert failure_mapping.classify_requests(requests.exceptions.ConnectTimeout()) == (
        failures.GENERIC_TIMEOUT
    )
    assert failure_mapping.classify_requests(requests.exceptions.ReadTimeout()) == (
        failures.GENERIC_TIMEOUT
    )
    assert failure_mapping.classify_requests(requests.exceptions.SSLError("no detail")) == (
        failures.SSL_FAILED_HANDSHAKE
    )
    chunked = requests.exceptions.ChunkedEncodingError("from 10.1.2.3")
    weird = failure_mapping.classify_requests(chunked)
    assert weird.startswith("unknown_failure: ") and "10.1.2.3" not in weird


# --- the system resolver -----------------------------------------------------------------------


def test_resolve_system_localhost():
    q = asyncio.run(resolve_system("localhost", Clock(), 2.0))
    assert (q.engine, q.resolver, q.query_type, q.failure) == ("system", "", "ANY", None)
    assert "127.0.0.1" in q.addresses and len(q.responses) == 1
    assert q.responses[0].rcode == "NOERROR"
    versions = [6 if ":" in a else 4 for a in q.addresses]
    assert versions == sorted(versions)  # IPv4 first


@pytest.fixture
def no_getaddrinfo(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("getaddrinfo must not be called")

    monkeypatch.setattr(socket, "getaddrinfo", forbidden)


@pytest.mark.parametrize(
    ("literal", "address"),
    [("192.0.2.7", "192.0.2.7"), ("2001:DB8::7", "2001:db8::7"), ("[2001:db8::7]", "2001:db8::7")],
)
def test_resolve_system_ip_literal_does_no_io(no_getaddrinfo, literal, address):
    q = asyncio.run(resolve_system(literal, Clock(), 1.0))
    assert q.failure is None and q.addresses == (address,) and q.engine == "system"


@pytest.mark.parametrize(
    ("error", "failure"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), failures.DNS_NXDOMAIN),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), failures.DNS_TEMPORARY),
        (None, failures.DNS_NO_ANSWER),  # an empty result
    ],
)
def test_resolve_system_failures(monkeypatch, error, failure):
    # A fake getaddrinfo stands in for the system resolver: a real failing lookup would need
    # a real DNS server, and no query may leave the machine.
    def fake(*args, **kwargs):
        if error is not None:
            raise error
        return []

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    q = asyncio.run(resolve_system("blocked.test", Clock(), 1.0))
    assert q.failure == failure and q.responses == ()


def test_resolve_system_is_bounded(monkeypatch):
    release = threading.Event()
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: release.wait(5) and [])

    async def run() -> DNSQuery:
        try:
            return await resolve_system("stuck.test", Clock(), 0.2)
        finally:
            release.set()  # let the worker thread go so asyncio.run can shut down

    q, elapsed = timed(run())
    assert q.failure == failures.GENERIC_TIMEOUT and elapsed < 1.5


# --- parse_resolver, resolve_all, serialisation ------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("8.8.8.8", ("8.8.8.8", 53)),
        ("8.8.8.8:5353", ("8.8.8.8", 5353)),
        ("[2001:db8::1]:53", ("2001:db8::1", 53)),
        ("[2001:db8::1]", ("2001:db8::1", 53)),
        ("2001:db8::1", ("2001:db8::1", 53)),
        ("2001:DB8:0::1", ("2001:db8::1", 53)),
        (" 127.0.0.1:65535 ", ("127.0.0.1", 65535)),
    ],
)
def test_parse_resolver(spec, expected):
    assert parse_resolver(spec) == expected


@pytest.mark.parametrize(
    "spec",
    ["", "dns.google", "dns.google:53", "8.8.8.8:", "8.8.8.8:0", "8.8.8.8:65536", "8.8.8.8:x",
     "1.2.3", "[8.8.8.8]:53", "[2001:db8::1", "[2001:db8::1]x", "[2001:db8::1]:-1", "999.1.1.1"],
)
def test_parse_resolver_rejects(spec):
    with pytest.raises(ValueError):
        parse_resolver(spec)


def test_resolve_all_order_and_engines(server, doh):
    with FakeDNSServer(RULES) as second:
        config = ProbeConfig(resolvers=(server.address, second.address), doh_url=doh.url,
                             timeouts=Timeouts(dns=2.0, dns_listen=FAST))
        queries = asyncio.run(resolve_all("localhost", config, Clock()))
        tcp_config = ProbeConfig(resolvers=(second.address,), dns_over_tcp=True, ipv6=False,
                                 system_resolver=False, timeouts=Timeouts(dns=2.0, dns_listen=FAST))
        tcp_queries = asyncio.run(resolve_all("localhost", tcp_config, Clock()))
    assert [(q.engine, q.resolver, q.query_type) for q in queries] == [
        ("system", "", "ANY"),
        ("udp", server.address, "A"),
        ("udp", server.address, "AAAA"),
        ("udp", second.address, "A"),
        ("udp", second.address, "AAAA"),
        ("doh", doh.url, "A"),
    ]
    assert all(q.failure is None for q in queries), [q.failure for q in queries]
    assert queries[2].addresses == ("::1",) and queries[5].addresses == ("127.0.0.1",)
    assert [(q.engine, q.query_type, q.failure) for q in tcp_queries] == [("tcp", "A", None)]


def test_resolve_all_ip_literal_and_bad_config(server, no_getaddrinfo):
    config = ProbeConfig(resolvers=(server.address,), timeouts=Timeouts(dns=1.0, dns_listen=FAST))
    before = len(server.queries)
    queries = asyncio.run(resolve_all("192.0.2.9", config, Clock()))
    assert [(q.engine, q.failure, q.addresses) for q in queries] == [
        ("system", None, ("192.0.2.9",))
    ]
    assert len(server.queries) == before  # nothing was sent
    with pytest.raises(ValueError):
        asyncio.run(resolve_all("a.test", ProbeConfig(resolvers=("not-an-ip",)), Clock()))


def test_dns_query_round_trip_with_two_responses():
    query = DNSQuery(
        t0=0.1, t=0.5, hostname="injected.test", query_type="A", engine="udp",
        resolver="127.0.0.1:5353", failure=None,
        responses=(
            DNSResponse(t=0.11, rcode="NOERROR", addresses=("198.51.100.66",), ttl=60),
            DNSResponse(t=0.16, rcode="NOERROR", addresses=("192.0.2.10",),
                        cnames=("cdn.test",), ttl=300),
        ),
    )
    back = observation_from_dict(json.loads(json.dumps(observation_to_dict(query))))
    assert back == query and isinstance(back, DNSQuery) and back.injected


# --- the fake server as a process (used by the censorship lab) ---------------------------------


def test_fake_server_process_mode(tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"lab.test": {"addresses": ["198.18.0.5"]},
                                 "*": {"rcode": "REFUSED"}}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.dns_server", "--listen", "127.0.0.1:0",
         "--rules", str(rules)],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert line[0] == "ready"
        lab = asyncio.run(query_udp("lab.test", "A", line[1], Clock(), 2.0, FAST))
        other = asyncio.run(query_tcp("other.test", "A", line[1], Clock(), 2.0))
        assert lab.addresses == ("198.18.0.5",) and other.failure == failures.DNS_REFUSED
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
