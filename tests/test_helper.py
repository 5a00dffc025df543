"""The test helper (server) and its client, on loopback: batches, limits, refusals, failures."""

import ipaddress
import json
import threading

import pytest
import requests

from probes.config import ProbeConfig, Timeouts
from probes.control import fetch_controls, request_item
from probes.observations import DNSQuery, DNSResponse, HTTPRequest, Measurement, TCPConnect
from services.helper import HelperConfig, make_server
from targets.model import Target
from tests.fakes.dns_server import FakeDNSServer, Rule
from tests.fakes.servers import HTTPServer, TCPServer, page

FAST = ProbeConfig(timeouts=Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=1, http=1, http_body=2),
                   resolvers=(), ipv6=False, body_cap=256 * 1024)


def helper(dns=None, **kw):
    kw.setdefault("allow_private", True)
    return make_server("127.0.0.1", 0, HelperConfig(
        resolver=dns.address if dns else None, probe=FAST, **kw))


def probe_measurement(url: str, addresses=("127.0.0.1",)) -> Measurement:
    host = Target(url).hostname
    q = DNSQuery(0, 0.1, host, "A", "udp", "192.0.2.53:53", None,
                 (DNSResponse(0.1, "NOERROR", tuple(addresses)),))
    return Measurement(Target(url), "2026-01-01T00:00:00Z", 1.0, (q,))


@pytest.fixture(scope="module")
def net():
    with FakeDNSServer({"site.test": Rule(addresses=["127.0.0.1"])}) as dns, HTTPServer(
        {"/": page("Control page")}
    ) as web:
        yield dns, web


def test_batch_is_measured_with_the_union_of_addresses(net):
    dns, web = net
    url = f"http://site.test:{web.port}/"
    with helper(dns) as server:
        result = fetch_controls(f"http://127.0.0.1:{server.port}", [probe_measurement(
            url, ("127.0.0.1", "127.0.0.2"))])
    assert result.error is None and result.refused == {}
    control = result.controls[url]
    assert [o.query_type for o in control.of(DNSQuery)] == ["A"]
    assert sorted(c.address for c in control.of(TCPConnect)) == ["127.0.0.1", "127.0.0.2"]
    (hop,) = control.of(HTTPRequest)
    assert hop.status == 200 and hop.title == "Control page"


def test_health_and_token(net):
    dns, web = net
    with helper(dns, token="s3cret") as server:
        base = f"http://127.0.0.1:{server.port}"
        assert requests.get(f"{base}/v1/health", timeout=5).json()["ok"] is True
        m = [probe_measurement(f"http://site.test:{web.port}/")]
        assert "401" in (fetch_controls(base, m).error or "")
        assert fetch_controls(base, m, token="s3cret").error is None


@pytest.mark.parametrize(("body", "status"), [
    (b"{not json", 400),
    (json.dumps({"targets": [{"url": "http://a.test/"}] * 3}).encode(), 400),
    (json.dumps({"targets": [{"url": "ftp://a.test/"}]}).encode(), 400),
    (json.dumps({"nope": 1}).encode(), 400),
    (b"x" * 5000, 413),
])
def test_bad_requests_are_refused_whole(body, status):
    with helper(max_targets=2, max_body=4096) as server:
        reply = requests.post(f"http://127.0.0.1:{server.port}/v1/measure", data=body, timeout=5)
    assert reply.status_code == status and reply.json()["error"]


def test_busy_helper_says_503(net):
    dns, _ = net
    with TCPServer("stall") as stall, helper(dns, max_concurrent_requests=1) as server:
        base = f"http://127.0.0.1:{server.port}"
        slow = [probe_measurement(f"http://site.test:{stall.port}/")]
        first = threading.Thread(target=fetch_controls, args=(base, slow))
        first.start()
        try:
            for _ in range(50):
                if not server.slots.acquire(blocking=False):
                    break
                server.slots.release()
                threading.Event().wait(0.02)
            result = fetch_controls(base, slow)
        finally:
            first.join(10)
    assert "503" in (result.error or "")


def test_private_targets_are_refused_without_allow_private():
    with TCPServer("accept") as target, helper(allow_private=False) as server:
        url = f"http://127.0.0.1:{target.port}/"
        result = fetch_controls(f"http://127.0.0.1:{server.port}",
                                [probe_measurement(url, ("127.0.0.1", "10.0.0.1"))])
        assert result.error is None
        assert "--allow-private" in result.refused[url]
        assert result.controls[url].of(TCPConnect) == []  # nothing was contacted


def test_public_range_lets_a_lab_range_through():
    with TCPServer("accept") as target, helper(
        allow_private=False, public_ranges=(ipaddress.ip_network("127.0.0.0/8"),)
    ) as server:
        url = f"tcp://127.0.0.1:{target.port}"
        result = fetch_controls(f"http://127.0.0.1:{server.port}", [probe_measurement(url)])
    assert result.refused == {}
    assert [c.failure for c in result.controls[url].of(TCPConnect)] == [None]


def test_client_survives_broken_helpers():
    m = [probe_measurement("http://site.test/")]
    with TCPServer("accept") as silent:
        unreachable = fetch_controls("http://127.0.0.1:9", m, timeout=1)
        assert unreachable.error and unreachable.error.startswith("helper unreachable")
        stalled = fetch_controls(f"http://127.0.0.1:{silent.port}", m, timeout=0.5)
        assert stalled.error == "helper unreachable: generic_timeout_error"
    with HTTPServer({"/v1/measure": page("oops", status=500)}) as broken:
        assert "HTTP 500" in (fetch_controls(f"http://127.0.0.1:{broken.port}", m).error or "")
    with HTTPServer({"/v1/measure": b"{\"measurements\": [{\"step\": 1}]}"}) as garbage:
        assert "malformed" in (fetch_controls(f"http://127.0.0.1:{garbage.port}", m).error or "")


def test_request_item_caps_and_dedupes_addresses():
    many = tuple(f"192.0.2.{i}" for i in range(40))
    item = request_item(probe_measurement("https://x.test/", many + many))
    assert item["url"] == "https://x.test/" and len(item["addresses"]) == 16
