"""OONI measurements read into our observations, so the same analysis judges theirs and ours.

    parse_ooni(data) -> OONIMeasurement          one measurement (a dict of df-000-base)

Files of measurements are read by `ooni.read_file` (`read_ooni_file`), within bounds.

The mapping (ooni/spec data-formats and nettests/ts-017-web-connectivity, 0.0.1 to 0.5.x):

    test_keys.queries          -> DNSQuery     engine getaddrinfo -> "system"; one response per
                                               query, plus `x_dns_duplicate_responses` (a second
                                               answer to one query: injection)
    test_keys.tcp_connect      -> TCPConnect   status.failure
    test_keys.tls_handshakes   -> TLSHandshake peer_certificates (base64), verified unless
                                               `no_tls_verify`
    test_keys.requests         -> HTTPRequest  chronological (OONI lists the last hop first),
                                               body string or base64, headers_list or headers
    test_keys.control          -> the control Measurement (`ooni.control`)

The probe's IP address (`probe_ip`) is dropped, and scrubbed wherever it appears in bodies and
headers. A control that failed (`control_failure`) is no control. Anything malformed in one
measurement raises OONIFormatError for that measurement only; the file reader
(`ooni.read_file`) yields the error in its place and goes on.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

from core import failures
from core.addresses import is_ip, parse_ip
from core.errors import OONIFormatError
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
from ooni.control import control_measurement
from ooni.fields import (
    BODY_LENGTH_KEY,
    GOODPUT_KEY,
    PURPOSE_KEY,
    RCODES,
    binary,
    endpoint,
    failure,
    headers,
    iso_utc,
    items,
    mapping,
    number,
)

__all__ = ["OONIFormatError", "OONIMeasurement", "parse_ooni"]

META_KEYS = (
    "input", "test_name", "test_version", "probe_asn", "probe_cc", "probe_network_name",
    "measurement_start_time", "report_id",
)
_ENGINES = {"getaddrinfo": "system", "system": "system", "": "system"}
_DEPTH = re.compile(r"^depth=(\d+)$")


@dataclass(frozen=True)
class OONIMeasurement:
    """One OONI measurement: the probe's observations, the control's, and OONI's metadata."""

    measurement: Measurement
    control: Measurement | None
    meta: dict[str, Any]

    def vantage(self) -> dict[str, Any]:
        """Where OONI's probe measured from, in the keys of a run's vantage (never its address)."""
        return {"asn": self.meta.get("probe_asn"), "country": self.meta.get("probe_cc"),
                "network_name": self.meta.get("probe_network_name")}

    def test(self) -> dict[str, Any]:
        """Which OONI test, in which version, made the measurement."""
        return {"test_name": self.meta.get("test_name"),
                "test_version": self.meta.get("test_version")}


# --- the probe's observations ---------------------------------------------------------------


def _answers(q: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], int | None]:
    addresses: list[str] = []
    cnames: list[str] = []
    ttl = None
    for a in items(q.get("answers"), "answers"):
        kind = a.get("answer_type")
        value = a.get("ipv4") if kind == "A" else a.get("ipv6") if kind == "AAAA" else None
        if isinstance(value, str) and is_ip(value):
            addresses.append(value)
        elif kind == "CNAME" and isinstance(a.get("hostname"), str):
            cnames.append(a["hostname"])
        if ttl is None and isinstance(a.get("ttl"), int):
            ttl = a["ttl"]
    return tuple(addresses), tuple(cnames), ttl


def _response(q: dict[str, Any], fail: str | None) -> DNSResponse | None:
    t = number(q.get("t"))
    if fail is None:
        addresses, cnames, ttl = _answers(q)
        return DNSResponse(t, "NOERROR", addresses, cnames, ttl)
    rcode = RCODES.get(fail)
    return DNSResponse(t, rcode, (), _answers(q)[1]) if rcode else None


def _resolver(q: dict[str, Any], engine: str) -> str:
    if engine == "system":
        return ""
    address = q.get("resolver_address")
    if isinstance(address, str) and address:
        return address
    host, port = q.get("resolver_hostname"), q.get("resolver_port")
    return f"{host}:{port}" if host and port else str(host or "")


def _query_key(q: dict[str, Any]) -> tuple[Any, ...]:
    engine = _ENGINES.get(q.get("engine") or "", q.get("engine"))
    return (q.get("hostname"), q.get("query_type"), engine, q.get("resolver_address"))


def _queries(tk: dict[str, Any]) -> list[DNSQuery]:
    raw = items(tk.get("queries"), "queries")
    responses: list[list[DNSResponse]] = []
    for q in raw:
        first = _response(q, failure(q.get("failure")))
        responses.append([first] if first else [])
    duplicates = items(tk.get("x_dns_duplicate_responses"), "x_dns_duplicate_responses")
    index = {_query_key(q): i for i, q in reversed(list(enumerate(raw)))} if duplicates else {}
    for d in duplicates:
        i = index.get(_query_key(d))
        extra = _response(d, failure(d.get("failure")))
        if i is not None and extra is not None:
            responses[i].append(extra)
    out = []
    for q, got in zip(raw, responses, strict=True):
        engine = str(_ENGINES.get(q.get("engine") or "", q.get("engine")))
        t = number(q.get("t"))
        out.append(DNSQuery(
            t0=number(q.get("t0"), t), t=t, hostname=str(q.get("hostname") or ""),
            query_type=str(q.get("query_type") or "A"), engine=engine,
            resolver=_resolver(q, engine), failure=failure(q.get("failure")),
            responses=tuple(got),
        ))
    return out


def _tcp(tk: dict[str, Any]) -> list[TCPConnect]:
    out = []
    for c in items(tk.get("tcp_connect"), "tcp_connect"):
        status = mapping(c.get("status"), "tcp_connect.status")
        fail = failure(status.get("failure"))
        if fail is None and status.get("success") is False:
            fail = f"{failures.UNKNOWN}: connect failed"
        address, port = c.get("ip"), c.get("port")
        if not isinstance(address, str) or not isinstance(port, int):
            raise OONIFormatError("tcp_connect entry without ip and port")
        t = number(c.get("t"))
        out.append(TCPConnect(number(c.get("t0"), t), t, address, port, fail))
    return out


def _tls(tk: dict[str, Any]) -> list[TLSHandshake]:
    out = []
    for h in items(tk.get("tls_handshakes"), "tls_handshakes"):
        address, port = endpoint(h.get("address")) or ("", 443)
        fail = failure(h.get("failure"))
        certs = _items_or_strings(h.get("peer_certificates"))
        t = number(h.get("t"))
        out.append(TLSHandshake(
            t0=number(h.get("t0"), t), t=t, address=address, port=port,
            sni=str(h.get("server_name") or ""), failure=fail,
            version=h.get("tls_version") or None, cipher=h.get("cipher_suite") or None,
            alpn=h.get("negotiated_protocol") or None,
            peer_certificates=tuple(binary(c) for c in certs),
            cert_verified=fail is None and not h.get("no_tls_verify"),
            purpose=str(h.get(PURPOSE_KEY) or "target"),  # netvigil's own exports
        ))
    return out


def _items_or_strings(value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OONIFormatError("peer_certificates is not a list")
    return value


def _depth(entry: dict[str, Any]) -> int | None:
    for tag in entry.get("tags") or ():
        m = _DEPTH.match(tag) if isinstance(tag, str) else None
        if m:
            return int(m.group(1))
    return None


def _chronological(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """OONI lists the last request first; the `depth=N` tags (0.5) say it exactly."""
    depths = [d for d in (_depth(e) for e in entries) if d is not None]
    if entries and len(depths) == len(entries):
        order = sorted(range(len(entries)), key=lambda i: depths[i])
        return [entries[i] for i in order]
    return list(reversed(entries))


def _request(r: dict[str, Any], scrub_ip: str | None) -> HTTPRequest:
    request = mapping(r.get("request"), "request")
    response = mapping(r.get("response"), "response")
    url = request.get("url")
    if not isinstance(url, str):
        raise OONIFormatError("request without a url")
    address, port = endpoint(r.get("address")) or ("", _default_port(url))
    code = response.get("code")
    status = code if isinstance(code, int) and not isinstance(code, bool) and code > 0 else None
    response_headers = _scrubbed_headers(headers(response), scrub_ip)
    body = _scrubbed_body(binary(response.get("body")), scrub_ip)
    content_type = next((v for k, v in response_headers if k.lower() == "content-type"), None)
    location = None
    raw_location = next((v for k, v in response_headers if k.lower() == "location"), None)
    if status is not None and 300 <= status < 400 and raw_location:
        location = urljoin(url, raw_location.strip())
    t = number(r.get("t"))
    # netvigil's own exports carry what OONI's format has no field for (analysis.throttle).
    counted = r.get(BODY_LENGTH_KEY)
    goodput = r.get(GOODPUT_KEY)
    return HTTPRequest(
        t0=number(r.get("t0"), t), t=t, url=url, address=address, port=port,
        failure=failure(r.get("failure")), method=str(request.get("method") or "GET"),
        request_headers=headers(request), status=status, headers=response_headers,
        title=extract_title(body, content_type) if body else None, body=body,
        body_length=max(len(body), counted if isinstance(counted, int) else 0),
        goodput=number(goodput) if goodput is not None else None,
        body_sha256=hashlib.sha256(body).hexdigest() if status else None,
        body_truncated=bool(response.get("body_is_truncated")), location=location,
    )


def _default_port(url: str) -> int:
    try:
        parts = urlsplit(url)
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return 0


def _scrubbed_body(body: bytes, ip: str | None) -> bytes:
    return body.replace(ip.encode(), b"[scrubbed]") if ip and ip.encode() in body else body


def _scrubbed_headers(
    pairs: tuple[tuple[str, str], ...], ip: str | None
) -> tuple[tuple[str, str], ...]:
    if not ip or not any(ip in v for _, v in pairs):
        return pairs
    return tuple((k, v.replace(ip, "[scrubbed]")) for k, v in pairs)


# --- entry points ---------------------------------------------------------------------------


def parse_ooni(data: dict[str, Any]) -> OONIMeasurement:
    """Read one OONI measurement. Raises OONIFormatError (one line) on malformed input."""
    if not isinstance(data, dict):
        raise OONIFormatError(f"a measurement is an object, not a {type(data).__name__}")
    tk = data.get("test_keys")
    if not isinstance(tk, dict):
        raise OONIFormatError("test_keys is missing or null")
    test_name = data.get("test_name")
    if not isinstance(test_name, str) or not test_name:
        raise OONIFormatError("test_name is missing")
    try:
        return _parse(data, tk, test_name)
    except OONIFormatError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise OONIFormatError(f"malformed measurement: {type(exc).__name__}: {exc}") from None


def _parse(data: dict[str, Any], tk: dict[str, Any], test_name: str) -> OONIMeasurement:
    started = iso_utc(data.get("measurement_start_time"))
    url = data.get("input")
    if url is not None and not isinstance(url, str):
        raise OONIFormatError("input is not a string")
    target = Target(url=url) if url else Target(url=f"ooni:{test_name}", platform=test_name)
    probe_ip = data.get("probe_ip")
    scrub_ip = probe_ip if isinstance(probe_ip, str) and _scrubbable(probe_ip) else None
    requests = _chronological(items(tk.get("requests"), "requests"))
    observations: list[Observation] = [*_queries(tk), *_tcp(tk), *_tls(tk)]
    observations += [_request(r, scrub_ip) for r in requests]
    measurement = Measurement(
        target=target, started=started, runtime=number(data.get("test_runtime")),
        observations=tuple(observations),
    )
    meta = {key: data.get(key) for key in META_KEYS}
    meta["ooni_blocking"] = tk.get("blocking")
    meta["ooni_accessible"] = tk.get("accessible")
    control = (control_measurement(tk, target, started)
               if test_name == "web_connectivity" else None)
    return OONIMeasurement(measurement, control, meta)


def _scrubbable(ip: str) -> bool:
    address = parse_ip(ip)
    return address is not None and not address.is_loopback and not address.is_unspecified
