"""Evidence bundles: runs exported as a BagIt zip that anyone can check without netvigil.

`export_bundle` writes the raw records exactly as stored (canonical text, `sha256`, `prev_sha256`),
the HTTP bodies and certificates they refer to, the signatures of the runs' chain heads with the
public keys, the clock states, the verdicts and the custody log, plus BagIt manifests and a
README that tells an outside expert how to check it all with `sha256sum` and a short Python
script. `verify_bundle` does every one of those checks from the zip alone, with the same raw
checks `results.verify.verify` runs on a database, and names the file and record that fail.

A bundle of some runs holds a contiguous slice of the database's record chain (records of other
runs that fall in between included, or the chain would have holes); its first record links to
an anchor, the hash of the record before the slice, from which the slice verifies on its own.

    info = export_bundle(store, "run3.zip", run_ids=[3])
    assert verify_bundle("run3.zip").ok
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from core.times import utc_now
from results import custody, signing
from results import rows as R
from results.bundle_verify import (
    BAGIT_TXT,
    CLOCK,
    CUSTODY_SIGNATURE,
    MANIFEST,
    RECORD,
    SIGNATURE,
    TAGMANIFEST,
    TIMESTAMP,
    manifest_text,
    verify_bundle,
)
from results.canonical import GENESIS, canonical_json, sha256_hex
from results.store import Store
from results.timeline import BundlePoints
from results.verify import Problem, Verification, snapshot, verify

#: Events among a bundle's verdict points (as `results.timeline` gives them), as JSON objects.
DeriveEvents = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

__all__ = ["Problem", "Verification", "export_bundle", "verify", "verify_bundle"]

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same data gives the same zip


# --- export --------------------------------------------------------------------------------------


def export_bundle(
    store: Store,
    out_zip: str | Path,
    run_ids: Sequence[int] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    measurement_ids: Sequence[int] | None = None,
    derive_events: DeriveEvents | None = None,
) -> dict[str, Any]:
    """Write the selected runs (all, without a selection) as a BagIt zip; returns a summary.

    The runs are those named, those holding the named measurements, and those started in
    [since, until) (ISO 8601 UTC). With `derive_events`, the events it finds among the bundle's
    verdict points (`results.timeline.BundlePoints`) go in data/events.json. The export is
    logged in the custody log with the zip's hash.
    """
    conn = store.db.conn
    out = Path(out_zip)
    with snapshot(conn):  # one consistent view, even while a campaign keeps writing
        runs = _select_runs(conn, run_ids, since, until, measurement_ids)
        first, last = _slice(conn, runs)
        try:
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                bag = _BagWriter(zf, re.sub(r"[^A-Za-z0-9._-]", "_", out.stem) or "bundle")
                summary = _write_payload(store, bag, first, last, derive_events)
                summary["selected_runs"] = runs if runs is not None else summary["runs"]
                bag.finish(summary)
        except BaseException:
            out.unlink(missing_ok=True)  # never leave half a bundle that looks like one
            raise
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    custody.log(store, "export", {
        "file": out.name, "runs": summary["selected_runs"], "records": [first, last],
    }, {"bundle": digest, "manifest": bag.tags[MANIFEST], "chain_anchor": summary["anchor"],
        "chain_head": summary["head"]})
    return {"path": str(out), "sha256": digest, **summary}


def _select_runs(
    conn: sqlite3.Connection,
    run_ids: Sequence[int] | None,
    since: str | datetime | None,
    until: str | datetime | None,
    measurement_ids: Sequence[int] | None,
) -> list[int] | None:
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
        raise ValueError("no run matches the selection")
    return sorted(chosen)


def _when(value: str | datetime | None) -> str | None:
    """A bound as the store writes times (ISO 8601 UTC); a naive datetime is taken as UTC."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return value


def _slice(conn: sqlite3.Connection, runs: list[int] | None) -> tuple[int, int]:
    if runs is None:
        first, last = conn.execute("SELECT MIN(id), MAX(id) FROM records").fetchone()
    else:
        marks = ", ".join("?" for _ in runs)
        first, last = conn.execute(
            f"SELECT MIN(id), MAX(id) FROM records WHERE run_id IN ({marks})", runs
        ).fetchone()
    if first is None:
        raise ValueError("nothing to export: the selection has no records")
    return first, last


class _BagWriter:
    """Writes members under one root folder and remembers each file's SHA-256."""

    def __init__(self, zf: zipfile.ZipFile, root: str) -> None:
        self.zf, self.root = zf, root
        self.payload: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.octets = 0

    @contextmanager
    def stream(self, path: str) -> Iterator[_Hashing]:
        """A payload file written a piece at a time (records, verdicts: larger than memory)."""
        info = zipfile.ZipInfo(f"{self.root}/{path}", _ZIP_TIME)
        info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
        digest = hashlib.sha256()
        with self.zf.open(info, "w") as fh:
            writer = _Hashing(fh, digest)
            yield writer
            self.octets += writer.count
        self.payload[path] = digest.hexdigest()

    def add(self, path: str, data: bytes, tag: bool = False) -> None:
        if tag:
            info = zipfile.ZipInfo(f"{self.root}/{path}", _ZIP_TIME)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            self.zf.writestr(info, data)
            self.tags[path] = sha256_hex(data)
            return
        with self.stream(path) as fh:
            fh.write(data)

    def finish(self, summary: dict[str, Any]) -> None:
        info = {
            "Bag-Software-Agent": f"netvigil {custody.tool_version()}",
            "Bagging-Date": summary["exported"][:10],
            "External-Description": "netvigil evidence: raw measurement records with their "
                                    "hash chain, run signatures, clock states, verdicts and "
                                    "custody log; see README.txt",
            "Netvigil-Chain-Anchor": summary["anchor"],
            "Netvigil-Custody-Anchor": summary["custody_anchor"],
            "Netvigil-Chain-Head": summary["head"],
            "Netvigil-Records": f"{summary['records'][0]}-{summary['records'][1]}",
            "Netvigil-Runs": " ".join(str(r) for r in summary["selected_runs"]),
            "Payload-Oxum": f"{self.octets}.{len(self.payload)}",
        }
        self.add("bagit.txt", BAGIT_TXT, tag=True)
        self.add("bag-info.txt", "".join(f"{k}: {v}\n" for k, v in info.items()).encode(),
                 tag=True)
        self.add(MANIFEST, manifest_text(self.payload), tag=True)
        self.add("README.txt", readme(self.root, summary).encode("utf-8"), tag=True)
        info_zip = zipfile.ZipInfo(f"{self.root}/{TAGMANIFEST}", _ZIP_TIME)
        info_zip.external_attr = 0o644 << 16
        self.zf.writestr(info_zip, manifest_text(self.tags), zipfile.ZIP_DEFLATED)


class _Hashing:
    """A file being written that counts and hashes what goes through it."""

    def __init__(self, fh: IO[bytes], digest: Any) -> None:
        self.fh, self.digest, self.count = fh, digest, 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.fh.write(data)


def _write_payload(store: Store, bag: _BagWriter, first: int, last: int,
                   derive_events: DeriveEvents | None) -> dict[str, Any]:
    conn = store.db.conn
    points = BundlePoints()
    bodies: set[str] = set()
    certificates: set[str] = set()
    heads, runs = [], set()
    cursor = conn.execute(f"SELECT {', '.join(RECORD)} FROM records WHERE id BETWEEN ? AND ? "
                          "ORDER BY id", (first, last))
    with bag.stream("data/records.jsonl") as fh:
        for row in cursor:
            record = dict(zip(RECORD, row, strict=True))
            fh.write(canonical_json(record) + b"\n")
            heads.append((record["prev_sha256"], record["sha256"]))
            runs.add(record["run_id"])
            parsed = json.loads(record["canonical"])
            points.record(record["id"], record["run_id"], record["kind"], parsed)
            for table, digest in R.record_refs(parsed):
                (bodies if table == "bodies" else certificates).add(digest)
    for digest in sorted(bodies):
        bag.add(f"data/bodies/{digest}", store.body(digest))  # IntegrityError if damaged
    for digest in sorted(certificates):
        bag.add(f"data/certificates/{digest}.der", store.certificate(digest))
    in_slice = "SELECT sha256 FROM records WHERE id BETWEEN ? AND ?"
    bag.add("data/keys.json", _json_list(
        {"key_id": k, "public_key": p, "algorithm": signing.ALGORITHM, "created": c,
         "retired": r}
        for k, p, c, r in conn.execute(
            "SELECT key_id, public_key, created, retired FROM keys ORDER BY created, key_id")))
    bag.add("data/signatures.json", _json_list(_dicts(conn, (
        f"SELECT {', '.join(SIGNATURE)} FROM signatures WHERE head_sha256 IN ({in_slice}) "
        "ORDER BY id"), (first, last))))
    bag.add("data/timestamps.json", _json_list(_dicts(conn, (
        f"SELECT {', '.join(TIMESTAMP)} FROM timestamps WHERE status = 'stamped' AND "
        f"head_sha256 IN ({in_slice}) ORDER BY id"), (first, last))))
    bag.add("data/clock.json", _json_list(_dicts(conn, (
        f"SELECT {', '.join(CLOCK)} FROM clock WHERE record_id BETWEEN ? AND ? ORDER BY id"),
        (first, last))))
    # The custody log from the first entry logged since the slice's first record: what was
    # done with these data since they were collected, not the probe's whole history (a bundle a
    # run, for years, must not carry years of log each).
    first_record = conn.execute("SELECT created FROM records WHERE id = ?", (first,)).fetchone()
    first_entry = custody.first_since(conn, first_record[0])
    slice_entries = custody.entries(conn, first_entry) if first_entry is not None else []
    custody_anchor = slice_entries[0]["prev_sha256"] if slice_entries else GENESIS
    with bag.stream("data/custody.jsonl") as fh:
        for entry in slice_entries:
            fh.write(canonical_json(entry) + b"\n")
    if slice_entries:
        signed = _custody_signature(store, custody_anchor, slice_entries[-1]["sha256"])
        if signed is not None:
            bag.add(CUSTODY_SIGNATURE, canonical_json(signed) + b"\n")
    verdicts = []
    with bag.stream("data/verdicts.jsonl") as fh:
        for verdict in _verdicts(store, first, last):
            fh.write(canonical_json(verdict) + b"\n")
            verdicts.append(verdict)
    if derive_events is not None:
        bag.add("data/events.json", _json_list(derive_events(points.points(verdicts))))
    return {"exported": utc_now(), "anchor": heads[0][0], "custody_anchor": custody_anchor,
            "head": heads[-1][1], "records": [first, last],
            "runs": sorted(r for r in runs if r is not None)}


def _custody_signature(store: Store, anchor: str, head: str) -> dict[str, str] | None:
    """The probe key's signature of the custody slice (its anchor and last entry), so that the
    log travels as signed evidence like the runs do; None without a usable key that the
    bundle's keys.json holds."""
    try:
        signer = store.keys.current()
    except (OSError, ValueError, KeyError):
        return None
    known = store.db.conn.execute("SELECT 1 FROM keys WHERE key_id = ?", (signer.key_id,))
    if known.fetchone() is None:
        return None
    return {"anchor_sha256": anchor, "head_sha256": head, "key_id": signer.key_id,
            "signature": signer.sign(head, signing.custody_prefix(anchor)),
            "created": utc_now()}


def _verdicts(store: Store, first: int, last: int) -> Iterator[dict[str, Any]]:
    rows = store.db.query(
        "SELECT m.*, r.sha256 AS record_sha256 FROM measurements m JOIN records r "
        "ON r.id = m.record_id WHERE m.record_id BETWEEN ? AND ? AND m.verdict IS NOT NULL "
        "ORDER BY m.id", [first, last])
    for row in rows:
        verdict = R.verdict_from_row(row)
        yield {"measurement_id": row["id"], "run_id": row["run_id"],
               "record_id": row["record_id"], "record_sha256": row["record_sha256"],
               "target": row["target_url"], **verdict}


def _dicts(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _json_list(items: Iterable[dict[str, Any]]) -> bytes:
    """A JSON array with one canonical element per line (readable, and every byte counts)."""
    lines = [canonical_json(item).decode("utf-8") for item in items]
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8") if lines else b"[]\n"


# --- the README ----------------------------------------------------------------------------------

_README = """\
netvigil evidence bundle: {root}
{rule}

What this is
  Raw measurements of Internet blocking made by netvigil, exactly as they were stored, with
  what proves they were not changed since. Runs exported: {runs}. Records {first}-{last}.
  Exported {exported} (the exporting computer's clock).

Files (a BagIt bag, RFC 8493)
  data/records.jsonl     one JSON object per line: id, run_id, kind, created, canonical,
                         prev_sha256, sha256. `canonical` is the stored record itself
                         (RFC 8785 canonical JSON). Kinds: run_start, measurement, control,
                         clock, run_end.
  data/bodies/<sha256>   HTTP bodies; a record refers to one as "body_ref": "sha256:<sha256>".
  data/certificates/<sha256>.der   TLS certificates, referred to the same way.
  data/keys.json         the probe's Ed25519 public keys (raw 32 bytes, base64). They carry no
                         identity: a key is random; its key_id is the first 32 hex digits of
                         the SHA-256 of the raw public key.
  data/signatures.json   per run: the signature of its chain head (the sha256 of its run_end).
  data/clock.json        the computer's clock state at each run (source, synchronised, offset).
  data/timestamps.json   RFC 3161 timestamps of run heads, if the probe could reach a
                         time-stamping authority: `token` is its DER TimeStampResp (base64),
                         `tsa_chain` its certificates (PEM, its own first, its root last).
  data/verdicts.jsonl    verdicts (derived data: they can be recomputed from the records).
  data/events.json       blocking and outage events found among these verdicts (derived:
                         `netvigil evidence verify` finds them again and compares).
  data/custody.jsonl     the custody log: collection, export, analysis, ... of these data.
  data/custody_signature.json   the probe key's signature of the custody log's last entry.

Step 1: every file is intact
  unzip the bundle, then in the folder {root}:
      sha256sum -c tagmanifest-sha256.txt
      sha256sum -c manifest-sha256.txt
  Every line must say OK. Each body's file name is also its own SHA-256: `sha256sum data/bodies/*`.

Step 2: the hash chain
  For every line of data/records.jsonl (lines are split on "\\n" only):
      sha256 = SHA-256( prev_sha256 (64 hex digits, ASCII) + "\\n" + canonical (UTF-8) )
  and prev_sha256 of each line is the sha256 of the line before. The first line's prev_sha256 is
  the anchor, {anchor}.
  A value of 64 zeros means the first record of the database; otherwise it is the sha256 of the
  record just before this slice in the original database, and the slice verifies on its own
  from that anchor (a later bundle, or the database, shows the anchor in its chain).
  Changing, removing or inserting any record breaks the chain at that point.

Step 3: the signatures
  When a run ended, the probe signed the ASCII bytes
      "netvigil run head v1\\n" + <sha256 of the run's run_end record>
  with its Ed25519 key. That hash covers every record before it, so one signature vouches
  for the whole chain up to the end of the run. Save the script below as check.py and run
  `python3 check.py` in the folder {root} (it needs `pip install cryptography`); it checks steps
  2 and 3 and prints OK:

--- begin check.py ---
import base64, hashlib, json, pathlib
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

data = pathlib.Path("data")
records, prev = {{}}, None
lines = (data / "records.jsonl").read_bytes().split(b"\\n")
for n, line in enumerate(lines[:-1], 1):
    r = json.loads(line)
    assert prev is None or r["prev_sha256"] == prev, f"line {{n}}: broken link"
    text = r["prev_sha256"].encode("ascii") + b"\\n" + r["canonical"].encode("utf-8")
    assert hashlib.sha256(text).hexdigest() == r["sha256"], f"line {{n}}: hash differs"
    records[r["sha256"]], prev = r, r["sha256"]
keys = {{k["key_id"]: k for k in json.loads((data / "keys.json").read_text())}}
for s in json.loads((data / "signatures.json").read_text()):
    head = records[s["head_sha256"]]
    assert head["kind"] == "run_end" and head["run_id"] == s["run_id"]
    raw = base64.b64decode(keys[s["key_id"]]["public_key"])
    assert hashlib.sha256(raw).hexdigest()[:32] == s["key_id"]
    message = b"netvigil run head v1\\n" + s["head_sha256"].encode("ascii")
    Ed25519PublicKey.from_public_bytes(raw).verify(base64.b64decode(s["signature"]), message)
    print("run", s["run_id"], "signed by key", s["key_id"])
print("OK: chain from anchor", lines[0] and json.loads(lines[0])["prev_sha256"])
--- end check.py ---

  A bad signature raises InvalidSignature. The keys are in the bundle, so check the key_id
  against one you obtained independently (from the volunteer, or from earlier bundles).

Step 4: the custody log
  data/custody.jsonl is chained like the records: each entry's
      sha256 = SHA-256( prev_sha256 + "\\n" + RFC 8785 JSON of
               {{"action", "details", "hashes", "time", "tool_version"}} )
  with details and hashes parsed from their (canonical JSON) text. This export itself is
  logged in the database after the bundle was written, with the zip's SHA-256.
  The log starts at the first entry made since the first record here was collected; the
  first entry's prev_sha256 is its anchor (Netvigil-Custody-Anchor in bag-info.txt; 64 zeros:
  the log's first entry). data/custody_signature.json signs the slice like a run head (step 3),
  the message being "netvigil custody head v1\n" + <anchor_sha256> + "\n" + <head_sha256>,
  by the key named in it.

Step 5: the timestamps (if data/timestamps.json is not empty)
  Each token stamps the SHA-256 of the same message the probe signed (step 3). Save the token
  decoded from base64 as t.tsr, tsa_chain as chain.pem, the message with
      printf 'netvigil run head v1\\n%s' <head_sha256> > m.txt
  and check with OpenSSL:
      openssl ts -verify -in t.tsr -data m.txt -CAfile chain.pem
  Compare the root certificate's SHA-256 with the one the authority publishes.

With netvigil installed, `netvigil evidence verify <bundle.zip>` does all of the above and more
(blob references, clock records, verdict links, the events found again from the verdicts) and
names any file or record that fails.

Limits: times come from the probe's own clock (see data/clock.json), except the times in the
timestamps, which come from the authority; runs without a timestamp have only the former.
"""


def readme(root: str, summary: dict[str, Any]) -> str:
    """README.txt for a bundle: how to check it step by step with standard tools."""
    title = f"netvigil evidence bundle: {root}"
    return _README.format(
        root=root, rule="=" * len(title), runs=", ".join(map(str, summary["selected_runs"])),
        first=summary["records"][0], last=summary["records"][1], exported=summary["exported"],
        anchor=summary["anchor"],
    )

