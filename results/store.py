"""The SQLite store: append-only raw records in a hash chain, derived tables, their writes.

Every write is one transaction: a run's start (runs row + run_start record), one measurement
(blobs + record + measurement row + step rows), a verdict, a run's end. A killed process never
leaves half a measurement, and every finished one is committed before the next begins.

The raw record is the truth. Records are RFC 8785 canonical JSON, each hashed with the previous
record's hash (`results.canonical.chain_hash`), so a changed byte or a removed record shows up in
`verify_chain`. The measurement row's verdict columns and the step tables are derived: the
analysis may recompute verdicts at any time (`set_verdict`) without touching a record.

The probe's public address is never stored: a vantage dict naming it is refused.

    with Store("lab.db") as store:
        run_id = store.begin_run(vantage, config)
        mid = store.add_measurement(run_id, measurement)
        store.set_verdict(mid, verdict.to_dict())
        store.finish_run(run_id, "ok", {"counts": {...}})

Evidence (v3): `finish_run` signs the run's chain head with the probe's key
(`results.signing`, keys from `keys=` or $NETVIGIL_KEYS or the user's data directory) and logs
a `collection` entry in the custody log (`results.custody`); `record_clock` chains the clock's
state with the run.

The reads (runs, measurements, controls, blobs, the chain's checks) are `Store` methods too,
defined in `results.store_queries`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import sqlite3
import warnings
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

import sqlite_utils

from core.errors import IntegrityError, RecordError
from core.observations import Measurement
from core.times import utc_now
from results import custody, signing
from results import rows as R
from results.canonical import GENESIS, canonical_json, chain_hash
from results.paths import default_db_path
from results.schema import migrate
from results.store_queries import StoreQueries

__all__ = ["IntegrityError", "Store"]

NETWORK_STATES = ("ok", "local_failure", "upstream_unreachable")
END_STATUSES = ("finished", "interrupted")

# Vantage keys that would hold the probe's own address. The campaign never collects it; this
# stops a future change from storing it by accident.
_ADDRESS_KEYS = frozenset(
    {"probe_ip", "public_ip", "client_ip", "external_ip", "ip", "ip_address", "probe_address"}
)


class Store(StoreQueries):
    """One netvigil database. Open it, write runs and measurements, read them back."""

    def __init__(self, path: str | Path, keys: signing.KeyStore | str | Path | None = None) -> None:
        self.path = Path(path)
        # Where the signing key lives; nothing is read or made until a run finishes.
        self.keys = keys if isinstance(keys, signing.KeyStore) else signing.KeyStore(keys)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; every write below says where its
        # transaction starts and ends. The timeout lets a second process wait for the lock.
        conn = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        try:
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("PRAGMA journal_mode = WAL")  # readers never block the writer
            migrate(conn)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self.db = sqlite_utils.Database(conn)

    @classmethod
    def default_path(cls) -> Path:
        """The default database: $NETVIGIL_DB, else the user's data directory."""
        return default_db_path()

    # --- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        """A write transaction on the store's connection (for results.signing and custody)."""
        return self._write()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        # IMMEDIATE takes the write lock before we read the chain's head, so two writers can
        # never link two records to the same predecessor.
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            # Also on KeyboardInterrupt: the half-written measurement disappears entirely.
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # --- writes ------------------------------------------------------------------------------

    def begin_run(
        self, vantage: dict[str, Any], config: dict[str, Any],
        owner: Mapping[str, Any] | None = None,
    ) -> int:
        """Start a run; returns its id. `vantage` must not hold the probe's public address.

        `owner` names the process that runs it (services.process_owner), so that a later
        command can tell a run its dead process left `running` from one in progress. It is
        kept in the runs row only, never in a record: it says nothing about the network.
        """
        _check_vantage(vantage)
        started = utc_now()
        with self._write() as conn:
            run_id = _insert(conn, "runs", {
                "started": started, "vantage": _json(vantage), "config": _json(config),
                "status": "running", "owner": None if owner is None else _json(owner),
            })
            self._append(conn, "run_start", run_id,
                         {"started": started, "vantage": vantage, "config": config})
        return run_id

    def add_measurement(
        self, run_id: int, m: Measurement, verdict: Mapping[str, Any] | None = None
    ) -> int:
        """Store one measurement (and its verdict, if known) in one transaction; returns its id."""
        raw = R.split_blobs(m)
        columns = R.verdict_columns(verdict) if verdict is not None else {}
        with self._write() as conn:
            _store_blobs(conn, raw)
            record_id = self._append(conn, "measurement", run_id, {"measurement": raw.record})
            target = m.target
            mid = _insert(conn, "measurements", {
                "run_id": run_id, "record_id": record_id, "target_url": target.url,
                "platform": target.platform, "category": target.category,
                "hostname": target.hostname, "started": m.started, "runtime": m.runtime,
                **columns,
            })
            for step in R.step_rows(mid, m):
                parent = _insert(conn, step.table, step.row)
                for answer in step.answers:
                    _insert(conn, "dns_answers", {"query_id": parent, **answer})
        return mid

    def add_control(
        self, run_id: int, measurement_id: int, control: Measurement, source: str = "helper"
    ) -> int:
        """Store the control (the test helper's measurement of the same target) for one
        measurement, as a raw record of its own; returns the control's id."""
        raw = R.split_blobs(control)
        with self._write() as conn:
            _store_blobs(conn, raw)
            record_id = self._append(conn, "control", run_id, {
                "measurement_id": measurement_id, "source": source, "measurement": raw.record,
            })
            return _insert(conn, "controls", {
                "run_id": run_id, "measurement_id": measurement_id, "record_id": record_id,
                "source": source,
            })

    def set_verdict(self, measurement_id: int, verdict: Mapping[str, Any]) -> None:
        """Replace the derived verdict columns of one measurement; the raw record is untouched."""
        columns = R.verdict_columns(verdict)
        assignments = ", ".join(f"{name} = ?" for name in columns)
        with self._write() as conn:
            cursor = conn.execute(
                f"UPDATE measurements SET {assignments} WHERE id = ?",
                (*columns.values(), measurement_id),
            )
            if cursor.rowcount == 0:
                raise KeyError(f"measurement {measurement_id} not found")

    def finish_run(
        self, run_id: int, network: str, summary: dict[str, Any], status: str = "finished",
        finished: str | None = None,
    ) -> None:
        """Close a run with its network verdict and summary; appends the run_end record.

        `finished` is when the run ended (default: now); a run ended later on behalf of a dead
        process gives the time of its last record. The run_end record's `created` is always
        the time it was written. A run that is not `running` any more is a RecordError, so
        of two processes ending the same run only one does.
        """
        if network not in NETWORK_STATES:
            raise RecordError(f"network must be one of {NETWORK_STATES}, not {network!r}")
        if status not in END_STATUSES:
            raise RecordError(f"status must be one of {END_STATUSES}, not {status!r}")
        finished = finished or utc_now()
        signer = self._signer()  # file I/O: before the write lock is taken
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise KeyError(f"run {run_id} not found")
            if row[0] != "running":
                raise RecordError(f"run {run_id} is already {row[0]}")
            conn.execute(
                "UPDATE runs SET finished = ?, network = ?, summary = ?, status = ? WHERE id = ?",
                (finished, network, _json(summary), status, run_id),
            )
            end = self._append(conn, "run_end", run_id, {
                "finished": finished, "network": network, "summary": summary, "status": status,
            })
            head = conn.execute("SELECT sha256 FROM records WHERE id = ?", (end,)).fetchone()[0]
            if signer is not None:
                signing.sign_run(conn, self.keys, signer, run_id, head)
            custody.append(conn, "collection", {
                "run_id": run_id, "status": status, "key_id": signer.key_id if signer else None,
            }, {"head": head})

    def record_clock(self, run_id: int, state: Mapping[str, Any]) -> int:
        """Keep the clock's state (`services.evidence.clock_state`) with a running run: as a
        `clock` record in the chain, so the run's signature covers it, and as a clock row."""
        _check_vantage(state, "clock")  # e.g. an NTP server's address could point at the probe
        source = state.get("source")
        if not isinstance(source, str) or not source:
            raise RecordError("a clock state needs a 'source'")
        state = {**state, "checked": state.get("checked") or utc_now()}
        offset, synced = state.get("offset_s"), state.get("synchronised")
        with self._write() as conn:
            row = conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None or row[0] != "running":
                # After run_end the run's signed head would no longer be its last record.
                raise RecordError(f"run {run_id} is not running")
            record_id = self._append(conn, "clock", run_id, {"clock": state})
            return _insert(conn, "clock", {
                "run_id": run_id, "record_id": record_id, "source": source,
                "synchronised": None if synced is None else int(bool(synced)),
                "offset_s": None if offset is None else float(offset),
                "checked": state["checked"],
            })

    def _signer(self) -> signing.Signer | None:
        """The probe's signing key (made on first use); None, with a warning, if unusable.

        Read afresh for every run, so a key rotated by another process is used at once. A run
        is never lost for want of a key: it is stored unsigned, and `verify` reports it.
        """
        try:
            return self.keys.current()
        except (OSError, ValueError, KeyError) as exc:
            warnings.warn(f"this run will not be signed: no usable key in "
                          f"{self.keys.directory}: {exc}", stacklevel=3)
            return None

    def _append(
        self, conn: sqlite3.Connection, kind: str, run_id: int, payload: dict[str, Any]
    ) -> int:
        """Append one record to the chain (inside the caller's write transaction)."""
        created = utc_now()
        # kind, created and run_id are inside the hashed text too, so the columns that a
        # researcher queries can be checked against it (verify_chain does).
        text = canonical_json({"kind": kind, "created": created, "run_id": run_id, **payload})
        head = conn.execute("SELECT sha256 FROM records ORDER BY id DESC LIMIT 1").fetchone()
        prev = head[0] if head else GENESIS
        return _insert(conn, "records", {
            "run_id": run_id, "kind": kind, "created": created,
            "canonical": text.decode("utf-8"), "sha256": chain_hash(prev, text),
            "prev_sha256": prev,
        })


# --- helpers ---------------------------------------------------------------------------------


def _store_blobs(conn: sqlite3.Connection, raw: R.RawMeasurement) -> None:
    """Insert a record's bodies and certificates (content-addressed: repeats cost nothing)."""
    for digest, data in raw.bodies.items():
        conn.execute(
            "INSERT OR IGNORE INTO bodies (sha256, length, data) VALUES (?, ?, ?)",
            (digest, len(data), zlib.compress(data)),
        )
    for digest, der in raw.certificates.items():
        conn.execute(
            "INSERT OR IGNORE INTO certificates (sha256, der) VALUES (?, ?)", (digest, der)
        )


def _insert(conn: sqlite3.Connection, table: str, row: Mapping[str, Any]) -> int:
    names = ", ".join(row)
    marks = ", ".join("?" for _ in row)
    cursor = conn.execute(f"INSERT INTO {table} ({names}) VALUES ({marks})", tuple(row.values()))
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _check_vantage(vantage: Any, where: str = "vantage") -> None:
    """Refuse a vantage that holds the probe's address: by key, or as a public IP value."""
    if isinstance(vantage, Mapping):
        for key, value in vantage.items():
            if str(key).lower() in _ADDRESS_KEYS:
                raise RecordError(f"{where}.{key}: netvigil never stores the probe's address")
            _check_vantage(value, f"{where}.{key}")
    elif isinstance(vantage, list | tuple):
        for i, value in enumerate(vantage):
            _check_vantage(value, f"{where}[{i}]")
    elif isinstance(vantage, str):
        try:
            address = ipaddress.ip_address(vantage.strip())
        except ValueError:
            return
        if address.is_global:
            raise RecordError(f"{where}: looks like a public IP address; it is never stored")
