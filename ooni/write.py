"""Our measurements written as OONI `web_connectivity` measurements (the writer of `export_ooni`).

    to_ooni(measurement, control, verdict, run) -> dict     one OONI measurement, JSON-ready

The shape is web_connectivity 0.5, in the data format of ooni/spec (df-000-base, df-001-httpt,
df-002-dnst, df-005-tcpconnect, df-006-tlshandshake, ts-017). `test_version` is 0.5.28, the
version of OONI's labelled corpus: what we write is 0.5's structure (a `tls_handshake` control,
`x_dns_duplicate_responses`, `classic` / `depth=N` / `fetch_body` tags, `x_blocking_flags`), and
OONI's tools choose how to read a measurement by that version (before 0.5, everything is
"classic"; from 0.5 on, the tags say which observations the classic analysis uses).

    DNSQuery      -> test_keys.queries, one entry per query (getaddrinfo for "system"); every
                     response after the first (an injector's race) goes to
                     `x_dns_duplicate_responses` with the query's `transaction_id`, as probe-cli
                     records late and duplicate replies
    TCPConnect    -> test_keys.tcp_connect   {ip, port, status {success, failure, blocked}}
    TLSHandshake  -> test_keys.tls_handshakes, certificates as base64 BinaryData, `no_tls_verify`
                     when the chain was not verified, and `x_netvigil_purpose` (e.g. harmless_sni)
    HTTPRequest   -> test_keys.requests, newest first with `depth=N` tags (ts-017); bodies as
                     text, or BinaryData when not valid UTF-8
    control       -> test_keys.control in the test helper's format: `dns` (the target's name),
                     `tcp_connect`, `tls_handshake` (0.5), `http_request` (the final hop)
    verdict       -> `x_netvigil_verdict`, and OONI's own `blocking` / `accessible` /
                     `x_blocking_flags` derived from it (`ooni.write_verdict`)

What OONI's format has no field for travels in `x_netvigil_*` keys (goodput, the full body length
of a capped body, a handshake's purpose), so `ooni.read` reads back what the analysis needs.

`probe_ip` is always OONI's placeholder 127.0.0.1: the probe's address is never written. ASN,
country and network name come from the run's vantage when known (an imported OONI run), else
OONI's unknowns "AS0" and "ZZ". Pure: no I/O here.
"""

from __future__ import annotations

import base64
import functools
import importlib.metadata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core import failures
from core.addresses import join_endpoint, norm_host
from core.observations import (
    DNSQuery,
    DNSResponse,
    HTTPRequest,
    Measurement,
    TCPConnect,
    TLSHandshake,
)
from ooni.fields import BODY_LENGTH_KEY, GOODPUT_KEY, PURPOSE_KEY, ooni_time
from ooni.write_verdict import verdict_keys

TEST_NAME = "web_connectivity"
TEST_VERSION = "0.5.28"
DATA_FORMAT_VERSION = "0.2.0"
SOFTWARE_NAME = "netvigil"
PLACEHOLDER_IP = "127.0.0.1"  # OONI's value when the probe's address is not disclosed
UNKNOWN_ASN = "AS0"
UNKNOWN_CC = "ZZ"
NO_CONTROL = f"{failures.UNKNOWN}: no control measurement"



@functools.cache
def software_version() -> str:
    try:
        return importlib.metadata.version("netvigil")
    except importlib.metadata.PackageNotFoundError:
        return "0.0.0"


@dataclass(frozen=True)
class RunInfo:
    """What the run says about a measurement: its id, start, network state and vantage."""

    run_id: int | None = None
    started: str | None = None
    network: str | None = None
    vantage: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_row(cls, row: Mapping[str, Any] | None) -> RunInfo:
        """From a `Store.run` row (vantage already decoded)."""
        if not row:
            return cls()
        vantage = row.get("vantage")
        return cls(row.get("id"), row.get("started"), row.get("network"),
                   vantage if isinstance(vantage, Mapping) else {})


def to_ooni(
    m: Measurement,
    control: Measurement | None = None,
    verdict: Mapping[str, Any] | None = None,
    run: RunInfo | None = None,
    measurement_id: int | None = None,
) -> dict[str, Any]:
    """One OONI web_connectivity measurement (a JSON-ready dict) for `m`, its control (the test
    helper's measurement, or None) and its verdict dict (`Verdict.to_dict()`; None or {} when
    not judged)."""
    run = run or RunInfo()
    version = software_version()
    annotations = {"engine_name": SOFTWARE_NAME, "engine_version": version}
    extra = {"netvigil_run_id": run.run_id, "netvigil_measurement_id": measurement_id,
             "netvigil_run_network": run.network, "netvigil_platform": m.target.platform,
             "netvigil_category": m.target.category}
    # Annotations are a map of strings in OONI's format.
    annotations.update({k: str(v) for k, v in extra.items() if v not in (None, "")})
    started = ooni_time(m.started)
    test_keys: dict[str, Any] = {"agent": "redirect", "client_resolver": None, "retries": None,
                                 "socksproxy": None}
    test_keys.update(probe_keys(m))
    test_keys["control"] = (control_keys(control, m.target.hostname) if control is not None
                            else None)
    test_keys["control_failure"] = None if control is not None else NO_CONTROL
    test_keys.update(verdict_keys(verdict))
    return {
        "annotations": annotations, "data_format_version": DATA_FORMAT_VERSION,
        "extensions": {"dnst": 0, "httpt": 0, "tcpconnect": 0, "tlshandshake": 0},
        "input": m.target.url, "measurement_start_time": started, **_probe(run.vantage),
        "report_id": "", "software_name": SOFTWARE_NAME, "software_version": version,
        "test_name": TEST_NAME, "test_runtime": m.runtime,
        "test_start_time": ooni_time(run.started) if run.started else started,
        "test_version": TEST_VERSION, "test_keys": test_keys,
    }


# --- base fields ----------------------------------------------------------------------------


def _probe(vantage: Mapping[str, Any]) -> dict[str, Any]:
    """probe_asn, probe_cc, probe_network_name from the vantage (OONI's unknowns otherwise),
    and probe_ip: always the placeholder, never the probe's address."""
    asn = str(vantage.get("asn") or "").strip().upper().removeprefix("AS")
    cc = str(vantage.get("country") or "").strip()
    name = vantage.get("network_name")
    return {
        "probe_asn": f"AS{int(asn)}" if asn.isdigit() and int(asn) > 0 else UNKNOWN_ASN,
        "probe_cc": cc.upper() if len(cc) == 2 and cc.isalpha() else UNKNOWN_CC,
        "probe_ip": PLACEHOLDER_IP,
        "probe_network_name": name if isinstance(name, str) and name else None,
    }


def endpoint(address: str, port: int) -> str:
    """"1.2.3.4:443", "[::1]:443"; "" without an address."""
    return join_endpoint(address, port) if address else ""


def maybe_binary(data: bytes) -> str | dict[str, str]:
    """OONI's MaybeBinaryData: the text when it is valid UTF-8, else base64 BinaryData."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return binary_data(data)


def binary_data(data: bytes) -> dict[str, str]:
    return {"format": "base64", "data": base64.b64encode(data).decode("ascii")}


def headers_map(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The legacy `headers` map: the first value of each name (as probe-cli writes it)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        out.setdefault(name, value)
    return out


# --- the probe's observations ---------------------------------------------------------------


class _Transactions:
    """transaction_id per key: one per DNS query, one per (address, port, purpose) connection,
    shared by its TCP connect, TLS handshake and HTTP request (ts-017)."""

    def __init__(self) -> None:
        self._ids: dict[tuple[Any, ...], int] = {}

    def __call__(self, *key: Any) -> int:
        return self._ids.setdefault(key, len(self._ids) + 1)


def probe_keys(m: Measurement) -> dict[str, Any]:
    """queries, x_dns_duplicate_responses, tcp_connect, tls_handshakes, requests and the
    experiment failures of the probe's observations."""
    ids = _Transactions()
    queries: list[dict[str, Any]] = []
    duplicates: list[dict[str, Any]] = []
    for i, q in enumerate(m.of(DNSQuery)):
        tid = ids("dns", i)
        first = q.responses[0] if q.responses else None
        queries.append(_query(q, first, q.failure, q.t, tid))
        duplicates += [_query(q, r, _response_failure(r), r.t, tid) for r in q.responses[1:]]
    classic = {a for q in m.of(DNSQuery) if q.engine == "system" for a in q.all_addresses}
    hops: list[HTTPRequest] = m.of(HTTPRequest)
    system = [q for q in m.of(DNSQuery) if q.engine == "system"]
    dns_failure = (system[0].failure if system and not any(q.all_addresses for q in system)
                   else None)
    return {
        "queries": queries,
        "x_dns_duplicate_responses": duplicates,
        "tcp_connect": [_tcp(c, ids, c.address in classic) for c in m.of(TCPConnect)],
        "tls_handshakes": [_tls(h, ids, h.address in classic) for h in m.of(TLSHandshake)],
        # ts-017: "sorted in time-reverse order", the final response first.
        "requests": [_request(hop, depth, ids) for depth, hop in reversed(list(enumerate(hops)))],
        "dns_experiment_failure": dns_failure,
        "http_experiment_failure": hops[-1].failure if hops else None,
    }


def _answers(response: DNSResponse | None) -> list[dict[str, Any]] | None:
    if response is None:
        return None
    answers: list[dict[str, Any]] = []
    for address in response.addresses:
        family = ("AAAA", "ipv6") if ":" in address else ("A", "ipv4")
        answers.append({"answer_type": family[0], family[1]: address, "ttl": response.ttl})
    answers += [{"answer_type": "CNAME", "hostname": name, "ttl": response.ttl}
                for name in response.cnames]
    return answers or None


def _response_failure(response: DNSResponse) -> str | None:
    if response.rcode == "NOERROR":
        return None if response.addresses else failures.DNS_NO_ANSWER
    return failures.dns_rcode_failure(response.rcode)


def _query(
    q: DNSQuery, response: DNSResponse | None, failure: str | None, t: float, tid: int
) -> dict[str, Any]:
    system = q.engine == "system"
    return {
        "answers": _answers(response), "engine": "getaddrinfo" if system else q.engine,
        "failure": failure, "hostname": q.hostname, "query_type": q.query_type,
        "resolver_hostname": None, "resolver_port": None,
        "resolver_address": "" if system else q.resolver, "t0": q.t0, "t": t,
        "tags": ["classic"] if system else [], "transaction_id": tid,
    }


def _tags(classic: bool, fetch_body: bool) -> list[str]:
    return (["classic"] if classic else []) + [f"fetch_body={str(fetch_body).lower()}"]


def _tcp(c: TCPConnect, ids: _Transactions, classic: bool) -> dict[str, Any]:
    return {
        "ip": c.address, "port": c.port,
        "status": {"blocked": None, "failure": c.failure, "success": c.failure is None},
        "t0": c.t0, "t": c.t, "tags": _tags(classic, True),
        "transaction_id": ids("conn", c.address, c.port, "target"),
    }


def _tls(h: TLSHandshake, ids: _Transactions, classic: bool) -> dict[str, Any]:
    target = h.purpose == "target"
    return {
        "network": "tcp", "address": endpoint(h.address, h.port),
        "cipher_suite": h.cipher or "", "failure": h.failure,
        "negotiated_protocol": h.alpn or "",
        # A completed handshake whose chain was not checked; a failed one was verified.
        "no_tls_verify": h.failure is None and not h.cert_verified,
        "peer_certificates": [binary_data(der) for der in h.peer_certificates] or None,
        "server_name": h.sni, "t0": h.t0, "t": h.t, "tags": _tags(classic and target, target),
        "tls_version": h.version or "",
        "transaction_id": ids("conn", h.address, h.port, h.purpose), PURPOSE_KEY: h.purpose,
    }


def _request(hop: HTTPRequest, depth: int, ids: _Transactions) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "network": "tcp", "address": endpoint(hop.address, hop.port), "failure": hop.failure,
        "request": {
            "body": "", "body_is_truncated": False,
            "headers_list": [list(pair) for pair in hop.request_headers],
            "headers": headers_map(hop.request_headers), "method": hop.method,
            "tor": {"exit_ip": None, "exit_name": None, "is_tor": False},
            "x_transport": "tcp", "url": hop.url,
        },
        "response": {
            "body": maybe_binary(hop.body), "body_is_truncated": hop.body_truncated,
            "code": hop.status or 0, "headers_list": [list(pair) for pair in hop.headers],
            "headers": headers_map(hop.headers),
        },
        "t0": hop.t0, "t": hop.t, "tags": [f"depth={depth}", "fetch_body=true"],
        "transaction_id": ids("conn", hop.address, hop.port, "target"), GOODPUT_KEY: hop.goodput,
    }
    if hop.body_length > len(hop.body):  # bytes counted past the cap
        entry[BODY_LENGTH_KEY] = hop.body_length
    return entry


# --- the control ----------------------------------------------------------------------------


def control_keys(control: Measurement, hostname: str) -> dict[str, Any]:
    """The control in the web_connectivity test helper's format (ts-017, 0.5)."""
    # The control's queries carry the punycode form of an IDN host; the URL may carry Unicode.
    host = norm_host(hostname)
    lookups = [q for q in control.of(DNSQuery) if norm_host(q.hostname) == host]
    tcp: dict[str, dict[str, Any]] = {}
    for c in control.of(TCPConnect):
        kept = tcp.get(endpoint(c.address, c.port))
        if kept is None or not kept["status"]:  # a success on the same endpoint wins
            tcp[endpoint(c.address, c.port)] = {"status": c.failure is None,
                                                "failure": c.failure}
    tls: dict[str, dict[str, Any]] = {}
    for h in control.of(TLSHandshake):
        kept = tls.get(endpoint(h.address, h.port))
        if h.purpose == "target" and (kept is None or not kept["status"]):
            tls[endpoint(h.address, h.port)] = {
                "server_name": h.sni, "status": h.failure is None, "failure": h.failure}
    hops = control.of(HTTPRequest)
    return {"dns": _control_dns(lookups) if lookups else None, "tcp_connect": tcp,
            "tls_handshake": tls, "http_request": _control_http(hops[-1]) if hops else None}


def _control_dns(lookups: list[DNSQuery]) -> dict[str, Any]:
    addrs = list(dict.fromkeys(a for q in lookups for a in q.all_addresses))
    failed = [q.failure for q in lookups if q.failure]
    if addrs or not failed:
        return {"addrs": addrs, "failure": None}
    # A denial of the name (NXDOMAIN, no answer) says more than a resolver that failed.
    rank = (failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER)
    return {"addrs": [], "failure": min(failed, key=lambda f: rank.index(f) if f in rank else 9)}


def _control_http(hop: HTTPRequest) -> dict[str, Any]:
    answered = hop.status is not None and hop.failure is None
    return {
        "body_length": hop.body_length if answered else -1,  # -1: no response (ts-017)
        "failure": hop.failure if hop.failure or answered else f"{failures.UNKNOWN}: no response",
        "headers": headers_map(hop.headers), "status_code": hop.status if answered else -1,
        "title": hop.title or "", GOODPUT_KEY: hop.goodput,
    }
