"""Integrity checks over the raw tables: the record hash chain and the content-addressed blobs.

Everything here reads only `records`, `bodies` and `certificates` (never the derived tables), so
the checks hold even if someone rewrote the tables a researcher queries. The same checks can be
done without netvigil: each record's `sha256` is sha256(prev_sha256 + "\\n" + canonical), its
`prev_sha256` is the previous record's `sha256` (GENESIS for the first), and each blob's key is
the SHA-256 of its (decompressed) content.
"""

from __future__ import annotations

import json
import sqlite3
import zlib
from typing import Any

from core.errors import IntegrityError
from results import rows as R
from results.canonical import GENESIS, chain_hash, sha256_hex


def head(conn: sqlite3.Connection) -> str:
    """The hash of the newest record (GENESIS when there is none)."""
    row = conn.execute("SELECT sha256 FROM records ORDER BY id DESC LIMIT 1").fetchone()
    return str(row[0]) if row else GENESIS


def inflate(data: bytes) -> bytes | None:
    """A zlib-compressed body, or None if it does not decompress."""
    try:
        return zlib.decompress(data)
    except zlib.error:
        return None


def load_body(conn: sqlite3.Connection, sha256: str) -> bytes:
    row = conn.execute("SELECT length, data FROM bodies WHERE sha256 = ?", (sha256,)).fetchone()
    if row is None:
        raise IntegrityError(f"body {sha256} is missing")
    data = inflate(row[1])
    if data is None or sha256_hex(data) != sha256 or len(data) != row[0]:
        raise IntegrityError(f"body {sha256} does not match its hash")
    return data


def load_certificate(conn: sqlite3.Connection, sha256: str) -> bytes:
    row = conn.execute("SELECT der FROM certificates WHERE sha256 = ?", (sha256,)).fetchone()
    if row is None:
        raise IntegrityError(f"certificate {sha256} is missing")
    if sha256_hex(row[0]) != sha256:
        raise IntegrityError(f"certificate {sha256} does not match its hash")
    return bytes(row[0])


def verify_chain(conn: sqlite3.Connection, anchor: str = GENESIS) -> list[int]:
    """Ids of records that do not hold, oldest first; [] means intact (see Store.verify_chain).

    `anchor` is the hash the first record links to: GENESIS for a whole database, the previous
    record's hash for a slice of one (an evidence bundle of some runs).
    """
    bad: set[int] = set()
    referrers: dict[tuple[str, str], list[int]] = {}
    expected_prev = anchor
    cursor = conn.execute(
        "SELECT id, run_id, kind, created, canonical, sha256, prev_sha256 FROM records ORDER BY id"
    )
    for rid, run_id, kind, created, text, digest, prev in cursor:
        content = _parse(text)
        ok = prev == expected_prev and chain_hash(prev, text.encode("utf-8")) == digest
        if not (ok and _columns_match(content, run_id, kind, created)):
            bad.add(rid)
        # The next record must link to the hash stored here, whether or not this one holds:
        # one changed record is reported once, not together with every record after it.
        expected_prev = digest
        try:
            for blob in R.record_refs(content):
                referrers.setdefault(blob, []).append(rid)
        except (ValueError, TypeError, KeyError, AttributeError):
            bad.add(rid)  # a measurement record without the shape we write
    damaged = set(damaged_blobs(conn))
    for (table, digest), rids in referrers.items():
        if (table, digest) in damaged or not _has_blob(conn, table, digest):
            bad.update(rids)
    return sorted(bad)


def damaged_blobs(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """(table, sha256) of every body or certificate whose content does not match its key."""
    damaged = []
    for digest, length, data in conn.execute("SELECT sha256, length, data FROM bodies"):
        raw = inflate(data)
        if raw is None or len(raw) != length or sha256_hex(raw) != digest:
            damaged.append(("bodies", digest))
    for digest, der in conn.execute("SELECT sha256, der FROM certificates"):
        if sha256_hex(der) != digest:
            damaged.append(("certificates", digest))
    return damaged


def _has_blob(conn: sqlite3.Connection, table: str, digest: str) -> bool:
    # `table` is "bodies" or "certificates", from record_refs, never from input.
    return conn.execute(f"SELECT 1 FROM {table} WHERE sha256 = ?", (digest,)).fetchone() is not None


def _parse(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _columns_match(content: Any, run_id: int | None, kind: str, created: str) -> bool:
    """The queryable columns say what the hashed text says."""
    return bool(
        isinstance(content, dict)
        and content.get("run_id") == run_id
        and content.get("kind") == kind
        and content.get("created") == created
    )
