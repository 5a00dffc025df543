"""Each verdict rule on hand-built measurements in our own format (core.observations)."""

from __future__ import annotations

import ipaddress
import json

from analysis.classify import classify
from analysis.context import Context
from analysis.fingerprints import Fingerprint, Fingerprints
from core import failures
from core.observations import (
    DNSQuery,
    DNSResponse,
    HTTPRequest,
    Measurement,
    Observation,
    TCPConnect,
    TLSHandshake,
)
from core.target import Target
from core.verdicts import LOCAL_FAILURE, UPSTREAM_UNREACHABLE

HOST = "blocked.example"
REAL = "93.184.216.34"  # a public address (bogons are judged; these are only strings)
HTTPS = Target(f"https://{HOST}/")
HTTP = Target(f"http://{HOST}/")
PAGE = b"<html><head><title>The real site</title></head><body>" + b"content " * 200 + b"</body>"


def dns(host: str, *addresses: str, engine: str = "system", resolver: str = "",
        failure: str | None = None) -> DNSQuery:
    rcode = {failures.DNS_NXDOMAIN: "NXDOMAIN"}.get(failure or "", "NOERROR")
    responses = () if failure == failures.GENERIC_TIMEOUT else (
        DNSResponse(0.1, rcode, tuple(addresses)),)
    return DNSQuery(0.0, 0.1, host, "A", engine, resolver, failure, responses)


def tcp(address: str = REAL, port: int = 443, failure: str | None = None) -> TCPConnect:
    return TCPConnect(0.1, 0.2, address, port, failure)


def tls(address: str = REAL, sni: str = HOST, failure: str | None = None,
        purpose: str = "target", port: int = 443) -> TLSHandshake:
    return TLSHandshake(0.2, 0.3, address, port, sni, failure, purpose=purpose,
                        peer_certificates=(b"leaf",), cert_verified=failure is None)


def http(url: str = f"https://{HOST}/", address: str = REAL, port: int = 443,
         status: int | None = 200, body: bytes = PAGE, failure: str | None = None,
         title: str | None = "The real site", location: str | None = None,
         goodput: float | None = None, headers: tuple[tuple[str, str], ...] = (),
         body_length: int | None = None) -> HTTPRequest:
    return HTTPRequest(0.3, 0.5, url, address, port, failure, status=status, headers=headers,
                       title=title, body=body, body_length=len(body) if body_length is None
                       else body_length, goodput=goodput, location=location)


def m(target: Target, *obs: Observation) -> Measurement:
    return Measurement(target, "2024-05-01T10:00:00.000000Z", 1.0, tuple(obs))


def healthy(target: Target = HTTPS) -> Measurement:
    """What the test helper sees from an uncensored network."""
    port = target.port
    steps: list[Observation] = [dns(target.hostname, REAL), tcp(port=port)]
    if target.uses_tls:
        steps.append(tls(sni=target.hostname))
    steps.append(http(target.url, port=port))
    return m(target, *steps)


# --- DNS -----------------------------------------------------------------------------------


def test_a_second_answer_to_one_query_is_confirmed_injection_even_without_a_control():
    query = DNSQuery(0.0, 0.6, HOST, "A", "udp", "192.0.2.53:53", None, (
        DNSResponse(0.01, "NOERROR", ("10.10.34.36",)), DNSResponse(0.05, "NOERROR", (REAL,))))
    v = classify(m(HTTPS, query), None)
    assert (v.verdict, v.techniques, v.outcomes, v.confirmed) == (
        "blocked", ("dns",), ("dns.injected",), True)
    assert "192.0.2.53:53" in v.reason and "10.10.34.36" in v.reason


def test_nxdomain_where_the_control_resolves():
    v = classify(m(HTTPS, dns(HOST, failure=failures.DNS_NXDOMAIN)), healthy())
    assert (v.verdict, v.outcomes) == ("blocked", ("dns.nxdomain",))
    assert "the system resolver" in v.reason and REAL in v.reason
    # The same NXDOMAIN for the control too: the name does not exist, the site is down.
    gone = m(HTTPS, dns(HOST, failure=failures.DNS_NXDOMAIN))
    assert classify(gone, gone).verdict == "down"


def test_one_unreachable_direct_resolver_is_not_the_targets_block():
    probe = m(HTTPS, dns(HOST, REAL), dns(HOST, engine="udp", resolver="192.0.2.53:53",
                                          failure=failures.GENERIC_TIMEOUT),
              tcp(), tls(), http())
    assert classify(probe, healthy()).verdict == "ok"
    blocked = m(HTTPS, dns(HOST, failure=failures.GENERIC_TIMEOUT))
    assert classify(blocked, healthy()).outcomes == ("dns.timeout",)


def test_bogon_answer_where_the_control_resolves_publicly():
    v = classify(m(HTTPS, dns(HOST, "127.0.0.1")), healthy())
    assert (v.verdict, v.outcomes, v.confirmed) == ("blocked", ("dns.bogon",), False)
    assert "127.0.0.1 (bogon)" in v.reason


def test_public_ranges_make_a_lab_address_public():
    lab = (ipaddress.ip_network("198.18.0.0/15"),)
    control = m(HTTPS, dns(HOST, "198.18.0.5"), tcp("198.18.0.5"), tls("198.18.0.5"),
                http(address="198.18.0.5"))
    private = m(HTTPS, dns(HOST, "10.0.0.1"))
    # Without the declaration the control's lab address is special-purpose too: the name looks
    # private for everyone, which is the site's configuration, not a lie.
    assert "dns.bogon" not in classify(private, control).outcomes
    assert classify(private, control, Context(public_ranges=lab)).outcomes == ("dns.bogon",)
    elsewhere = m(HTTPS, dns(HOST, "198.18.0.9"), tcp("198.18.0.9", failure=failures.
                                                     CONNECTION_RESET))
    assert classify(elsewhere, control, Context(public_ranges=lab)).outcomes == (
        "dns.inconsistent",)


def test_inconsistent_answer_and_what_clears_it():
    other = "151.101.65.69"
    lying = m(HTTPS, dns(HOST, other), tcp(other), tls(other, failure="ssl_unknown_authority"))
    v = classify(lying, healthy())
    assert (v.verdict, v.outcomes) == ("blocked", ("dns.inconsistent",))
    assert "tls" not in v.techniques  # the bad certificate is the DNS lie's consequence
    # A valid certificate for the name on the other address: a CDN node, not a lie.
    cdn = m(HTTPS, dns(HOST, other), tcp(other), tls(other), http(address=other))
    assert classify(cdn, healthy()).verdict == "ok"
    # A shared ASN clears it too; distinct ASNs make it stronger.
    same_as = Context(asn_of=lambda a: 64500)
    assert "dns.inconsistent" not in classify(lying, healthy(), same_as).outcomes
    distinct = classify(lying, healthy(), Context(asn_of=lambda a: 64501 if a == other else 64500))
    assert distinct.confidence > v.confidence


def test_dns_fingerprint_confirms():
    fps = Fingerprints(dns=[Fingerprint("ooni.ir_x", "nat", "dns", "full", "10.10.34.36", 10)])
    v = classify(m(HTTPS, dns(HOST, "10.10.34.36")), healthy(), Context(fingerprints=fps))
    assert (v.outcomes, v.confirmed, v.confidence) == (("dns.bogon",), True, 1.0)
    assert "ooni.ir_x" in v.reason


# --- TCP and TLS ----------------------------------------------------------------------------


def test_tcp_reset_where_the_control_connects():
    v = classify(m(HTTPS, dns(HOST, REAL), tcp(failure=failures.CONNECTION_RESET)), healthy())
    assert (v.verdict, v.techniques, v.outcomes) == ("blocked", ("tcp",), ("tcp.reset",))
    assert f"{REAL}:443" in v.reason


def test_sni_filtering_is_shown_by_the_harmless_sni():
    probe = m(HTTPS, dns(HOST, REAL), tcp(), tls(failure=failures.CONNECTION_RESET), tcp(),
              tls(sni="example.com", purpose="harmless_sni", failure="ssl_invalid_hostname"))
    v = classify(probe, None)  # proof needs no control
    assert (v.verdict, v.outcomes, v.confirmed) == ("blocked", ("tls.sni_filtered",), True)
    # When the harmless name is reset too, it is the address, not the name: a plain reset.
    ip_block = m(HTTPS, dns(HOST, REAL), tcp(), tls(failure=failures.CONNECTION_RESET), tcp(),
                 tls(sni="example.com", purpose="harmless_sni", failure=failures.CONNECTION_RESET))
    v = classify(ip_block, healthy())
    assert (v.outcomes, v.confirmed) == (("tls.reset",), False)


def test_invalid_certificate_where_the_controls_is_valid_is_mitm():
    probe = m(HTTPS, dns(HOST, REAL), tcp(), tls(failure=failures.SSL_UNKNOWN_AUTHORITY))
    v = classify(probe, healthy())
    assert (v.verdict, v.techniques, v.outcomes) == ("blocked", ("tls",), ("tls.mitm",))
    # The same bad certificate for the control: the site's own misconfiguration.
    broken = m(HTTPS, dns(HOST, REAL), tcp(), tls(failure=failures.SSL_UNKNOWN_AUTHORITY))
    assert classify(probe, broken).verdict == "down"


def test_failure_after_a_redirect_is_pinned_to_the_hop_and_stage():
    short = Target("http://short.example/x")
    first: list[Observation] = [dns("short.example", "104.16.0.10"), tcp("104.16.0.10", 80),
             http(short.url, "104.16.0.10", 80, status=301, body=b"",
                  location=f"https://{HOST}/")]
    # The test helper (like OONI's) measured only the first host step by step, and fetched the
    # whole chain.
    control = m(short, dns("short.example", "104.16.0.10"), tcp("104.16.0.10", 80),
                http(short.url, "104.16.0.10", 80))
    refused = m(short, *first, dns(HOST, REAL), tcp(failure=failures.CONNECTION_REFUSED))
    v = classify(refused, control)
    assert (v.verdict, v.techniques, v.outcomes) == ("blocked", ("tcp",), ("tcp.refused",))
    reset = m(short, *first, dns(HOST, REAL), tcp(), tls(failure=failures.CONNECTION_RESET))
    v = classify(reset, control)
    assert (v.techniques, v.outcomes) == (("tls",), ("tls.reset",))


def test_http_reset_after_the_request_was_sent():
    probe = m(HTTP, dns(HOST, REAL), tcp(port=80),
              http(HTTP.url, port=80, status=None, body=b"", failure=failures.CONNECTION_RESET))
    v = classify(probe, healthy(HTTP))
    assert (v.techniques, v.outcomes) == (("http",), ("http.reset",))


# --- HTTP content ---------------------------------------------------------------------------

BLOCKPAGE = b"<html><title>Blocked</title><p>Access to this site is denied by order of MX</p>"
LIST = Fingerprints(http=[
    Fingerprint("test.nat_mx", "nat", "body", "contains", "by order of MX", 5),
    Fingerprint("test.cdn_captcha", "fp", "body", "contains", "Checking your browser", 5),
    Fingerprint("test.loc", "isp", "header.location", "prefix", "http://block.isp.example/", 10),
])


def _cleartext(body: bytes, status: int = 200, title: str | None = "Blocked") -> Measurement:
    return m(HTTP, dns(HOST, REAL), tcp(port=80),
             http(HTTP.url, port=80, status=status, body=body, title=title))


def test_known_blockpage_is_confirmed():
    v = classify(_cleartext(BLOCKPAGE), healthy(HTTP), Context(fingerprints=LIST))
    assert v.verdict == "blocked" and v.confirmed
    assert v.outcomes == ("http.blockpage:test.nat_mx", "http.diff")
    # Proof needs no control.
    alone = classify(_cleartext(BLOCKPAGE), None, Context(fingerprints=LIST))
    assert (alone.verdict, alone.outcomes) == ("blocked", ("http.blockpage:test.nat_mx",))


def test_redirect_to_a_blockpage_is_found_in_the_location_header():
    probe = m(HTTP, dns(HOST, REAL), tcp(port=80),
              http(HTTP.url, port=80, status=302, body=b"", title=None,
                   headers=(("Location", "http://block.isp.example/?u=1"),),
                   location="http://block.isp.example/?u=1"))
    v = classify(probe, healthy(HTTP), Context(fingerprints=LIST))
    assert "http.blockpage:test.loc" in v.outcomes and v.confirmed


def test_false_positive_fingerprint_counts_against_blocking():
    captcha = b"<html><title>Just a moment</title>Checking your browser before accessing</html>"
    probe = _cleartext(captcha, status=503, title="Just a moment")
    assert classify(probe, healthy(HTTP)).outcomes == ("http.diff",)
    v = classify(probe, healthy(HTTP), Context(fingerprints=LIST))
    assert v.verdict == "ok" and v.details["false_positives"] == ["test.cdn_captcha"]
    # A response matching both a blockpage and a known false positive is the false positive.
    both = classify(_cleartext(captcha + BLOCKPAGE, status=503), healthy(HTTP),
                    Context(fingerprints=LIST))
    assert both.verdict == "ok"


def test_page_that_matches_the_control_is_ok_and_a_different_one_is_a_diff():
    assert classify(_cleartext(PAGE, title="The real site"), healthy(HTTP)).verdict == "ok"
    v = classify(_cleartext(BLOCKPAGE), healthy(HTTP))
    assert (v.verdict, v.outcomes) == ("blocked", ("http.diff",))
    assert "bytes where the control got" in v.reason


def test_valid_https_is_ok_even_without_a_control():
    probe = healthy()
    v = classify(probe, None)
    assert (v.verdict, v.confidence) == ("ok", 0.9)
    assert classify(_cleartext(PAGE), None).verdict == "insufficient"
    failed = m(HTTPS, dns(HOST, REAL), tcp(failure=failures.GENERIC_TIMEOUT))
    assert classify(failed, None).verdict == "insufficient"


# --- throttling -----------------------------------------------------------------------------


def _download(goodput: float, size: int = 500_000) -> HTTPRequest:
    return http(body=b"x" * 1024, body_length=size, goodput=goodput, title=None)


def test_throttled_transfer_is_far_below_the_run_and_the_control():
    control = m(HTTPS, dns(HOST, REAL), tcp(), tls(), _download(400_000))
    slow = m(HTTPS, dns(HOST, REAL), tcp(), tls(), _download(8_000))
    ctx = Context(reference_goodput=500_000)
    v = classify(slow, control, ctx)
    assert (v.verdict, v.techniques, v.outcomes) == ("blocked", ("throttle",),
                                                     ("throttle.goodput",))
    assert v.confidence == 0.75 and "8.0 kB/s" in v.reason
    # The run's reference alone is a comparison too (other targets on this network were fast).
    assert classify(slow, None, ctx).outcomes == ("throttle.goodput",)
    # Not far enough below, or too short a transfer to measure: no judgement.
    assert classify(m(HTTPS, dns(HOST, REAL), tcp(), tls(), _download(300_000)), control,
                    ctx).verdict == "ok"
    short = m(HTTPS, dns(HOST, REAL), tcp(), tls(), _download(8_000, size=4_000))
    assert classify(short, control, ctx).verdict == "ok"


def test_control_alone_needs_a_slow_transfer_in_absolute_terms():
    # A home line 8x slower than a data-centre helper is not throttled; 8 kB/s is.
    control = m(HTTPS, dns(HOST, REAL), tcp(), tls(), _download(100_000_000))
    home = m(HTTPS, dns(HOST, REAL), tcp(), tls(), _download(12_000_000))
    assert classify(home, control).verdict == "ok"
    slow = m(HTTPS, dns(HOST, REAL), tcp(), tls(), _download(8_000))
    assert classify(slow, control).outcomes == ("throttle.goodput",)


def test_body_stalled_on_a_large_download_is_throttling_and_on_a_small_one_a_timeout():
    stalled = http(url=HTTP.url, port=80, body=b"", body_length=20_000, title=None,
                   failure=failures.GENERIC_TIMEOUT)
    probe = m(HTTP, dns(HOST, REAL), tcp(port=80), stalled)
    big = m(HTTP, dns(HOST, REAL), tcp(port=80),
            http(HTTP.url, port=80, body=b"", body_length=16 << 20, title=None))
    assert classify(probe, big).outcomes == ("throttle.goodput",)
    assert classify(probe, healthy(HTTP)).outcomes == ("http.timeout",)


# --- down, insufficient ---------------------------------------------------------------------


def test_down_when_the_control_fails_the_same_way():
    refused = m(HTTPS, dns(HOST, REAL), tcp(failure=failures.CONNECTION_REFUSED))
    v = classify(refused, refused)
    assert (v.verdict, v.techniques, v.confidence) == ("down", (), 0.8)
    assert "the control failed too" in v.reason


def test_insufficient_when_the_probes_own_network_failed():
    evidence = m(HTTPS, dns(HOST, "127.0.0.1"))
    assert classify(evidence, healthy()).verdict == "blocked"
    for state, words in ((LOCAL_FAILURE, "link or route was down"),
                         (UPSTREAM_UNREACHABLE, "nothing beyond the probe's router")):
        v = classify(evidence, healthy(), Context(network=state))
        assert (v.verdict, v.outcomes) == ("insufficient", ())
        assert words in v.reason


def test_a_control_that_failed_before_dns_and_tcp_is_no_control():
    dead = m(HTTPS, dns(HOST, failure=failures.GENERIC_TIMEOUT))
    probe = m(HTTPS, dns(HOST, "127.0.0.1"))
    v = classify(probe, dead)
    assert v.verdict == "insufficient" and "control failed" in v.reason


def test_verdicts_are_json_ready():
    for probe, control in ((m(HTTPS, dns(HOST, "127.0.0.1")), healthy()), (healthy(), None)):
        data = classify(probe, control, Context(fingerprints=LIST)).to_dict()
        assert json.loads(json.dumps(data)) == data


# --- bare endpoints (a messenger's data centre, a TLS service without HTTP) ------------------


def test_bare_tcp_and_tls_endpoints():
    dc = Target("tcp://149.154.167.51:443")
    dropped = m(dc, tcp("149.154.167.51", failure=failures.GENERIC_TIMEOUT))
    reachable = m(dc, tcp("149.154.167.51"))
    assert classify(dropped, reachable).outcomes == ("tcp.timeout",)
    assert classify(reachable, reachable).verdict == "ok"
    assert classify(dropped, dropped).verdict == "down"
    service = Target(f"tls://{HOST}:443")
    reset = m(service, dns(HOST, REAL), tcp(), tls(failure=failures.CONNECTION_RESET))
    fine = m(service, dns(HOST, REAL), tcp(), tls())
    assert classify(reset, fine).outcomes == ("tls.reset",)
    assert classify(fine, None).verdict == "ok"  # a valid certificate needs no control
