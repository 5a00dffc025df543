"""The collector's intake: which bundles a collection keeps, and what it reads from them.

A bundle is accepted only when `netvigil evidence verify` would pass it (services.evidence:
hashes, chain, signatures, timestamps, verdict links, events); a rejected one is not kept, and
the reasons are returned. The same bundle twice is stored once. Where and how the bundles and
their index are stored is `results.collection_store`; the HTTP side is
`services.collector_server`.

What is indexed is what the signed records give, never what a bundle claims: its verdicts are
classified again from its records (`services.bundle_claims`), and a claim that differs fails
the check. Only records a signature covers are indexed, each under the key that signed it (a
pseudonym: keys carry no identity; a probe whose key was rotated shows as two). Each indexed
point keeps its probe, its run and measurement ids in that probe, and its record hash, so any
event found here leads back to the bundle and the record that prove it; a later bundle that
says something else about a record already indexed is refused (`results.collection_store`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analysis.event_detection import detect_events
from analysis.event_records import DEFAULT_POLICY, Event, EventPolicy, Point
from analysis.outages import Bin, reachability
from core.errors import BundleRejected
from core.words import counted
from results.bundle_links import Loaded
from results.bundle_runs import parsed_records
from results.bundle_verify import verify_bundle
from results.collection_store import Added, CollectionStore, PointRow, utc_text
from results.verify import Verification
from services.evidence import check_derived

__all__ = ["UNSIGNED", "Added", "Collection", "utc_text"]

UNSIGNED = "unsigned"


class Collection:
    """A collection folder (created when missing). Safe to share between threads."""

    def __init__(self, folder: str | Path, allowed_keys: Sequence[str] = (),
                 max_unpacked: int = 1 << 30, allow_unsigned: bool = False) -> None:
        self.store = CollectionStore(folder)
        self.folder = self.store.folder
        self.bundles = self.store.bundles
        self.max_unpacked = max_unpacked  # a bundle inflating beyond this is refused unread
        self.allowed_keys = frozenset(allowed_keys)
        # Bundles with records no signature covers: refused, or (asked for) kept without
        # indexing those records.
        self.allow_unsigned = allow_unsigned

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- adding ----------------------------------------------------------------------------

    def add(self, data: bytes) -> Added:
        """Check a bundle (zip bytes) and keep it; BundleRejected if it does not verify (its
        claims classified again from its signed records included), if it claims for a record
        the collection knows something other than what the collection holds, or if its runs
        are signed by a key this collector does not accept."""
        digest = hashlib.sha256(data).hexdigest()
        known = self.store.bundle(digest)
        if known is not None:
            return known
        with self.store.incoming(data) as temp:
            # The check as `netvigil evidence verify` makes it, keeping what it derived from
            # the signed records for the index: the zip is read and parsed once.
            index: list[tuple[list[PointRow], set[str], int]] = []

            def derived(loaded: Loaded, report: Verification) -> None:
                points, verdicts = check_derived(loaded, report)
                index.append(_index_rows(loaded, points, verdicts))

            report = verify_bundle(temp, derived, self.max_unpacked, self.allow_unsigned)
            if not report.ok:
                found = counted(report.total_problems, "problem")
                raise BundleRejected(f"the bundle does not verify: {found}, first: "
                                     f"{report.problems[0]}", report.problems)
            rows, signers, runs = index[0]
            refused = sorted((signers or {UNSIGNED}) - self.allowed_keys) \
                if self.allowed_keys else []
            if refused:
                keys = "a key" if len(refused) == 1 else "keys"
                raise BundleRejected(f"runs signed by {keys} this collector does not accept: "
                                     f"{', '.join(refused)}")
            probes = tuple(sorted({r.probe for r in rows})) or (UNSIGNED,)
            return self.store.add_bundle(digest, temp, len(data), probes, runs, rows)

    # --- reading ---------------------------------------------------------------------------

    def points(self, since: str | None = None, until: str | None = None) -> list[Point]:
        """The indexed measurements started in [since, until] (ISO 8601, UTC unless they say
        otherwise; both optional) as event points, numbered by this collection, oldest first."""
        low, high = utc_text(since) if since else "", utc_text(until) if until else "\uffff"
        return [Point.from_dict({**json.loads(text), "measurement_id": pid})
                for pid, text in self.store.point_texts(low, high)]

    def events(self, kind: str | None = None, since: str | None = None,
               until: str | None = None, policy: EventPolicy = DEFAULT_POLICY) -> list[Event]:
        """Blocking and outage events across every probe of the collection."""
        return [e for e in detect_events(self.points(since, until), policy)
                if kind is None or e.kind == kind]

    def reachability(self, since: str | None = None, until: str | None = None,
                     bin_minutes: int = 60, window_bins: int = 24, warning: float = 0.8,
                     critical: float = 0.5) -> list[Bin]:
        """The reachable share per network and time bin across probes, flagged against each
        network's baseline (as `netvigil plot reachability` does for one probe)."""
        return reachability(self.points(since, until), bin_minutes, window_bins, warning,
                            critical)

    def origin(self, point_ids: Sequence[int]) -> list[dict[str, Any]]:
        """Where each point comes from: probe, run and measurement ids, record hash, bundle."""
        return self.store.origin(point_ids)

    def status(self) -> dict[str, Any]:
        """Counts: bundles, bytes, points, probes, networks, and the newest bundle's time."""
        return self.store.status()


def _index_rows(loaded: Loaded, points: list[dict[str, Any]], verdicts: list[dict[str, Any]]
                ) -> tuple[list[PointRow], set[str], int]:
    """(rows for the index, the keys that signed the bundle's runs, how many runs) of a checked
    bundle, from its verdict points and verdicts as its signed records give them.

    Only a measurement whose record a signature covers is indexed, under the pseudonym of the
    key that made that signature (the nearest signed run head after the record): a probe is
    named by a key that vouches for what is indexed under its name, never by a key a bundle
    merely lists. Records no signature covers (accepted with --allow-unsigned) are kept in the
    bundle but not indexed."""
    record_of = {v["measurement_id"]: (v["record_id"], v["record_sha256"]) for v in verdicts}
    rows = []
    for point in points:
        record_id, record_sha256 = record_of[point["measurement_id"]]
        head = loaded.coverage.of(record_id)
        if head is None:
            continue
        if point["vantage"] == "local":
            # Without a vantage id, each probe is its own vantage point.
            point["vantage"] = f"probe {head.key_id[:12]}"
        rows.append(PointRow(record_sha256, head.key_id, point["run_id"],
                             point["measurement_id"], utc_text(point["started"]),
                             Point.from_dict(point).network, json.dumps(point, sort_keys=True)))
    runs = {run_id for _, run_id, _, _ in parsed_records(loaded.conn) if run_id is not None}
    return rows, {h.key_id for h in loaded.coverage.heads}, len(runs)
