"""A bundle's runs as classifying them again needs them, read from its checked raw records.

Once `results.bundle_verify` has loaded a bundle's raw data into a database with netvigil's
schema (and checked the chain, blobs and signatures), this gives, per run, what a verdict
depends on besides the analysis settings: the run's network state from its `run_end` record,
its measurements rebuilt from their records and blobs, in the order they were recorded, and
its controls with the measurement id each names. Only signed (chained) records are read: none
of the derived files.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from core.observations import Measurement
from results import integrity
from results import rows as R


@dataclass
class BundleRun:
    """One run as the bundle holds it."""

    run_id: int
    started: bool = False  # its run_start record is in the bundle
    ended: bool = False  # its run_end record is in the bundle
    network: str | None = None  # the run_end record's network state
    measurements: list[tuple[int, Measurement]] = field(default_factory=list)  # (record id, m)
    controls: list[tuple[int, Any, Measurement]] = field(default_factory=list)  # (record, mid, c)
    broken: list[tuple[int, str]] = field(default_factory=list)  # (record id, why not rebuilt)

    @property
    def whole(self) -> bool:
        """Its first and last records are in the bundle, so every record between them is."""
        return self.started and self.ended


def bundle_runs(conn: sqlite3.Connection, run_ids: Iterable[int]) -> dict[int, BundleRun]:
    """The runs `run_ids` as the bundle's records give them (a run with no record at all is
    neither started nor ended)."""
    found = {run_id: BundleRun(run_id) for run_id in run_ids}
    for run in found.values():
        for rid, kind, data in _records(conn, run.run_id):
            if kind == "run_start":
                run.started = True
            elif kind == "run_end":
                run.ended = True
                run.network = data.get("network") if isinstance(data, dict) else None
            elif kind in ("measurement", "control"):
                try:
                    m = _rebuild(conn, data)
                except (integrity.IntegrityError, ValueError, TypeError, KeyError,
                        AttributeError) as exc:
                    run.broken.append((rid, f"{type(exc).__name__}: {exc}"))
                    continue
                if kind == "measurement":
                    run.measurements.append((rid, m))
                else:
                    run.controls.append((rid, data.get("measurement_id"), m))
    return found


def measurement_runs(conn: sqlite3.Connection) -> dict[int, list[int]]:
    """{run id: its measurement record ids, in order} of every measurement record."""
    found: dict[int, list[int]] = {}
    for rid, run_id in conn.execute(
            "SELECT id, run_id FROM records WHERE kind = 'measurement' ORDER BY id"):
        found.setdefault(run_id, []).append(rid)
    return found


def parsed_records(conn: sqlite3.Connection) -> Iterator[tuple[int, int, str, Any]]:
    """(id, run id, kind, parsed canonical JSON or None) of every record, in chain order."""
    for rid, run_id, kind, text in conn.execute(
            "SELECT id, run_id, kind, canonical FROM records ORDER BY id"):
        yield rid, run_id, kind, _json(text)


def _records(conn: sqlite3.Connection, run_id: int) -> Iterator[tuple[int, str, Any]]:
    for rid, kind, text in conn.execute(
            "SELECT id, kind, canonical FROM records WHERE run_id = ? ORDER BY id", (run_id,)):
        yield rid, kind, _json(text)


def _rebuild(conn: sqlite3.Connection, data: Any) -> Measurement:
    """The measurement (or control) a record holds, with its bodies and certificates."""
    return R.join_blobs(data["measurement"], lambda d: integrity.load_body(conn, d),
                        lambda d: integrity.load_certificate(conn, d))


def _json(text: Any) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None
