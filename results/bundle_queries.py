"""What an evidence bundle reads from a database: the runs selected, the slice of the record
chain that holds them, and the keys, signatures, timestamps, clock states and verdicts that go
with that slice (`results.bundle_export` writes them into the bag).

Every function reads through the caller's connection, inside its snapshot, so that one bundle
is one consistent view of a database that a campaign may be writing to meanwhile.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from core.errors import ConfigError
from core.times import format_utc
from results import signing
from results.bundle_verify import CLOCK, RECORD, SIGNATURE, TIMESTAMP
from results.store import Store

# The records of the slice, as a subquery: a signature or timestamp belongs to the bundle when
# it is of one of these heads.
_IN_SLICE = "SELECT sha256 FROM records WHERE id BETWEEN ? AND ?"


def select_runs(
    conn: sqlite3.Connection,
    run_ids: Sequence[int] | None,
    since: str | datetime | None,
    until: str | datetime | None,
    measurement_ids: Sequence[int] | None,
) -> list[int] | None:
    """The runs named, those holding the named measurements, and those started in
    [since, until); None (every run) without a selection. KeyError for an unknown run or
    measurement, ConfigError when nothing matches."""
    if run_ids is None and measurement_ids is None and since is None and until is None:
        return None
    known = {row[0] for row in conn.execute("SELECT id FROM runs")}
    chosen = set(run_ids or ())
    if chosen - known:
        raise KeyError(f"no such run: {sorted(chosen - known)}")
    for mid in measurement_ids or ():
        row = conn.execute("SELECT run_id FROM measurements WHERE id = ?", (mid,)).fetchone()
        if row is None:
            raise KeyError(f"no such measurement: {mid}")
        chosen.add(row[0])
    if since is not None or until is not None:
        low, high = _when(since) or "", _when(until) or "\uffff"
        chosen.update(r[0] for r in conn.execute(
            "SELECT id FROM runs WHERE started >= ? AND started < ?", (low, high)))
    if not chosen:
        raise ConfigError("no run matches the selection")
    return sorted(chosen)


def _when(value: str | datetime | None) -> str | None:
    """A bound as the store writes times (ISO 8601 UTC); a naive datetime is taken as UTC."""
    return format_utc(value) if isinstance(value, datetime) else value


def record_slice(conn: sqlite3.Connection, runs: list[int] | None) -> tuple[int, int]:
    """(first, last) record id of the contiguous slice holding these runs (None: all)."""
    if runs is None:
        first, last = conn.execute("SELECT MIN(id), MAX(id) FROM records").fetchone()
    else:
        marks = ", ".join("?" for _ in runs)
        first, last = conn.execute(
            f"SELECT MIN(id), MAX(id) FROM records WHERE run_id IN ({marks})", runs
        ).fetchone()
    if first is None:
        raise ConfigError("nothing to export: the selection has no records")
    return first, last


def whole_runs(conn: sqlite3.Connection, first: int, last: int) -> list[int]:
    """The runs whose run_start and run_end records both lie in [first, last]: the slice
    holds every record of theirs (a run's records lie between those two)."""
    return [run_id for (run_id,) in conn.execute(
        "SELECT run_id FROM records WHERE id BETWEEN ? AND ? AND kind IN ('run_start', "
        "'run_end') GROUP BY run_id HAVING COUNT(DISTINCT kind) = 2 ORDER BY run_id",
        (first, last))]


def records(conn: sqlite3.Connection, first: int, last: int) -> Iterator[dict[str, Any]]:
    """The slice's records as stored (the bundle's RECORD columns), oldest first."""
    cursor = conn.execute(f"SELECT {', '.join(RECORD)} FROM records WHERE id BETWEEN ? AND ? "
                          "ORDER BY id", (first, last))
    for row in cursor:
        yield dict(zip(RECORD, row, strict=True))


def first_created(conn: sqlite3.Connection, record_id: int) -> str:
    """When one record was made (store time format)."""
    return str(conn.execute("SELECT created FROM records WHERE id = ?",
                            (record_id,)).fetchone()[0])


def keys(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Every public key of the probe, oldest first, retired ones included."""
    return [{"key_id": k, "public_key": p, "algorithm": signing.ALGORITHM, "created": c,
             "retired": r}
            for k, p, c, r in conn.execute(
                "SELECT key_id, public_key, created, retired FROM keys ORDER BY created, key_id")]


def has_key(conn: sqlite3.Connection, key_id: str) -> bool:
    """Whether the database lists this key (and so a bundle's keys.json will)."""
    return conn.execute("SELECT 1 FROM keys WHERE key_id = ?", (key_id,)).fetchone() is not None


def signatures(conn: sqlite3.Connection, first: int, last: int) -> list[dict[str, Any]]:
    """The signatures of the run heads inside the slice."""
    return _dicts(conn, f"SELECT {', '.join(SIGNATURE)} FROM signatures WHERE head_sha256 IN "
                        f"({_IN_SLICE}) ORDER BY id", (first, last))


def timestamps(conn: sqlite3.Connection, first: int, last: int) -> list[dict[str, Any]]:
    """The stamped RFC 3161 timestamps of the run heads inside the slice."""
    return _dicts(conn, f"SELECT {', '.join(TIMESTAMP)} FROM timestamps WHERE status = "
                        f"'stamped' AND head_sha256 IN ({_IN_SLICE}) ORDER BY id", (first, last))


def clock_states(conn: sqlite3.Connection, first: int, last: int) -> list[dict[str, Any]]:
    """The clock rows of the clock records inside the slice."""
    return _dicts(conn, f"SELECT {', '.join(CLOCK)} FROM clock WHERE record_id BETWEEN ? AND ? "
                        "ORDER BY id", (first, last))


def verdict_rows(store: Store, first: int, last: int) -> Iterator[dict[str, Any]]:
    """The judged measurements whose records are inside the slice, with their record's hash."""
    return store.db.query(
        "SELECT m.*, r.sha256 AS record_sha256 FROM measurements m JOIN records r "
        "ON r.id = m.record_id WHERE m.record_id BETWEEN ? AND ? AND m.verdict IS NOT NULL "
        "ORDER BY m.id", [first, last])


def _dicts(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]
