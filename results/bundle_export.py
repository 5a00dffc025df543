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
import zipfile
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from core.errors import EvidenceError
from core.times import utc_now
from core.words import counted
from results import bundle_queries as Q
from results import custody, signing
from results import rows as R
from results.bagit import BagWriter, json_list
from results.bundle_readme import readme
from results.bundle_verify import CUSTODY_SIGNATURE, MANIFEST, verify_bundle
from results.canonical import GENESIS, canonical_json
from results.store import Store
from results.timeline import BundlePoints
from results.verify import Problem, Reclassify, Verification, check_verdicts, snapshot, verify

#: Events among a bundle's verdict points (as `results.timeline` gives them), as JSON objects.
DeriveEvents = Callable[[list[dict[str, Any]]], list[dict[str, Any]]]

__all__ = ["Problem", "Verification", "export_bundle", "verify", "verify_bundle"]


def export_bundle(
    store: Store,
    out_zip: str | Path,
    run_ids: Sequence[int] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    measurement_ids: Sequence[int] | None = None,
    derive_events: DeriveEvents | None = None,
    analysis: tuple[str, bytes] | None = None,
    judge: Reclassify | None = None,
) -> dict[str, Any]:
    """Write the selected runs (all, without a selection) as a BagIt zip; returns a summary.

    The runs are those named, those holding the named measurements, and those started in
    [since, until) (ISO 8601 UTC). Verdicts go in for the runs whose first and last records
    are both in the bundle (only those can be judged again from it). With `judge`, they must
    be what it gives (EvidenceError otherwise, before anything is written), and `analysis`
    (path, content) says what it judged with. With `derive_events`, the events it finds among
    the bundle's verdict points (`results.timeline.BundlePoints`) go in data/events.json. The
    export is logged in the custody log with the zip's hash, unless the store is read-only
    (the summary's `custody` says which).
    """
    conn = store.db.conn
    out = Path(out_zip)
    with snapshot(conn):  # one consistent view, even while a campaign keeps writing
        runs = Q.select_runs(conn, run_ids, since, until, measurement_ids)
        first, last = Q.record_slice(conn, runs)
        whole = Q.whole_runs(conn, first, last)
        if judge is not None:
            _check_judged(store, judge, whole)
        try:
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
                root = re.sub(r"[^A-Za-z0-9._-]", "_", out.stem) or "bundle"
                bag = BagWriter(zf, root)
                if analysis is not None:
                    bag.add(*analysis)
                summary = _write_payload(store, bag, first, last, whole, derive_events)
                summary["selected_runs"] = runs if runs is not None else summary["runs"]
                bag.finish(_bag_info(summary), readme(root, summary))
        except BaseException:
            out.unlink(missing_ok=True)  # never leave half a bundle that looks like one
            raise
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    custody.log_if_writable(store, "export", {
        "file": out.name, "runs": summary["selected_runs"], "records": [first, last],
    }, {"bundle": digest, "manifest": bag.tags[MANIFEST], "chain_anchor": summary["anchor"],
        "chain_head": summary["head"]})
    return {"path": str(out), "sha256": digest, **summary, "custody": custody.outcome(store)}


def _bag_info(summary: dict[str, Any]) -> dict[str, str]:
    """bag-info.txt's fields (BagWriter adds the Payload-Oxum)."""
    return {
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
    }


def _check_judged(store: Store, judge: Reclassify, run_ids: list[int]) -> None:
    """The stored verdicts of these runs are what `judge` gives: a bundle whose verdicts do
    not follow from its records is never written (it would not verify)."""
    report = Verification()
    check_verdicts(store, judge, report, run_ids)
    if report.problems:
        differ = counted(len(report.problems), "stored verdict") + (
            " differs" if len(report.problems) == 1 else " differ")
        raise EvidenceError(
            f"{differ} from the records judged again "
            f"with the fingerprints and public ranges given (first: {report.problems[0]}): "
            "give the ones the runs were judged with (--fingerprints, --public-range), or "
            "judge them again first (netvigil analyze)")


def _write_payload(store: Store, bag: BagWriter, first: int, last: int, whole: list[int],
                   derive_events: DeriveEvents | None) -> dict[str, Any]:
    conn = store.db.conn
    points = BundlePoints()
    bodies: set[str] = set()
    certificates: set[str] = set()
    heads, runs = [], set()
    with bag.stream("data/records.jsonl") as fh:
        for record in Q.records(conn, first, last):
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
    bag.add("data/keys.json", json_list(Q.keys(conn)))
    bag.add("data/signatures.json", json_list(Q.signatures(conn, first, last)))
    bag.add("data/timestamps.json", json_list(Q.timestamps(conn, first, last)))
    bag.add("data/clock.json", json_list(Q.clock_states(conn, first, last)))
    # The custody log from the first entry logged since the slice's first record: what was
    # done with these data since they were collected, not the probe's whole history (a bundle a
    # run, for years, must not carry years of log each).
    first_entry = custody.first_since(conn, Q.first_created(conn, first))
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
        for verdict in _verdicts(store, first, last, set(whole)):
            fh.write(canonical_json(verdict) + b"\n")
            verdicts.append(verdict)
    if derive_events is not None:
        bag.add("data/events.json", json_list(derive_events(points.points(verdicts))))
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
    if not Q.has_key(store.db.conn, signer.key_id):
        return None
    return {"anchor_sha256": anchor, "head_sha256": head, "key_id": signer.key_id,
            "signature": signer.sign(head, signing.custody_prefix(anchor)),
            "created": utc_now()}


def _verdicts(store: Store, first: int, last: int, whole: set[int]
              ) -> Iterator[dict[str, Any]]:
    for row in Q.verdict_rows(store, first, last):
        if row["run_id"] not in whole:
            continue
        verdict = R.verdict_from_row(row)
        yield {"measurement_id": row["id"], "run_id": row["run_id"],
               "record_id": row["record_id"], "record_sha256": row["record_sha256"],
               "target": row["target_url"], **verdict}
