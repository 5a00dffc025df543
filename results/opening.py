"""How a database file is opened: for writing, or an existing one for reading, read-only where
it cannot be written (an expert's write-blocked copy of the evidence).

    connection, read_only = open_database(path, "read")

The access a command asks for (`Access`):

    create   read-write, the file and its folder made if missing (run, monitor, ooni import)
    write    read-write, an existing database only (analyze, timestamp, key rotate, submit)
    record   an existing database, read-write where it can be written, else read-only: the
             reading commands that log themselves in the custody log when they can
    read     an existing database, read-only (measurements, export, events, plots, report...)

A read-only open never changes the file: SQLite's `mode=ro`, and `immutable=1` where not even
the shared-memory index beside the file can be made (a read-only folder or medium). A file or
folder without write permission is taken as a copy meant to stay as it is: "record" reads it
read-only and nothing is made in such a folder, even by root, whom modes do not stop. An immutable
open cannot see a write-ahead log, so a non-empty `-wal` next to the file is refused there rather
than read past. A database whose schema is older than this netvigil is upgraded first when it
can be written (as any open always did); a read-only one that would need it is refused.

Every failure is a one-line `StoreError` naming the path: a missing file for the reading
accesses (a mistyped --db must not become a new, empty database), a folder that cannot be made,
a file that is not a database, a read-only file asked to be written.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Literal
from urllib.parse import quote

from core.errors import StoreError
from results.schema import SCHEMA_VERSION, migrate, user_version


class SchemaTooNew(StoreError, RuntimeError):
    """A database written by a newer netvigil: refused rather than written with a schema we do
    not know. (A RuntimeError too, as `results.schema.migrate` raises it.)"""


Access = Literal["create", "write", "record", "read"]
ACCESSES: tuple[Access, ...] = ("create", "write", "record", "read")
MEMORY = ":memory:"
_TIMEOUT = 30.0  # seconds a second process waits for the write lock
# What SQLite answers when a file can be read but not written: the file, its folder (no room
# for the -wal and -shm files) or the medium is read-only.
_READ_ONLY = (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM)
_READ_ONLY_REASON = "the file, its folder or the medium is read-only"


def open_database(path: Path, access: Access = "create") -> tuple[sqlite3.Connection, bool]:
    """A connection to the database at `path` opened for `access`, and whether it is read-only.
    Raises StoreError (one line, naming the path) when it cannot be opened so."""
    if access not in ACCESSES:
        raise ValueError(f"access must be one of {ACCESSES}, not {access!r}")
    if str(path) == MEMORY:
        return _prepared(sqlite3.connect(MEMORY, isolation_level=None), path), False
    if access == "create":
        _make_folder(path)
    else:
        _require_file(path)
    marked = path.exists() and _marked_read_only(path)
    if access == "read" or (access == "record" and marked):
        return _read_only(path), True
    if marked:  # what SQLite answers anyone but root
        raise StoreError(f"cannot open the database {path} for writing: {_READ_ONLY_REASON}",
                         path)
    try:
        if access == "create" and not path.exists():
            return _owner_only(path), False
        return _writable(path, create=access == "create"), False
    except sqlite3.Error as exc:
        if access != "record" or getattr(exc, "sqlite_errorcode", None) not in _READ_ONLY:
            raise _failure(path, exc, "for writing") from None
    # A write-blocked copy: still readable, and the command says it could not log itself.
    return _read_only(path), True


def _owner_only(path: Path) -> sqlite3.Connection:
    """A new database readable by its owner only (0600): a volunteer's measurements say which
    sites they tried. SQLite gives the -wal and -shm files the database file's mode."""
    previous = os.umask(0o077)
    try:
        return _writable(path, create=True)
    finally:
        os.umask(previous)


def _make_folder(path: Path) -> None:
    blocking = next((p for p in path.parents if p.exists()), None)
    if blocking is not None and not blocking.is_dir():
        raise StoreError(f"cannot create the database {path}: {blocking} is a file, not a "
                         "folder", path)
    try:
        # A folder we make is the owner's only (0700); an existing one is left as it is.
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(f"cannot create the folder of the database {path}: "
                         f"{exc.strerror or exc}", path) from None


def _require_file(path: Path) -> None:
    """Reading commands open an existing database only: a mistyped --db is an error."""
    if path.is_dir():
        raise StoreError(f"{path} is a folder, not a netvigil database", path)
    if not path.exists():
        raise StoreError(f"no database at {path} (check --db or $NETVIGIL_DB; `netvigil run` "
                         "makes one)", path)


def _marked_read_only(path: Path) -> bool:
    """The file, or its folder, has no write permission for anyone: whoever made the copy
    meant it to stay as it is, and that holds for root too, whom file modes do not stop."""
    return any(not p.stat().st_mode & 0o222 for p in (path, path.parent))


def _uri(path: Path, **options: str) -> str:
    # A URI, so that the mode is SQLite's own (not a file permission), with the path quoted:
    # "?" or "#" in a folder name must not be read as URI syntax.
    query = "&".join(f"{k}={v}" for k, v in options.items())
    return f"file:{quote(str(path.absolute()))}?{query}"


def _connect(uri: str) -> sqlite3.Connection:
    # isolation_level=None: no implicit transactions; every write says where its transaction
    # starts and ends (results.store).
    return sqlite3.connect(uri, uri=True, timeout=_TIMEOUT, isolation_level=None)


def _prepared(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """`conn` set up for writing: foreign keys, WAL (readers never block the writer), the
    schema brought up to date. Closes it on failure."""
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        migrate(conn)
    except RuntimeError as exc:  # migrate's word for a newer schema
        conn.close()
        raise SchemaTooNew(f"{path}: {exc}", path) from None
    except BaseException:
        conn.close()
        raise
    return conn


def _writable(path: Path, create: bool) -> sqlite3.Connection:
    conn = _prepared(_connect(_uri(path, mode="rwc" if create else "rw")), path)
    try:
        # SQLite opens a file it may not write read-only without a word; taking the write
        # lock is what tells (a read-only file, medium or folder answers SQLITE_READONLY).
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        conn.close()
        raise
    return conn


def _read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write: `mode=ro`, or `immutable=1` where SQLite cannot even
    make the shared-memory index of a write-ahead-log database beside the file (nor should:
    a folder without write permission gets no -wal or -shm file, even from root)."""
    wal = path.with_name(path.name + "-wal")
    if wal.exists() or path.parent.stat().st_mode & 0o222:
        try:
            return _checked(_connect(_uri(path, mode="ro")), path)
        except sqlite3.Error as exc:
            if getattr(exc, "sqlite_errorcode", None) != sqlite3.SQLITE_CANTOPEN:
                raise _failure(path, exc, "for reading") from None
    if wal.exists() and wal.stat().st_size > 0:
        raise StoreError(f"{path}: its write-ahead log {wal.name} holds changes that cannot be "
                         "read on a read-only medium; copy the database with its -wal and -shm "
                         "files to a writable folder and read that copy", path)
    try:
        return _checked(_connect(_uri(path, mode="ro", immutable="1")), path)
    except sqlite3.Error as exc:
        raise _failure(path, exc, "for reading") from None


def _checked(conn: sqlite3.Connection, path: Path) -> sqlite3.Connection:
    """`conn` once its schema is this netvigil's; an older one is upgraded where the file can
    be written. Closes it on failure."""
    try:
        conn.execute("PRAGMA foreign_keys = ON")
        version = user_version(conn)  # the first read: an unopenable file fails here
        if version > SCHEMA_VERSION:
            raise SchemaTooNew(f"{path}: database schema version {version} is newer than this "
                               f"netvigil ({SCHEMA_VERSION})", path)
        if version < SCHEMA_VERSION:
            _upgrade(path, version)
    except BaseException:
        conn.close()
        raise
    return conn


def _upgrade(path: Path, version: int) -> None:
    """Bring an older database up to date before reading it, as every open always did."""
    if version == 0 and not _has_tables(path):
        raise StoreError(f"{path} is not a netvigil database (it has no tables)", path)
    try:
        if _marked_read_only(path):
            raise sqlite3.OperationalError("it is marked read-only")
        _writable(path, create=False).close()
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: its schema (version {version}) is older than this netvigil's "
                         f"({SCHEMA_VERSION}) and it cannot be upgraded here ({exc}); upgrade a "
                         "writable copy first (any netvigil command on it does)", path) from None


def _has_tables(path: Path) -> bool:
    conn = _connect(_uri(path, mode="ro", immutable="1"))
    try:
        return conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0] > 0
    finally:
        conn.close()


def _not_a_database(exc: sqlite3.DatabaseError) -> bool:
    return exc.sqlite_errorcode in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT)


def _failure(path: Path, exc: sqlite3.Error, purpose: str) -> StoreError:
    """The one line for a database SQLite would not open as asked."""
    if isinstance(exc, sqlite3.DatabaseError) and _not_a_database(exc):
        return StoreError(f"{path} is not a netvigil database ({exc})", path)
    code = getattr(exc, "sqlite_errorcode", None)
    if code in _READ_ONLY and path.exists():
        reason = _READ_ONLY_REASON
    elif code in _READ_ONLY:
        reason = f"the file cannot be made in {path.parent} ({exc})"
    elif code == sqlite3.SQLITE_BUSY:
        reason = "another process holds it locked"
    else:
        reason = str(exc)
    return StoreError(f"cannot open the database {path} {purpose}: {reason}", path)
