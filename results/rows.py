"""Pure transformations between measurements and what the store writes. No database here.

- `split_blobs` / `join_blobs`: the raw record of a measurement is `measurement_to_dict` with each
  HTTP body and each TLS certificate moved out to content-addressed blobs, so a blockpage or a
  certificate chain that repeats across thousands of measurements is stored once. The record
  keeps `body = ""` plus `body_ref = "sha256:<hex>"` (the probe's own `body_sha256` is kept as
  it was), and `peer_certificates` becomes a list of `"sha256:<hex>"`. `join_blobs` reverses it
  exactly.
- `step_rows`: the rows of the researcher-facing step tables, one per observation.
- `verdict_columns` / `verdict_from_row`: a verdict dict to and from the measurement columns.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.errors import RecordError
from core.observations import (
    DNSQuery,
    HTTPRequest,
    Measurement,
    Observation,
    TCPConnect,
    TLSHandshake,
    measurement_from_dict,
    measurement_to_dict,
)
from core.verdicts import split_list
from results.canonical import sha256_hex

REF_PREFIX = "sha256:"


def ref(digest: str) -> str:
    return REF_PREFIX + digest


def unref(reference: str) -> str:
    if not reference.startswith(REF_PREFIX):
        raise RecordError(f"not a blob reference: {reference!r}")
    return reference[len(REF_PREFIX) :]


@dataclass
class RawMeasurement:
    """A measurement as stored: the JSON record and the blobs it refers to (by SHA-256)."""

    record: dict[str, Any]
    bodies: dict[str, bytes] = field(default_factory=dict)
    certificates: dict[str, bytes] = field(default_factory=dict)


def split_blobs(m: Measurement) -> RawMeasurement:
    """The record of a measurement with bodies and certificates replaced by references."""
    raw = RawMeasurement(measurement_to_dict(m))
    for obs, data in zip(m.observations, raw.record["observations"], strict=True):
        if isinstance(obs, HTTPRequest) and obs.body:
            digest = sha256_hex(obs.body)
            raw.bodies[digest] = obs.body
            data["body"] = ""
            data["body_ref"] = ref(digest)
        elif isinstance(obs, TLSHandshake):
            refs = []
            for der in obs.peer_certificates:
                digest = sha256_hex(der)
                raw.certificates[digest] = der
                refs.append(ref(digest))
            data["peer_certificates"] = refs
    return raw


def join_blobs(
    record: Mapping[str, Any],
    body: Callable[[str], bytes],
    certificate: Callable[[str], bytes],
) -> Measurement:
    """The Measurement a record describes, with its blobs fetched by `body` and `certificate`."""
    data = json.loads(json.dumps(record))  # a private deep copy: we edit the observation dicts
    fills: dict[int, dict[str, Any]] = {}
    for i, obs in enumerate(data["observations"]):
        if obs.get("step") == "http" and "body_ref" in obs:
            fills[i] = {"body": body(unref(obs.pop("body_ref")))}
        elif obs.get("step") == "tls":
            ders = tuple(certificate(unref(r)) for r in obs.get("peer_certificates", []))
            obs["peer_certificates"] = []
            fills[i] = {"peer_certificates": ders}
    m = measurement_from_dict(data)
    if not fills:
        return m
    observations = tuple(
        dataclasses.replace(obs, **fills[i]) if i in fills else obs
        for i, obs in enumerate(m.observations)
    )
    return dataclasses.replace(m, observations=observations)


def record_refs(record: Any) -> Iterator[tuple[str, str]]:
    """(table, sha256) of every blob a stored record refers to; none for run records.

    Raises (ValueError, TypeError, KeyError, AttributeError) on a measurement record that does
    not have the shape `split_blobs` gives.
    """
    if not isinstance(record, dict) or record.get("kind") not in ("measurement", "control"):
        return
    for obs in record["measurement"]["observations"]:
        if obs.get("step") == "http" and obs.get("body_ref") is not None:
            yield "bodies", unref(obs["body_ref"])
        elif obs.get("step") == "tls":
            for reference in obs.get("peer_certificates", []):
                yield "certificates", unref(reference)


# --- step tables ---------------------------------------------------------------------------


@dataclass
class StepRow:
    """One row of a step table; `answers` are dns_answers rows that need this row's id."""

    table: str
    row: dict[str, Any]
    answers: list[dict[str, Any]] = field(default_factory=list)


def step_rows(measurement_id: int, m: Measurement) -> Iterator[StepRow]:
    """The step-table rows of a measurement, in observation order."""
    for index, obs in enumerate(m.observations):
        common = {"measurement_id": measurement_id, "step_index": index, "t0": obs.t0, "t": obs.t}
        yield _step_row(obs, common)


def _step_row(obs: Observation, common: dict[str, Any]) -> StepRow:
    if isinstance(obs, DNSQuery):
        return StepRow("dns_queries", {
            **common, "hostname": obs.hostname, "query_type": obs.query_type,
            "engine": obs.engine, "resolver": obs.resolver, "failure": obs.failure,
            "n_responses": len(obs.responses), "injected": int(obs.injected),
        }, [
            {"response_index": i, "t": r.t, "rcode": r.rcode, "address": address, "ttl": r.ttl}
            for i, r in enumerate(obs.responses)
            # A response without addresses (NXDOMAIN, an empty NOERROR) still gets a row, so
            # its rcode can be queried.
            for address in (r.addresses or (None,))
        ])
    if isinstance(obs, TCPConnect):
        return StepRow("tcp_connects", {
            **common, "address": obs.address, "port": obs.port, "failure": obs.failure,
        })
    if isinstance(obs, TLSHandshake):
        chain = [sha256_hex(der) for der in obs.peer_certificates]
        return StepRow("tls_handshakes", {
            **common, "address": obs.address, "port": obs.port, "sni": obs.sni,
            "purpose": obs.purpose, "failure": obs.failure, "version": obs.version,
            "cipher": obs.cipher, "alpn": obs.alpn, "cert_verified": int(obs.cert_verified),
            "leaf_sha256": chain[0] if chain else None, "chain": json.dumps(chain),
        })
    if isinstance(obs, HTTPRequest):
        return StepRow("http_requests", {
            **common, "method": obs.method, "url": obs.url, "address": obs.address,
            "port": obs.port, "failure": obs.failure, "status": obs.status, "title": obs.title,
            "body_length": obs.body_length, "body_sha256": obs.body_sha256,
            "body_ref": sha256_hex(obs.body) if obs.body else None,
            "body_truncated": int(obs.body_truncated), "goodput": obs.goodput,
            "location": obs.location, "headers": json.dumps([list(h) for h in obs.headers]),
        })
    raise TypeError(f"unknown observation type {type(obs).__name__}")


# --- verdict columns -----------------------------------------------------------------------

VERDICT_COLUMNS = (
    "verdict", "techniques", "outcomes", "confidence", "confirmed", "reason", "details",
)


def verdict_columns(verdict: Mapping[str, Any]) -> dict[str, Any]:
    """The measurement columns for a verdict dict (as `core.verdicts.Verdict.to_dict` gives)."""
    if not verdict.get("verdict"):
        raise RecordError("a verdict dict needs a 'verdict'")
    lists = {key: [str(v) for v in verdict.get(key) or ()] for key in ("techniques", "outcomes")}
    for key, items in lists.items():
        # The columns are comma lists; a comma inside an item could not be read back.
        if any("," in item for item in items):
            raise RecordError(f"verdict {key} must not contain commas: {items}")
    return {
        "verdict": verdict["verdict"],
        "techniques": ",".join(lists["techniques"]),
        "outcomes": ",".join(lists["outcomes"]),
        "confidence": float(verdict.get("confidence") or 0.0),
        "confirmed": int(bool(verdict.get("confirmed"))),
        "reason": str(verdict.get("reason") or ""),
        # Details are derived data for people to read; anything not JSON becomes its str().
        "details": json.dumps(verdict.get("details") or {}, sort_keys=True, default=str),
    }


def verdict_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """The verdict dict stored in a measurement row; {} when it has not been judged yet."""
    if row.get("verdict") is None:
        return {}
    return {
        "verdict": row["verdict"],
        "techniques": split_list(row["techniques"]),
        "outcomes": split_list(row["outcomes"]),
        "confidence": row["confidence"],
        "confirmed": bool(row["confirmed"]),
        "reason": row["reason"],
        "details": _details(row.get("details")),
    }


def _details(value: Any) -> dict[str, Any]:
    # Rows come raw (JSON text) or already decoded by the store's row presenter.
    if isinstance(value, str):
        decoded: dict[str, Any] = json.loads(value) if value else {}
        return decoded
    return dict(value or {})
