"""One target measured end to end against loopback fakes: DNS, TCP, TLS, HTTP, follow-ups."""

import asyncio

import pytest

from core import failures
from core.observations import (
    DNSQuery,
    DNSResponse,
    HTTPRequest,
    TCPConnect,
    TLSHandshake,
    measurement_from_dict,
    measurement_to_dict,
)
from core.target import Target
from probes.config import ProbeConfig, Timeouts
from probes.measure import candidate_addresses, measure
from tests.fakes.certs import FakePKI
from tests.fakes.dns_server import FakeDNSServer, Rule
from tests.fakes.servers import HTTPServer, TCPServer, page, redirect

FAST = Timeouts(dns=1.0, dns_listen=0.05, tcp=1.0, tls=1.0, http=1.0, http_body=2.0)


@pytest.fixture(scope="module")
def pki():
    return FakePKI()


def config_for(dns: FakeDNSServer, **kw) -> ProbeConfig:
    return ProbeConfig(timeouts=FAST, resolvers=(dns.address,), system_resolver=False,
                       ipv6=False, **kw)


def test_https_target_measured_in_full(pki, tmp_path):
    rules = {"site.test": Rule(addresses=["127.0.0.1"])}
    with FakeDNSServer(rules) as dns, HTTPServer(
        {"/": page("Welcome")}, tls=pki.good("site.test")
    ) as web:
        cfg = config_for(dns, ca_bundle=pki.write_ca_bundle(tmp_path))
        m = asyncio.run(measure(Target(f"https://site.test:{web.port}/"), cfg))
    queries = m.of(DNSQuery)
    assert [(q.engine, q.query_type) for q in queries] == [("udp", "A")]
    assert queries[0].addresses == ("127.0.0.1",)
    assert [c.failure for c in m.of(TCPConnect)] == [None]
    (hs,) = m.of(TLSHandshake)
    assert hs.failure is None and hs.cert_verified and hs.sni == "site.test"
    assert hs.peer_certificates
    (hop,) = m.of(HTTPRequest)
    assert hop.status == 200 and hop.title == "Welcome" and hop.failure is None
    # times are ordered within the measurement
    assert all(o.t0 <= o.t <= m.runtime for o in m.observations)
    # the measurement survives serialisation exactly
    assert measurement_from_dict(measurement_to_dict(m)) == m


def test_tls_reset_asks_the_harmless_sni_question():
    rules = {"blocked.test": Rule(addresses=["127.0.0.1"])}
    with FakeDNSServer(rules) as dns, TCPServer("reset") as server:
        m = asyncio.run(measure(Target(f"https://blocked.test:{server.port}/"), config_for(dns)))
    handshakes = m.of(TLSHandshake)
    assert [(h.purpose, h.failure) for h in handshakes] == [
        ("target", failures.CONNECTION_RESET),
        ("harmless_sni", failures.CONNECTION_RESET),
    ]
    assert handshakes[1].sni == ProbeConfig().harmless_sni
    assert m.of(HTTPRequest) == []  # nothing to fetch over


def test_redirect_chain_measures_each_hop():
    with HTTPServer({"/": page("Final")}) as final:
        rules = {"a.test": Rule(addresses=["127.0.0.1"]), "b.test": Rule(addresses=["127.0.0.1"])}
        with FakeDNSServer(rules) as dns, HTTPServer(
            {"/": redirect(f"http://b.test:{final.port}/")}
        ) as first:
            m = asyncio.run(measure(Target(f"http://a.test:{first.port}/"), config_for(dns)))
    hops = m.of(HTTPRequest)
    assert [h.status for h in hops] == [302, 200]
    assert hops[0].location == f"http://b.test:{final.port}/" and hops[1].title == "Final"
    # the second hop resolved its own name
    assert [q.hostname for q in m.of(DNSQuery)] == ["a.test", "b.test"]


def test_redirect_loop_is_bounded():
    rules = {"loop.test": Rule(addresses=["127.0.0.1"])}
    with FakeDNSServer(rules) as dns, HTTPServer({"/": redirect("/")}) as web:
        cfg = config_for(dns, max_redirects=3)
        m = asyncio.run(measure(Target(f"http://loop.test:{web.port}/"), cfg))
    hops = m.of(HTTPRequest)
    assert len(hops) == 4
    assert hops[-1].failure == failures.HTTP_TOO_MANY_REDIRECTS


def test_nxdomain_stops_before_connecting():
    with FakeDNSServer({}, default=Rule(rcode="NXDOMAIN")) as dns:
        m = asyncio.run(measure(Target("https://gone.test/"), config_for(dns)))
    assert [q.failure for q in m.of(DNSQuery)] == [failures.DNS_NXDOMAIN]
    assert m.of(TCPConnect) == [] and m.of(HTTPRequest) == []


def test_tcp_target_connects_only():
    with FakeDNSServer({}) as dns, TCPServer("accept") as server:
        m = asyncio.run(measure(Target(f"tcp://127.0.0.1:{server.port}"), config_for(dns)))
    assert [c.failure for c in m.of(TCPConnect)] == [None]
    assert m.of(TLSHandshake) == [] and m.of(HTTPRequest) == []
    assert dns.queries == []  # an address needs no lookup


def test_candidate_addresses_prefers_system_and_caps_per_family():
    many = tuple(f"192.0.2.{i}" for i in range(10))
    udp = DNSQuery(0, 1, "h", "A", "udp", "r", None, (DNSResponse(1, "NOERROR", many),))
    system = DNSQuery(0, 1, "h", "ANY", "system", "", None,
                      (DNSResponse(1, "NOERROR", ("198.51.100.1", "2001:db8::1")),))
    got = candidate_addresses([udp, system])
    assert got[0] == "198.51.100.1" and len([a for a in got if ":" not in a]) == 4
    assert got[-1] == "2001:db8::1"
    assert "2001:db8::1" not in candidate_addresses([udp, system], ipv6=False)


def test_broken_redirect_location_is_a_failure_of_that_hop():
    rules = {"r.test": Rule(addresses=["127.0.0.1"])}
    with FakeDNSServer(rules) as dns, HTTPServer({"/": redirect("http://bad..name/")}) as web:
        m = asyncio.run(measure(Target(f"http://r.test:{web.port}/"), config_for(dns)))
    (hop,) = m.of(HTTPRequest)
    assert hop.status == 302 and hop.failure == failures.HTTP_INVALID_REDIRECT
