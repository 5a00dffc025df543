"""Evidence for lawyers: what the `netvigil evidence ...` commands call, and the clock's state.

- `verify_database`: every hash, link, signature and derived row of a database, verdicts
  included (classified again exactly as `netvigil analyze` would); logged in the custody log.
- `export_evidence` / `check_bundle`: a BagIt zip of some runs, with the events found among
  its verdicts and the analysis settings they were judged with, and its standalone check
  (verdicts classified again and events found again from the bundle's signed records alone).
- `current_key`, `rotate_key`, `custody_log`: the probe's signing key and the custody log.
- The clock's state, recorded with each run, is read by `probes.clock_state`.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from analysis.event_detection import detect_events
from analysis.event_records import Point
from results import custody, signing
from results.bundle_export import Verification, export_bundle, verify, verify_bundle
from results.bundle_links import Loaded
from results.bundle_runs import parsed_records
from results.bundle_verify import MAX_UNPACKED
from results.canonical import canonical_json, sha256_hex
from results.store import Store
from results.timeline import BundlePoints
from results.verify import Problem, Reclassify
from services.bundle_claims import ANALYSIS_FILE, analysis_context, check_claims
from services.campaign import CampaignOptions
from services.events import events as find_events
from services.reanalyse import judge_run

Network = ipaddress.IPv4Network | ipaddress.IPv6Network



def verify_database(
    store: Store,
    reclassify: bool = True,
    public_ranges: Sequence[Network] = (),
    fingerprints: Any = None,
) -> Verification:
    """Check the whole database (`results.verify.verify`) and log the check in the custody log.

    With `reclassify`, verdicts are judged again with these ranges and fingerprints: give the
    ones the runs were judged with, or correct verdicts will show as differences.
    """
    judge = reclassifier(store, public_ranges, fingerprints) if reclassify else None
    report = verify(store, judge)
    if report.ok:
        found = len(find_events(store))
        report.notices.append(f"{found} events: they are not stored but found again from these "
                              "verdicts each time they are asked for (netvigil events)")
    custody.log(store, "verify", {
        "scope": "database", "ok": report.ok, "problems": len(report.problems),
        "reclassified": reclassify,
    }, {"chain_head": store.head()})
    return report


def reclassifier(
    store: Store, public_ranges: Sequence[Network] = (), fingerprints: Any = None
) -> Reclassify:
    """Fresh verdicts for one run, as `services.reanalyse` computes them (run context and the
    stored controls included), without storing anything."""
    options = CampaignOptions(public_ranges=tuple(public_ranges), fingerprints=fingerprints)

    def fresh(run_id: int) -> dict[int, dict[str, Any]]:
        return {mid: new.to_dict() for mid, _, new in judge_run(store, run_id, options)}

    return fresh


def export_evidence(
    store: Store,
    out_zip: str | Path,
    run_ids: Sequence[int] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    measurement_ids: Sequence[int] | None = None,
    public_ranges: Sequence[Network] = (),
    fingerprints: Any = None,
) -> dict[str, Any]:
    """Write an evidence bundle (see `results.bundle_export.export_bundle`); returns its summary.

    Its verdicts must follow from its records with these ranges and fingerprints (the ones the
    runs were judged with), which go in the bundle so that a verifier can judge them again:
    EvidenceError, and no bundle, when a stored verdict does not.
    """
    context = canonical_json(analysis_context(public_ranges, fingerprints))
    return export_bundle(store, out_zip, run_ids=run_ids, since=since, until=until,
                         measurement_ids=measurement_ids, derive_events=event_dicts,
                         analysis=(ANALYSIS_FILE, context),
                         judge=reclassifier(store, public_ranges, fingerprints))


def event_dicts(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events among verdict points, as `netvigil events --json` gives them."""
    return [e.to_dict() for e in detect_events([Point.from_dict(p) for p in points])]


EVENTS_FILE = "data/events.json"


def check_derived(loaded: Loaded, report: Verification
                  ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The bundle's derived files against its signed records: each claimed verdict classified
    again (`services.bundle_claims`), the events found again from those verdicts. Returns
    (the verdict points, the verdicts) as re-derived: what the records, not the claims, say."""
    fresh = check_claims(loaded, report)
    verdicts = [{**item, **fresh.get(item["record_id"], {})} for _, item in loaded.verdicts]
    points = bundle_points(loaded, verdicts)
    check_events(loaded.files, report, points)
    return points, verdicts


def bundle_points(loaded: Loaded, verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The verdict points of a checked bundle's verdicts, as `results.timeline.BundlePoints`
    builds them from its records."""
    collected = BundlePoints()
    for rid, run_id, kind, data in parsed_records(loaded.conn):
        collected.record(rid, run_id, kind, data)
    return collected.points(verdicts)


def check_events(files: dict[str, bytes], report: Verification,
                 points: list[dict[str, Any]]) -> None:
    """The bundle's events, found again from the verdict `points` of its records: each one it
    claims must follow, field for field, and none that follows may be missing."""
    data = files.get(EVENTS_FILE)
    if data is None:
        report.notices.append(f"the bundle has no {EVENTS_FILE} (made before netvigil put "
                              "events in bundles): events were not checked")
        return
    try:
        claimed = json.loads(data)
    except ValueError as exc:
        report.problems.append(Problem("file", f"unreadable events ({exc})", EVENTS_FILE))
        return
    if not isinstance(claimed, list) or not all(
            isinstance(e, dict) and isinstance(e.get("id"), str) for e in claimed):
        report.problems.append(Problem("file", "unreadable events (not a list of events with "
                                       "ids)", EVENTS_FILE))
        return
    fresh = {e["id"]: e for e in event_dicts(points)}
    seen = set()
    for event in claimed:
        eid = event["id"]
        seen.add(eid)
        want = fresh.get(eid)
        if want is None:
            report.problems.append(Problem(f"event {eid}", "does not follow from the bundle's "
                                           "verdicts", EVENTS_FILE))
        elif canonical_json(want) != canonical_json(event):
            fields = sorted(k for k in set(want) | set(event) if want.get(k) != event.get(k))
            report.problems.append(Problem(f"event {eid}", "differs from what the verdicts "
                                           f"give in {', '.join(fields)}", EVENTS_FILE))
    for eid in sorted(set(fresh) - seen):
        report.problems.append(Problem(f"event {eid}", "follows from the bundle's verdicts "
                                       "but is missing", EVENTS_FILE))
    report.counts["events"] = len(claimed)


def check_bundle(path: str | Path, store: Store | None = None,
                 max_unpacked: int = MAX_UNPACKED, allow_unsigned: bool = False) -> Verification:
    """Check a bundle without its database; with `store`, log the check in its custody log.
    Records no signature covers fail it, unless `allow_unsigned` (then a notice says so)."""
    report = verify_bundle(path, derived=check_derived, max_unpacked=max_unpacked,
                           allow_unsigned=allow_unsigned)
    if store is not None:
        custody.log(store, "verify", {
            "scope": "bundle", "file": Path(path).name, "ok": report.ok,
            "problems": len(report.problems),
        }, {"bundle": sha256_hex(Path(path).read_bytes())})
    return report


def current_key(store: Store) -> dict[str, str]:
    """The key this probe signs with (made now if there is none yet): its id, to publish so
    that others can tell the probe's signatures from a forger's, and its public key."""
    signer = store.keys.current()
    return {"key_id": signer.key_id, "public_key": signer.public_b64, "created": signer.created,
            "algorithm": signing.ALGORITHM}


def rotate_key(store: Store) -> dict[str, str | None]:
    """A new signing key; the old one is retired and stays in the database to verify with."""
    return signing.rotate_key(store)


def custody_log(store: Store) -> list[dict[str, Any]]:
    """The custody log, oldest first, with details and hashes as dicts."""
    return custody.read(store)
