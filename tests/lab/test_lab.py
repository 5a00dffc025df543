"""The censorship lab: real censorship techniques in network namespaces, and the verdicts.

Each scenario applies one technique on the censor router, runs `netvigil run` in the client
namespace (with the test helper on the uncensored side as control) and asserts the exact verdict
of every target, including the clean ones that must stay `ok`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.lab.topology import BIG, BLOCKPAGE_MARKER, WEB2, Lab, missing_requirements

pytestmark = pytest.mark.lab

OK_HTTP = "http://ok.lab.test/"
OK_HTTPS = "https://ok.lab.test/"


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    reason = missing_requirements()
    if reason:
        pytest.skip(reason)
    with Lab() as built:
        yield built


@pytest.fixture()
def net(lab: Lab) -> Iterator[Lab]:
    lab.reset()
    try:
        yield lab
    finally:
        lab.reset()


def verdicts(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["target"]: m for m in result["measurements"]}


def assert_verdict(result: dict[str, Any], target: str, verdict: str,
                   techniques: tuple[str, ...] = (), outcome: str | None = None,
                   confirmed: bool | None = None) -> None:
    m = verdicts(result)[target]
    got = (m["verdict"], tuple(m["techniques"]))
    assert got == (verdict, techniques), f"{target}: {got} ({m['reason']}) outcomes={m['outcomes']}"
    if outcome is not None:
        assert outcome in m["outcomes"], f"{target}: {m['outcomes']}"
    if confirmed is not None:
        assert m["confirmed"] is confirmed, f"{target}: confirmed={m['confirmed']}"


def test_no_censorship_no_false_positive(net: Lab) -> None:
    targets = [OK_HTTP, OK_HTTPS, "https://sni.lab.test/", "http://web2.lab.test/",
               "https://web2.lab.test/", "http://nx.lab.test/"]
    result = net.run_probe(targets[:5])
    assert result["run"]["network"] == "ok" and result["run"]["control"] == "helper"
    for target in targets[:5]:
        assert_verdict(result, target, "ok")


def test_dns_nxdomain(net: Lab) -> None:
    result = net.run_probe(["http://nx.lab.test/", OK_HTTP])
    assert_verdict(result, "http://nx.lab.test/", "blocked", ("dns",), "dns.nxdomain")
    assert_verdict(result, OK_HTTP, "ok")


def test_dns_bogon(net: Lab) -> None:
    result = net.run_probe(["http://bogon.lab.test/", OK_HTTP])
    assert_verdict(result, "http://bogon.lab.test/", "blocked", ("dns",), "dns.bogon")
    assert_verdict(result, OK_HTTP, "ok")


def test_dns_on_path_injection(net: Lab) -> None:
    net.inject("inj.lab.test")
    result = net.run_probe(["http://inj.lab.test/", OK_HTTP])
    assert_verdict(result, "http://inj.lab.test/", "blocked", ("dns",), "dns.injected",
                   confirmed=True)
    assert_verdict(result, OK_HTTP, "ok")


def test_tcp_reset_by_ip(net: Lab) -> None:
    net.censor(["-A", "FORWARD", "-d", WEB2, "-p", "tcp", "-j", "REJECT", "--reject-with",
                "tcp-reset"])
    result = net.run_probe(["http://web2.lab.test/", OK_HTTP])
    # A RST in answer to the SYN reaches the client as ECONNREFUSED: the probe reports what it
    # saw (refused), and the control, which connected, shows it was not the server refusing.
    assert_verdict(result, "http://web2.lab.test/", "blocked", ("tcp",), "tcp.refused")


def test_tcp_reset_after_the_handshake(net: Lab) -> None:
    # Resets injected into an established connection (the request), as many censors do.
    net.censor(["-A", "FORWARD", "-d", WEB2, "-p", "tcp", "!", "--syn", "-m", "string",
                "--string", "GET", "--algo", "bm", "-j", "REJECT", "--reject-with", "tcp-reset"])
    result = net.run_probe(["http://web2.lab.test/", OK_HTTP])
    assert_verdict(result, "http://web2.lab.test/", "blocked", ("http",), "http.reset")
    assert_verdict(result, OK_HTTP, "ok")


def test_tcp_drop_by_ip(net: Lab) -> None:
    net.censor(["-A", "FORWARD", "-d", WEB2, "-p", "tcp", "-j", "DROP"])
    result = net.run_probe(["http://web2.lab.test/", OK_HTTP])
    assert_verdict(result, "http://web2.lab.test/", "blocked", ("tcp",), "tcp.timeout")
    assert_verdict(result, OK_HTTP, "ok")


def _sni_rule(action: list[str]) -> list[str]:
    return ["-A", "FORWARD", "-p", "tcp", "--dport", "443", "-m", "string", "--string",
            "sni.lab.test", "--algo", "bm", "-j", *action]


def test_tls_reset_by_sni(net: Lab) -> None:
    net.censor(_sni_rule(["REJECT", "--reject-with", "tcp-reset"]))
    result = net.run_probe(["https://sni.lab.test/", OK_HTTPS])
    assert_verdict(result, "https://sni.lab.test/", "blocked", ("tls",), "tls.sni_filtered",
                   confirmed=True)
    assert_verdict(result, OK_HTTPS, "ok")  # same address, other name: not blocked


def test_tls_drop_by_sni(net: Lab) -> None:
    net.censor(_sni_rule(["DROP"]))
    result = net.run_probe(["https://sni.lab.test/", OK_HTTPS])
    assert_verdict(result, "https://sni.lab.test/", "blocked", ("tls",), "tls.sni_filtered",
                   confirmed=True)
    assert_verdict(result, OK_HTTPS, "ok")


def test_http_blockpage_by_transparent_proxy(net: Lab) -> None:
    net.censor(["-t", "nat", "-A", "PREROUTING", "-i", "nvr0", "-p", "tcp", "-d", WEB2,
                "--dport", "80", "-j", "REDIRECT", "--to-ports", "8080"])
    fingerprints = net.tmp / "fingerprints.csv"
    fingerprints.write_text(
        "name,scope,other_names,location_found,pattern_type,pattern,confidence_no_fp,"
        "expected_countries,source,exp_url,notes\n"
        f"lab_blockpage,nat,,body,contains,{BLOCKPAGE_MARKER},10,,,,\n"
    )
    result = net.run_probe(["http://web2.lab.test/", "https://web2.lab.test/"],
                           "--fingerprints", str(fingerprints))
    assert_verdict(result, "http://web2.lab.test/", "blocked", ("http",),
                   "http.blockpage:lab_blockpage", confirmed=True)
    assert_verdict(result, "https://web2.lab.test/", "ok")  # HTTPS is not intercepted


def test_http_blockpage_without_fingerprint_is_a_diff(net: Lab) -> None:
    net.censor(["-t", "nat", "-A", "PREROUTING", "-i", "nvr0", "-p", "tcp", "-d", WEB2,
                "--dport", "80", "-j", "REDIRECT", "--to-ports", "8080"])
    result = net.run_probe(["http://web2.lab.test/"])
    assert_verdict(result, "http://web2.lab.test/", "blocked", ("http",), "http.diff")


def test_throttling(net: Lab) -> None:
    net.throttle(BIG)
    targets = ["http://big.lab.test/big", "http://fast1.lab.test/big",
               "http://fast2.lab.test/big", "http://fast3.lab.test/big"]
    result = net.run_probe(targets)
    assert_verdict(result, targets[0], "blocked", ("throttle",), "throttle.goodput")
    for target in targets[1:]:
        assert_verdict(result, target, "ok")


def test_shutdown_is_upstream_unreachable(net: Lab) -> None:
    net.censor(["-A", "FORWARD", "-j", "DROP"])
    result = net.run_probe([OK_HTTP, "http://web2.lab.test/"])
    assert result["run"]["network"] == "upstream_unreachable"
    for target in (OK_HTTP, "http://web2.lab.test/"):
        assert_verdict(result, target, "insufficient")


def test_local_outage_is_local_failure(net: Lab) -> None:
    net.link_down()
    result = net.run_probe([OK_HTTP, "http://web2.lab.test/"])
    assert result["run"]["network"] == "local_failure"
    for target in (OK_HTTP, "http://web2.lab.test/"):
        assert_verdict(result, target, "insufficient")
