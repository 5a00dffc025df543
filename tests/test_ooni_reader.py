"""The OONI reader: real measurements from four eras of the format, the mapping to our
observations and control, and robustness against malformed input (an error per item, never a
crash)."""

from __future__ import annotations

import base64
import gzip
import json
from pathlib import Path
from typing import Any

import pytest

from analysis.classify import classify
from analysis.context import Context
from core import failures
from core.errors import OONIFormatError
from core.observations import DNSQuery, HTTPRequest, TCPConnect, TLSHandshake
from ooni.fields import iso_utc, ooni_time
from ooni.fingerprints import load_fingerprints
from ooni.read import OONIMeasurement, parse_ooni
from ooni.read_file import read_ooni_file

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
OONI = CORPUS / "ooni"
REAL = sorted(OONI.glob("real_*.json")) + sorted(OONI.glob("netem_*.json"))


def _fingerprints() -> Context:
    fps = CORPUS / "fingerprints"
    return Context(fingerprints=load_fingerprints(
        fps / "fingerprints_http.csv", fps / "fingerprints_dns.csv"))


def _one(path: Path) -> OONIMeasurement:
    items = list(read_ooni_file(path))
    assert len(items) == 1
    assert isinstance(items[0], OONIMeasurement), items[0]
    return items[0]


# --- the real files -------------------------------------------------------------------------


@pytest.mark.parametrize("path", REAL, ids=lambda p: p.name[:40])
def test_every_real_file_reads_and_classifies(path: Path):
    item = _one(path)
    raw = json.loads(path.read_text("utf-8"))
    assert item.meta["test_name"] == raw["test_name"]
    assert item.meta["probe_cc"] == raw["probe_cc"]
    assert "probe_ip" not in item.meta
    assert item.measurement.started.endswith("Z") and "T" in item.measurement.started
    verdict = classify(item.measurement, item.control, _fingerprints())
    assert verdict.reason


@pytest.mark.parametrize("name", ["real_web_connectivity_ir_fp.json", "real_bug_352.json"])
def test_iranian_dns_answer_is_blocked_and_confirmed_by_the_fingerprint(name: str):
    item = _one(OONI / name)
    verdict = classify(item.measurement, item.control, _fingerprints())
    assert (verdict.verdict, verdict.techniques, verdict.outcomes) == (
        "blocked", ("dns",), ("dns.bogon",))
    assert verdict.confirmed
    assert "10.10.34.36" in verdict.reason and "ooni.ir_10dot10_ipv4_1" in verdict.reason
    # Without the fingerprint list the bogon is still blocking, but no longer proof.
    plain = classify(item.measurement, item.control, Context())
    assert (plain.verdict, plain.techniques) == ("blocked", ("dns",))
    assert not plain.confirmed and plain.confidence < verdict.confidence


def test_turkmen_measurement_with_a_failed_control_is_insufficient():
    item = _one(OONI / "real_web_connectivity_null.json")
    assert item.control is None  # control_failure = connection_refused
    verdict = classify(item.measurement, item.control, _fingerprints())
    assert verdict.verdict == "insufficient"
    assert "control" in verdict.reason


def test_signal_test_is_read_but_not_counted_as_blocked():
    item = _one(OONI / "real_signal_2627.json")
    assert item.meta["test_name"] == "signal" and item.control is None
    assert item.measurement.target.platform == "signal"
    assert len(item.measurement.of(TLSHandshake)) == 6
    verdict = classify(item.measurement, item.control, _fingerprints())
    # The probe said "blocked" because Signal's pinned CA changed: a certificate failure without
    # a control is no evidence of censorship.
    assert verdict.verdict != "blocked"


def test_legacy_measurement_kit_file():
    item = _one(OONI / "real_bug_352.json")
    (query,) = item.measurement.of(DNSQuery)
    assert (query.engine, query.addresses, query.responses[0].cnames) == (
        "system", ("10.10.34.36",), ("fa.wikipedia.org",))
    (request,) = item.measurement.of(HTTPRequest)
    assert request.failure == "unknown_failure: connect_error" and request.status is None
    assert item.control is not None
    control_dns = item.control.of(DNSQuery)[0]
    assert control_dns.addresses == ("91.198.174.192",)  # the CNAME is not an address


def test_binary_location_header_is_decoded():
    item = _one(OONI / "real_web_connectivity_b64_hdr.json")
    (hop,) = item.measurement.of(HTTPRequest)
    assert hop.status == 307 and hop.failure == failures.HTTP_INVALID_REDIRECT
    assert hop.header("Location", ).startswith("http://192.168.22.1/UserCheck/PortalMain?IID=")


def test_redirect_chain_is_chronological():
    item = _one(OONI / "real_20250527233111.802678_ID_webconnectivity_5a37ec909dbf14e3.json")
    first, second = item.measurement.of(HTTPRequest)
    assert first.url == "http://archive.org" and first.location == "http://lamanlabuh.aduankonten.id/"
    assert second.url == "http://lamanlabuh.aduankonten.id/" and second.status == 200
    verdict = classify(item.measurement, item.control, _fingerprints())
    assert "http.blockpage:ooni.id_lamanlabuh_kominfo" in verdict.outcomes and verdict.confirmed


# --- the mapping, on a synthetic measurement ------------------------------------------------


def _measurement(**test_keys: Any) -> dict[str, Any]:
    keys: dict[str, Any] = {
        "queries": [{
            "engine": "getaddrinfo", "hostname": "blocked.example", "query_type": "ANY",
            "failure": None, "resolver_address": "", "t": 0.1,
            "answers": [{"answer_type": "A", "ipv4": "198.51.100.7", "ttl": 60},
                        {"answer_type": "AAAA", "ipv6": "2001:db8::7"},
                        {"answer_type": "CNAME", "hostname": "edge.example"}],
        }],
        "tcp_connect": [
            {"ip": "198.51.100.7", "port": 80, "status": {"success": True, "failure": None}},
            {"ip": "2001:db8::7", "port": 80,
             "status": {"success": False, "failure": "connection_refused_error"}},
        ],
        "tls_handshakes": [{
            "address": "198.51.100.7:443", "server_name": "blocked.example", "failure": None,
            "no_tls_verify": False, "tls_version": "TLSv1.3",
            "peer_certificates": [{"format": "base64", "data": base64.b64encode(b"DER").decode()}],
        }],
        "requests": [
            {"address": "198.51.100.7:80", "failure": None, "tags": ["depth=1"],
             "request": {"url": "http://blocked.example/next", "method": "GET",
                         "headers": {"Host": "blocked.example"}},
             "response": {"code": 200,
                          "body": {"format": "base64",
                                   "data": base64.b64encode(
                                       b"<html><title>Hi 203.0.113.9</title>\xff</html>").decode()},
                          "headers_list": [["Content-Type", "text/html"],
                                           ["X-Seen", {"format": "base64", "data": "AAE="}]]}},
            {"address": "198.51.100.7:80", "failure": None, "tags": ["depth=0"],
             "request": {"url": "http://blocked.example/"},
             "response": {"code": 302, "body": "",
                          "headers": {"Location": "/next", "Set-Cookie": ["a=1", "b=2"]}}},
        ],
        "control": {
            "dns": {"addrs": ["edge.example", "198.51.100.7"], "failure": None},
            "tcp_connect": {"198.51.100.7:80": {"status": True, "failure": None},
                            "[2001:db8::7]:80": {"status": False,
                                                 "failure": "connection_refused_error"}},
            "tls_handshake": {"198.51.100.7:443": {"server_name": "blocked.example",
                                                   "status": True, "failure": None}},
            "http_request": {"status_code": 200, "body_length": 40, "title": " Hi ",
                             "headers": {"Content-Type": "text/html"}, "failure": None},
        },
        "control_failure": None,
        "blocking": False,
        "accessible": True,
    }
    keys.update(test_keys)
    return {
        "input": "http://blocked.example/", "test_name": "web_connectivity",
        "test_version": "0.4.3", "measurement_start_time": "2024-02-12 20:33:47",
        "probe_asn": "AS64496", "probe_cc": "ZZ", "probe_network_name": "Test Net",
        "probe_ip": "203.0.113.9", "report_id": "r1", "test_runtime": 1.5, "test_keys": keys,
    }


def test_mapping_of_every_section():
    item = parse_ooni(_measurement())
    m = item.measurement
    assert m.target.url == "http://blocked.example/"
    assert m.started == "2024-02-12T20:33:47.000000Z" and m.runtime == 1.5
    (query,) = m.of(DNSQuery)
    assert (query.engine, query.resolver, query.t) == ("system", "", 0.1)
    assert query.addresses == ("198.51.100.7", "2001:db8::7")
    assert query.responses[0].cnames == ("edge.example",) and query.responses[0].ttl == 60
    ok, refused = m.of(TCPConnect)
    assert (ok.failure, refused.failure, refused.address) == (
        None, failures.CONNECTION_REFUSED, "2001:db8::7")
    (tls,) = m.of(TLSHandshake)
    assert (tls.address, tls.port, tls.cert_verified) == ("198.51.100.7", 443, True)
    assert tls.peer_certificates == (b"DER",)
    first, second = m.of(HTTPRequest)
    assert first.status == 302 and first.location == "http://blocked.example/next"
    assert first.header("set-cookie") == "a=1"
    assert second.url == "http://blocked.example/next" and second.port == 80
    assert second.body.startswith(b"<html><title>Hi [scrubbed]</title>")
    assert second.title == "Hi [scrubbed]"
    assert second.header("X-Seen") == "\x00\x01"
    assert second.body_length == len(second.body) and second.body_sha256


def test_meta_keeps_ooni_verdict_and_drops_the_probe_ip():
    item = parse_ooni(_measurement())
    assert item.meta == {
        "input": "http://blocked.example/", "test_name": "web_connectivity",
        "test_version": "0.4.3", "probe_asn": "AS64496", "probe_cc": "ZZ",
        "probe_network_name": "Test Net", "measurement_start_time": "2024-02-12 20:33:47",
        "report_id": "r1", "ooni_blocking": False, "ooni_accessible": True,
    }
    assert "203.0.113.9" not in repr(item)
    assert item.vantage() == {"asn": "AS64496", "country": "ZZ", "network_name": "Test Net"}
    assert item.test() == {"test_name": "web_connectivity", "test_version": "0.4.3"}


def test_control_mapping():
    control = parse_ooni(_measurement()).control
    assert control is not None
    (dns,) = control.of(DNSQuery)
    assert dns.hostname == "blocked.example" and dns.addresses == ("198.51.100.7",)
    tcp = {(c.address, c.port): c.failure for c in control.of(TCPConnect)}
    assert tcp == {("198.51.100.7", 80): None, ("2001:db8::7", 80): failures.CONNECTION_REFUSED}
    (tls,) = control.of(TLSHandshake)
    assert tls.cert_verified and tls.sni == "blocked.example"
    (http,) = control.of(HTTPRequest)
    assert (http.status, http.body_length, http.title) == (200, 40, "Hi")


def test_failed_or_missing_control_is_no_control():
    assert parse_ooni(_measurement(control_failure="connection_reset")).control is None
    assert parse_ooni(_measurement(control={})).control is None
    assert parse_ooni(_measurement(control=None)).control is None
    failed = parse_ooni(_measurement(control={"http_request": {
        "status_code": -1, "body_length": -1, "failure": "unknown_error"}})).control
    assert failed is not None
    (http,) = failed.of(HTTPRequest)
    assert http.status is None and http.failure == "unknown_failure: unknown_error"


@pytest.mark.parametrize(("ooni", "ours"), [
    ("connection_refused_error", failures.CONNECTION_REFUSED),
    ("dns_name_error", failures.DNS_NXDOMAIN),
    ("android_dns_cache_no_data", failures.DNS_NXDOMAIN),
    ("ssl_unknown_autority", failures.SSL_UNKNOWN_AUTHORITY),
    ("tcp_timed_out_error", failures.GENERIC_TIMEOUT),
    ("generic_timeout_error", failures.GENERIC_TIMEOUT),
    ("connect_error", "unknown_failure: connect_error"),
    ("unknown_failure: read 10.1.2.3:443: weird", "unknown_failure: read [scrubbed]:443: weird"),
])
def test_failure_strings_map_to_our_vocabulary(ooni: str, ours: str):
    data = _measurement(tcp_connect=[
        {"ip": "198.51.100.7", "port": 80, "status": {"success": False, "failure": ooni}}])
    (tcp,) = parse_ooni(data).measurement.of(TCPConnect)
    assert tcp.failure == ours


@pytest.mark.parametrize(("ooni", "stored"), [
    ("2024-02-12 20:33:47", "2024-02-12T20:33:47.000000Z"),
    ("2024-02-12T20:33:47Z", "2024-02-12T20:33:47.000000Z"),
    (" 2024-02-12 20:33:47.5 ", "2024-02-12T20:33:47.500000Z"),
])
def test_ooni_times_read_into_the_store_format_and_back(ooni: str, stored: str):
    assert iso_utc(ooni) == stored
    assert ooni_time(stored) == ooni.strip()[:19].replace("T", " ")


@pytest.mark.parametrize("bad", ["2024-02-30 20:33:47", "2024-02-12", "2024-02-12 20:33:47+02:00",
                                 "12/02/2024 20:33", "", None, 1707770027])
def test_a_time_that_is_not_oonis_utc_form_is_a_format_error(bad: Any):
    with pytest.raises(OONIFormatError, match="measurement_start_time"):
        iso_utc(bad)


def test_requests_without_depth_tags_are_listed_last_first():
    data = _measurement()
    for r in data["test_keys"]["requests"]:  # listed as OONI writes them: the last hop first
        del r["tags"]
    first, second = parse_ooni(data).measurement.of(HTTPRequest)
    assert first.status == 302 and second.status == 200


def test_a_second_dns_answer_is_injection():
    spoofed = {"engine": "udp", "hostname": "blocked.example", "query_type": "A",
               "resolver_address": "192.0.2.53:53", "failure": None,
               "answers": [{"answer_type": "A", "ipv4": "10.10.34.36"}]}
    real = dict(spoofed, answers=[{"answer_type": "A", "ipv4": "198.51.100.7"}])
    item = parse_ooni(_measurement(queries=[spoofed], x_dns_duplicate_responses=[real]))
    (query,) = item.measurement.of(DNSQuery)
    assert query.injected and query.resolver == "192.0.2.53:53"
    verdict = classify(item.measurement, item.control)
    assert "dns.injected" in verdict.outcomes and verdict.confirmed


# --- malformed input ------------------------------------------------------------------------


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.update(test_keys=None), "test_keys"),
    (lambda d: d.pop("measurement_start_time"), "measurement_start_time"),
    (lambda d: d.update(measurement_start_time="yesterday"), "measurement_start_time"),
    (lambda d: d.pop("test_name"), "test_name"),
    (lambda d: d["test_keys"].update(queries={"not": "a list"}), "queries"),
    (lambda d: d["test_keys"]["tcp_connect"][0].update(port="80"), "tcp_connect"),
    (lambda d: d["test_keys"]["requests"][0]["response"].update(
        body={"format": "hex", "data": "00"}), "binary"),
    (lambda d: d["test_keys"]["requests"][0]["response"].update(
        headers_list=[["only-a-name"]]), "headers_list"),
    (lambda d: d["test_keys"]["requests"][0].update(request={"url": 5}), "url"),
    (lambda d: d["test_keys"]["queries"][0].update(failure=7), "failure"),
])
def test_malformed_measurements_raise_a_one_line_format_error(change: Any, message: str):
    data = _measurement()
    change(data)
    with pytest.raises(OONIFormatError) as caught:
        parse_ooni(data)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, (*prefix, i))
    return out


def test_any_field_replaced_by_any_type_is_an_error_or_a_verdict_never_a_crash():
    text = (OONI / "wc05_qa" / "redirectWithConsistentDNSAndThenEOFForHTTP.json").read_text()
    original = json.loads(text)
    ctx = _fingerprints()
    outcomes = {"read": 0, "error": 0}
    for path in _paths(original):
        for junk in (None, 7, "x", [], {}, [1, "a"], {"format": "base64", "data": "%%"}):
            data = json.loads(text)
            holder = data
            for key in path[:-1]:
                holder = holder[key]
            holder[path[-1]] = junk
            try:
                item = parse_ooni(data)
            except OONIFormatError:
                outcomes["error"] += 1
                continue
            outcomes["read"] += 1
            classify(item.measurement, item.control, ctx)
    assert outcomes["read"] > 100 and outcomes["error"] > 100


def test_files_yield_one_result_per_item_and_never_raise(tmp_path: Path):
    good = json.dumps(_measurement())
    null_keys = json.dumps(dict(_measurement(), test_keys=None))
    lines = [good, good[: len(good) // 2], null_keys, "", "[1, 2]"]
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    gz = tmp_path / "m.jsonl.gz"
    gz.write_bytes(gzip.compress(jsonl.read_bytes()))
    for path in (jsonl, gz):
        items = list(read_ooni_file(path))
        kinds = [type(i).__name__ for i in items]
        assert kinds == ["OONIMeasurement", "OONIFormatError", "OONIFormatError",
                         "OONIFormatError"], path
        assert f"{path}:2" in str(items[1]) and f"{path}:3" in str(items[2])
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps([_measurement(), {"test_keys": None}]))
    assert [type(i).__name__ for i in read_ooni_file(listed)] == [
        "OONIMeasurement", "OONIFormatError"]
    truncated = tmp_path / "cut.json"
    truncated.write_text(good[:-10])
    (error,) = read_ooni_file(truncated)
    assert isinstance(error, OONIFormatError) and "not valid JSON" in str(error)
    cut_gzip = tmp_path / "cut.jsonl.gz"
    cut_gzip.write_bytes(gz.read_bytes()[:-20])
    items = list(read_ooni_file(cut_gzip))
    assert isinstance(items[0], OONIMeasurement) and isinstance(items[-1], OONIFormatError)
    (missing,) = read_ooni_file(tmp_path / "absent.json")
    assert isinstance(missing, OONIFormatError) and "cannot read" in str(missing)
