"""The OONI writer (`ooni.write`, `export_ooni`): what it writes has OONI's
web_connectivity 0.5 shape, and a round trip through our own reader (`ooni.read`) gives the
analysis the same verdicts: on OONI's 50 labelled scenarios, on our own measurements of each
technique, and through the store."""

from __future__ import annotations

import io
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from analysis.classify import classify
from analysis.context import Context
from analysis.fingerprints import Fingerprint, Fingerprints
from core import failures
from core.html_title import extract_title
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
from core.verdicts import Verdict
from ooni.fields import ooni_time
from ooni.fingerprints import load_fingerprints
from ooni.read import OONIMeasurement, parse_ooni
from ooni.write import RunInfo, to_ooni
from ooni.write_verdict import verdict_keys
from results.export import export_ooni
from results.store import Store

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
WC05 = sorted((CORPUS / "ooni" / "wc05_qa").glob("*.json"))
BASE_FIELDS = (
    "annotations", "data_format_version", "input", "measurement_start_time", "probe_asn",
    "probe_cc", "probe_ip", "probe_network_name", "report_id", "software_name",
    "software_version", "test_name", "test_runtime", "test_start_time", "test_version",
    "test_keys",
)
OONI_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$")


@cache
def corpus_context() -> Context:
    fps = CORPUS / "fingerprints"
    return Context(fingerprints=load_fingerprints(
        fps / "fingerprints_http.csv", fps / "fingerprints_dns.csv"))


def key(v: Verdict) -> tuple[Any, ...]:
    return (v.verdict, v.techniques, v.outcomes, v.confirmed)


def trip(data: dict[str, Any]) -> OONIMeasurement:
    """What a researcher's tool (and ours) reads back: the JSON text, parsed."""
    return parse_ooni(json.loads(json.dumps(data)))


def round_trip(probe: Measurement, control: Measurement | None,
               ctx: Context) -> tuple[Verdict, Verdict, OONIMeasurement]:
    before = classify(probe, control, ctx)
    back = trip(to_ooni(probe, control, before.to_dict()))
    return before, classify(back.measurement, back.control, ctx), back


# --- 1. OONI's own corpus -------------------------------------------------------------------


def test_the_corpus_is_there():
    assert len(WC05) == 50


@pytest.mark.parametrize("path", WC05, ids=lambda p: p.stem)
def test_round_trip_of_ooni_scenarios_keeps_the_verdict(path: Path):
    ctx = corpus_context()
    original = parse_ooni(json.loads(path.read_text(encoding="utf-8")))
    before = classify(original.measurement, original.control, ctx)
    back = trip(to_ooni(original.measurement, original.control, before.to_dict()))
    assert key(classify(back.measurement, back.control, ctx)) == key(before)
    # Not only the verdict: every observation, and the control, come back as they were read.
    assert back.measurement.observations == original.measurement.observations
    assert back.measurement.target == original.measurement.target
    assert (back.control is None) == (original.control is None)
    if original.control is not None:
        assert back.control is not None
        assert back.control.observations == original.control.observations


# --- 2. our own measurements of each technique ----------------------------------------------

HOST = "blocked.example"
REAL = "93.184.216.34"
REAL6 = "2606:2800:220:1:248:1893:25c8:1946"
HTTPS = Target(f"https://{HOST}/", platform="web", category="NEWS")
HTTP = Target(f"http://{HOST}/")
HTML = (("Content-Type", "text/html; charset=utf-8"),)
PAGE = (b"<html><head><title>The real site</title></head><body>" + b"content " * 300
        + b"</body></html>")
CHAIN = (b"\x30\x82\x01\x0a\xff\x00leaf-der", b"\x30\x82\x02\x0b\x80\x81intermediate-der")
# windows-1256 Arabic: not valid UTF-8, so the body must travel as base64 BinaryData.
BLOCKPAGE = (b"<html><title>Blocked</title><p>" + "محجوب".encode("cp1256")
             + b" access denied by order of MX</p></html>")
FINGERPRINTS = Context(fingerprints=Fingerprints(http=[
    Fingerprint("test.nat_mx", "nat", "body", "contains", "by order of MX", 8)]))


def dns(host: str, *addresses: str, failure: str | None = None,
        engine: str = "system", resolver: str = "") -> DNSQuery:
    rcode = "NXDOMAIN" if failure == failures.DNS_NXDOMAIN else "NOERROR"
    responses = () if failure == failures.GENERIC_TIMEOUT else (
        DNSResponse(0.05, rcode, addresses, ttl=300),)
    return DNSQuery(0.0, 0.05, host, "ANY" if engine == "system" else "A", engine, resolver,
                    failure, responses)


def tcp(address: str = REAL, port: int = 443, failure: str | None = None) -> TCPConnect:
    return TCPConnect(0.1, 0.2, address, port, failure)


def tls(address: str = REAL, sni: str = HOST, failure: str | None = None,
        purpose: str = "target") -> TLSHandshake:
    ok = failure is None
    return TLSHandshake(0.2, 0.3, address, 443, sni, failure, purpose=purpose,
                        version="TLSv1.3" if ok else None,
                        cipher="TLS_AES_128_GCM_SHA256" if ok else None,
                        alpn="http/1.1" if ok else None, peer_certificates=CHAIN,
                        cert_verified=ok)


def http(url: str = HTTPS.url, address: str = REAL, port: int = 443, status: int | None = 200,
         body: bytes = PAGE, failure: str | None = None, location: str | None = None,
         goodput: float | None = None, body_length: int | None = None) -> HTTPRequest:
    headers = HTML + ((("Location", location),) if location else ())
    return HTTPRequest(
        0.3, 0.6, url, address, port, failure,
        request_headers=(("Host", url.split("/")[2]), ("Accept", "*/*")),
        status=status, headers=headers if status else (),
        title=extract_title(body, HTML[0][1]) if body else None, body=body,
        body_length=len(body) if body_length is None else body_length,
        body_truncated=body_length is not None and body_length > len(body),
        goodput=goodput, location=location)


def m(target: Target, *obs: Observation) -> Measurement:
    return Measurement(target, "2024-05-01T10:00:00.250000Z", 1.5, tuple(obs))


def healthy(target: Target = HTTPS, goodput: float | None = None) -> Measurement:
    steps: list[Observation] = [dns(target.hostname, REAL), tcp(port=target.port)]
    if target.uses_tls:
        steps.append(tls(sni=target.hostname))
    steps.append(http(target.url, port=target.port, goodput=goodput))
    return m(target, *steps)


def injected() -> Measurement:
    race = DNSQuery(0.0, 0.6, HOST, "A", "udp", "192.0.2.53:53", None, (
        DNSResponse(0.01, "NOERROR", ("10.10.34.36",)), DNSResponse(0.05, "NOERROR", (REAL,))))
    return m(HTTPS, race, dns(HOST, REAL), tcp(), tls(), http())


def sni_filtered() -> Measurement:
    return m(HTTPS, dns(HOST, REAL), tcp(), tls(failure=failures.CONNECTION_RESET), tcp(),
             tls(sni="example.com", purpose="harmless_sni",
                 failure=failures.SSL_INVALID_HOSTNAME))


SHORT = Target("http://short.example/x")
HOP1: list[Observation] = [dns("short.example", "104.16.0.10"), tcp("104.16.0.10", 80),
        http(SHORT.url, "104.16.0.10", 80, status=301, body=b"", location=HTTPS.url)]
CHAIN_CONTROL = m(SHORT, dns("short.example", "104.16.0.10"), tcp("104.16.0.10", 80),
                  http(SHORT.url, "104.16.0.10", 80))
SLOW = b"x" * 100_000

# name -> (probe, control, context, (expected verdict, *expected outcomes))
CASES: dict[str, tuple[Measurement, Measurement | None, Context, tuple[str, ...]]] = {
    "dns injection": (injected(), healthy(), Context(), ("blocked", "dns.injected", "dns.bogon")),
    "dns injection, no control": (injected(), None, Context(), ("blocked", "dns.injected")),
    "dns bogon": (m(HTTPS, dns(HOST, "127.0.0.1"),
                    tcp("127.0.0.1", failure=failures.CONNECTION_REFUSED)),
                  healthy(), Context(), ("blocked", "dns.bogon")),
    "dns nxdomain": (m(HTTPS, dns(HOST, failure=failures.DNS_NXDOMAIN)), healthy(), Context(),
                     ("blocked", "dns.nxdomain")),
    "sni filtering": (sni_filtered(), None, Context(), ("blocked", "tls.sni_filtered")),
    "sni filtering with control": (sni_filtered(), healthy(), Context(),
                                   ("blocked", "tls.sni_filtered")),
    "tls mitm": (m(HTTPS, dns(HOST, REAL), tcp(), tls(failure=failures.SSL_UNKNOWN_AUTHORITY)),
                 healthy(), Context(), ("blocked", "tls.mitm")),
    "tcp reset": (m(HTTPS, dns(HOST, REAL, REAL6), tcp(failure=failures.CONNECTION_RESET),
                    tcp(REAL6, failure=failures.CONNECTION_RESET)),
                  healthy(), Context(), ("blocked", "tcp.reset")),
    "http blockpage": (m(HTTP, dns(HOST, REAL), tcp(port=80),
                         http(HTTP.url, port=80, body=BLOCKPAGE)),
                       healthy(HTTP), FINGERPRINTS, ("blocked", "http.blockpage:test.nat_mx",
                                                     "http.diff")),
    "http reset": (m(HTTP, dns(HOST, REAL), tcp(port=80),
                     http(HTTP.url, port=80, status=None, body=b"",
                          failure=failures.CONNECTION_RESET)),
                   healthy(HTTP), Context(), ("blocked", "http.reset")),
    "redirect, then refused": (m(SHORT, *HOP1, dns(HOST, REAL),
                                 tcp(failure=failures.CONNECTION_REFUSED)),
                               CHAIN_CONTROL, Context(), ("blocked", "tcp.refused")),
    "redirect, then ok": (m(SHORT, *HOP1, dns(HOST, REAL, REAL6), tcp(), tls(), http()),
                          CHAIN_CONTROL, Context(), ("ok",)),
    "throttled": (m(HTTPS, dns(HOST, REAL), tcp(), tls(),
                    http(body=SLOW, body_length=500_000, goodput=8_000)),
                  healthy(goodput=400_000), Context(reference_goodput=500_000),
                  ("blocked", "throttle.goodput")),
    "ok over https": (healthy(), healthy(), Context(), ("ok",)),
    "down": (m(HTTPS, dns(HOST, failure=failures.DNS_NXDOMAIN)),
             m(HTTPS, dns(HOST, failure=failures.DNS_NXDOMAIN)), Context(), ("down",)),
    "insufficient": (m(HTTP, dns(HOST, REAL), tcp(port=80), http(HTTP.url, port=80)), None,
                     Context(), ("insufficient",)),
}


@pytest.mark.parametrize("name", CASES)
def test_round_trip_of_our_measurements_keeps_the_verdict(name: str):
    probe, control, ctx, expected = CASES[name]
    before, after, _ = round_trip(probe, control, ctx)
    assert (before.verdict, *before.outcomes) == expected  # the case tests what it is named
    assert key(after) == key(before)


def test_injection_is_a_duplicate_response_of_one_query():
    data = to_ooni(injected())
    tk = data["test_keys"]
    udp = [q for q in tk["queries"] if q["engine"] == "udp"]
    assert len(udp) == 1 and udp[0]["answers"] == [
        {"answer_type": "A", "ipv4": "10.10.34.36", "ttl": None}]
    (late,) = tk["x_dns_duplicate_responses"]
    assert late["transaction_id"] == udp[0]["transaction_id"]
    assert late["answers"][0]["ipv4"] == REAL and late["t"] == 0.05
    back = [q for q in trip(data).measurement.of(DNSQuery) if q.engine == "udp"]
    assert len(back) == 1 and back[0].injected
    assert [r.addresses for r in back[0].responses] == [("10.10.34.36",), (REAL,)]


def test_the_harmless_sni_handshake_keeps_its_purpose():
    data = to_ooni(sni_filtered())
    shakes = data["test_keys"]["tls_handshakes"]
    assert [h["x_netvigil_purpose"] for h in shakes] == ["target", "harmless_sni"]
    assert [h["server_name"] for h in shakes] == [HOST, "example.com"]
    back = trip(data).measurement.of(TLSHandshake)
    assert [h.purpose for h in back] == ["target", "harmless_sni"]
    # Without the key, a reader sees two handshakes with the target and loses the proof.
    for h in shakes:
        del h["x_netvigil_purpose"]
    plain = trip(data)
    assert classify(plain.measurement, None).verdict != "blocked"


def test_certificates_and_tls_fields():
    probe = m(HTTPS, dns(HOST, REAL6), tcp(REAL6), tls(REAL6), http(address=REAL6))
    (shake,) = to_ooni(probe)["test_keys"]["tls_handshakes"]
    assert shake["address"] == f"[{REAL6}]:443"
    assert shake["peer_certificates"][0]["format"] == "base64"
    assert (shake["tls_version"], shake["cipher_suite"], shake["negotiated_protocol"]) == (
        "TLSv1.3", "TLS_AES_128_GCM_SHA256", "http/1.1")
    assert shake["no_tls_verify"] is False and shake["failure"] is None
    (back,) = trip(to_ooni(probe)).measurement.of(TLSHandshake)
    assert back == probe.of(TLSHandshake)[0]
    unverified = TLSHandshake(0.2, 0.3, REAL, 443, HOST, None, peer_certificates=CHAIN)
    data = to_ooni(m(HTTPS, unverified))
    assert data["test_keys"]["tls_handshakes"][0]["no_tls_verify"] is True
    assert trip(data).measurement.of(TLSHandshake)[0].cert_verified is False


def test_requests_are_newest_first_and_bodies_keep_their_bytes():
    probe = m(SHORT, *HOP1, dns(HOST, REAL), tcp(), tls(), http(body=BLOCKPAGE))
    requests = to_ooni(probe)["test_keys"]["requests"]
    assert [r["request"]["url"] for r in requests] == [HTTPS.url, SHORT.url]
    assert [r["tags"][0] for r in requests] == ["depth=1", "depth=0"]
    assert requests[0]["response"]["body"]["format"] == "base64"  # not valid UTF-8
    assert requests[1]["response"]["code"] == 301 and requests[1]["response"]["body"] == ""
    assert requests[0]["response"]["headers"]["Content-Type"].startswith("text/html")
    hops = trip(to_ooni(probe)).measurement.of(HTTPRequest)
    assert [h.url for h in hops] == [SHORT.url, HTTPS.url]
    assert hops[1].body == BLOCKPAGE and hops[0].location == HTTPS.url
    assert hops[1].title == "Blocked"


def test_a_capped_body_keeps_its_full_length_and_goodput():
    hop = http(body=SLOW, body_length=500_000, goodput=8_000.5)
    (entry,) = to_ooni(m(HTTPS, hop))["test_keys"]["requests"]
    assert entry["response"]["body_is_truncated"] is True
    (back,) = trip(to_ooni(m(HTTPS, hop))).measurement.of(HTTPRequest)
    assert (back.body_length, back.goodput, back.body_truncated) == (500_000, 8_000.5, True)


def test_control_in_the_test_helpers_format():
    control = m(HTTPS, dns(HOST, REAL, REAL6), dns("cdn.other.example", "198.51.100.7"),
                tcp(), tcp(REAL6, failure=failures.CONNECTION_REFUSED), tls(),
                http(goodput=1234.5))
    data = to_ooni(healthy(), control)["test_keys"]
    assert data["control_failure"] is None
    assert data["control"]["dns"] == {"addrs": [REAL, REAL6], "failure": None}
    assert data["control"]["tcp_connect"] == {
        f"{REAL}:443": {"status": True, "failure": None},
        f"[{REAL6}]:443": {"status": False, "failure": failures.CONNECTION_REFUSED},
    }
    assert data["control"]["tls_handshake"] == {
        f"{REAL}:443": {"server_name": HOST, "status": True, "failure": None}}
    http_request = data["control"]["http_request"]
    assert (http_request["status_code"], http_request["body_length"], http_request["title"]) == (
        200, len(PAGE), "The real site")
    nx = to_ooni(healthy(), m(HTTPS, dns(HOST, failure=failures.DNS_NXDOMAIN)))["test_keys"]
    assert nx["control"]["dns"] == {"addrs": [], "failure": failures.DNS_NXDOMAIN}
    assert nx["control"]["http_request"] is None
    none = to_ooni(healthy())["test_keys"]
    assert none["control"] is None and none["control_failure"].startswith("unknown_failure")
    assert trip(to_ooni(healthy())).control is None


def test_idn_target_control_dns_is_found_under_its_punycode_name():
    target = Target("http://яндекс.рф/")
    control = m(target, dns("xn--d1acpjx3f.xn--p1ai", REAL), tcp(port=80),
                http(target.url, port=80))
    assert to_ooni(m(target), control)["test_keys"]["control"]["dns"]["addrs"] == [REAL]


def test_base_fields_and_vantage():
    run = RunInfo(run_id=7, started="2024-05-01T09:59:58.900000Z", network="ok",
                  vantage={"tool": "ooni", "asn": "AS137", "country": "it",
                           "network_name": "Consortium GARR"})
    data = to_ooni(healthy(), healthy(), classify(healthy(), healthy()).to_dict(), run, 42)
    assert all(name in data for name in BASE_FIELDS)
    assert (data["probe_ip"], data["probe_asn"], data["probe_cc"]) == ("127.0.0.1", "AS137", "IT")
    assert data["probe_network_name"] == "Consortium GARR"
    assert (data["measurement_start_time"], data["test_start_time"]) == (
        "2024-05-01 10:00:00", "2024-05-01 09:59:58")
    assert (data["test_name"], data["test_version"], data["data_format_version"]) == (
        "web_connectivity", "0.5.28", "0.2.0")
    assert data["input"] == HTTPS.url and data["test_runtime"] == 1.5
    assert data["software_name"] == "netvigil" and data["report_id"] == ""
    notes = data["annotations"]
    assert notes["engine_name"] == "netvigil"
    assert (notes["netvigil_run_id"], notes["netvigil_measurement_id"]) == ("7", "42")
    assert notes["netvigil_category"] == "NEWS"
    assert all(isinstance(v, str) for v in notes.values())
    unknown = to_ooni(healthy())
    assert (unknown["probe_asn"], unknown["probe_cc"], unknown["probe_network_name"]) == (
        "AS0", "ZZ", None)
    assert OONI_TIME.match(unknown["test_start_time"])
    assert ooni_time("2024-05-01T12:00:00.999+02:00") == "2024-05-01 10:00:00"


@pytest.mark.parametrize(("verdict", "blocking", "accessible", "flags"), [
    ({"verdict": "ok"}, False, True, 32),
    ({"verdict": "down"}, False, False, 0),
    ({"verdict": "insufficient"}, None, None, 0),
    ({}, None, None, 0),
    ({"verdict": "blocked", "techniques": ["dns", "http"],
      "outcomes": ["dns.bogon", "http.diff"]}, "dns", False, 17),
    ({"verdict": "blocked", "techniques": ["tcp"], "outcomes": ["tcp.reset"]}, "tcp_ip", False, 2),
    ({"verdict": "blocked", "techniques": ["tls"], "outcomes": ["tls.reset"]},
     "http-failure", False, 4),
    ({"verdict": "blocked", "techniques": ["http"], "outcomes": ["http.blockpage:x"]},
     "http-diff", False, 16),
    ({"verdict": "blocked", "techniques": ["http"], "outcomes": ["http.reset"]},
     "http-failure", False, 8),
    ({"verdict": "blocked", "techniques": ["throttle"], "outcomes": ["throttle.goodput"]},
     "http-failure", False, 8),
])
def test_blocking_and_accessible_follow_ooni_vocabulary(
    verdict: dict[str, Any], blocking: Any, accessible: Any, flags: int
):
    keys = verdict_keys(verdict)
    assert (keys["blocking"], keys["accessible"], keys["x_blocking_flags"]) == (
        blocking, accessible, flags)
    if verdict:
        assert keys["x_netvigil_verdict"]["verdict"] == verdict["verdict"]
    else:
        assert keys["x_netvigil_verdict"] is None


# --- 3. through the store -------------------------------------------------------------------


def test_export_from_the_store(tmp_path: Path):
    names = ["dns injection", "sni filtering with control", "http blockpage", "tcp reset",
             "redirect, then refused", "insufficient"]
    ctx = FINGERPRINTS
    expected = []
    with Store(tmp_path / "nv.db") as store:
        run_id = store.begin_run({"tool": "netvigil", "version": "0.1.0"}, {})
        for name in names:
            probe, control, _, _ = CASES[name]
            verdict = classify(probe, control, ctx)
            mid = store.add_measurement(run_id, probe, verdict.to_dict())
            if control is not None:
                store.add_control(run_id, mid, control)
            expected.append(key(verdict))
        store.finish_run(run_id, "ok", {})
        other = store.begin_run({"tool": "ooni", "asn": "AS30722", "country": "IT"}, {})
        store.add_measurement(other, healthy())  # not judged: verdict keys are null
        out = io.StringIO()
        assert export_ooni(store, out) == len(names) + 1
        only = io.StringIO()
        assert export_ooni(store, only, run_id=other) == 1
    lines = out.getvalue().splitlines()
    assert len(lines) == len(names) + 1
    rows = [json.loads(line) for line in lines]
    for row in rows:
        assert all(name in row for name in BASE_FIELDS)
        assert row["probe_ip"] == "127.0.0.1"
        assert OONI_TIME.match(row["measurement_start_time"])
    for row, want in zip(rows, expected, strict=False):
        back = parse_ooni(row)
        assert key(classify(back.measurement, back.control, ctx)) == want
        assert row["test_keys"]["x_netvigil_verdict"]["verdict"] == want[0]
        assert row["annotations"]["netvigil_run_network"] == "ok"
    assert rows[-1]["test_keys"]["x_netvigil_verdict"] is None
    assert rows[-1]["test_keys"]["control_failure"] is not None  # no control was stored
    (single,) = [json.loads(line) for line in only.getvalue().splitlines()]
    assert (single["probe_asn"], single["probe_cc"]) == ("AS30722", "IT")
