"""The collector's intake: which bundles a collection keeps, and what it reads from them.

A bundle is accepted only when `netvigil evidence verify` would pass it (services.evidence:
hashes, chain, signatures, timestamps, verdict links, events); a rejected one is not kept, and
the reasons are returned. The same bundle twice is stored once. Where and how the bundles and
their index are stored is `results.collection_store`; the HTTP side is
`services.collector_server`.

Probes are told apart by their oldest signing key (a pseudonym: keys carry no identity), which
every bundle from one probe lists first. Each indexed point keeps its probe, its run and
measurement ids in that probe, and its record hash, so any event found here leads back to the
bundle and the record that prove it.
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
from results.bundle_verify import verify_bundle
from results.collection_store import Added, CollectionStore, PointRow, utc_text
from results.verify import Verification
from services.evidence import bundle_points, check_events

__all__ = ["UNSIGNED", "Added", "Collection", "utc_text"]

UNSIGNED = "unsigned"


class Collection:
    """A collection folder (created when missing). Safe to share between threads."""

    def __init__(self, folder: str | Path, allowed_keys: Sequence[str] = (),
                 max_unpacked: int = 1 << 30) -> None:
        self.store = CollectionStore(folder)
        self.folder = self.store.folder
        self.bundles = self.store.bundles
        self.max_unpacked = max_unpacked  # a bundle inflating beyond this is refused unread
        self.allowed_keys = frozenset(allowed_keys)

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- adding ----------------------------------------------------------------------------

    def add(self, data: bytes) -> Added:
        """Check a bundle (zip bytes) and keep it; BundleRejected if it does not verify or its
        runs are signed by a key this collector does not accept."""
        digest = hashlib.sha256(data).hexdigest()
        known = self.store.bundle(digest)
        if known is not None:
            return known
        with self.store.incoming(data) as temp:
            # The check as `netvigil evidence verify` makes it, keeping the unpacked files and
            # the points it derives for the index: the zip is read and parsed once.
            index: list[tuple[list[PointRow], str, set[str], int]] = []

            def derived(files: dict[str, bytes], report: Verification) -> None:
                points, verdicts, runs = bundle_points(files)
                check_events(files, report, points)
                index.append(_index_rows(files, points, verdicts, runs))

            report = verify_bundle(temp, derived, self.max_unpacked)
            if not report.ok:
                raise BundleRejected(f"the bundle does not verify: {len(report.problems)} "
                                     f"problem(s), first: {report.problems[0]}", report.problems)
            rows, probe, signers, runs = index[0]
            refused = sorted((signers or {UNSIGNED}) - self.allowed_keys) \
                if self.allowed_keys else []
            if refused:
                raise BundleRejected(f"runs signed by key(s) this collector does not accept: "
                                     f"{', '.join(refused)}")
            return self.store.add_bundle(digest, temp, len(data), probe, runs, rows)

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


def _index_rows(files: dict[str, bytes], points: list[dict[str, Any]],
                verdicts: list[dict[str, Any]], runs: set[int]
                ) -> tuple[list[PointRow], str, set[str], int]:
    """(rows for the index, the probe, the keys that signed its runs, how many runs) of a
    checked bundle: its files by path in the bag, its verdict points, rows and runs."""
    signers = {s["run_id"]: s["key_id"] for s in json.loads(files["data/signatures.json"])}
    # A bundle comes from one probe's database, whose keys are listed oldest first and never
    # removed (a rotation adds one): the oldest names the probe in every bundle it sends, also
    # for a run whose end, and so its signature, lies beyond this bundle's last record.
    keys = json.loads(files["data/keys.json"])
    probe = str(keys[0]["key_id"]) if keys else UNSIGNED
    record_of = {v["measurement_id"]: v["record_sha256"] for v in verdicts}
    rows = []
    for point in points:
        if point["vantage"] == "local":
            # Without a vantage id, each probe is its own vantage point.
            point["vantage"] = f"probe {probe[:12]}"
        rows.append(PointRow(record_of[point["measurement_id"]], probe, point["run_id"],
                             point["measurement_id"], utc_text(point["started"]),
                             Point.from_dict(point).network, json.dumps(point, sort_keys=True)))
    return rows, probe, set(signers.values()), len(runs)
