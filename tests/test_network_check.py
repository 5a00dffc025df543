"""The local network checks and the run-level network verdict, on fake /sys and /proc trees."""

import asyncio
from pathlib import Path

from analysis.run_network import decide, reached_anything
from core.netstate import NetState
from core.observations import DNSQuery, DNSResponse, Measurement, TCPConnect
from core.target import Target
from core.verdicts import LOCAL_FAILURE, NETWORK_OK, UPSTREAM_UNREACHABLE
from probes import network_check

ROUTE_HEADER = "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n"


def fake_tree(tmp_path: Path, ifaces: dict[str, str], route: str = "", v6: str = "") -> dict:
    sys_net = tmp_path / "sys"
    for name, state in ifaces.items():
        (sys_net / name).mkdir(parents=True)
        (sys_net / name / "operstate").write_text(state + "\n")
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "route").write_text(ROUTE_HEADER + route)
    (proc / "ipv6_route").write_text(v6)
    resolv = tmp_path / "resolv.conf"
    resolv.write_text("# comment\nnameserver 192.0.2.53\nnameserver bogus\nnameserver ::1\n")
    return {"sys_net": sys_net, "proc_net": proc, "resolv_conf": resolv}


# A default route via 192.168.1.1 (0101A8C0 little-endian), flags UP|GATEWAY.
DEFAULT_ROUTE = "wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0\n"


def test_link_up_with_default_route(tmp_path):
    paths = fake_tree(tmp_path, {"lo": "unknown", "wlan0": "up", "eth0": "down"}, DEFAULT_ROUTE)
    state = asyncio.run(network_check.check_network(probe_upstream=False, **paths))
    assert state.interfaces == ("wlan0",)
    assert state.default_route and state.gateway == "192.168.1.1"
    assert state.resolvers == ("192.0.2.53", "::1")
    assert state.link_ok
    assert state.gateway_reachable is None  # not probed
    summary = state.public_summary()
    assert "192.168.1.1" not in str(summary) and "192.0.2.53" not in str(summary)


def test_link_down_is_local(tmp_path):
    paths = fake_tree(tmp_path, {"lo": "unknown", "wlan0": "down"}, DEFAULT_ROUTE)
    state = asyncio.run(network_check.check_network(probe_upstream=False, **paths))
    assert not state.link_ok
    assert "no network interface is up" in state.describe()


def test_no_default_route(tmp_path):
    route = "wlan0\t0001A8C0\t00000000\t0001\t0\t0\t600\t00FFFFFF\t0\t0\t0\n"
    paths = fake_tree(tmp_path, {"wlan0": "up"}, route)
    state = asyncio.run(network_check.check_network(probe_upstream=False, **paths))
    assert state.interfaces == ("wlan0",) and not state.default_route
    assert "no default route" in state.describe()


def test_ipv6_only_default_route(tmp_path):
    v6 = ("00000000000000000000000000000000 00 00000000000000000000000000000000 00 "
          "fe800000000000000000000000000001 00000400 00000001 00000000 00000003 wlan0\n")
    paths = fake_tree(tmp_path, {"wlan0": "up"}, "", v6)
    state = asyncio.run(network_check.check_network(probe_upstream=False, **paths))
    assert state.default_route and state.gateway is None


def test_missing_proc_files_do_not_raise(tmp_path):
    state = asyncio.run(network_check.check_network(
        probe_upstream=False, sys_net=tmp_path / "nope", proc_net=tmp_path / "nope",
        resolv_conf=tmp_path / "nope"))
    assert state.interfaces == () and not state.default_route and state.resolvers == ()


def test_gateway_answers_on_loopback():
    # 127.0.0.1 refuses (nothing on port 53/80) or accepts: either way it "answers".
    assert asyncio.run(network_check.gateway_answers("127.0.0.1", timeout=1.0))


def _state(link: bool) -> NetState:
    return NetState("2026-01-01T00:00:00Z", ("wlan0",) if link else (), link, None,
                             None, (), None)


def _m(*obs) -> Measurement:
    return Measurement(Target("https://example.org/"), "2026-01-01T00:00:00Z", 1.0, obs)


def test_decide_network():
    failed = _m(TCPConnect(0, 1, "192.0.2.1", 443, "generic_timeout_error"))
    worked = _m(TCPConnect(0, 1, "192.0.2.1", 443, None))
    refused = _m(TCPConnect(0, 1, "192.0.2.1", 443, "connection_refused"))
    answered = _m(DNSQuery(0, 1, "example.org", "A", "udp", "192.0.2.53:53", None,
                           (DNSResponse(0.5, "NXDOMAIN"),)))
    assert not reached_anything(failed)
    assert reached_anything(worked) and reached_anything(refused) and reached_anything(answered)
    assert decide(_state(True), None, [failed, worked]) == NETWORK_OK
    assert decide(_state(True), None, [failed]) == UPSTREAM_UNREACHABLE
    assert decide(_state(True), _state(False), [failed]) == LOCAL_FAILURE
    assert decide(_state(False), None, [worked]) == LOCAL_FAILURE
    assert decide(None, None, [failed]) == LOCAL_FAILURE
    assert decide(_state(True), None, [failed], control_reachable=True) == NETWORK_OK
