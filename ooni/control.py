"""The web_connectivity control (the test helper's view) read as a control Measurement.

`test_keys.control` holds, per version: `dns` {addrs, failure} (addrs may include CNAMEs),
`tcp_connect` {"ip:port": {status, failure}}, `tls_handshake` {"ip:port": {server_name, status,
failure}} (0.5 only), and `http_request` {status_code, body_length, title, headers, failure}
(-1 for "no response"). They become the same observations a probe makes, so the analysis
compares like with like. A control that failed (`control_failure`) or is empty is None.
"""

from __future__ import annotations

from typing import Any

from core import failures
from core.addresses import is_ip, norm_host
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
from ooni.fields import GOODPUT_KEY, RCODES, endpoint, failure, headers, mapping, number


def control_measurement(tk: dict[str, Any], target: Target, started: str) -> Measurement | None:
    """The control of a web_connectivity measurement's `test_keys`, or None (failed, absent).
    Raises OONIFormatError on a malformed control."""
    if tk.get("control_failure"):
        return None
    control = tk.get("control")
    if not isinstance(control, dict) or not control:
        return None
    host = norm_host(target.hostname)
    obs: list[Observation] = []
    dns = mapping(control.get("dns"), "control.dns")
    if dns:
        addrs = [a for a in dns.get("addrs") or () if isinstance(a, str)]
        ips = tuple(a for a in addrs if is_ip(a))
        fail = failure(dns.get("failure"))
        if fail is None and not ips:
            fail = failures.DNS_NO_ANSWER
        rcode = "NOERROR" if fail is None else RCODES.get(fail)
        cnames = tuple(a for a in addrs if not is_ip(a))
        responses = (DNSResponse(0.0, rcode, ips, cnames),) if rcode else ()
        obs.append(DNSQuery(0.0, 0.0, host, "ANY", "system", "", fail, responses))
    for key, value in mapping(control.get("tcp_connect"), "control.tcp_connect").items():
        where, status = endpoint(key), mapping(value, "control.tcp_connect entry")
        if where is not None:
            fail = None if status.get("status") else (
                failure(status.get("failure")) or f"{failures.UNKNOWN}: connect failed")
            obs.append(TCPConnect(0.0, 0.0, where[0], where[1], fail))
    for key, value in mapping(control.get("tls_handshake"), "control.tls_handshake").items():
        where, status = endpoint(key), mapping(value, "control.tls_handshake entry")
        if where is not None:
            ok = bool(status.get("status"))
            fail = None if ok else (
                failure(status.get("failure")) or f"{failures.UNKNOWN}: handshake failed")
            obs.append(TLSHandshake(0.0, 0.0, where[0], where[1],
                                    str(status.get("server_name") or host), fail,
                                    cert_verified=ok))
    http = mapping(control.get("http_request"), "control.http_request")
    if http:
        obs.append(_control_http(http, target))
    if not obs:
        return None
    return Measurement(target=target, started=started, runtime=0.0, observations=tuple(obs))


def _control_http(http: dict[str, Any], target: Target) -> HTTPRequest:
    code = http.get("status_code")
    fail = failure(http.get("failure"))
    ok = fail is None and isinstance(code, int) and code > 0
    if fail is None and not ok:
        fail = f"{failures.UNKNOWN}: no response"
    length = http.get("body_length")
    title = http.get("title")
    goodput = http.get(GOODPUT_KEY)
    return HTTPRequest(
        t0=0.0, t=0.0, url=target.url, address="", port=0, failure=fail,
        status=code if ok else None, headers=headers({"headers": http.get("headers")}),
        title=title.strip() if isinstance(title, str) else None,
        body_length=length if isinstance(length, int) and length > 0 else 0,
        goodput=number(goodput) if goodput is not None else None,  # netvigil's exports only
    )
