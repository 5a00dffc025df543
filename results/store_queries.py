"""The store's reads: runs, measurements (as rows or rebuilt objects), controls, blobs, and
the integrity checks of `results.integrity`, as methods that `results.store.Store` inherits.

Writes are in `results.store`; every query here reads the store's one connection, through
sqlite-utils where it builds the statement and plainly where the statement is a join.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import sqlite_utils

from core.observations import Measurement
from results import integrity
from results import rows as R

_PAGE = 500  # rows per query when streaming


class StoreQueries:
    """The read methods of a Store (`results.store.Store` opens the connection)."""

    _conn: sqlite3.Connection
    db: sqlite_utils.Database

    def runs(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Runs, newest first."""
        rows = self.db["runs"].rows_where(order_by="id DESC", limit=limit)
        return [_run_row(row) for row in rows]

    def run(self, run_id: int) -> dict[str, Any] | None:
        rows = list(self.db["runs"].rows_where("id = ?", [run_id]))
        return _run_row(rows[0]) if rows else None

    def running_runs(self) -> list[dict[str, Any]]:
        """The runs still `running`, oldest first, each with its `id`, `owner` (the process
        that started it, or None for runs of older versions), `config` and `last`: the time of
        its newest record (its start if it has none), for telling how long it has been silent."""
        rows = self.db.query(
            "SELECT r.id, r.owner, r.config, COALESCE(MAX(rec.created), r.started) AS last "
            "FROM runs r LEFT JOIN records rec ON rec.run_id = r.id "
            "WHERE r.status = 'running' GROUP BY r.id ORDER BY r.id")
        return [_run_row(row) for row in rows]

    def measurements(
        self,
        run_id: int | None = None,
        target: str | None = None,
        verdict: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Measurement rows (verdict columns included), newest first.

        `target` matches a target URL (with or without its trailing slash) or a hostname.
        """
        where, args = _filters(run_id, target, verdict)
        rows = self.db["measurements"].rows_where(
            " AND ".join(where) or None, args, order_by="id DESC", limit=limit
        )
        return [_measurement_row(row) for row in rows]

    def count_measurements(self, run_id: int | None = None, target: str | None = None,
                           verdict: str | None = None) -> int:
        """How many measurements `measurements` would list without a limit."""
        where, args = _filters(run_id, target, verdict)
        return int(self.db["measurements"].count_where(" AND ".join(where) or None, args))

    def judged_rows(self, target: str | None = None) -> Iterator[dict[str, Any]]:
        """The judged measurements (of one target, matched as `measurements` does), in no
        particular order, with the verdict columns as stored and their run's network and
        vantage (JSON text): what `results.timeline.verdict_points` makes points of."""
        # Only the target clause: its columns (target_url, hostname) exist in measurements alone.
        where, args = _filters(None, target, None)
        return self.db.query(
            "SELECT m.id, m.run_id, m.target_url, m.platform, m.started, m.verdict, "
            "m.techniques, m.outcomes, m.confidence, m.confirmed, r.network, r.vantage "
            "FROM measurements m JOIN runs r ON r.id = m.run_id "
            "WHERE " + " AND ".join(["m.verdict IS NOT NULL", *where]), args)

    def iter_rows(self, run_id: int | None = None) -> Iterator[dict[str, Any]]:
        """Every measurement row, oldest first, a page at a time (for export and re-analysis).

        Pages are read by id, so no read cursor stays open while the caller writes.
        """
        last = 0
        while True:
            where, args = _filters(run_id, None, None)
            page = list(self.db["measurements"].rows_where(
                " AND ".join([*where, "id > ?"]), [*args, last], order_by="id", limit=_PAGE
            ))
            for row in page:
                yield _measurement_row(row)
            if len(page) < _PAGE:
                return
            last = page[-1]["id"]

    def measurement(self, measurement_id: int) -> dict[str, Any] | None:
        """One measurement row plus `observations`, as its raw record holds them: HTTP bodies and
        certificates appear as SHA-256 references (`body_ref`, `peer_certificates`), readable
        with `body()` and `certificate()`; `load_measurement` gives the full object."""
        found = list(self.db.query(
            "SELECT m.*, r.canonical, r.sha256 AS record_sha256 FROM measurements m "
            "JOIN records r ON r.id = m.record_id WHERE m.id = ?", [measurement_id],
        ))
        if not found:
            return None
        row = found[0]
        record = json.loads(row.pop("canonical"))
        result = _measurement_row(row)
        result["observations"] = record["measurement"]["observations"]
        return result

    def load_measurement(self, measurement_id: int) -> Measurement:
        """The Measurement rebuilt from its raw record and blobs, equal to the one stored."""
        row = self._conn.execute(
            "SELECT r.canonical FROM measurements m JOIN records r ON r.id = m.record_id "
            "WHERE m.id = ?", (measurement_id,),
        ).fetchone()
        if row is None:
            raise KeyError(f"measurement {measurement_id} not found")
        record = json.loads(row[0])
        return R.join_blobs(record["measurement"], self.body, self.certificate)

    def iter_measurements(
        self, run_id: int | None = None
    ) -> Iterator[tuple[int, Measurement, dict[str, Any]]]:
        """(id, Measurement, verdict dict or {} if not judged), oldest first."""
        for row in self.iter_rows(run_id):
            yield row["id"], self.load_measurement(row["id"]), R.verdict_from_row(row)

    def body(self, sha256: str) -> bytes:
        """A stored HTTP body by its SHA-256; IntegrityError if missing or damaged."""
        return integrity.load_body(self._conn, sha256)

    def certificate(self, sha256: str) -> bytes:
        """A stored DER certificate by its SHA-256; IntegrityError if missing or damaged."""
        return integrity.load_certificate(self._conn, sha256)

    # --- integrity (results.integrity) -------------------------------------------------------

    def head(self) -> str:
        """The hash of the newest record (GENESIS when empty). Note it somewhere else too: the
        chain shows changed, removed or inserted records, but not records cut off at the end."""
        return integrity.head(self._conn)

    def verify_chain(self) -> list[int]:
        """Ids of records that do not hold, oldest first; [] means the database is intact.

        A record fails when its hash does not match its text and predecessor, when its link
        does not point at the previous record's hash (a record changed, removed or inserted),
        when its kind/run_id/created columns disagree with the hashed text, or when it refers
        to a body or certificate that is missing or does not match its own hash
        (`damaged_blobs` names those blobs). Only the raw tables are consulted.
        """
        return integrity.verify_chain(self._conn)

    def damaged_blobs(self) -> list[tuple[str, str]]:
        """(table, sha256) of every body or certificate whose content does not match its key."""
        return integrity.damaged_blobs(self._conn)

    def load_control(self, measurement_id: int) -> Measurement | None:
        """The stored control of one measurement, rebuilt from its raw record; None if none."""
        row = self._conn.execute(
            "SELECT r.canonical FROM controls c JOIN records r ON r.id = c.record_id "
            "WHERE c.measurement_id = ?", (measurement_id,),
        ).fetchone()
        if row is None:
            return None
        return R.join_blobs(json.loads(row[0])["measurement"], self.body, self.certificate)

    def control_sha256(self, measurement_id: int) -> str | None:
        """The chain hash of one measurement's control record; None if it has no control."""
        row = self._conn.execute(
            "SELECT r.sha256 FROM controls c JOIN records r ON r.id = c.record_id "
            "WHERE c.measurement_id = ?", (measurement_id,)).fetchone()
        return str(row[0]) if row else None


# --- helpers ---------------------------------------------------------------------------------


def _filters(
    run_id: int | None, target: str | None, verdict: str | None
) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    args: list[Any] = []
    if run_id is not None:
        where.append("run_id = ?")
        args.append(run_id)
    if target:
        bare = target.rstrip("/")
        where.append("(target_url IN (?, ?, ?) OR hostname = ?)")
        args.extend([target, bare, bare + "/", target.lower()])
    if verdict is not None:
        where.append("verdict = ?")
        args.append(verdict)
    return where, args


def _run_row(row: dict[str, Any]) -> dict[str, Any]:
    for key in ("vantage", "config", "summary", "owner"):
        if row.get(key) is not None:
            row[key] = json.loads(row[key])
    return row


def _measurement_row(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("confirmed") is not None:
        row["confirmed"] = bool(row["confirmed"])
    if row.get("details") is not None:
        row["details"] = json.loads(row["details"])
    return row
