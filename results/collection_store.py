"""The collection's storage: a folder of accepted bundles and the index of their measurements.

A collection is a folder:

    bundles/<sha256>.zip   every accepted bundle, byte for byte (its name is its SHA-256)
    collection.db          an index of their judged measurements, for events across probes

This module holds the index's schema, its one write (a bundle and its points, in one
transaction with moving the bundle into place) and its queries. What to accept and how a
bundle becomes index rows is the collector's intake (`services.collector_intake`).

Measurement ids are a probe's own, so the index numbers points afresh; each point keeps its
probe, its run and measurement ids in that probe, and its record hash. The same record in two
bundles (overlapping exports) is indexed once, by its chain hash.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from core.errors import BundleRejected
from core.times import format_utc, parse_utc, utc_now

INDEX_NAME = "collection.db"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bundles (
    sha256 TEXT PRIMARY KEY,
    received TEXT NOT NULL,             -- ISO 8601 UTC
    size INTEGER NOT NULL,
    probes TEXT NOT NULL,               -- JSON list: the probe that sent it
    runs INTEGER NOT NULL,
    points INTEGER NOT NULL,            -- judged measurements it holds
    new_points INTEGER NOT NULL         -- of which this collection had none before
);
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY,
    record_sha256 TEXT NOT NULL UNIQUE, -- the measurement record's chain hash in its probe
    bundle TEXT NOT NULL REFERENCES bundles (sha256),
    probe TEXT NOT NULL,                -- the probe's oldest key id, or 'unsigned'
    run_id INTEGER NOT NULL,            -- in the probe's own database
    measurement_id INTEGER NOT NULL,    -- in the probe's own database
    started TEXT NOT NULL,              -- the measurement's start, ISO 8601 UTC ("...Z")
    network TEXT NOT NULL,              -- "AS64500 (KE)", "KE", or "vantage probe <key>"
    point TEXT NOT NULL                 -- JSON: results.timeline's point
);
CREATE INDEX IF NOT EXISTS points_probe ON points (probe);
CREATE INDEX IF NOT EXISTS points_started ON points (started);
"""

_ORIGIN = ("point", "probe", "run_id", "measurement_id", "record_sha256", "bundle")


@dataclass(frozen=True)
class Added:
    """A bundle in the index: what `CollectionStore.add_bundle` (or the intake) did with it."""

    sha256: str
    known: bool  # the very same bundle was there already
    probes: tuple[str, ...]
    runs: int
    points: int
    new_points: int

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.sha256, "known": self.known, "probes": list(self.probes),
                "runs": self.runs, "points": self.points, "new_points": self.new_points}


class PointRow(NamedTuple):
    """One judged measurement of a bundle, as the index keeps it."""

    record_sha256: str
    probe: str
    run_id: int
    measurement_id: int
    started: str  # utc_text: sorts as time does
    network: str
    point: str  # JSON text of results.timeline's point


def utc_text(when: str) -> str:
    """An ISO 8601 time as UTC text that sorts as time does ("2026-11-29T03:04:05.000000Z");
    a bare date is its midnight, a time without offset is UTC. TimeFormatError if unreadable."""
    return format_utc(parse_utc(when))


class CollectionStore:
    """A collection folder (created when missing). Safe to share between threads."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.bundles = self.folder / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()  # one writer at a time; checks run outside it
        self._conn = sqlite3.connect(self.folder / INDEX_NAME, check_same_thread=False,
                                     isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CollectionStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- writes ------------------------------------------------------------------------------

    @contextmanager
    def incoming(self, data: bytes) -> Iterator[Path]:
        """A bundle's bytes in a temporary file inside the collection (so that keeping it is a
        rename), removed on leaving unless `add_bundle` moved it into place."""
        fd, name = tempfile.mkstemp(prefix=".incoming-", suffix=".zip", dir=self.bundles)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            yield temp
        finally:
            temp.unlink(missing_ok=True)

    def add_bundle(self, digest: str, temp: Path, size: int, probes: str | Sequence[str],
                   runs: int, rows: Sequence[PointRow]) -> Added:
        """Keep a checked bundle: its file (`temp`, from `incoming`) as bundles/<digest>.zip and
        its points in the index, all or nothing. A bundle another thread kept meanwhile is
        returned as known, and `temp` is left where it is. BundleRejected (nothing kept) if a
        point differs from the one the index holds for the same record: a later claim never
        replaces, nor silently loses to, an earlier one."""
        probes = (probes,) if isinstance(probes, str) else tuple(probes)
        with self._lock:
            again = self.bundle(digest)
            if again is not None:
                return again
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._refuse_conflicts(rows)
                # Records already indexed from an overlapping bundle are ignored: the rows
                # inserted are the new points.
                new = self._conn.executemany(
                    "INSERT OR IGNORE INTO points (record_sha256, bundle, probe, run_id, "
                    "measurement_id, started, network, point) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r.record_sha256, digest, *r[1:]) for r in rows]).rowcount
                self._conn.execute(
                    "INSERT INTO bundles VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (digest, utc_now(), size, json.dumps(list(probes)), runs, len(rows), new))
                # The file moves last, inside the transaction: a failed move leaves no index
                # rows pointing at a missing bundle.
                os.replace(temp, self.bundles / f"{digest}.zip")
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        return Added(digest, False, probes, runs, len(rows), new)

    def _refuse_conflicts(self, rows: Sequence[PointRow]) -> None:
        """BundleRejected naming the first row whose record the index holds differently."""
        for row in rows:
            held = self._conn.execute("SELECT probe, point, bundle FROM points WHERE "
                                      "record_sha256 = ?", (row.record_sha256,)).fetchone()
            if held is not None and (held[0], json.loads(held[1])) != (row.probe,
                                                                      json.loads(row.point)):
                raise BundleRejected(
                    f"record {row.record_sha256} (measurement {row.measurement_id}): this "
                    f"bundle says other than bundle {held[2]} did about it (probe, verdict or "
                    "measurement): the collection keeps the first and refuses the other",
                    [f"points: record {row.record_sha256}: conflicts with bundle {held[2]}"])

    # --- queries -----------------------------------------------------------------------------

    def bundle(self, digest: str) -> Added | None:
        """The bundle with this SHA-256 as known (`new_points` 0: none are new now), or None."""
        row = self._conn.execute("SELECT probes, runs, points, new_points FROM bundles "
                                 "WHERE sha256 = ?", (digest,)).fetchone()
        if row is None:
            return None
        return Added(digest, True, tuple(json.loads(row[0])), row[1], row[2], 0)

    def point_texts(self, low: str, high: str) -> list[tuple[int, str]]:
        """(point id, point JSON) of the points started in [low, high] (utc_text, or "" and
        "\\uffff" for no bound), oldest first."""
        return [(int(pid), str(text)) for pid, text in self._conn.execute(
            "SELECT id, point FROM points WHERE started >= ? AND started <= ? "
            "ORDER BY started, id", (low, high))]

    def origin(self, point_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Where each point comes from: probe, run and measurement ids, record hash, bundle."""
        marks = ", ".join("?" * len(point_ids))
        cursor = self._conn.execute(
            "SELECT id, probe, run_id, measurement_id, record_sha256, bundle FROM points "
            f"WHERE id IN ({marks}) ORDER BY id", list(point_ids))
        return [dict(zip(_ORIGIN, row, strict=True)) for row in cursor]

    def status(self) -> dict[str, Any]:
        """Counts: bundles, bytes, points, probes, networks, and the newest bundle's time."""
        bundles, size, last = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), MAX(received) FROM bundles").fetchone()
        points = int(self._conn.execute("SELECT COUNT(*) FROM points").fetchone()[0])
        probes = [p for (p,) in self._conn.execute(
            "SELECT DISTINCT probe FROM points ORDER BY probe")]
        networks = [n for (n,) in self._conn.execute(
            "SELECT DISTINCT network FROM points ORDER BY network")]
        return {"bundles": bundles, "bytes": size, "last_received": last,
                "points": points, "probes": probes, "networks": networks}
