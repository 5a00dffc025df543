"""Slow clients against the helper and the collector (issue 11, section 4), on loopback.

The attack: as many connections as a server used to accept (32 to the helper, 16 to the
collector), each trickling its request a byte at a time, well inside the per-read timeout. Other
loopback addresses (127.0.0.2, 127.0.0.3) stand for other clients: all of 127/8 is loopback.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import math
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from probes.config import ProbeConfig, Timeouts
from results.store import Store
from services.collector_server import CollectorConfig
from services.collector_server import make_server as make_collector
from services.evidence import export_evidence
from services.helper_server import HelperConfig
from services.helper_server import make_server as make_helper
from services.http_limits import Admission, DeadlineReader, client_key
from tests.fakes.servers import TCPServer
from tests.test_evidence import URLS, add_run

DEADLINE = 1.5  # head and body deadlines in the tests: short, yet far above a real request's
TRICKLE = 0.1  # seconds between two bytes of a slow client: far inside io_timeout
LIMITS: dict[str, Any] = {"io_timeout": 5.0, "head_deadline": DEADLINE, "body_deadline": DEADLINE}
HEAD = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * 4000
FAST = ProbeConfig(timeouts=Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=1, http=1, http_body=2),
                   resolvers=(), ipv6=False)


def _connect(port: int, source: str) -> socket.socket:
    sock = socket.socket()
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _answer(sock: socket.socket, wait: float) -> bytes | None:
    """What the server sent (b"" for a close), or None if it sent nothing within `wait`."""
    if not select.select([sock], [], [], wait)[0]:
        return None
    try:
        return sock.recv(65536)
    except ConnectionResetError:  # closed with our unread bytes in its buffer
        return b""


def _request(port: int, source: str, method: str, path: str, body: bytes | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(source, 0))
    try:
        conn.request(method, path, body=body, headers=headers or {})
        answer = conn.getresponse()
        return answer.status, json.loads(answer.read())
    finally:
        conn.close()


class Trickle:
    """Slow clients: each held socket is sent its next byte every TRICKLE seconds until the
    server closes it; `cut[i]` is how long socket i lived after `since[i]`, and what it got last."""

    def __init__(self, socks: list[socket.socket], payloads: list[bytes],
                 since: list[float]) -> None:
        self.socks, self.payloads, self.since = socks, payloads, since
        self.cut: dict[int, tuple[float, bytes]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        sent = [0] * len(self.socks)
        while not self._stop.is_set() and len(self.cut) < len(self.socks):
            for i, sock in enumerate(self.socks):
                if i in self.cut:
                    continue
                answer = _answer(sock, 0)
                if answer is None:
                    with contextlib.suppress(OSError):
                        sock.send(self.payloads[i][sent[i]:sent[i] + 1])
                        sent[i] += 1
                        continue
                    answer = b""
                self.cut[i] = (time.monotonic() - self.since[i], answer)
            self._stop.wait(TRICKLE)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for sock in self.socks:
            sock.close()


@contextlib.contextmanager
def slow_clients(port: int, count: int, per_address: int, head: bytes,
                 body: bytes) -> Iterator[Trickle]:
    """`count` connections from 127.0.0.1: the ones beyond `per_address` must be refused at once
    (503, Retry-After); the held ones trickle, half a head, half a body after a whole `head`."""
    socks, since = [], []
    for _ in range(count):
        socks.append(_connect(port, "127.0.0.1"))
        since.append(time.monotonic())  # a head's deadline runs from its connection
    time.sleep(0.3)  # for the refusals to arrive
    answers = [_answer(sock, 0) for sock in socks]
    refused = [a for a in answers if a is not None]
    assert len(refused) == count - per_address
    assert all(a.startswith(b"HTTP/1.1 503") and b"Retry-After: 5" in a
               and b"too many connections from your address" in a for a in refused)
    held = [sock for sock, a in zip(socks, answers, strict=True) if a is None]
    since = [t for t, a in zip(since, answers, strict=True) if a is None]
    for sock, a in zip(socks, answers, strict=True):
        if a is not None:
            sock.close()
    payloads = [HEAD if i % 2 else body for i in range(len(held))]
    for i, sock in enumerate(held):
        if payloads[i] is body:
            sock.sendall(head)
            since[i] = time.monotonic()  # a body's deadline runs from the end of its head
    trickle = Trickle(held, payloads, since)
    try:
        yield trickle
    finally:
        trickle.stop()


def _assert_cut_by_the_deadline(trickle: Trickle, server: Any) -> None:
    """Every held client is cut off once its deadline passes, none sooner, none much later: the
    head tricklers closed, the body tricklers answered 408."""
    deadline = time.monotonic() + 3 * DEADLINE
    while len(trickle.cut) < len(trickle.socks) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(trickle.cut) == len(trickle.socks), "slow clients still held past the deadline"
    for i, (lived, last) in trickle.cut.items():
        if trickle.payloads[i] is HEAD:
            assert last == b"" and DEADLINE - 0.2 <= lived <= DEADLINE + 1.0
        else:  # its head took a moment to trickle in; then the body's deadline ran
            assert last.startswith(b"HTTP/1.1 408") and DEADLINE - 0.2 <= lived <= DEADLINE + 1.0
    deadline = time.monotonic() + 2
    while server.admission.open() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.admission.open() == 0  # every slot is back


def test_slow_clients_do_not_lock_out_the_helper():
    config = HelperConfig(allow_private=True, probe=FAST, **LIMITS)
    assert (config.max_connections, config.max_connections_per_address) == (32, 8)
    head = b"POST /v1/measure HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n"
    body = b'{"targets": []' + b" " * 5000
    with TCPServer("accept") as target, make_helper("127.0.0.1", 0, config) as server, \
            slow_clients(server.port, 32, 8, head, body) as trickle:
        health = _request(server.port, "127.0.0.2", "GET", "/v1/health")
        measured = _request(server.port, "127.0.0.3", "POST", "/v1/measure", json.dumps(
            {"targets": [{"url": f"tcp://127.0.0.1:{target.port}/"}]}).encode())
        assert trickle.cut == {}, "the slow clients must still be held while others are served"
        assert server.admission.open("127.0.0.1") == 8
        _assert_cut_by_the_deadline(trickle, server)
    assert health == (200, {"ok": True, "version": "1"})
    status, reply = measured
    assert status == 200 and reply["refused"] == []
    (measurement,) = reply["measurements"]
    connects = [o for o in measurement["observations"] if o["step"] == "tcp"]
    assert [c["failure"] for c in connects] == [None]


def test_slow_clients_do_not_lock_out_the_collector(tmp_path: Path):
    with Store(tmp_path / "p.db", keys=tmp_path / "keys") as store:
        add_run(store, URLS[0])
        export_evidence(store, tmp_path / "b.zip")
    bundle = (tmp_path / "b.zip").read_bytes()
    config = CollectorConfig(folder=tmp_path / "c", **LIMITS)
    assert (config.max_connections, config.max_connections_per_address) == (16, 4)
    head = b"POST /v1/bundles HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
    body = b"PK\x03\x04" + b"\x00" * 100000
    with make_collector("127.0.0.1", 0, config) as server, \
            slow_clients(server.port, 16, 4, head, body) as trickle:
        health = _request(server.port, "127.0.0.2", "GET", "/v1/health")
        added = _request(server.port, "127.0.0.3", "POST", "/v1/bundles", bundle,
                         {"Content-Type": "application/zip"})
        assert trickle.cut == {}, "the slow clients must still be held while others are served"
        _assert_cut_by_the_deadline(trickle, server)
    assert health == (200, {"ok": True, "version": "1"})
    assert added[0] == 201 and added[1]["new_points"] == 1


# --- the pieces -------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "key"), [
    ("198.51.100.7", "198.51.100.7"), ("::ffff:198.51.100.7", "198.51.100.7"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"), ("2001:db8:1:2::9", "2001:db8:1:2::/64"),
    ("fe80::1%eth0", "fe80::/64"), ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
])
def test_clients_are_counted_by_ipv4_address_or_ipv6_64(host, key):
    assert client_key(host) == key


def test_admission_caps_per_address_then_overall_and_forgets_closed_clients():
    gate = Admission(total=3, per_address=2)
    assert gate.admit("192.0.2.1") is None and gate.admit("192.0.2.1") is None
    assert b"from your address" in (gate.admit("192.0.2.1") or b"")
    assert gate.admit("2001:db8::1") is None
    assert b"too many connections, retry" in (gate.admit("2001:db8::2") or b"")
    gate.release("192.0.2.1")
    assert gate.admit("2001:db8::2") is None  # same /64 as 2001:db8::1: now two of its own
    assert b"from your address" in (gate.admit("2001:db8::3") or b"")
    for host in ("192.0.2.1", "2001:db8::1", "2001:db8::2"):
        gate.release(host)
    assert gate.open() == 0 and gate._open == {}  # no key is kept for clients gone


def _trickle_into(reader: DeadlineReader, writer: socket.socket, pause: float,
                  until: Callable[[], bool]) -> threading.Thread:
    def run() -> None:
        with contextlib.suppress(OSError):
            while not until():
                writer.send(b"x")
                time.sleep(pause)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_deadline_reader_cuts_a_trickle_the_per_read_timeout_would_keep():
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.settimeout(1.0)
        reader = DeadlineReader(ours, io_timeout=1.0, deadline=time.monotonic() + 0.5)
        got = bytearray()
        done = threading.Event()
        thread = _trickle_into(reader, theirs, 0.05, done.is_set)  # every read succeeds in time
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            while True:
                buffer = bytearray(1)
                got += buffer[: reader.readinto(buffer)]
        done.set()
        thread.join(2)
        assert 0.45 <= time.monotonic() - started <= 0.8 and len(got) >= 3
        assert ours.gettimeout() == 1.0  # writes keep the plain timeout
        reader.deadline = math.inf
        theirs.send(b"y")
        assert reader.readinto(bytearray(1)) == 1  # a new deadline: reads go on
