"""Validation on OONI's labelled corpus: the 50 web_connectivity 0.5 scenarios of OONI's
censorship simulator (`../shared/corpus/ooni/wc05_qa`, one scenario per file).

EXPECTED holds the verdict each scenario *should* get, written from what the scenario simulates
(its name, the netem rules in ooni/probe-cli `internal/webconnectivityqa`, and the file itself),
not from OONI's own verdict and not from our output. DIFFERS_FROM_OONI lists, with the reason,
every scenario where that verdict differs from OONI's (INDEX.csv); a test keeps it exact, so the
table in the README cannot go stale.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

import pytest

from analysis.classify import classify
from analysis.context import Context
from core.verdicts import Verdict
from ooni.fingerprints import load_fingerprints
from ooni.read import OONIMeasurement
from ooni.read_file import read_ooni_file

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
WC05 = CORPUS / "ooni" / "wc05_qa"

OK, BLOCKED, DOWN, INSUFFICIENT = "ok", "blocked", "down", "insufficient"

# file stem -> (verdict, techniques, what the scenario simulates / why this verdict)
EXPECTED: dict[str, tuple[str, tuple[str, ...], str]] = {
    "badSSLWithExpiredCertificate": (
        DOWN, (), "the site's certificate expired; the control sees the same"
    ),
    "badSSLWithUnknownAuthorityWithConsistentDNS": (
        DOWN, (), "the site uses an untrusted CA; the control sees the same"
    ),
    "badSSLWithUnknownAuthorityWithInconsistentDNS": (
        BLOCKED, ("dns",), "DNS spoofed to a host with a custom-CA certificate"
    ),
    "badSSLWithWrongServerName": (
        DOWN, (), "the site's certificate names another host; the control sees the same"
    ),
    "cloudflareCAPTCHAWithHTTP": (
        OK, (), "a Cloudflare CAPTCHA (fp fingerprint) is not censorship"
    ),
    "cloudflareCAPTCHAWithHTTPS": (OK, (), "a Cloudflare CAPTCHA over valid HTTPS"),
    "controlFailureWithSuccessfulHTTPSWebsite": (OK, (), "no control, but valid HTTPS"),
    "controlFailureWithSuccessfulHTTPWebsite": (INSUFFICIENT, (), "no control, cleartext page"),
    "dnsBlockingAndroidDNSCacheNoData": (
        BLOCKED, ("dns",), "the ISP resolver says NXDOMAIN (Android's form)"
    ),
    "dnsBlockingBOGON": (BLOCKED, ("dns",), "the ISP resolver answers 10.10.34.35"),
    "dnsBlockingNXDOMAIN": (BLOCKED, ("dns",), "the ISP resolver says NXDOMAIN"),
    "dnsHijackingToLocalhostWithHTTP": (BLOCKED, ("dns",), "DNS spoofed to 127.0.0.1 (bogon)"),
    "dnsHijackingToLocalhostWithHTTPS": (BLOCKED, ("dns",), "DNS spoofed to 127.0.0.1 (bogon)"),
    "dnsHijackingToProxyWithHTTPSURL": (
        OK, (), "DNS points to a transparent proxy that serves the real site"
    ),
    "dnsHijackingToProxyWithHTTPURL": (
        OK, (), "DNS points to a transparent proxy that serves the real site"
    ),
    "ghostDNSBlockingWithHTTP": (
        BLOCKED, ("dns",), "the censor answers for a name that no longer exists"
    ),
    "ghostDNSBlockingWithHTTPS": (
        BLOCKED, ("dns",), "the censor answers for a name that no longer exists"
    ),
    "httpBlockingConnectionReset": (BLOCKED, ("http",), "RST injected after the HTTP request"),
    "httpDiffWithConsistentDNS": (BLOCKED, ("http",), "a middlebox serves a blockpage"),
    "httpDiffWithInconsistentDNS": (
        BLOCKED, ("http",), "blockpage injected; the DNS answer is a proxy with a valid certificate"
    ),
    "idnaWithoutCensorshipLowercase": (OK, (), "no censorship (IDN host, redirects)"),
    "idnaWithoutCensorshipWithFirstLetterUppercase": (
        OK, (), "no censorship (IDN host, redirects)"
    ),
    "largeFileWithHTTP": (OK, (), "a large download that completes"),
    "largeFileWithHTTPS": (OK, (), "a large download that completes"),
    "localhostWithHTTP": (DOWN, (), "the site's own DNS says 127.0.0.1, for the control too"),
    "localhostWithHTTPS": (DOWN, (), "the site's own DNS says 127.0.0.1, for the control too"),
    "redirectWithBrokenLocationForHTTP": (
        OK, (), "the site itself sends a broken redirect; no censorship"
    ),
    "redirectWithBrokenLocationForHTTPS": (
        OK, (), "the site itself sends a broken redirect; no censorship"
    ),
    "redirectWithConsistentDNSAndThenConnectionRefusedForHTTP": (
        BLOCKED, ("tcp",), "connections refused after the redirect"
    ),
    "redirectWithConsistentDNSAndThenConnectionRefusedForHTTPS": (
        BLOCKED, ("tcp",), "connections refused after the redirect"
    ),
    "redirectWithConsistentDNSAndThenConnectionResetForHTTP": (
        BLOCKED, ("http",), "RST on the HTTP request after the redirect"
    ),
    "redirectWithConsistentDNSAndThenConnectionResetForHTTPS": (
        BLOCKED, ("tls",), "RST on the ClientHello after the redirect"
    ),
    "redirectWithConsistentDNSAndThenEOFForHTTP": (
        BLOCKED, ("http",), "connection closed on the HTTP request after the redirect"
    ),
    "redirectWithConsistentDNSAndThenEOFForHTTPS": (
        BLOCKED, ("tls",), "connection closed on the ClientHello after the redirect"
    ),
    "redirectWithConsistentDNSAndThenNXDOMAIN": (
        BLOCKED, ("dns",), "NXDOMAIN for the redirect target"
    ),
    "redirectWithConsistentDNSAndThenTimeoutForHTTP": (
        BLOCKED, ("http",), "HTTP request dropped after the redirect"
    ),
    "redirectWithConsistentDNSAndThenTimeoutForHTTPS": (
        BLOCKED, ("tls",), "ClientHello dropped after the redirect"
    ),
    "redirectWithMoreThanTenRedirectsAndHTTP": (
        DOWN, (), "the site redirects forever; the control fails too"
    ),
    "redirectWithMoreThanTenRedirectsAndHTTPS": (
        DOWN, (), "the site redirects forever; the control fails too"
    ),
    "successWithHTTP": (OK, (), "no censorship"),
    "successWithHTTPS": (OK, (), "no censorship"),
    "tcpBlockingConnectTimeout": (BLOCKED, ("tcp",), "SYN dropped"),
    "tcpBlockingConnectionRefusedWithInconsistentDNS": (
        BLOCKED, ("dns",), "DNS spoofed to a blockpage host (whose port is then closed)"
    ),
    "throttlingWithHTTP": (BLOCKED, ("throttle",), "the transfer is slowed to a trickle"),
    "throttlingWithHTTPS": (BLOCKED, ("throttle",), "the transfer is slowed to a trickle"),
    "tlsBlockingConnectionResetWithConsistentDNS": (
        BLOCKED, ("tls",), "RST on the ClientHello (SNI)"
    ),
    "tlsBlockingConnectionResetWithInconsistentDNS": (
        BLOCKED, ("tls",), "RST on the ClientHello; the DNS answer is a proxy with a valid cert"
    ),
    "websiteDownNXDOMAIN": (DOWN, (), "the name does not exist"),
    "websiteDownNoAddrs": (DOWN, (), "the name has no address"),
    "websiteDownTCPConnect": (DOWN, (), "nothing listens on the port"),
}

# Where the verdict above differs from OONI's (INDEX.csv), and why.
DIFFERS_FROM_OONI: dict[str, str] = {
    "cloudflareCAPTCHAWithHTTP": "OONI http-diff; ours ok: the page matches a known false-positive "
    "fingerprint (cp.fp_x_cloudflare_check), a CAPTCHA is not censorship",
    "httpDiffWithInconsistentDNS": "OONI dns; ours http: the probe verified the real site's "
    "certificate on the DNS answer's address (a proxy, as in dnsHijackingToProxy*, which OONI "
    "calls accessible); the blockpage (ooni.in_11) is what blocks",
    "redirectWithBrokenLocationForHTTP": "OONI http-failure; ours ok: the site itself sends the "
    "broken Location, no interference was simulated",
    "redirectWithBrokenLocationForHTTPS": "OONI http-failure; ours ok: the broken redirect came "
    "over verified TLS from the site itself",
    "redirectWithConsistentDNSAndThenConnectionRefusedForHTTP": "OONI http-failure; ours tcp: "
    "the refused connect is pinned to the redirect hop's TCP step",
    "redirectWithConsistentDNSAndThenConnectionRefusedForHTTPS": "OONI http-failure; ours tcp: "
    "the refused connect is pinned to the redirect hop's TCP step",
    "redirectWithConsistentDNSAndThenConnectionResetForHTTPS": "OONI http-failure; ours tls: the "
    "reset happened during the TLS handshake",
    "redirectWithConsistentDNSAndThenEOFForHTTPS": "OONI http-failure; ours tls: the connection "
    "was closed during the TLS handshake",
    "redirectWithConsistentDNSAndThenTimeoutForHTTPS": "OONI http-failure; ours tls: the "
    "handshake timed out",
    "throttlingWithHTTP": "OONI http-failure; ours throttle: the response began, then the 16 MiB "
    "body stalled to a timeout while the control got all of it",
    "throttlingWithHTTPS": "OONI http-failure; ours throttle: same stall, over TLS",
    "tlsBlockingConnectionResetWithConsistentDNS": "OONI http-failure; ours tls: the reset "
    "happened during the TLS handshake",
    "tlsBlockingConnectionResetWithInconsistentDNS": "OONI dns; ours tls: the control verified "
    "the real certificate on the DNS answer's address (a proxy), and both addresses reset the "
    "ClientHello",
}

_OONI_TECHNIQUE = {"dns": "dns", "tcp_ip": "tcp", "http-failure": "http", "http-diff": "http"}


@cache
def _context() -> Context:
    fingerprints = CORPUS / "fingerprints"
    return Context(fingerprints=load_fingerprints(
        fingerprints / "fingerprints_http.csv", fingerprints / "fingerprints_dns.csv"))


@cache
def _read(stem: str) -> OONIMeasurement:
    items = list(read_ooni_file(WC05 / f"{stem}.json"))
    assert len(items) == 1
    item = items[0]
    assert isinstance(item, OONIMeasurement), item
    return item


def _verdict(stem: str) -> Verdict:
    item = _read(stem)
    return classify(item.measurement, item.control, _context())


def _index() -> list[dict[str, str]]:
    with (WC05 / "INDEX.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def _ooni_verdict(row: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    blocking, accessible = row["blocking"], row["accessible"]
    if blocking == "None":
        return INSUFFICIENT, ()
    if blocking == "False":
        return (OK, ()) if accessible == "True" else (DOWN, ())
    return BLOCKED, (_OONI_TECHNIQUE[blocking],)


def test_the_table_covers_exactly_the_corpus():
    stems = {row["file"].removesuffix(".json") for row in _index()}
    assert stems == set(EXPECTED) == {p.stem for p in WC05.glob("*.json")}
    assert len(stems) == 50


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_scenario_verdict(stem: str):
    verdict, techniques, why = EXPECTED[stem]
    got = _verdict(stem)
    assert (got.verdict, got.techniques) == (verdict, techniques), f"{why}: {got.reason}"
    assert got.reason
    if verdict == BLOCKED:
        assert got.outcomes and all(o.split(".")[0] in techniques for o in got.outcomes)
        assert 0 < got.confidence <= 1
    else:
        assert not got.outcomes


def test_differences_from_ooni_are_exactly_the_documented_ones():
    differ = {
        row["file"].removesuffix(".json")
        for row in _index()
        if _ooni_verdict(row) != EXPECTED[row["file"].removesuffix(".json")][:2]
    }
    assert differ == set(DIFFERS_FROM_OONI)


def test_confirmed_only_with_positive_proof():
    # 10.10.34.35 is an Iranian censor's address in OONI's DNS fingerprints.
    bogon = _verdict("dnsBlockingBOGON")
    assert bogon.confirmed and bogon.outcomes == ("dns.bogon",)
    assert "ooni.ir_5" in bogon.reason
    # The ghost scenario's bogus address serves a known blockpage: proof of the DNS lie.
    assert _verdict("ghostDNSBlockingWithHTTP").confirmed
    # A reset or a timeout is strong evidence, never proof.
    for stem in ("tcpBlockingConnectTimeout", "tlsBlockingConnectionResetWithConsistentDNS",
                 "throttlingWithHTTP", "dnsBlockingNXDOMAIN"):
        assert not _verdict(stem).confirmed, stem


def test_evidence_names_the_step_and_the_control():
    v = _verdict("tcpBlockingConnectTimeout")
    assert v.outcomes == ("tcp.timeout",)
    assert "93.184.216.34:443" in v.reason and "control" in v.reason
    v = _verdict("dnsHijackingToLocalhostWithHTTP")
    assert "127.0.0.1" in v.reason and "93.184.216.34" in v.reason
    # After a redirect the failure is the hop's, and the exact control step was not measured:
    # weaker than the same evidence with the control's own handshake.
    after_redirect = _verdict("redirectWithConsistentDNSAndThenConnectionResetForHTTPS")
    direct = _verdict("tlsBlockingConnectionResetWithConsistentDNS")
    assert after_redirect.outcomes == direct.outcomes == ("tls.reset",)
    assert after_redirect.confidence < direct.confidence


def test_cloudflare_captcha_is_ok_because_of_the_false_positive_fingerprint():
    item = _read("cloudflareCAPTCHAWithHTTP")
    with_fps = classify(item.measurement, item.control, _context())
    assert with_fps.verdict == OK
    assert with_fps.details["false_positives"]
    # Without the list, the CAPTCHA is just a page that differs from the control.
    without = classify(item.measurement, item.control, Context())
    assert (without.verdict, without.outcomes) == (BLOCKED, ("http.diff",))
