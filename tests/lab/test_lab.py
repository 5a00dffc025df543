"""The censorship lab: real censorship techniques in network namespaces, and the verdicts.

Each scenario applies one technique on the censor router, runs `netvigil run` in the client
namespace (with the test helper on the uncensored side as the control) and asserts the exact
verdict of every target, including the clean ones that must stay `ok`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab.topology import BIG, BLOCKPAGE_MARKER, WEB2, Lab

pytestmark = pytest.mark.lab

OK_HTTP, OK_HTTPS = "http://ok.lab.test/", "https://ok.lab.test/"
WEB2_HTTP, WEB2_HTTPS = "http://web2.lab.test/", "https://web2.lab.test/"
FINGERPRINT_HEADER = ("name,scope,other_names,location_found,pattern_type,pattern,"
                      "confidence_no_fp,expected_countries,source,exp_url,notes\n")


def by_target(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["target"]: m for m in result["measurements"]}


def expect(result: dict[str, Any], target: str, verdict: str, techniques: tuple[str, ...] = (),
           outcome: str | None = None, confirmed: bool | None = None) -> None:
    """`target`'s verdict and techniques are exactly these; `outcome` is among its outcomes."""
    m = by_target(result)[target]
    got = (m["verdict"], tuple(m["techniques"]))
    detail = f"{target}: {got} outcomes={m['outcomes']} ({m['reason']})"
    assert got == (verdict, techniques), detail
    if outcome is not None:
        assert outcome in m["outcomes"], detail
    if verdict != "blocked":
        assert m["outcomes"] == [], detail
    if confirmed is not None:
        assert m["confirmed"] is confirmed, f"confirmed={m['confirmed']}; {detail}"


def probe(lab: Lab, targets: list[str], *extra: str, network: str = "ok") -> dict[str, Any]:
    """Run the probe; every target is measured once and the run's network is `network`."""
    result = lab.run_probe(targets, *extra)
    assert sorted(by_target(result)) == sorted(targets)
    assert result["run"]["network"] == network, result["run"]
    if network == "ok":  # every verdict was judged against the helper's control
        assert result["run"]["control"] == "helper", result["run"]
    return result


def fingerprints(lab: Lab, name: str, *rows: str) -> str:
    """A fingerprint list in OONI's CSV format (ooni/blocking-fingerprints), as a file."""
    path = lab.tmp / f"fingerprints-{name}.csv"
    path.write_text(FINGERPRINT_HEADER + "".join(f"{row}\n" for row in rows))
    return str(path)


# --- no censorship --------------------------------------------------------------------------------


def test_no_censorship_no_false_positive(net: Lab) -> None:
    # Three large downloads, as in any real campaign: goodput is then judged against the run's
    # own median too, not only against the helper's (which sits next to the servers).
    downloads = [f"http://{name}.lab.test/big" for name in ("big", "fast1", "fast2")]
    targets = [OK_HTTP, OK_HTTPS, "http://blocked.lab.test/", "https://sni.lab.test/",
               WEB2_HTTP, WEB2_HTTPS, *downloads]
    result = probe(net, targets)
    for target in targets:
        expect(result, target, "ok")


# --- DNS ------------------------------------------------------------------------------------------


def test_dns_nxdomain(net: Lab) -> None:
    # The ISP's resolver denies the name; the helper's honest resolver has it.
    result = probe(net, ["http://nx.lab.test/", OK_HTTP])
    expect(result, "http://nx.lab.test/", "blocked", ("dns",), "dns.nxdomain")
    expect(result, OK_HTTP, "ok")


def test_dns_bogon(net: Lab) -> None:
    targets = ["http://bogon.lab.test/", "http://loop.lab.test/", OK_HTTP]
    result = probe(net, targets)
    # A private answer where the control got a public one: strong evidence, but no proof.
    expect(result, targets[0], "blocked", ("dns",), "dns.bogon", confirmed=False)
    expect(result, targets[1], "blocked", ("dns",), "dns.bogon", confirmed=False)
    expect(result, OK_HTTP, "ok")


def test_dns_bogon_known_censor_address(net: Lab) -> None:
    # OONI's DNS fingerprints: 10.10.34.36 is Iran's blockpage (proof); 127.0.0.1 is only a
    # vague sign (scope vbw), so that bogon stays unconfirmed.
    listed = fingerprints(
        net, "dns", "ooni.ir_10dot10_ipv4_1,nat,,dns,full,10.10.34.36,10,IR,,,",
        "cl.dns_br_localhost,vbw,,dns,full,127.0.0.1,10,,,,")
    targets = ["http://bogon.lab.test/", "http://loop.lab.test/", OK_HTTP]
    result = probe(net, targets, "--fingerprints", listed)
    expect(result, targets[0], "blocked", ("dns",), "dns.bogon", confirmed=True)
    expect(result, targets[1], "blocked", ("dns",), "dns.bogon", confirmed=False)
    expect(result, OK_HTTP, "ok")


def test_dns_on_path_injection(net: Lab) -> None:
    net.inject("inj.lab.test")
    targets = ["http://inj.lab.test/", "https://inj.lab.test/", OK_HTTP]
    result = probe(net, targets)
    for target in targets[:2]:
        expect(result, target, "blocked", ("dns",), "dns.injected", confirmed=True)
    expect(result, OK_HTTP, "ok")  # the injector lets other names through untouched
    net.stop("injector")
    assert "forged" in net.log("injector") and "forged 0 " not in net.log("injector")


# --- TCP ------------------------------------------------------------------------------------------


def test_tcp_reset_by_ip(net: Lab) -> None:
    net.censor(["-A", "FORWARD", "-d", WEB2, "-p", "tcp", "-j", "REJECT", "--reject-with",
                "tcp-reset"])
    result = probe(net, [WEB2_HTTP, WEB2_HTTPS, OK_HTTP])
    # A RST in answer to the SYN reaches the client as ECONNREFUSED (OONI: connection_refused);
    # the control connected, so it was not the server refusing.
    for target in (WEB2_HTTP, WEB2_HTTPS):
        expect(result, target, "blocked", ("tcp",), "tcp.refused")
    expect(result, OK_HTTP, "ok")


def test_tcp_drop_by_ip(net: Lab) -> None:
    net.censor(["-A", "FORWARD", "-d", WEB2, "-p", "tcp", "-j", "DROP"])
    result = probe(net, [WEB2_HTTP, WEB2_HTTPS, OK_HTTP])
    for target in (WEB2_HTTP, WEB2_HTTPS):
        expect(result, target, "blocked", ("tcp",), "tcp.timeout")
    expect(result, OK_HTTP, "ok")


def test_reset_after_the_handshake(net: Lab) -> None:
    # Resets injected into an established connection when the request goes by, as many
    # keyword filters do.
    net.censor(["-A", "FORWARD", "-d", WEB2, "-p", "tcp", "!", "--syn", "-m", "string",
                "--string", "GET /", "--algo", "bm", "-j", "REJECT", "--reject-with",
                "tcp-reset"])
    result = probe(net, [WEB2_HTTP, OK_HTTP])
    expect(result, WEB2_HTTP, "blocked", ("http",), "http.reset")
    expect(result, OK_HTTP, "ok")


# --- TLS ------------------------------------------------------------------------------------------


def _sni_rule(*action: str) -> list[str]:
    return ["-A", "FORWARD", "-p", "tcp", "--dport", "443", "-m", "string", "--string",
            "sni.lab.test", "--algo", "bm", "-j", *action]


@pytest.mark.parametrize("action", [("REJECT", "--reject-with", "tcp-reset"), ("DROP",)],
                         ids=["reset", "drop"])
def test_tls_sni_filtering(net: Lab, action: tuple[str, ...]) -> None:
    net.censor(_sni_rule(*action))
    result = probe(net, ["https://sni.lab.test/", OK_HTTPS, "http://sni.lab.test/"])
    expect(result, "https://sni.lab.test/", "blocked", ("tls",), "tls.sni_filtered",
           confirmed=True)
    expect(result, OK_HTTPS, "ok")  # the same address with another name
    expect(result, "http://sni.lab.test/", "ok")  # the same name in cleartext: no SNI to match


# --- HTTP -----------------------------------------------------------------------------------------


def test_http_blockpage_by_transparent_proxy(net: Lab) -> None:
    net.intercept_http()
    listed = fingerprints(net, "http",
                          f"lab_blockpage,isp,,body,contains,{BLOCKPAGE_MARKER},10,,,,")
    targets = ["http://blocked.lab.test/", OK_HTTP, "https://blocked.lab.test/"]
    result = probe(net, targets, "--fingerprints", listed)
    expect(result, targets[0], "blocked", ("http",), "http.blockpage:lab_blockpage",
           confirmed=True)
    expect(result, OK_HTTP, "ok")  # the same address, relayed by the proxy unchanged
    expect(result, targets[2], "ok")  # HTTPS is not intercepted


def test_http_unknown_blockpage_is_a_diff(net: Lab) -> None:
    net.intercept_http()
    result = probe(net, ["http://blocked.lab.test/", OK_HTTP])
    expect(result, "http://blocked.lab.test/", "blocked", ("http",), "http.diff")
    expect(result, OK_HTTP, "ok")


# --- throttling -----------------------------------------------------------------------------------


def test_throttling(net: Lab) -> None:
    net.throttle(BIG, "64kbit")
    slow = "http://big.lab.test/big"
    fast = [f"http://fast{i}.lab.test/big" for i in (1, 2, 3)]
    result = probe(net, [slow, *fast])
    expect(result, slow, "blocked", ("throttle",), "throttle.goodput")
    for target in fast:
        expect(result, target, "ok")


# --- the probe's own network ----------------------------------------------------------------------


def test_shutdown_is_upstream_unreachable(net: Lab) -> None:
    # Link and gateway up, nothing beyond: a shutdown, never a block of these targets.
    net.censor(["-A", "FORWARD", "-j", "DROP"])
    targets = [OK_HTTP, WEB2_HTTPS]
    result = probe(net, targets, network="upstream_unreachable")
    for target in targets:
        expect(result, target, "insufficient")


def test_local_outage_is_local_failure(net: Lab) -> None:
    net.link_down()
    targets = [OK_HTTP, WEB2_HTTPS]
    result = probe(net, targets, network="local_failure")
    for target in targets:
        expect(result, target, "insufficient")


def test_lab_leaves_nothing_behind(lab: Lab) -> None:
    """Another lab, built and closed: no namespace, /etc/netns entry, file or process stays."""
    other = Lab()
    with other:
        procs = list(other.procs.values())
        assert len(procs) == 3 and all(proc.poll() is None for proc in procs)
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True,
                            check=True).stdout
    assert not [name for name in other.namespaces if name in listed]
    assert not (Path("/etc/netns") / other.client).exists() and not other.tmp.exists()
    assert all(proc.poll() is not None for proc in procs)


# --- events over a sequence of scenarios ---------------------------------------------------


def test_sequence_gives_one_blocking_and_one_outage_event(net: Lab) -> None:
    """clean, TCP reset, clean, shutdown, clean, local outage, clean: in one database, exactly
    one blocking event (web2, tcp) and one outage event, with their spans.

    Each censored phase is measured twice, as a monitor measuring every few minutes would: the
    event policy wants consistent evidence (two measurements, or one confirmed), so a single
    unconfirmed refusal is not an event.
    """
    db = net.tmp / "sequence.db"
    targets = [OK_HTTP, WEB2_HTTP, OK_HTTPS, "http://fast1.lab.test/"]
    reset_rule = ["-A", "FORWARD", "-d", WEB2, "-p", "tcp", "-j", "REJECT", "--reject-with",
                  "tcp-reset"]
    phases: list[tuple[str, Any]] = [
        ("clean", None), ("reset", lambda: net.censor(reset_rule)), ("clean", None),
        ("shutdown", lambda: net.censor(["-A", "FORWARD", "-j", "DROP"])), ("clean", None),
        ("local", net.link_down), ("clean", None),
    ]
    runs: list[tuple[str, dict[str, Any]]] = []
    for name, apply in phases:
        net.reset()
        if apply is not None:
            apply()
        for _ in range(1 if name == "clean" else 2):
            runs.append((name, net.run_probe(targets, "--db", str(db))))
    net.reset()
    networks = [r["run"]["network"] for _, r in runs]
    assert networks == ["ok", "ok", "ok", "ok", "upstream_unreachable", "upstream_unreachable",
                        "ok", "local_failure", "local_failure", "ok"]
    netvigil = str(Path(sys.executable).parent / "netvigil")
    events = json.loads(subprocess.run([netvigil, "events", "--db", str(db), "--json"],
                                       capture_output=True, text=True, check=True).stdout)
    kinds = sorted(e["kind"] for e in events)
    assert kinds == ["blocking", "outage"], events
    blocking = next(e for e in events if e["kind"] == "blocking")
    outage = next(e for e in events if e["kind"] == "outage")

    def started(phase: str, target: str | None = None) -> list[str]:
        return [m["started"] for name, r in runs if name == phase for m in r["measurements"]
                if target is None or m["target"] == target]

    assert blocking["targets"] == [WEB2_HTTP] and blocking["techniques"] == ["tcp"]
    reset_times = started("reset", WEB2_HTTP)
    assert (blocking["start"], blocking["end"]) == (reset_times[0], reset_times[-1])
    clean_after = [m["started"] for r in (runs[3][1],) for m in r["measurements"]
                   if m["target"] == WEB2_HTTP]
    assert blocking["first_clean"] == clean_after[0]
    shutdown = sorted(started("shutdown"))
    assert shutdown[0] <= outage["start"] <= outage["end"] <= shutdown[-1]
    assert outage["first_clean"] is not None and outage["first_clean"] > shutdown[-1]
    # the local outage is a gap: it opens no event and ends none
    local = started("local")
    assert not any(e["start"] <= t <= (e["end"] or t) for e in events for t in local)
