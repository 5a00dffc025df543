"""Fingerprint loading and matching (the indexed matcher must agree with a plain scan), address
helpers, and the run's reference goodput."""

from __future__ import annotations

import ipaddress
import random
import re
from functools import cache
from pathlib import Path

import pytest

from analysis.context import reference_goodput
from analysis.fingerprints import SCAN_LIMIT, Fingerprint, Fingerprints
from core.addresses import is_bogon, join_endpoint, norm_host, split_endpoint
from core.observations import HTTPRequest, Measurement
from core.target import Target
from ooni.fingerprints import load_fingerprints

FINGERPRINTS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "fingerprints"
HEADER = ("name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
          "expected_countries,source,exp_url,notes\n")


@cache
def _real() -> Fingerprints:
    return load_fingerprints(FINGERPRINTS / "fingerprints_http.csv",
                             FINGERPRINTS / "fingerprints_dns.csv")


def _plain_scan(fps: Fingerprints, body: bytes) -> set[str]:
    """The reference: every body pattern tested the obvious way."""
    head = body[:SCAN_LIMIT]
    found = set()
    for f in fps.http:
        if f.location != "body":
            continue
        p = f.pattern.encode()
        hit = {
            "full": body == p,
            "prefix": head.startswith(p),
            "contains": p in head,
        }.get(f.pattern_type)
        if hit is None:
            hit = re.search(p, head) is not None
        if hit:
            found.add(f.name)
    return found


def test_the_real_lists_load_completely():
    fps = _real()
    assert (len(fps.http), len(fps.dns)) == (1729, 226)
    ir = fps.match_dns("10.10.34.36")
    assert ir is not None and ir.name == "ooni.ir_10dot10_ipv4_1" and ir.proof
    assert ir.countries == ("IR",) and ir.strength == 1.0
    assert fps.match_dns("93.184.216.34") is None


def test_every_body_pattern_is_found_inside_other_text():
    fps = _real()
    rng = random.Random(7)
    filler = b"lorem ipsum <div class=x> dolor \xd0\xb4\xd0\xb0 sit amet; "
    for f in fps.http:
        if f.location != "body" or f.pattern_type != "contains":
            continue
        cut = rng.randrange(len(filler))
        body = filler[:cut] + f.pattern.encode() + filler[cut:]
        assert f.name in {g.name for g in fps.match_response(body)}, f.name


def test_the_index_agrees_with_a_plain_scan():
    fps = _real()
    rng = random.Random(11)
    bodies = [f.pattern.encode() for f in fps.http if f.location == "body"]
    pieces = [*bodies, b" ", b"<p>", b"blocked", b"\xe4\xbd\xa0", b"Access Denied", b"\n"]
    for _ in range(300):
        body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(1, 6)))
        got = {f.name for f in fps.match_response(body)}
        assert got == _plain_scan(fps, body), body[:80]


def test_headers_are_matched_by_name_case_insensitively():
    fps = _real()
    names = {f.name for f in fps.match_response(
        b"", (("LOCATION", "http://lamanlabuh.aduankonten.id/?u=x"), ("Server", "nginx")))}
    assert names == {"ooni.id_lamanlabuh_kominfo"}
    assert not fps.match_response(b"", (("X-Location", "http://lamanlabuh.aduankonten.id/"),))


def test_scopes():
    def fp(scope: str, confidence: int = 5) -> Fingerprint:
        return Fingerprint("n", scope, "body", "contains", "x", confidence)

    assert fp("nat").proof and fp("prod").proof and not fp("nat").false_positive
    assert fp("fp").false_positive and not fp("fp").proof
    assert not fp("vbw").proof and fp("vbw").strength == 0.5
    assert fp("isp", 5).strength == 0.9 and fp("isp", 10).strength == 1.0


def test_a_pattern_past_the_scan_limit_is_not_searched():
    fps = Fingerprints(http=[Fingerprint("t", "nat", "body", "contains", "by order of", 5)])
    assert fps.match_response(b"x" * 100 + b" by order of ")
    assert not fps.match_response(b"x" * SCAN_LIMIT + b" by order of ")


@pytest.mark.parametrize(("row", "message"), [
    ("a,nat,,body,sometimes,x,5,,,,\n", "unknown pattern_type"),
    ("a,nat,,body,regexp,(unclosed,5,,,,\n", "bad regexp"),
    ("a,nat,,body,contains,,5,,,,\n", "empty pattern"),
])
def test_loader_names_the_bad_line(tmp_path: Path, row: str, message: str):
    path = tmp_path / "f.csv"
    path.write_text(HEADER + "ok,nat,,body,contains,fine,5,,,,\n" + row)
    with pytest.raises(ValueError, match=f"f.csv:3: {message}"):
        load_fingerprints(path, None)
    other = tmp_path / "g.csv"
    other.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a blocking-fingerprints CSV"):
        load_fingerprints(None, other)


# --- addresses ------------------------------------------------------------------------------


def test_bogons():
    for address in ("10.10.34.36", "127.0.0.1", "192.168.1.1", "100.64.0.1", "169.254.1.1",
                    "0.0.0.0", "224.0.0.1", "198.18.0.1", "::1", "fd00::1", "::ffff:10.0.0.1"):
        assert is_bogon(address), address
    for address in ("93.184.216.34", "2a03:2880:f137:182:face:b00c:0:25de", "not-an-ip"):
        assert not is_bogon(address), address
    lab = (ipaddress.ip_network("198.18.0.0/15"),)
    assert not is_bogon("198.18.0.1", lab) and is_bogon("10.0.0.1", lab)


def test_endpoints_and_names():
    assert split_endpoint("1.2.3.4:443") == ("1.2.3.4", 443)
    assert split_endpoint("[2001:db8::1]:80") == ("2001:db8::1", 80)
    for bad in ("1.2.3.4", "host:443", "2001:db8::1:80", "1.2.3.4:99999", ""):
        assert split_endpoint(bad) is None, bad
    assert join_endpoint("1.2.3.4", 443) == "1.2.3.4:443"
    assert join_endpoint("2001:db8::1", 80) == "[2001:db8::1]:80"
    for address, port in (("1.2.3.4", 443), ("2001:db8::1", 80)):
        assert split_endpoint(join_endpoint(address, port)) == (address, port)
    punycode = "xn--d1acpjx3f.xn--p1ai"
    assert norm_host("Яндекс.рф.") == punycode == norm_host(punycode.upper())


# --- reference goodput ----------------------------------------------------------------------


def _transfer(goodput: float, size: int = 200_000, failure: str | None = None) -> Measurement:
    hop = HTTPRequest(0, 1, "https://a.example/", "93.184.216.34", 443, failure, status=200,
                      body_length=size, goodput=goodput)
    return Measurement(Target("https://a.example/"), "2024-05-01T10:00:00Z", 1.0, (hop,))


def test_reference_goodput_is_the_median_of_comparable_transfers():
    run = [_transfer(100_000), _transfer(300_000), _transfer(900_000),
           _transfer(5_000_000.0, size=500),  # too short to measure: ignored
           _transfer(5.0, failure="generic_timeout_error")]  # failed: ignored
    assert reference_goodput(run) == 300_000
    assert reference_goodput(run[:2]) is None  # too few to be a reference
