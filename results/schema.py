"""The database schema and its forward migrations.

The schema version lives in `PRAGMA user_version`. `MIGRATIONS[i]` takes a database from version
i to i + 1; `migrate` applies the missing ones in order, each in its own transaction, so a
database written by an older netvigil is upgraded in place when a newer one opens it. A migration,
once released, never changes: a later change to the schema is a new function appended to the list.

Tables (see DESIGN.md, "Storage"):

    records        the raw, append-only record chain (canonical JSON + SHA-256 + previous hash)
    bodies         HTTP bodies, zlib-compressed, keyed by the SHA-256 of the stored bytes
    certificates   DER certificates, keyed by their SHA-256
    runs           one row per campaign (state and summary; the truth is in the run records),
                   and the process running it (`owner`), so a run a dead process left can be ended
    measurements   one row per target per run, with the derived, replaceable verdict columns
    controls       which raw `control` record holds the test helper's view of a measurement
    dns_queries, dns_answers, tcp_connects, tls_handshakes, http_requests
                   one row per observation, derived from the raw record when it is stored
    keys           the probe's Ed25519 public keys, current and retired (results.signing)
    signatures     one signature per finished run over its chain head (results.signing)
    clock          the clock's state at each run, also a `clock` record in the chain
    custody        the chain-of-custody log, hash-chained like records (results.custody)
    timestamps     RFC 3161 timestamps of run chain heads, queued until stamped (results.tsa_tokens)

Raw tables (records, bodies, certificates, signatures, clock, custody) refuse UPDATE and DELETE
through triggers; keys may only be retired, never changed or removed; a stamped timestamp
never changes. Everything else is derived
from the raw tables and may be recomputed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

_V1 = [
    """
    CREATE TABLE runs (
        id INTEGER PRIMARY KEY,
        started TEXT NOT NULL,              -- ISO 8601 UTC
        finished TEXT,
        network TEXT,                       -- ok | local_failure | upstream_unreachable
        vantage TEXT NOT NULL,              -- JSON: software, platform, ASN/country if known
        config TEXT NOT NULL,               -- JSON
        summary TEXT,                       -- JSON
        status TEXT NOT NULL DEFAULT 'running'  -- running | finished | interrupted
    )
    """,
    "CREATE INDEX runs_started ON runs (started)",
    """
    CREATE TABLE records (
        id INTEGER PRIMARY KEY,
        run_id INTEGER REFERENCES runs (id),
        kind TEXT NOT NULL,                 -- run_start | measurement | control | run_end
        created TEXT NOT NULL,              -- ISO 8601 UTC, also inside the canonical text
        canonical TEXT NOT NULL,            -- RFC 8785 JSON
        sha256 TEXT NOT NULL UNIQUE,        -- sha256(prev_sha256 || "\\n" || canonical)
        prev_sha256 TEXT NOT NULL UNIQUE    -- unique: the chain cannot fork
    )
    """,
    "CREATE INDEX records_run ON records (run_id)",
    "CREATE INDEX records_created ON records (created)",
    """
    CREATE TABLE bodies (
        sha256 TEXT PRIMARY KEY,            -- of the uncompressed bytes
        length INTEGER NOT NULL,
        data BLOB NOT NULL                  -- zlib
    )
    """,
    """
    CREATE TABLE certificates (
        sha256 TEXT PRIMARY KEY,            -- of the DER
        der BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE measurements (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        record_id INTEGER NOT NULL UNIQUE REFERENCES records (id),
        target_url TEXT NOT NULL,
        platform TEXT,
        category TEXT,
        hostname TEXT,
        started TEXT NOT NULL,
        runtime REAL NOT NULL,
        verdict TEXT,                       -- ok | blocked | down | insufficient; NULL: not judged
        techniques TEXT,                    -- comma list
        outcomes TEXT,                      -- comma list
        confidence REAL,
        confirmed INTEGER,
        reason TEXT,
        details TEXT                        -- JSON
    )
    """,
    "CREATE INDEX measurements_run ON measurements (run_id)",
    "CREATE INDEX measurements_target ON measurements (target_url)",
    "CREATE INDEX measurements_hostname ON measurements (hostname)",
    "CREATE INDEX measurements_verdict ON measurements (verdict)",
    "CREATE INDEX measurements_started ON measurements (started)",
    """
    CREATE TABLE dns_queries (
        id INTEGER PRIMARY KEY,
        measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
        step_index INTEGER NOT NULL,        -- position among the measurement's observations
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        hostname TEXT NOT NULL,
        query_type TEXT NOT NULL,
        engine TEXT NOT NULL,               -- system | udp | tcp | doh
        resolver TEXT NOT NULL,
        failure TEXT,
        n_responses INTEGER NOT NULL,
        injected INTEGER NOT NULL           -- 1: two different answers to one query
    )
    """,
    "CREATE INDEX dns_queries_measurement ON dns_queries (measurement_id)",
    """
    CREATE TABLE dns_answers (
        id INTEGER PRIMARY KEY,
        query_id INTEGER NOT NULL REFERENCES dns_queries (id) ON DELETE CASCADE,
        response_index INTEGER NOT NULL,
        t REAL NOT NULL,
        rcode TEXT NOT NULL,
        address TEXT,                       -- NULL: a response with no address (NXDOMAIN, ...)
        ttl INTEGER
    )
    """,
    "CREATE INDEX dns_answers_query ON dns_answers (query_id)",
    "CREATE INDEX dns_answers_address ON dns_answers (address)",
    """
    CREATE TABLE tcp_connects (
        id INTEGER PRIMARY KEY,
        measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
        step_index INTEGER NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        address TEXT NOT NULL,
        port INTEGER NOT NULL,
        failure TEXT
    )
    """,
    "CREATE INDEX tcp_connects_measurement ON tcp_connects (measurement_id)",
    """
    CREATE TABLE tls_handshakes (
        id INTEGER PRIMARY KEY,
        measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
        step_index INTEGER NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        address TEXT NOT NULL,
        port INTEGER NOT NULL,
        sni TEXT NOT NULL,
        purpose TEXT NOT NULL,              -- target | harmless_sni
        failure TEXT,
        version TEXT,
        cipher TEXT,
        alpn TEXT,
        cert_verified INTEGER NOT NULL,
        leaf_sha256 TEXT REFERENCES certificates (sha256),
        chain TEXT NOT NULL                 -- JSON list of certificate SHA-256s, leaf first
    )
    """,
    "CREATE INDEX tls_handshakes_measurement ON tls_handshakes (measurement_id)",
    "CREATE INDEX tls_handshakes_leaf ON tls_handshakes (leaf_sha256)",
    """
    CREATE TABLE http_requests (
        id INTEGER PRIMARY KEY,
        measurement_id INTEGER NOT NULL REFERENCES measurements (id) ON DELETE CASCADE,
        step_index INTEGER NOT NULL,
        t0 REAL NOT NULL,
        t REAL NOT NULL,
        method TEXT NOT NULL,
        url TEXT NOT NULL,
        address TEXT NOT NULL,
        port INTEGER NOT NULL,
        failure TEXT,
        status INTEGER,
        title TEXT,
        body_length INTEGER NOT NULL,       -- every byte received, also past the cap
        body_sha256 TEXT,                   -- as the probe reported it
        body_ref TEXT REFERENCES bodies (sha256),  -- the stored (capped) body; NULL: empty
        body_truncated INTEGER NOT NULL,
        goodput REAL,                       -- body bytes per second
        location TEXT,
        headers TEXT NOT NULL               -- JSON list of [name, value]
    )
    """,
    "CREATE INDEX http_requests_measurement ON http_requests (measurement_id)",
    "CREATE INDEX http_requests_body ON http_requests (body_ref)",
]

_APPEND_ONLY = ("records", "bodies", "certificates")


def _append_only_triggers(table: str) -> list[str]:
    return [
        f"""
        CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table}
        BEGIN
            SELECT RAISE(ABORT, '{table} are append-only: {action} is not allowed');
        END
        """
        for action in ("UPDATE", "DELETE")
    ]


def _v1(conn: sqlite3.Connection) -> None:
    """The first schema."""
    for statement in _V1:
        conn.execute(statement)
    for table in _APPEND_ONLY:
        for statement in _append_only_triggers(table):
            conn.execute(statement)


Migration = Callable[[sqlite3.Connection], None]

_V2 = [
    # The test helper's view of a target (the control), kept as a raw record of its own so that
    # `analyze` can judge again later with exactly the control the run had.
    """
    CREATE TABLE controls (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        measurement_id INTEGER NOT NULL UNIQUE REFERENCES measurements (id),
        record_id INTEGER NOT NULL REFERENCES records (id),
        source TEXT NOT NULL                -- e.g. "helper", "ooni"
    )
    """,
    "CREATE INDEX controls_run ON controls (run_id)",
]


def _v2(conn: sqlite3.Connection) -> None:
    for statement in _V2:
        conn.execute(statement)


_V3 = [
    """
    CREATE TABLE keys (
        key_id TEXT PRIMARY KEY,            -- hex SHA-256 of the raw public key, first 32 digits
        public_key TEXT NOT NULL UNIQUE,    -- raw 32-byte Ed25519 public key, base64
        created TEXT NOT NULL,              -- ISO 8601 UTC
        retired TEXT                        -- NULL while the probe still signs with it
    )
    """,
    """
    CREATE TABLE signatures (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        head_sha256 TEXT NOT NULL,          -- sha256 of the run's last record (its run_end)
        key_id TEXT NOT NULL REFERENCES keys (key_id),
        signature TEXT NOT NULL,            -- Ed25519 over the message in results.signing, base64
        created TEXT NOT NULL
    )
    """,
    "CREATE INDEX signatures_run ON signatures (run_id)",
    """
    CREATE TABLE clock (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        record_id INTEGER NOT NULL UNIQUE REFERENCES records (id),  -- the chained `clock` record
        source TEXT NOT NULL,               -- chrony | systemd-timesyncd | kernel | system, ...
        synchronised INTEGER,               -- NULL: unknown
        offset_s REAL,                      -- system clock minus reference time; NULL: unknown
        checked TEXT NOT NULL               -- when the state was read (ISO 8601 UTC)
    )
    """,
    "CREATE INDEX clock_run ON clock (run_id)",
    """
    CREATE TABLE custody (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        action TEXT NOT NULL,               -- collection, export, import, analysis, report, verify
        tool_version TEXT NOT NULL,
        details TEXT NOT NULL,              -- RFC 8785 JSON
        hashes TEXT NOT NULL,               -- RFC 8785 JSON: {name: sha256}
        prev_sha256 TEXT NOT NULL UNIQUE,
        sha256 TEXT NOT NULL UNIQUE         -- sha256(prev_sha256 || "\\n" || canonical entry)
    )
    """,
    # A key may be retired once; nothing else about it may change, and it is never removed, so
    # the signatures it made stay verifiable.
    """
    CREATE TRIGGER keys_only_retire BEFORE UPDATE ON keys
    WHEN OLD.retired IS NOT NULL OR NEW.retired IS NULL OR NEW.key_id IS NOT OLD.key_id
        OR NEW.public_key IS NOT OLD.public_key OR NEW.created IS NOT OLD.created
    BEGIN
        SELECT RAISE(ABORT, 'keys can only be retired: UPDATE is not allowed');
    END
    """,
    """
    CREATE TRIGGER keys_no_delete BEFORE DELETE ON keys
    BEGIN
        SELECT RAISE(ABORT, 'keys are kept for verification: DELETE is not allowed');
    END
    """,
]


def _v3(conn: sqlite3.Connection) -> None:
    """Evidence: signing keys, run signatures, the clock's state, the custody log."""
    for statement in _V3:
        conn.execute(statement)
    for table in ("signatures", "clock", "custody"):
        for statement in _append_only_triggers(table):
            conn.execute(statement)


_V4 = [
    """
    CREATE TABLE timestamps (
        id INTEGER PRIMARY KEY,
        run_id INTEGER NOT NULL REFERENCES runs (id),
        head_sha256 TEXT NOT NULL,          -- the run's chain head (sha256 of its run_end)
        tsa_url TEXT NOT NULL,              -- the authority last asked
        status TEXT NOT NULL CHECK (status IN ('queued', 'stamped', 'failed')),
        token TEXT,                         -- base64 DER TimeStampResp; NULL until stamped
        tsa_chain TEXT,                     -- PEM, the authority's certificate first, up to a root
        gen_time TEXT,                      -- the token's time (ISO 8601 UTC)
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        created TEXT NOT NULL,              -- when the head was queued
        UNIQUE (run_id, head_sha256)
    )
    """,
    # Queued rows are updated as they are tried; a stamp, once there, is raw evidence.
    """
    CREATE TRIGGER timestamps_stamped_no_update BEFORE UPDATE ON timestamps
    WHEN OLD.status = 'stamped'
    BEGIN
        SELECT RAISE(ABORT, 'stamped timestamps are append-only: UPDATE is not allowed');
    END
    """,
    """
    CREATE TRIGGER timestamps_stamped_no_delete BEFORE DELETE ON timestamps
    WHEN OLD.status = 'stamped'
    BEGIN
        SELECT RAISE(ABORT, 'stamped timestamps are append-only: DELETE is not allowed');
    END
    """,
]


def _v4(conn: sqlite3.Connection) -> None:
    """RFC 3161 timestamps of run chain heads."""
    for statement in _V4:
        conn.execute(statement)


def _v5(conn: sqlite3.Connection) -> None:
    """Which process runs a run, so that a run its dead process left `running` can be told
    from one still in progress (services.recovery). Older runs have none."""
    # JSON: pid, boot id, process start time, PID namespace (services.process_owner).
    conn.execute("ALTER TABLE runs ADD COLUMN owner TEXT")


#: MIGRATIONS[i] upgrades a database from version i to version i + 1.
MIGRATIONS: list[Migration] = [_v1, _v2, _v3, _v4, _v5]

SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    version: int = conn.execute("PRAGMA user_version").fetchone()[0]
    return version


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to SCHEMA_VERSION; returns the version it had before.

    The version is re-read inside a write transaction, so two processes opening a fresh
    database at once do not both run the same migration. A database newer than this code
    is refused rather than written with a schema we do not know.
    """
    before = user_version(conn)
    if before > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {before} is newer than this netvigil ({SCHEMA_VERSION})"
        )
    while True:
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = user_version(conn)
            if version >= SCHEMA_VERSION:
                conn.execute("COMMIT")
                return before
            MIGRATIONS[version](conn)
            # PRAGMA does not take parameters; the value is our own integer.
            conn.execute(f"PRAGMA user_version = {version + 1}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
