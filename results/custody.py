"""The chain-of-custody log: who did what to the evidence, when, with which tool and hashes.

Each entry (collection, export, import, analysis, report, verify, timestamp) is stored like a
raw record: its canonical form is the RFC 8785 JSON of

    {"action", "details", "hashes", "time", "tool_version"}

and its `sha256` is sha256(prev_sha256 + "\\n" + canonical), `prev_sha256` being the previous
entry's hash (GENESIS for the first), so an entry changed, removed or inserted breaks the chain.
The table refuses UPDATE and DELETE. `details` must not name people or local paths: the log
travels with evidence bundles.

    custody.log(store, "export", {"runs": [3, 4]}, {"bundle": "9f86d08..."})
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from importlib import metadata
from typing import TYPE_CHECKING, Any

from core.errors import RecordError
from core.times import utc_now
from results.canonical import GENESIS, canonical_json, chain_hash

if TYPE_CHECKING:
    from results.store import Store

ACTIONS = ("collection", "export", "import", "analysis", "report", "verify", "timestamp")
COLUMNS = ("id", "time", "action", "tool_version", "details", "hashes", "prev_sha256", "sha256")


def tool_version() -> str:
    """The installed netvigil's version ("unknown" when running from a source tree)."""
    try:
        return metadata.version("netvigil")
    except metadata.PackageNotFoundError:
        return "unknown"


def entry_canonical(
    time: str, action: str, version: str, details: Any, hashes: Any
) -> bytes:
    """The hashed form of one entry."""
    return canonical_json({
        "action": action, "details": details, "hashes": hashes, "time": time,
        "tool_version": version,
    })


def log(
    store: Store,
    action: str,
    details: Mapping[str, Any] | None = None,
    hashes: Mapping[str, str] | None = None,
) -> int:
    """Append one entry to the store's custody log; returns its id."""
    with store.transaction() as conn:
        return append(conn, action, details, hashes)


def log_if_writable(
    store: Store,
    action: str,
    details: Mapping[str, Any] | None = None,
    hashes: Mapping[str, str] | None = None,
) -> int | None:
    """`log`, unless the store is open read-only (an expert's write-blocked copy): then
    nothing is logged and None is returned; `outcome` says which it was."""
    if store.read_only:
        return None
    return log(store, action, details, hashes)


def outcome(store: Store, asked: bool = True) -> str:
    """What to tell people about the custody log after a command that logs itself where it
    can (`log_if_writable`) and when it is `asked` to."""
    if not asked:
        return "custody: not recorded (not asked to: --record-custody logs this check)"
    if store.read_only:
        return "custody: not recorded (read-only database)"
    return "custody: recorded"


def append(
    conn: sqlite3.Connection,
    action: str,
    details: Mapping[str, Any] | None = None,
    hashes: Mapping[str, str] | None = None,
) -> int:
    """Append one entry inside the caller's write transaction; returns its id."""
    if action not in ACTIONS:
        raise RecordError(f"custody action must be one of {ACTIONS}, not {action!r}")
    details = dict(details or {})
    hashes = {str(k): str(v) for k, v in (hashes or {}).items()}
    time, version = utc_now(), tool_version()
    text = entry_canonical(time, action, version, details, hashes)
    head = conn.execute("SELECT sha256 FROM custody ORDER BY id DESC LIMIT 1").fetchone()
    prev = head[0] if head else GENESIS
    cursor = conn.execute(
        "INSERT INTO custody (time, action, tool_version, details, hashes, prev_sha256, sha256) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (time, action, version, canonical_json(details).decode("utf-8"),
         canonical_json(hashes).decode("utf-8"), prev, chain_hash(prev, text)),
    )
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def entries(conn: sqlite3.Connection, first_id: int = 1,
            action: str | None = None) -> list[dict[str, Any]]:
    """Every entry from `first_id` on (of one `action`, or all), oldest first, with `details`
    and `hashes` as stored (canonical JSON text)."""
    cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM custody WHERE id >= ? "
                          "AND (? IS NULL OR action = ?) ORDER BY id", (first_id, action, action))
    return [dict(zip(COLUMNS, row, strict=True)) for row in cursor]


def read(store: Store, action: str | None = None) -> list[dict[str, Any]]:
    """The store's custody log (or its entries of one `action`), oldest first, with `details`
    and `hashes` as dicts."""
    found = entries(store.db.conn, action=action)
    for entry in found:
        for name in ("details", "hashes"):
            entry[name] = json.loads(entry[name])
    return found


def first_since(conn: sqlite3.Connection, time: str) -> int | None:
    """The id of the first entry logged at or after `time` (ISO 8601 UTC), None if none was."""
    row = conn.execute("SELECT MIN(id) FROM custody WHERE time >= ?", (time,)).fetchone()
    return None if row[0] is None else int(row[0])


def check_custody(conn: sqlite3.Connection, anchor: str = GENESIS) -> list[tuple[str, str]]:
    """(subject, what failed) for every entry that does not hold; [] means the log is intact.
    `anchor` is the hash before the first entry (GENESIS for a whole log, the hash of the entry
    before a slice for a bundle's part of it)."""
    problems: list[tuple[str, str]] = []
    expected_prev = anchor
    for entry in entries(conn):
        why = _entry_problem(entry, expected_prev)
        if why:
            problems.append((f"custody {entry['id']}", why))
        expected_prev = entry["sha256"]  # so one changed entry is reported once
    return problems


def _entry_problem(entry: Mapping[str, Any], expected_prev: str) -> str | None:
    if entry["prev_sha256"] != expected_prev:
        return "its prev_sha256 is not the previous entry's hash (an entry changed or removed)"
    try:
        details, hashes = json.loads(entry["details"]), json.loads(entry["hashes"])
        # The columns must be the canonical text itself: then no two texts mean one entry.
        canonical = all(
            canonical_json(value).decode("utf-8") == entry[name]
            for name, value in (("details", details), ("hashes", hashes))
        )
        text = entry_canonical(
            entry["time"], entry["action"], entry["tool_version"], details, hashes
        )
    except (ValueError, TypeError):
        return "its details or hashes are not JSON"
    if not canonical:
        return "its details or hashes are not in canonical form"
    if chain_hash(entry["prev_sha256"], text) != entry["sha256"]:
        return "its sha256 does not match its content"
    return None
