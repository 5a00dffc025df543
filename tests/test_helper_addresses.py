"""The helper's address rule against IPv6 forms that embed IPv4 (issue 11, section 6): each form is
judged, and a request naming one is refused before any connection is tried."""

import ipaddress
from dataclasses import replace

import pytest
import requests

from core.observations import TCPConnect
from probes import tcp
from probes.config import ProbeConfig, Timeouts
from services.address_rules import embedded_ipv4, is_public
from services.helper_protocol import address_allowed
from services.helper_server import HelperConfig, make_server
from tests.fakes.dns_server import FakeDNSServer

DENIED = [
    # IPv4-compatible ::/96 (deprecated): refused whatever it embeds
    "::7f00:1", "::10.0.0.1", "::a9fe:a9fe", "::1.1.1.1", "::8.8.8.8",
    # IPv4-translated (SIIT) ::ffff:0:0:0/96
    "::ffff:0:7f00:1", "::ffff:0:a00:1", "::ffff:0:101:101",
    # local-use NAT64 64:ff9b:1::/48
    "64:ff9b:1::7f00:1", "64:ff9b:1::a9fe:a9fe", "64:ff9b:1::101:101", "64:ff9b:1:ffff::1",
    # site-local fec0::/10 (deprecated)
    "fec0::1", "fec0::7f00:1", "feff:ffff::1",
    # Teredo 2001::/32
    "2001:0:4136:e378:8000:63bf:3fff:fdd2",
    # IPv4-mapped, well-known NAT64 and 6to4 embedding a private, loopback or link-local IPv4
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "64:ff9b::7f00:1", "64:ff9b::10.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b::c0a8:1",
    "2002:7f00:1::1", "2002:a00:1::", "2002:a9fe:a9fe:1:2:3:4:5", "2002:c0a8:101::1",
    "2002:6440:1::1",  # 100.64.0.1, shared address space
]
ALLOWED = [
    # embedding a public IPv4: as public as that address
    "::ffff:1.1.1.1", "64:ff9b::1.1.1.1", "64:ff9b::808:808",
    "2002:101:101::1", "2002:808:808:1::1",
    # plain public IPv6, including ones that only look near a denied prefix
    "2606:4700::1111", "2a00:1450:4001::1", "2001:4860:4860::8888", "fe00::1", "fbff::1",
    "64:ff9b:2::1",
]


@pytest.mark.parametrize("address", DENIED)
def test_embedded_and_deprecated_ipv6_forms_are_denied(address):
    assert address_allowed(address, HelperConfig()) is False
    assert address_allowed(address, HelperConfig(allow_private=True))  # the lab switch still works


@pytest.mark.parametrize("address", ALLOWED)
def test_public_ipv6_forms_stay_allowed(address):
    assert address_allowed(address, HelperConfig()) is True


@pytest.mark.parametrize(("address", "inner"), [
    ("::ffff:10.0.0.1", "10.0.0.1"), ("64:ff9b::a9fe:a9fe", "169.254.169.254"),
    ("2002:a00:1:ffff::1", "10.0.0.1"), ("2002:101:101::", "1.1.1.1"),
    ("::7f00:1", None), ("2606:4700::1111", None), ("10.0.0.1", None),
])
def test_embedded_ipv4_is_read_from_the_right_bits(address, inner):
    found = embedded_ipv4(ipaddress.ip_address(address))
    assert (str(found) if found else None) == inner


def test_public_ranges_reach_into_embedded_forms_but_not_denied_prefixes():
    loopback = (ipaddress.ip_network("127.0.0.0/8"),)
    assert is_public(ipaddress.ip_address("::ffff:127.0.0.1"), loopback)
    assert is_public(ipaddress.ip_address("2002:7f00:1::1"), loopback)
    assert not is_public(ipaddress.ip_address("::7f00:1"), loopback)
    assert is_public(ipaddress.ip_address("fec0::1"), (ipaddress.ip_network("fec0::/10"),))


def test_a_request_naming_embedded_forms_is_refused_without_a_connection(monkeypatch):
    attempts: list[str] = []

    async def connect(address, port, clock, timeout):  # records, and reaches nothing
        attempts.append(address)
        return TCPConnect(clock.now(), clock.now(), address, port, "connection_refused"), None

    monkeypatch.setattr(tcp, "connect", connect)
    fast = ProbeConfig(timeouts=Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=1, http=1,
                                         http_body=2), resolvers=(), body_cap=256 * 1024)
    literal = "http://[::7f00:1]:8080/"
    named = "http://gone.test/"  # the helper's resolver knows no address: only the probe's
    embedded = {  # a refusal names at most four addresses
        named: ["::a9fe:a9fe", "::ffff:0:7f00:1", "64:ff9b:1::7f00:1", "fec0::1"],
        f"{named}other": ["::a00:1", "2002:a9fe:a9fe::1", "64:ff9b::7f00:1"]}
    with FakeDNSServer({}) as dns, make_server("127.0.0.1", 0, HelperConfig(
            resolver=dns.address, probe=replace(fast, ipv6=True))) as server:
        answer = requests.post(f"http://127.0.0.1:{server.port}/v1/measure", timeout=10, json={
            "targets": [{"url": literal}] + [{"url": url, "addresses": addresses}
                                             for url, addresses in embedded.items()]})
    assert answer.status_code == 200
    refused = {r["url"]: r["reason"] for r in answer.json()["refused"]}
    assert attempts == []
    assert "::7f00:1 is a private or special-purpose address" in refused[literal]
    for url, addresses in embedded.items():
        assert refused[url].startswith("not contacted")
        assert all(address in refused[url] for address in addresses)
