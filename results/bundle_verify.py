"""Check an evidence bundle on its own, without the database it came from.

`verify_bundle` reads the zip (`results.bundle_export` writes it) within bounds
(`results.bag_reader`: a bundle may come from anyone), checks every file against the BagIt
manifests (what `sha256sum -c` does), and, if the bag is well formed, streams the records, blobs,
keys, signatures, clock states and custody log into an in-memory database with netvigil's schema,
and runs on it the very raw checks `results.verify` runs on a database: the record chain from the
slice's anchor, every blob, signature, clock record and custody entry. Each problem names the
file and, where there is one, the record (by id and line), run or measurement.
"""

from __future__ import annotations

import os
import re
import sqlite3
import zipfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from results import custody, signing
from results.bag_manifests import (  # noqa: F401  # the bag's names, for bagit.py and tests
    BAGIT_TXT,
    MANIFEST,
    TAGMANIFEST,
    bag_info,
    check_files,
    manifest_text,
)
from results.bag_reader import (
    MAX_UNPACKED,
    READ_ERRORS,
    Bag,
    BagLimits,
    LimitExceeded,
    Lines,
    open_bag,
    parse_json,
    refuse_directory,
)
from results.bag_reader import items as _items
from results.bundle_links import VERDICTS, DerivedCheck, Loaded, check_verdict_links
from results.canonical import GENESIS
from results.coverage import ALLOWED, PROBLEM
from results.schema import migrate
from results.verify import Places, Problem, Verification, check_raw

_HEX64 = re.compile(r"[0-9a-f]{64}")

# The rows of each data file: column -> the JSON types it may hold (None: null allowed).
RECORD = {"id": (int,), "run_id": (int, None), "kind": (str,), "created": (str,),
          "canonical": (str,), "sha256": (str,), "prev_sha256": (str,)}
KEY = {"key_id": (str,), "public_key": (str,), "algorithm": (str,), "created": (str,),
       "retired": (str, None)}
SIGNATURE = {"id": (int,), "run_id": (int,), "head_sha256": (str,), "key_id": (str,),
             "signature": (str,), "created": (str,)}
CLOCK = {"id": (int,), "run_id": (int,), "record_id": (int,), "source": (str,),
         "synchronised": (int, None), "offset_s": (float, int, None), "checked": (str,)}
TIMESTAMP = {"id": (int,), "run_id": (int,), "head_sha256": (str,), "tsa_url": (str,),
             "status": (str,), "token": (str,), "tsa_chain": (str,), "gen_time": (str,),
             "attempts": (int,), "last_error": (str, None), "created": (str,)}
CUSTODY = {name: ((int,) if name == "id" else (str,)) for name in custody.COLUMNS}
VERDICT = {"measurement_id": (int,), "run_id": (int,), "record_id": (int,),
           "record_sha256": (str,), "target": (str,), "verdict": (str,),
           "techniques": (list,), "outcomes": (list,), "confidence": (float, int),
           "confirmed": (bool,), "reason": (str,), "details": (dict,)}
# file -> (table, columns, one JSON value per line?)
TABLES: dict[str, tuple[str, dict[str, tuple[Any, ...]], bool]] = {
    "data/records.jsonl": ("records", RECORD, True),
    "data/keys.json": ("keys", KEY, False),
    "data/signatures.json": ("signatures", SIGNATURE, False),
    "data/clock.json": ("clock", CLOCK, False),
    "data/custody.jsonl": ("custody", CUSTODY, True),
    "data/timestamps.json": ("timestamps", TIMESTAMP, False),
}
# Derived files, checked elsewhere: the verdicts here, the events by the `derived` check.
DERIVED = ("data/verdicts.jsonl", "data/events.json", "data/analysis.json")
CUSTODY_SIGNATURE = "data/custody_signature.json"
# Files that bundles written before they existed do not have.
OPTIONAL = ("data/timestamps.json",)


def verify_bundle(path: str | Path, derived: DerivedCheck | None = None,
                  max_unpacked: int = MAX_UNPACKED, allow_unsigned: bool = False,
                  limits: BagLimits | None = None) -> Verification:
    """Check a bundle on its own: every file against the manifests, the record chain from its
    anchor, every blob, signature, clock state, verdict link and the custody log; then, if the
    raw data could be loaded, `derived` (given them as `Loaded`). Records no signature covers
    are a problem, unless `allow_unsigned` (then a notice says they were accepted unsigned).

    A bundle that would unpack to more than `limits` allow for its size (at most
    `max_unpacked` bytes) is refused unread; a bag that is not well formed (no BagIt
    declaration, a manifest missing or edited, a file it does not list) is not read beyond its
    manifests; a data file with more, or longer, lines than the limits allow is not read
    beyond them, and nothing else is checked."""
    limits = limits or BagLimits(max_unpacked=max_unpacked)
    report = Verification()
    try:
        refused = refuse_directory(path, limits)  # before zipfile lists every member
        if refused is not None:
            report.problems.append(refused)
            return report
        zip_bytes = os.path.getsize(path)
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.problems.append(Problem("bundle", f"not a readable zip: {exc}", str(path)))
        return report
    with zf:
        bag = open_bag(zf, zip_bytes, report, limits)
        if bag is not None:
            _check_bag(bag, report, derived, allow_unsigned)
            report.counts["files"] = len(bag)
    return report


def _check_bag(bag: Bag, report: Verification, derived: DerivedCheck | None,
               allow_unsigned: bool) -> None:
    """Every check of `verify_bundle` on the bag, stopping where reading further would trust
    what has not held."""
    try:
        if not check_files(bag, report):
            report.notices.append("the bag is not well formed: its data files were not read")
            return
        loaded = _load(bag, report)
        if loaded is not None:
            conn, places, anchor, (verdicts, numbering) = loaded
            custody_anchor = _custody_anchor(conn, bag, report)
            coverage = check_raw(conn, anchor, places, report, custody_anchor,
                                 ALLOWED if allow_unsigned else PROBLEM)
            _check_custody_signature(bag.get(CUSTODY_SIGNATURE), conn, custody_anchor,
                                     report)
            if derived is not None:
                derived(Loaded(dict(bag), conn, verdicts, numbering, coverage), report)
    except RecursionError:  # JSON nested too deeply, wherever a later check parses it
        report.problems.append(Problem("bundle", "could not be checked to the end (it holds "
                                       "JSON nested too deeply)"))
    except (sqlite3.Error, ValueError, TypeError, KeyError, AttributeError,
            *READ_ERRORS) as exc:
        # A verifier never crashes on what it is given, and never passes it either.
        report.problems.append(Problem("bundle", f"could not be checked to the end "
                                       f"({type(exc).__name__}: {exc})"))


def _custody_anchor(conn: sqlite3.Connection, files: Mapping[str, bytes],
                    report: Verification) -> str:
    """The hash before the bundle's first custody entry, as bag-info.txt states it (bundles
    made before netvigil sliced the log state none: theirs starts at the log's first entry)."""
    stated = bag_info(files).get("Netvigil-Custody-Anchor", GENESIS)
    first = conn.execute("SELECT prev_sha256 FROM custody ORDER BY id LIMIT 1").fetchone()
    if first is not None and first[0] != stated:
        report.problems.append(Problem("Netvigil-Custody-Anchor", f"differs from the custody "
                                       f"log's first entry ({first[0]})", "bag-info.txt"))
    return stated


def _check_custody_signature(data: bytes | None, conn: sqlite3.Connection, anchor: str,
                             report: Verification) -> None:
    """The signature of the custody slice (its anchor and last entry), by a key of the
    bundle."""
    if data is None:
        report.notices.append("the custody log is not signed (a bundle made before netvigil "
                              "signed it, or without a usable key)")
        return
    try:
        signed = parse_json(data)
        head, kid, signature, signed_anchor = (signed["head_sha256"], signed["key_id"],
                                               signed["signature"], signed["anchor_sha256"])
        if not all(isinstance(v, str) for v in (head, kid, signature, signed_anchor)):
            raise TypeError("fields are not text")
    except (ValueError, KeyError, TypeError) as exc:
        report.problems.append(Problem("file", f"unreadable ({type(exc).__name__}: {exc})",
                                       CUSTODY_SIGNATURE))
        return
    last = conn.execute("SELECT sha256 FROM custody ORDER BY id DESC LIMIT 1").fetchone()
    key = conn.execute("SELECT public_key FROM keys WHERE key_id = ?", (kid,)).fetchone()
    if last is None or last[0] != head:
        why = (f"it signs {head}, but the custody log's last entry has hash "
               f"{last[0] if last else 'none'}")
    elif signed_anchor != anchor:
        why = f"it signs the anchor {signed_anchor}, but the custody log starts after {anchor}"
    elif key is None:
        why = f"it is signed by key {kid}, which data/keys.json does not hold"
    else:
        why = signing.verify_signature(key[0], head, signature,
                                       signing.custody_prefix(anchor)) or ""
    if why:
        report.problems.append(Problem("custody signature", why, CUSTODY_SIGNATURE))
    else:
        report.notices.append(f"the custody log is signed by key {kid}")


def _load(files: Bag, report: Verification
          ) -> tuple[sqlite3.Connection, Places, str,
                     tuple[list[tuple[int, dict[str, Any]]], dict[int, int]]] | None:
    """The bundle's raw data in an in-memory database with netvigil's schema, so that the very
    checks run on a database run on the bundle; each unreadable item is a problem. None if
    there are no records, or a data file was not read to its end (beyond the limits)."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    places = Places(bundle=True)
    whole = True
    for path in TABLES:
        if path not in files:
            if path not in OPTIONAL:
                report.problems.append(Problem("file", "missing", path))
            continue
        whole = _load_table(conn, files, path, places, report) and whole
    if not whole:
        return None
    for path in files:
        folder, _, name = path.rpartition("/")
        if folder == "data/bodies" and _HEX64.fullmatch(name):
            data = files[path]
            conn.execute("INSERT INTO bodies VALUES (?, ?, ?)",
                         (name, len(data), zlib.compress(data, 1)))
        elif folder == "data/certificates" and _HEX64.fullmatch(name.removesuffix(".der")):
            conn.execute("INSERT INTO certificates VALUES (?, ?)", (name[:-4], files[path]))
        elif path.startswith("data/") and path not in TABLES and path not in DERIVED \
                and path != CUSTODY_SIGNATURE:
            report.problems.append(Problem("file", "not a file netvigil writes", path))
    ends = conn.execute("SELECT MIN(id), MAX(id) FROM records").fetchone()
    if ends[0] is None:
        report.problems.append(Problem("file", "holds no records", "data/records.jsonl"))
        return None
    anchor, head = (conn.execute(f"SELECT {col} FROM records WHERE id = ?", (rid,)).fetchone()[0]
                    for col, rid in (("prev_sha256", ends[0]), ("sha256", ends[1])))
    info = bag_info(files)
    for key, value in (("Netvigil-Chain-Anchor", anchor), ("Netvigil-Chain-Head", head)):
        if info.get(key) != value:
            report.problems.append(Problem(key, f"differs from the records ({value})",
                                           "bag-info.txt"))
    report.notices.append(f"records {ends[0]}-{ends[1]} verify from the anchor {anchor}"
                          + (" (the database's first record)" if ends[0] == 1 else ""))
    if VERDICTS not in files:
        report.problems.append(Problem("file", "missing", VERDICTS))
    lines: Lines = (lambda: files.lines(VERDICTS)) if VERDICTS in files else b""
    verdicts, numbering = check_verdict_links(conn, _verdict_lines(lines), report)
    return conn, places, anchor, (verdicts, numbering)


def _load_table(conn: sqlite3.Connection, files: Bag, path: str, places: Places,
                report: Verification) -> bool:
    """One data file into its table, a line at a time; False if it was not read to its end:
    too many, or too long, lines for the bundle's size, or too many bad ones."""
    table, columns, jsonl = TABLES[path]
    expected_id, bad = None, 0
    try:
        for n, item in _items(lambda: files.lines(path), jsonl):
            subject = f"line {n}"
            why = item if isinstance(item, str) else _shape(item, columns)
            if table == "records" and not why:
                subject = f"record {item['id']} (line {n})"
                places.record_lines[item["id"]] = n
                if expected_id is not None and item["id"] != expected_id:
                    why = f"its id should be {expected_id}: the records must be consecutive"
                expected_id = item["id"] + 1
            if table == "keys" and not why and item.pop("algorithm") != signing.ALGORITHM:
                why = f"only {signing.ALGORITHM} keys are used"
            if not why:
                try:
                    _insert(conn, table, item)
                except sqlite3.Error as exc:
                    why = f"cannot be loaded: {exc}"
            if why:
                report.problems.append(Problem(subject, why, path))
                bad += 1
                if bad >= files.limits.max_file_problems:
                    report.problems.append(Problem("file", f"not read past line {n}: "
                                                   f"{bad} bad lines", path))
                    return False
    except LimitExceeded as exc:
        report.problems.append(Problem(f"line {exc.line}", str(exc), path))
        return False
    return True


def _shape(item: Any, columns: dict[str, tuple[Any, ...]]) -> str | None:
    if not isinstance(item, dict) or set(item) != set(columns):
        return f"needs exactly the fields {', '.join(columns)}"
    for name, types in columns.items():
        value = item[name]
        if not (value is None and None in types) and not isinstance(
            value, tuple(t for t in types if t is not None)
        ):
            return f"{name} has the wrong type"
    return None


def _insert(conn: sqlite3.Connection, table: str, item: dict[str, Any]) -> None:
    names = ", ".join(item)
    conn.execute(f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in item)})",
                 tuple(item.values()))


def _verdict_lines(data: Lines) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, verdict) of data/verdicts.jsonl, or (line, why it is not one)."""
    for n, item in _items(data, jsonl=True):
        yield n, item if isinstance(item, str) else (_shape(item, VERDICT) or item)
