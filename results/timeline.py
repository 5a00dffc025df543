"""What the event analysis reads from a store: one point per judged measurement, oldest first.

`verdict_points` joins each judged measurement with its run: the run's network state and where
it measured from. The vantage point is the run's vantage JSON `vantage_id` (a stable id a probe
may be given), else "local"; ASN and country come from the same JSON when present (imported
OONI runs carry `asn` and `country`). Unknown values are None: an empty string, OONI's `AS0`
and `ZZ`. An ASN is written `AS<number>`, so that 12345 and "AS12345" are one network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from core.times import parse_utc, parse_utc_or_none
from core.verdicts import split_list
from results.store import Store

_UNKNOWN_ASN = {"", "AS0"}
_UNKNOWN_COUNTRY = {"", "ZZ"}


def verdict_points(
    store: Store,
    since: str | None = None,
    until: str | None = None,
    target: str | None = None,
) -> list[dict[str, Any]]:
    """One dict per judged measurement (its verdict is set), oldest first.

    `since` and `until` are ISO 8601 times (UTC when no offset is given; a bare date is its
    midnight) bounding the measurement's start, both inclusive. `target` matches a target URL
    (with or without its trailing slash) or a hostname, as `Store.measurements` does. A row
    whose start time cannot be read is left out.
    """
    low, high = parse_utc(since), parse_utc(until)
    found: list[tuple[datetime, int, dict[str, Any]]] = []
    vantages: dict[str, dict[str, Any]] = {}  # the same run's JSON is decoded once
    for row in store.judged_rows(target):
        moment = parse_utc_or_none(row["started"])
        if moment is None or (low and moment < low) or (high and moment > high):
            continue
        text = row["vantage"] or "{}"
        vantage = vantages.get(text)
        if vantage is None:
            vantage = vantages[text] = _vantage(text)
        found.append((moment, row["id"], _point(
            row["id"], row["run_id"], row["target_url"], row["platform"], row["started"],
            {"verdict": row["verdict"], "techniques": split_list(row["techniques"]),
             "outcomes": split_list(row["outcomes"]), "confidence": row["confidence"],
             "confirmed": row["confirmed"]},
            row["network"], vantage)))
    found.sort(key=lambda item: (item[0], item[1]))
    return [point for _, _, point in found]


class BundlePoints:
    """The same points as `verdict_points`, built from exported rows instead of a store.

    An evidence bundle holds the raw records (run_start: the vantage; measurement: target and
    start; run_end: the network state) and the verdicts; this gathers what the points need from
    them, so that the events a bundle carries can be recomputed from the bundle alone. Feed it
    every record, then ask for the points of the verdicts.
    """

    def __init__(self) -> None:
        self._vantages: dict[int, dict[str, Any]] = {}
        self._networks: dict[int, Any] = {}
        self._measured: dict[int, tuple[Any, Any]] = {}  # record id -> (started, platform)
        self.runs: set[int] = set()  # every run a record was fed for

    def record(self, record_id: int, run_id: int, kind: str, data: Any) -> None:
        """One record (`data`: its parsed canonical JSON)."""
        if run_id is not None:
            self.runs.add(run_id)
        if not isinstance(data, dict):
            return
        if kind == "run_start":
            self._vantages[run_id] = vantage_fields(data.get("vantage"))
        elif kind == "run_end":
            self._networks[run_id] = data.get("network")
        elif kind == "measurement" and isinstance(data.get("measurement"), dict):
            m = data["measurement"]
            target = m.get("target") if isinstance(m.get("target"), dict) else {}
            self._measured[record_id] = (m.get("started"), target.get("platform"))

    def points(self, verdicts: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """One point per verdict row (as exported) whose record was fed, oldest first."""
        found: list[tuple[datetime, int, dict[str, Any]]] = []
        for v in verdicts:
            measured = self._measured.get(v["record_id"])
            moment = parse_utc_or_none(measured[0]) if measured else None
            if measured is None or moment is None:
                continue
            run_id = v["run_id"]
            found.append((moment, v["measurement_id"], _point(
                v["measurement_id"], run_id, v["target"], measured[1], measured[0], v,
                self._networks.get(run_id), self._vantages.get(run_id, vantage_fields(None)))))
        found.sort(key=lambda item: (item[0], item[1]))
        return [point for _, _, point in found]


def _point(measurement_id: int, run_id: int, target: str, platform: Any, started: Any,
           verdict: Mapping[str, Any], run_network: Any, vantage: Mapping[str, Any]
           ) -> dict[str, Any]:
    """One point: the measurement, its verdict's fields, its run's network and vantage."""
    return {
        "measurement_id": measurement_id, "run_id": run_id, "target": target,
        "platform": platform, "started": started, "verdict": verdict["verdict"],
        "techniques": list(verdict.get("techniques") or ()),
        "outcomes": list(verdict.get("outcomes") or ()),
        "confidence": float(verdict.get("confidence") or 0.0),
        "confirmed": bool(verdict.get("confirmed")), "run_network": run_network, **vantage,
    }


def _vantage(text: str) -> dict[str, Any]:
    """vantage, asn, country from a run's vantage JSON."""
    try:
        data = json.loads(text)
    except ValueError:
        data = {}
    return vantage_fields(data)


def run_fields(run: Mapping[str, Any] | None) -> dict[str, Any]:
    """The per-run columns an export adds to each measurement: run_network, then vantage, asn,
    country (`vantage_fields`), from a stored run row (None: a run that is not there).

    The CSV and Parquet exports both call this, so that their columns cannot drift apart.
    """
    run = run or {}
    vantage = run.get("vantage")
    fields = _vantage(vantage or "{}") if isinstance(vantage, str) else vantage_fields(vantage)
    return {"run_network": run.get("network"), **fields}


def vantage_fields(data: Any) -> dict[str, Any]:
    """vantage, asn, country from a run's parsed vantage JSON (anything: it is untrusted)."""
    if not isinstance(data, dict):
        data = {}
    asn = str(data.get("asn") or "").strip().upper()
    asn = f"AS{asn}" if asn.isdigit() else asn
    country = str(data.get("country") or "").strip().upper()
    return {
        "vantage": str(data.get("vantage_id") or "local"),
        "asn": None if asn in _UNKNOWN_ASN else asn,
        "country": None if country in _UNKNOWN_COUNTRY else country,
    }


