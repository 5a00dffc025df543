"""Observations: one frozen record per measurement step, and the measurement that holds them.

A probe returns these; the store saves them; the analysis reads them. They are plain data:
`to_dict` gives a JSON-ready dict (bytes as base64, tuples as lists), `from_dict` reads it back,
so a stored or imported record turns into exactly the object a live probe produced.

Times: `t0` and `t` are seconds since the measurement started (a monotonic clock), as in OONI's
data format. Wall-clock time lives once, on the measurement (`started`, ISO 8601 UTC).

`failure` is None on success, otherwise a string from `core.failures`.
"""

from __future__ import annotations

import base64
import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Union

from core.errors import RecordError
from core.target import Target


@dataclass(frozen=True)
class DNSResponse:
    """One DNS response received for a query (a UDP query may receive several)."""

    t: float
    rcode: str  # "NOERROR", "NXDOMAIN", "SERVFAIL", ...
    addresses: tuple[str, ...] = ()
    cnames: tuple[str, ...] = ()
    ttl: int | None = None


@dataclass(frozen=True)
class DNSQuery:
    """A name lookup: getaddrinfo ("system"), or a direct query over udp, tcp or doh."""

    step: ClassVar[str] = "dns"
    t0: float
    t: float
    hostname: str
    query_type: str  # "A", "AAAA"; "ANY" for getaddrinfo, which asks for both
    engine: str  # "system" | "udp" | "tcp" | "doh"
    resolver: str  # "" for the system resolver, "IP:port", or a DoH URL
    failure: str | None
    responses: tuple[DNSResponse, ...] = ()

    @property
    def addresses(self) -> tuple[str, ...]:
        """The addresses of the first response (what a stub resolver would have used)."""
        return self.responses[0].addresses if self.responses else ()

    @property
    def all_addresses(self) -> tuple[str, ...]:
        """Every address of every response, first seen first."""
        seen: dict[str, None] = {}
        for response in self.responses:
            for address in response.addresses:
                seen.setdefault(address, None)
        return tuple(seen)

    @property
    def injected(self) -> bool:
        """Two different answers to one query: the signature of on-path injection."""
        answers = {(r.rcode, frozenset(r.addresses)) for r in self.responses}
        return len(answers) > 1


@dataclass(frozen=True)
class TCPConnect:
    """A TCP connect to one address and port."""

    step: ClassVar[str] = "tcp"
    t0: float
    t: float
    address: str
    port: int
    failure: str | None


@dataclass(frozen=True)
class TLSHandshake:
    """A TLS handshake over a connected TCP socket.

    `purpose` is "target" for the handshake with the target's SNI, "harmless_sni" for the
    follow-up with an innocuous name that tells SNI filtering apart from IP blocking.
    The peer's chain (DER) is kept even when verification failed.
    """

    step: ClassVar[str] = "tls"
    t0: float
    t: float
    address: str
    port: int
    sni: str
    failure: str | None
    purpose: str = "target"
    version: str | None = None
    cipher: str | None = None
    alpn: str | None = None
    peer_certificates: tuple[bytes, ...] = ()
    cert_verified: bool = False


@dataclass(frozen=True)
class HTTPRequest:
    """One HTTP round trip (one hop of a redirect chain).

    `body` holds at most the configured cap; `body_length` counts every byte received (also
    past the cap, while reading went on), `body_truncated` says the cap or the time budget cut it.
    `goodput` is body bytes per second from the first response byte to the last.
    """

    step: ClassVar[str] = "http"
    t0: float
    t: float
    url: str
    address: str
    port: int
    failure: str | None
    method: str = "GET"
    request_headers: tuple[tuple[str, str], ...] = ()
    status: int | None = None
    headers: tuple[tuple[str, str], ...] = ()
    title: str | None = None
    body: bytes = b""
    body_length: int = 0
    body_sha256: str | None = None
    body_truncated: bool = False
    goodput: float | None = None
    location: str | None = None  # the absolute URL this hop redirects to, if any

    def header(self, name: str) -> str | None:
        """The first value of a response header, case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers:
            if key.lower() == lowered:
                return value
        return None


Observation = Union[DNSQuery, TCPConnect, TLSHandshake, HTTPRequest]  # noqa: UP007
OBSERVATION_TYPES: dict[str, type] = {
    cls.step: cls for cls in (DNSQuery, TCPConnect, TLSHandshake, HTTPRequest)
}


@dataclass(frozen=True)
class Measurement:
    """Everything one run observed about one target."""

    target: Target
    started: str  # ISO 8601 UTC
    runtime: float  # seconds
    observations: tuple[Observation, ...] = field(default=())

    def of(self, cls: type[Any]) -> list[Any]:
        """The observations of one step type, in the order they were made."""
        return [o for o in self.observations if isinstance(o, cls)]


# --- serialisation -----------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_encode(v) for v in value]
    return value


def observation_to_dict(obs: Observation) -> dict[str, Any]:
    """A JSON-ready dict of one observation, with its step type under `step`."""
    data: dict[str, Any] = {"step": obs.step}
    data.update(_encode(obs))
    return data


def _decode(hint: Any, value: Any) -> Any:
    if value is None:
        return None
    origin = typing.get_origin(hint)
    if origin in (Union, types.UnionType):
        members = [a for a in typing.get_args(hint) if a is not type(None)]
        return _decode(members[0], value) if len(members) == 1 else value
    if hint is bytes:
        return base64.b64decode(value)
    if origin is tuple:
        args = typing.get_args(hint)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode(args[0], v) for v in value)
        return tuple(_decode(a, v) for a, v in zip(args, value, strict=False))
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _from_fields(hint, value)
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _from_fields(cls: type, data: dict[str, Any]) -> Any:
    hints = _HINTS.get(cls)
    if hints is None:
        hints = _HINTS[cls] = typing.get_type_hints(cls)
    kwargs = {
        f.name: _decode(hints[f.name], data[f.name])
        for f in dataclasses.fields(cls)
        if f.name in data
    }
    return cls(**kwargs)


def observation_from_dict(data: dict[str, Any]) -> Observation:
    """Read back what `observation_to_dict` wrote. Raises RecordError on an unknown step."""
    cls = OBSERVATION_TYPES.get(data.get("step", ""))
    if cls is None:
        raise RecordError(f"unknown observation step: {data.get('step')!r}")
    result: Observation = _from_fields(cls, data)
    return result


def measurement_to_dict(m: Measurement) -> dict[str, Any]:
    """A JSON-ready dict of a measurement with its target and every observation."""
    return {
        "target": _encode(m.target),
        "started": m.started,
        "runtime": m.runtime,
        "observations": [observation_to_dict(o) for o in m.observations],
    }


def measurement_from_dict(data: dict[str, Any]) -> Measurement:
    """Read back what `measurement_to_dict` wrote."""
    return Measurement(
        target=_from_fields(Target, data["target"]),
        started=data["started"],
        runtime=data["runtime"],
        observations=tuple(observation_from_dict(o) for o in data["observations"]),
    )
