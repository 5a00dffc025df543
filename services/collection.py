"""The collector's store: evidence bundles from many probes, kept as received and indexed.

A collection is a folder:

    bundles/<sha256>.zip   every accepted bundle, byte for byte (its name is its SHA-256)
    collection.db          an index of their judged measurements, for events across probes

A bundle is accepted only when `netvigil evidence verify` would pass it (services.evidence:
hashes, chain, signatures, timestamps, verdict links, events); a rejected one is not kept, and
the reasons are returned. The same bundle twice is stored once; the same record in two bundles
(overlapping exports) is indexed once, by its chain hash.

Probes are told apart by their oldest signing key (a pseudonym: keys carry no identity), which
every bundle from one probe lists first.
Measurement ids are a probe's own, so the index numbers points afresh; each point keeps its
probe, its run and measurement ids in that probe, and its record hash, so any event found here
leads back to the bundle and the record that prove it.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.event_detection import detect_events
from analysis.event_records import DEFAULT_POLICY, Event, EventPolicy, Point
from analysis.outages import Bin, reachability
from core.errors import BundleRejected
from core.times import parse_utc, utc_now
from results.bundle_verify import verify_bundle
from results.verify import Verification
from services.evidence import bundle_points, check_events

UNSIGNED = "unsigned"

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


@dataclass(frozen=True)
class Added:
    """What `Collection.add` did with a bundle."""

    sha256: str
    known: bool  # the very same bundle was there already
    probes: tuple[str, ...]
    runs: int
    points: int
    new_points: int

    def to_dict(self) -> dict[str, Any]:
        return {"bundle": self.sha256, "known": self.known, "probes": list(self.probes),
                "runs": self.runs, "points": self.points, "new_points": self.new_points}


class Collection:
    """A collection folder (created when missing). Safe to share between threads."""

    def __init__(self, folder: str | Path, allowed_keys: Sequence[str] = (),
                 max_unpacked: int = 1 << 30) -> None:
        self.folder = Path(folder)
        self.max_unpacked = max_unpacked  # a bundle inflating beyond this is refused unread
        self.bundles = self.folder / "bundles"
        self.bundles.mkdir(parents=True, exist_ok=True)
        self.allowed_keys = frozenset(allowed_keys)
        self._lock = threading.Lock()  # one writer at a time; checks run outside it
        self._conn = sqlite3.connect(self.folder / "collection.db", check_same_thread=False,
                                     isolation_level=None)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- adding ----------------------------------------------------------------------------

    def add(self, data: bytes) -> Added:
        """Check a bundle (zip bytes) and keep it; BundleRejected if it does not verify or its
        runs are signed by a key this collector does not accept."""
        digest = hashlib.sha256(data).hexdigest()
        known = self._known(digest)
        if known is not None:
            return known
        fd, name = tempfile.mkstemp(prefix=".incoming-", suffix=".zip", dir=self.bundles)
        temp = Path(name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            # The check as `netvigil evidence verify` makes it, keeping the unpacked files and
            # the points it derives for the index: the zip is read and parsed once.
            index: list[tuple[list[tuple[Any, ...]], str, set[str], int]] = []

            def derived(files: dict[str, bytes], report: Verification) -> None:
                points, verdicts, runs = bundle_points(files)
                check_events(files, report, points)
                index.append(_index_rows(files, points, verdicts, runs))

            report = verify_bundle(temp, derived, self.max_unpacked)
            if not report.ok:
                raise BundleRejected(f"the bundle does not verify: {len(report.problems)} "
                                     f"problem(s), first: {report.problems[0]}", report.problems)
            rows, probe, signers, runs = index[0]
            refused = sorted((signers or {UNSIGNED}) - self.allowed_keys) \
                if self.allowed_keys else []
            if refused:
                raise BundleRejected(f"runs signed by key(s) this collector does not accept: "
                                     f"{', '.join(refused)}")
            with self._lock:
                again = self._known(digest)  # another thread may have added it meanwhile
                if again is not None:
                    return again
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    # Records already indexed from an overlapping bundle are ignored: the
                    # rows inserted are the new points.
                    new = self._conn.executemany(
                        "INSERT OR IGNORE INTO points (record_sha256, bundle, probe, run_id, "
                        "measurement_id, started, network, point) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(r[0], digest, *r[1:]) for r in rows]).rowcount
                    self._conn.execute(
                        "INSERT INTO bundles VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (digest, utc_now(), len(data), json.dumps([probe]), runs, len(rows),
                         new))
                    os.replace(temp, self.bundles / f"{digest}.zip")
                    self._conn.execute("COMMIT")
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
            return Added(digest, False, (probe,), runs, len(rows), new)
        finally:
            temp.unlink(missing_ok=True)

    def _known(self, digest: str) -> Added | None:
        row = self._conn.execute("SELECT probes, runs, points, new_points FROM bundles "
                                 "WHERE sha256 = ?", (digest,)).fetchone()
        if row is None:
            return None
        return Added(digest, True, tuple(json.loads(row[0])), row[1], row[2], 0)

    def _count(self) -> int:
        return int(self._conn.execute("SELECT COUNT(*) FROM points").fetchone()[0])

    # --- reading ---------------------------------------------------------------------------

    def points(self, since: str | None = None, until: str | None = None) -> list[Point]:
        """The indexed measurements started in [since, until] (ISO 8601, UTC unless they say
        otherwise; both optional) as event points, numbered by this collection, oldest first."""
        low, high = utc_text(since) if since else "", utc_text(until) if until else "\uffff"
        found = []
        for pid, text in self._conn.execute(
                "SELECT id, point FROM points WHERE started >= ? AND started <= ? "
                "ORDER BY started, id", (low, high)):
            found.append(Point.from_dict({**json.loads(text), "measurement_id": pid}))
        return found

    def events(self, kind: str | None = None, since: str | None = None,
               until: str | None = None, policy: EventPolicy = DEFAULT_POLICY) -> list[Event]:
        """Blocking and outage events across every probe of the collection."""
        return [e for e in detect_events(self.points(since, until), policy)
                if kind is None or e.kind == kind]

    def reachability(self, since: str | None = None, until: str | None = None,
                     bin_minutes: int = 60, window_bins: int = 24, warning: float = 0.8,
                     critical: float = 0.5) -> list[Bin]:
        """The reachable share per network and time bin across probes, flagged against each
        network's baseline (as `netvigil plot reachability` does for one probe)."""
        return reachability(self.points(since, until), bin_minutes, window_bins, warning,
                            critical)

    def origin(self, point_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Where each point comes from: probe, run and measurement ids, record hash, bundle."""
        marks = ", ".join("?" * len(point_ids))
        cursor = self._conn.execute(
            "SELECT id, probe, run_id, measurement_id, record_sha256, bundle FROM points "
            f"WHERE id IN ({marks}) ORDER BY id", list(point_ids))
        names = ("point", "probe", "run_id", "measurement_id", "record_sha256", "bundle")
        return [dict(zip(names, row, strict=True)) for row in cursor]

    def status(self) -> dict[str, Any]:
        """Counts: bundles, bytes, points, probes, networks, and the newest bundle's time."""
        bundles, size, last = self._conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), MAX(received) FROM bundles").fetchone()
        probes = [p for (p,) in self._conn.execute(
            "SELECT DISTINCT probe FROM points ORDER BY probe")]
        networks = [n for (n,) in self._conn.execute(
            "SELECT DISTINCT network FROM points ORDER BY network")]
        return {"bundles": bundles, "bytes": size, "last_received": last,
                "points": self._count(), "probes": probes, "networks": networks}


def utc_text(when: str) -> str:
    """An ISO 8601 time as UTC text that sorts as time does ("2026-11-29T03:04:05.000000Z");
    a bare date is its midnight, a time without offset is UTC. ValueError if unreadable."""
    moment = parse_utc(when)
    assert moment is not None  # only None for None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _index_rows(files: dict[str, bytes], points: list[dict[str, Any]],
                verdicts: list[dict[str, Any]], runs: set[int]
                ) -> tuple[list[tuple[Any, ...]], str, set[str], int]:
    """(rows for the points table, the probe, the keys that signed its runs, how many runs)
    of a checked bundle: its files by path in the bag, its verdict points, rows and runs."""
    signers = {s["run_id"]: s["key_id"] for s in json.loads(files["data/signatures.json"])}
    # A bundle comes from one probe's database, whose keys are listed oldest first and never
    # removed (a rotation adds one): the oldest names the probe in every bundle it sends, also
    # for a run whose end, and so its signature, lies beyond this bundle's last record.
    keys = json.loads(files["data/keys.json"])
    probe = str(keys[0]["key_id"]) if keys else UNSIGNED
    record_of = {v["measurement_id"]: v["record_sha256"] for v in verdicts}
    rows = []
    for point in points:
        if point["vantage"] == "local":
            # Without a vantage id, each probe is its own vantage point.
            point["vantage"] = f"probe {probe[:12]}"
        rows.append((record_of[point["measurement_id"]], probe, point["run_id"],
                     point["measurement_id"], utc_text(point["started"]),
                     Point.from_dict(point).network, json.dumps(point, sort_keys=True)))
    return rows, probe, set(signers.values()), len(runs)
