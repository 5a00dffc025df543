"""The test helper (server) and its client, on loopback: batches, limits, refusals, failures."""

import contextlib
import ipaddress
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

import probes.helper_client as control
from core.observations import DNSQuery, DNSResponse, HTTPRequest, Measurement, TCPConnect
from core.target import Target
from probes.config import ProbeConfig, Timeouts
from probes.helper_client import fetch_controls, request_item
from services.helper_protocol import address_allowed
from services.helper_server import HelperConfig, make_server, parse_listen, serve
from tests.fakes.dns_server import FakeDNSServer, Rule
from tests.fakes.servers import HTTPServer, Reply, TCPServer, page, redirect

ROOT = Path(__file__).resolve().parents[1]
FAST = ProbeConfig(timeouts=Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=1, http=1, http_body=2),
                   resolvers=(), ipv6=False, body_cap=256 * 1024)
LOOPBACK_IS_PUBLIC = (ipaddress.ip_network("127.0.0.0/8"),)


def helper(dns=None, **kw):
    kw.setdefault("allow_private", True)
    return make_server("127.0.0.1", 0, HelperConfig(
        resolver=dns.address if dns else None, probe=FAST, **kw))


def base(server) -> str:
    return f"http://127.0.0.1:{server.port}"


def post(server, body: bytes, **kw) -> requests.Response:
    return requests.post(f"{base(server)}/v1/measure", data=body, timeout=5, **kw)


def probe_measurement(url: str, addresses=("127.0.0.1",)) -> Measurement:
    """What a probe sends: its target and the addresses its resolver gave."""
    host = Target(url).hostname
    q = DNSQuery(0, 0.1, host, "A", "udp", "192.0.2.53:53", None,
                 (DNSResponse(0.1, "NOERROR", tuple(addresses)),))
    return Measurement(Target(url), "2026-01-01T00:00:00Z", 1.0, (q,))


@contextlib.contextmanager
def listener(host: str = "127.0.0.1", port: int = 0):
    """A bare listening socket: `contacted(sock)` says whether anything connected to it."""
    sock = socket.socket()
    sock.bind((host, port))
    sock.listen(8)
    sock.setblocking(False)
    try:
        yield sock
    finally:
        sock.close()


def contacted(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture(scope="module")
def net():
    loopback = Rule(addresses=["127.0.0.1"])
    rules = {"site.test": loopback, "local.test": loopback}
    with FakeDNSServer(rules) as dns, HTTPServer({"/": page("Control page")}) as web:
        yield dns, web


# --- measuring --------------------------------------------------------------------------------


def test_batch_is_measured_in_order_with_the_union_of_addresses(net):
    dns, web = net
    site, gone = f"http://site.test:{web.port}/", f"http://gone.test:{web.port}/"
    with TCPServer("accept") as raw, helper(dns) as server:
        endpoint = f"tcp://127.0.0.1:{raw.port}"
        result = fetch_controls(base(server), [
            probe_measurement(site, ("127.0.0.1", "127.0.0.2")),  # .2 is the probe's own answer
            probe_measurement(endpoint), probe_measurement(gone, ())])
        body = json.dumps({"targets": [{"url": site}, {"url": endpoint}]}).encode()
        reply = post(server, body).json()
    assert result.error is None and result.refused == {}
    control_site = result.controls[site]
    assert [(q.query_type, q.resolver) for q in control_site.of(DNSQuery)] == [("A", dns.address)]
    connects = {c.address: c.failure for c in control_site.of(TCPConnect)}
    assert connects == {"127.0.0.1": None, "127.0.0.2": "connection_refused"}  # the union
    (hop,) = control_site.of(HTTPRequest)
    assert hop.status == 200 and hop.title == "Control page"
    assert [c.failure for c in result.controls[endpoint].of(TCPConnect)] == [None]
    (lookup,) = result.controls[gone].of(DNSQuery)
    assert lookup.failure == "dns_nxdomain_error" and not result.controls[gone].of(TCPConnect)
    assert ("gone.test", "A") in dns.queries  # the helper asked its own resolver
    # the wire format: helper identity, one measurement per target in request order
    assert reply["helper"] == {"version": "1", "resolver": dns.address}
    assert [m["target"]["url"] for m in reply["measurements"]] == [site, endpoint]
    assert reply["refused"] == []


def test_health_and_unknown_paths():
    with helper() as server:
        health = requests.get(f"{base(server)}/v1/health", timeout=5)
        missing = requests.get(f"{base(server)}/v2/measure", timeout=5)
        wrong_post = requests.post(f"{base(server)}/measure", data=b"{}", timeout=5)
    assert health.status_code == 200 and health.json() == {"ok": True, "version": "1"}
    assert missing.status_code == 404 and "/v1/measure" in missing.json()["error"]
    assert wrong_post.status_code == 404


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
def test_listens_on_ipv6():
    with make_server("::1", 0, HelperConfig()) as server:
        health = requests.get(f"http://[::1]:{server.port}/v1/health", timeout=5)
    assert health.json()["ok"] is True


def test_token_is_required_and_accepted(net):
    dns, web = net
    m = [probe_measurement(f"http://site.test:{web.port}/")]
    with helper(dns, token="s3cret") as server:
        missing = fetch_controls(base(server), m)
        wrong = fetch_controls(base(server), m, token="guess")
        right = fetch_controls(base(server), m, token="s3cret")
        health = requests.get(f"{base(server)}/v1/health", timeout=5)  # no secret in it
    for refused in (missing, wrong):
        assert refused.error is not None and refused.error.startswith("helper answered HTTP 401")
        assert refused.controls == {}
    assert right.error is None and list(right.controls) == [m[0].target.url]
    assert health.status_code == 200


def _targets(*items: object) -> bytes:
    return json.dumps({"targets": list(items)}).encode()


@pytest.mark.parametrize(("body", "status", "says"), [
    (b"{not json", 400, "not JSON"),
    (_targets(*[{"url": "http://a.test/"}] * 3), 400, "at most 2"),
    (_targets({"url": "ftp://a.test/"}), 400, "targets[0].url"),
    (_targets({"url": "a.test"}), 400, "targets[0].url"),
    (_targets({"url": "http://a.test/"}, {"url": 5}), 400, "targets[1]"),
    (_targets({"url": "http://a.test/", "addresses": "1.2.3.4"}), 400, "addresses"),
    (_targets({"url": "http://a.test/", "addresses": ["1.2.3.x"]}), 400, "not an IP"),
    (json.dumps({"nope": 1}).encode(), 400, "targets"),
    (b"x" * 5000, 413, "larger than 4096"),
])
def test_bad_requests_are_refused_whole(body, status, says):
    with helper(max_targets=2, max_body=4096) as server:
        reply = post(server, body)
    assert reply.status_code == status
    assert says in reply.json()["error"] and "\n" not in reply.json()["error"]


def test_a_body_without_content_length_is_refused():
    with helper() as server:
        reply = requests.post(f"{base(server)}/v1/measure", data=iter([b"{}"]), timeout=5)
    assert reply.status_code == 411  # chunked: the size limit needs the length up front


def test_busy_helper_says_503_with_retry_after(net):
    dns, _ = net
    with TCPServer("stall") as stall, helper(dns, max_concurrent_requests=1) as server:
        slow = [probe_measurement(f"http://site.test:{stall.port}/")]
        first = threading.Thread(target=fetch_controls, args=(base(server), slow))
        first.start()
        try:
            def measuring() -> bool:
                if server.slots.acquire(blocking=False):
                    server.slots.release()
                    return False
                return True

            wait_until(measuring)
            busy = post(server, _targets({"url": slow[0].target.url}))
            result = fetch_controls(base(server), slow)
        finally:
            first.join(10)
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "5"
    assert result.error and result.error.startswith("helper answered HTTP 503: busy")


def test_open_connections_are_capped_and_idle_clients_dropped():
    with helper(max_connections=1, io_timeout=0.3) as server:
        idle = socket.create_connection(("127.0.0.1", server.port))
        try:
            busy = requests.get(f"{base(server)}/v1/health", timeout=5)
            idle.settimeout(3)
            assert idle.recv(1) == b""  # the silent client was dropped after io_timeout
        finally:
            idle.close()
        wait_until(lambda: requests.get(f"{base(server)}/v1/health", timeout=5).ok)
    assert busy.status_code == 503 and "connections" in busy.json()["error"]


# --- safety -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("address", "public"), [
    ("1.1.1.1", True), ("2606:4700::1111", True), ("::ffff:1.1.1.1", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("192.168.0.1", False), ("100.64.0.1", False),
    ("169.254.169.254", False), ("0.0.0.0", False), ("255.255.255.255", False),
    ("224.0.0.1", False), ("240.0.0.1", False), ("198.18.0.1", False), ("192.0.2.1", False),
    ("::1", False), ("fe80::1%eth0", False), ("fc00::1", False), ("ff02::1", False),
    ("::ffff:127.0.0.1", False), ("64:ff9b::a00:1", False), ("2002:a00:1::1", False),
    ("not an address", False),
])
def test_only_public_addresses_are_allowed(address, public):
    assert address_allowed(address, HelperConfig()) is public
    if address != "not an address":
        assert address_allowed(address, HelperConfig(allow_private=True))


def test_private_targets_are_refused_and_never_contacted(net):
    dns, _ = net
    with listener() as sock, helper(dns, allow_private=False) as server:
        literal = f"http://127.0.0.1:{sock.getsockname()[1]}/"
        named = f"http://local.test:{sock.getsockname()[1]}/"  # the helper resolves it to loopback
        result = fetch_controls(base(server), [
            probe_measurement(literal, ("127.0.0.1", "10.0.0.1")), probe_measurement(named)])
        time.sleep(0.1)
        assert not contacted(sock)  # not one connection
    assert result.error is None
    assert "127.0.0.1 is a private or special-purpose address" in result.refused[literal]
    assert "--allow-private" in result.refused[literal]
    assert result.controls[literal].observations == ()
    assert "not contacted" in result.refused[named] and "127.0.0.1" in result.refused[named]
    control_named = result.controls[named]
    assert control_named.of(DNSQuery)[0].addresses == ("127.0.0.1",)  # resolved, never contacted
    assert control_named.of(TCPConnect) == []


def test_private_addresses_from_the_probe_and_redirects_are_skipped():
    public = (ipaddress.ip_network("127.0.0.1/32"),)  # only .1 counts as public here
    with listener("127.0.0.2") as private:
        port = private.getsockname()[1]
        with listener("127.0.0.1", port) as target, helper(
            allow_private=False, public_ranges=public
        ) as server:
            url = f"tcp://127.0.0.1:{port}"
            result = fetch_controls(base(server), [probe_measurement(url, ("127.0.0.2",))])
            assert contacted(target) and not contacted(private)
    assert result.refused == {}
    assert [c.address for c in result.controls[url].of(TCPConnect)] == ["127.0.0.1"]
    with listener("127.0.0.2") as private:
        hop = f"http://127.0.0.2:{private.getsockname()[1]}/"
        with HTTPServer({"/": redirect(hop)}) as web, helper(
            allow_private=False, public_ranges=public
        ) as server:
            result = fetch_controls(base(server), [probe_measurement(web.url("/"))])
        assert not contacted(private)
    assert [c.address for c in result.controls[web.url("/")].of(TCPConnect)] == ["127.0.0.1"]


def test_public_range_lets_a_lab_range_through():
    with TCPServer("accept") as target, helper(
        allow_private=False, public_ranges=LOOPBACK_IS_PUBLIC
    ) as server:
        url = f"tcp://127.0.0.1:{target.port}"
        result = fetch_controls(base(server), [probe_measurement(url)])
    assert result.error is None and result.refused == {}
    assert [c.failure for c in result.controls[url].of(TCPConnect)] == [None]


@pytest.mark.parametrize(("limits", "says"), [
    ({"per_target_timeout": 0.3}, "not finished within 0.3 s"),
    ({"request_timeout": 0.3}, "limit per request"),
])
def test_slow_targets_are_cut_off_and_explained(net, limits, says):
    dns, web = net
    with TCPServer("stall") as stall, helper(dns, **limits) as server:
        slow, quick = f"http://site.test:{stall.port}/", f"tcp://127.0.0.1:{web.port}"
        started = time.monotonic()
        result = fetch_controls(base(server), [probe_measurement(slow), probe_measurement(quick)])
    assert time.monotonic() - started < 0.9  # the probe's own 1 s HTTP timeout never came
    assert says in result.refused[slow] and result.controls[slow].observations == ()
    assert quick not in result.refused and result.controls[quick].of(TCPConnect)


# --- the log and serve() ----------------------------------------------------------------------


def test_one_log_line_per_request_without_urls_unless_verbose(net, capsys):
    dns, web = net
    url = f"http://site.test:{web.port}/secret-path"
    for verbose in (False, True):
        with helper(dns, verbose=verbose) as server:
            fetch_controls(base(server), [probe_measurement(url)])
        lines = [line for line in capsys.readouterr().err.splitlines() if "helper:" in line]
        assert len(lines) == 1 and "POST /v1/measure 200 targets=1 refused=0" in lines[0]
        assert ("secret-path" in lines[0]) is verbose


def test_parse_listen():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen("[::]:80") == ("::", 80)
    assert parse_listen("localhost:0") == ("127.0.0.1", 0)
    for bad in ("8080", "example.org:80", "::1:80", "127.0.0.1:x", "127.0.0.1:70000", ":80"):
        with pytest.raises(ValueError, match="expected IP:PORT"):
            parse_listen(bad)
    assert serve("nowhere", HelperConfig()) == 2


def test_serve_prints_where_it_listens_and_stops_on_sigterm():
    code = ("import sys; from services.helper_server import HelperConfig, serve; "
            "sys.exit(serve('127.0.0.1:0', HelperConfig()))")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("helper listening on 127.0.0.1:"), first
        port = int(first.split()[3].rsplit(":", 1)[1])
        assert requests.get(f"http://127.0.0.1:{port}/v1/health", timeout=5).ok
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert "helper stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# --- the client against broken helpers --------------------------------------------------------


def test_client_survives_broken_helpers(monkeypatch):
    m = [probe_measurement("http://site.test/")]
    with listener() as sock:
        closed_port = sock.getsockname()[1]
    unreachable = fetch_controls(f"http://127.0.0.1:{closed_port}", m, timeout=1)
    assert unreachable.error == "helper unreachable: connection_refused"
    assert unreachable.controls == {}
    with TCPServer("accept") as silent:
        stalled = fetch_controls(f"http://127.0.0.1:{silent.port}", m, timeout=0.5)
    assert stalled.error == "helper unreachable: generic_timeout_error"
    one = (b'{"measurements": [{"target": {"url": "http://site.test/"}, "started": "x", '
           b'"runtime": 0, ')
    routes: dict[str, Reply | bytes | str] = {
        "/500/v1/measure": page("oops", status=500),
        "/garbage/v1/measure": b'{"measurements": [{"step": 1}]}',
        "/html/v1/measure": page("not JSON"),
        "/count/v1/measure": b'{"measurements": []}',
        "/steps/v1/measure": one + b'"observations": [{"step": "teleport"}]}]}',
        "/huge/v1/measure": Reply(mode="huge"),
    }
    monkeypatch.setattr(control, "MAX_REPLY", 1 << 20)
    with HTTPServer(routes) as broken:
        def error(path: str) -> str:
            result = fetch_controls(broken.url(path), m, timeout=5)
            assert result.controls == {} and result.error is not None
            return result.error

        assert error("/500") == "helper answered HTTP 500"
        assert error("/garbage").startswith("helper reply malformed")
        assert error("/html").startswith("helper reply malformed")
        assert error("/count") == "helper reply malformed: wrong number of measurements"
        assert "teleport" in error("/steps")
        assert error("/huge") == f"helper reply larger than {1 << 20} bytes"
    assert "not an http:// or https:// URL" in (fetch_controls("helper:8080", m).error or "")


def test_client_goes_on_after_a_batch_the_helper_rejects(net):
    dns, web = net
    good = [probe_measurement(f"http://site.test:{web.port}/{n}") for n in range(2)]
    bad = probe_measurement("ftp://site.test/")  # a URL this helper does not measure
    with helper(dns) as server:
        result = fetch_controls(base(server), [good[0], bad, good[1]], batch_size=1)
    assert result.error and result.error.startswith("helper answered HTTP 400: targets[0].url")
    assert sorted(result.controls) == sorted(m.target.url for m in good)


def test_request_item_caps_and_dedupes_addresses():
    many = tuple(f"192.0.2.{i}" for i in range(40))
    item = request_item(probe_measurement("https://x.test/", many + many))
    assert item["url"] == "https://x.test/" and item["addresses"] == list(many[:16])
