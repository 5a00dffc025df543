"""Check an evidence bundle on its own, without the database it came from.

`verify_bundle` reads the zip (`results.bundle_export` writes it), checks every file against the
BagIt manifests (what `sha256sum -c` does), loads the records, blobs, keys, signatures, clock states
and custody log into an in-memory database with netvigil's schema, and runs on it the very raw
checks `results.verify` runs on a database: the record chain from the slice's anchor, every blob,
signature, clock record and custody entry. Each problem names the file and, where there is one,
the record (by id and line), run or measurement.
"""

from __future__ import annotations

import json
import re
import sqlite3
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from results import custody, signing
from results.bundle_links import VERDICTS, DerivedCheck, Loaded, check_verdict_links
from results.canonical import GENESIS, sha256_hex
from results.coverage import ALLOWED, PROBLEM
from results.schema import migrate
from results.verify import Places, Problem, Verification, check_raw

MANIFEST, TAGMANIFEST = "manifest-sha256.txt", "tagmanifest-sha256.txt"
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")

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


def manifest_text(entries: dict[str, str]) -> bytes:
    """A BagIt manifest that `sha256sum -c` also reads: "<sha256>  <path>" lines, sorted."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries.items())).encode()


#: What a bundle may unpack to, and how many files it may hold: a zip from elsewhere may be a
#: "zip bomb" (a small file that inflates to gigabytes). The declared sizes bound what reading
#: returns (a member that inflates beyond its size fails its CRC check).
MAX_UNPACKED = 4 << 30
MAX_MEMBERS = 1_000_000


def verify_bundle(path: str | Path, derived: DerivedCheck | None = None,
                  max_unpacked: int = MAX_UNPACKED, allow_unsigned: bool = False
                  ) -> Verification:
    """Check a bundle on its own: every file against the manifests, the record chain from its
    anchor, every blob, signature, clock state, verdict link and the custody log; then, if the
    raw data could be loaded, `derived` (given them as `Loaded`). A bundle that would unpack
    to more than `max_unpacked` bytes is refused unread. Records no signature covers are a
    problem, unless `allow_unsigned` (then a notice says they were accepted unsigned)."""
    report = Verification()
    try:
        zf = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        report.problems.append(Problem("bundle", f"not a readable zip: {exc}", str(path)))
        return report
    with zf:
        files = _members(zf, report, max_unpacked)
    if files is None:
        return report
    try:
        _check_files(files, report)
        loaded = _load(files, report)
        if loaded is not None:
            conn, places, anchor, (verdicts, numbering) = loaded
            custody_anchor = _custody_anchor(conn, files, report)
            coverage = check_raw(conn, anchor, places, report, custody_anchor,
                                 ALLOWED if allow_unsigned else PROBLEM)
            _check_custody_signature(files.get(CUSTODY_SIGNATURE), conn, custody_anchor,
                                     report)
            if derived is not None:
                derived(Loaded(files, conn, verdicts, numbering, coverage), report)
    except (sqlite3.Error, ValueError, TypeError, KeyError, AttributeError) as exc:
        # A verifier never crashes on what it is given, and never passes it either.
        report.problems.append(Problem("bundle", f"could not be checked to the end "
                                       f"({type(exc).__name__}: {exc})"))
    report.counts["files"] = len(files)
    return report


def _custody_anchor(conn: sqlite3.Connection, files: dict[str, bytes], report: Verification) -> str:
    """The hash before the bundle's first custody entry, as bag-info.txt states it (bundles
    made before netvigil sliced the log state none: theirs starts at the log's first entry)."""
    stated = _bag_info(files).get("Netvigil-Custody-Anchor", GENESIS)
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
        signed = json.loads(data)
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


def _members(zf: zipfile.ZipFile, report: Verification, max_unpacked: int
             ) -> dict[str, bytes] | None:
    """{path inside the bag: content}; None if the zip is not one bag, or too big unpacked."""
    infos = zf.infolist()
    unpacked = sum(i.file_size for i in infos)
    if unpacked > max_unpacked or len(infos) > MAX_MEMBERS:
        report.problems.append(Problem("bundle", f"it would unpack to {unpacked} bytes in "
                                       f"{len(infos)} files, beyond the limit of {max_unpacked} "
                                       f"bytes and {MAX_MEMBERS} files: not read"))
        return None
    names = [n for n in zf.namelist() if not n.endswith("/")]
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        report.problems.append(Problem("bundle", "not one bag: the zip must hold one folder"))
        return None
    files: dict[str, bytes] = {}
    for name in names:
        rel = name.split("/", 1)[1]
        if rel in files:
            report.problems.append(Problem("file", "appears twice in the zip", rel))
            continue
        try:
            files[rel] = zf.read(name)
        except (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError,
                RuntimeError) as exc:  # damaged, an unknown method, encrypted
            report.problems.append(Problem("file", f"unreadable: {exc}", rel))
    return files


def _check_files(files: dict[str, bytes], report: Verification) -> None:
    """Every file against the manifests (what `sha256sum -c` does), and the Payload-Oxum."""
    if files.get("bagit.txt") != BAGIT_TXT:
        report.problems.append(Problem("file", "missing, or not the BagIt declaration",
                                       "bagit.txt"))
    listed = {MANIFEST: _manifest(files, MANIFEST, report),
              TAGMANIFEST: _manifest(files, TAGMANIFEST, report)}
    for path, data in sorted(files.items()):
        if path == TAGMANIFEST:
            continue
        name = MANIFEST if path.startswith("data/") else TAGMANIFEST
        want = listed[name].get(path)
        if want is None:
            report.problems.append(Problem("file", f"not listed in {name}", path))
        elif sha256_hex(data) != want:
            report.problems.append(Problem(
                "file", f"its SHA-256 is {sha256_hex(data)}, {name} says {want}", path))
            if name == TAGMANIFEST:
                # Nothing vouches for the tag manifest: its line may be what changed.
                report.problems.append(Problem("file", f"its entry for {path} does not match "
                                               "that file", TAGMANIFEST))
    for name, entries in listed.items():
        for path in entries:
            if path not in files:
                report.problems.append(Problem(f"entry {path}", "names a file the bundle "
                                               "does not hold", name))
    payload = [data for path, data in files.items() if path.startswith("data/")]
    oxum = f"{sum(len(d) for d in payload)}.{len(payload)}"
    if _bag_info(files).get("Payload-Oxum") != oxum:
        report.problems.append(Problem("Payload-Oxum", f"differs from the payload ({oxum})",
                                       "bag-info.txt"))


def _manifest(files: dict[str, bytes], name: str, report: Verification) -> dict[str, str]:
    data = files.get(name)
    if data is None:
        report.problems.append(Problem("file", "missing", name))
        return {}
    entries: dict[str, str] = {}
    bad = False
    for n, line in enumerate(data.split(b"\n")[:-1] if data.endswith(b"\n") else
                             data.split(b"\n"), 1):
        match = _LINE.fullmatch(line.decode("utf-8", "replace"))
        if match is None or match[2] in entries:
            report.problems.append(Problem(f"line {n}", "is not '<sha256>  <path>' of a file "
                                           "listed once", name))
            bad = True
            continue
        entries[match[2]] = match[1]
    # Written sorted, two spaces, one line each: any other text means it was edited.
    if not bad and manifest_text(entries) != data:
        report.problems.append(Problem("file", "not in the form netvigil writes it", name))
    return entries


def _bag_info(files: dict[str, bytes]) -> dict[str, str]:
    info = {}
    for line in files.get("bag-info.txt", b"").decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition(": ")
        if sep:
            info[key] = value
    return info


def _load(files: dict[str, bytes], report: Verification
          ) -> tuple[sqlite3.Connection, Places, str,
                     tuple[list[tuple[int, dict[str, Any]]], dict[int, int]]] | None:
    """The bundle's raw data in an in-memory database with netvigil's schema, so that the very
    checks run on a database run on the bundle; each unreadable item is a problem."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    migrate(conn)
    places = Places(bundle=True)
    for path, (table, columns, jsonl) in TABLES.items():
        if path not in files:
            if path not in OPTIONAL:
                report.problems.append(Problem("file", "missing", path))
            continue
        expected_id = None
        for n, item in _items(files[path], jsonl):
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
    for path, data in files.items():
        folder, _, name = path.rpartition("/")
        if folder == "data/bodies" and _HEX64.fullmatch(name):
            conn.execute("INSERT INTO bodies VALUES (?, ?, ?)",
                         (name, len(data), zlib.compress(data, 1)))
        elif folder == "data/certificates" and _HEX64.fullmatch(name.removesuffix(".der")):
            conn.execute("INSERT INTO certificates VALUES (?, ?)", (name[:-4], data))
        elif path.startswith("data/") and path not in TABLES and path not in DERIVED \
                and path != CUSTODY_SIGNATURE:
            report.problems.append(Problem("file", "not a file netvigil writes", path))
    ends = conn.execute("SELECT MIN(id), MAX(id) FROM records").fetchone()
    if ends[0] is None:
        report.problems.append(Problem("file", "holds no records", "data/records.jsonl"))
        return None
    anchor, head = (conn.execute(f"SELECT {col} FROM records WHERE id = ?", (rid,)).fetchone()[0]
                    for col, rid in (("prev_sha256", ends[0]), ("sha256", ends[1])))
    info = _bag_info(files)
    for key, value in (("Netvigil-Chain-Anchor", anchor), ("Netvigil-Chain-Head", head)):
        if info.get(key) != value:
            report.problems.append(Problem(key, f"differs from the records ({value})",
                                           "bag-info.txt"))
    report.notices.append(f"records {ends[0]}-{ends[1]} verify from the anchor {anchor}"
                          + (" (the database's first record)" if ends[0] == 1 else ""))
    if VERDICTS not in files:
        report.problems.append(Problem("file", "missing", VERDICTS))
    lines = _verdict_lines(files.get(VERDICTS, b""))
    verdicts, numbering = check_verdict_links(conn, lines, report)
    return conn, places, anchor, (verdicts, numbering)


def _items(data: bytes, jsonl: bool) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or a str saying why not) of a JSONL file, or of a JSON array
    written as netvigil writes it (one element per line), so a bad line is named."""
    lines = data.split(b"\n")
    if lines[-1] == b"":
        lines.pop()
    first = 1
    if not jsonl:
        if lines == [b"[]"]:
            return
        if len(lines) < 3 or lines[0] != b"[" or lines[-1] != b"]":
            yield 1, "not a JSON array with one element per line"
            return
        lines, first = [ln.removesuffix(b",") if i < len(lines) - 3 and ln.endswith(b",")
                        else ln for i, ln in enumerate(lines[1:-1])], 2
    for n, line in enumerate(lines, first):
        try:
            yield n, json.loads(line.decode("utf-8"))
        except ValueError as exc:
            yield n, f"not JSON: {exc}"


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


def _verdict_lines(data: bytes) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, verdict) of data/verdicts.jsonl, or (line, why it is not one)."""
    for n, item in _items(data, jsonl=True):
        yield n, item if isinstance(item, str) else (_shape(item, VERDICT) or item)
