"""Recompute verdicts for stored runs (after new fingerprints, say) without touching raw records.

Raw records are read back exactly as they were stored; only the derived verdict columns change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from core.observations import Measurement
from core.verdicts import Verdict
from results import custody
from results.store import Store
from services.campaign import CampaignOptions, analyse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


StoredRows = list[tuple[int, Measurement, dict[str, Any]]]


def stored_run(store: Store, run_id: int) -> tuple[StoredRows, dict[str, Measurement]]:
    """What one run stored, rebuilt from its raw records: its measurements as (id,
    Measurement, stored verdict or {}), oldest first, and the controls by target URL."""
    rows = list(store.iter_measurements(run_id))
    controls = {}
    for mid, m, _ in rows:
        control = store.load_control(mid)
        if control is not None:
            controls[m.target.url] = control
    return rows, controls


def judge_run(
    store: Store, run_id: int, options: CampaignOptions
) -> list[tuple[int, dict[str, Any], Verdict]]:
    """(measurement id, stored verdict, fresh verdict) for every measurement of one run, judged
    as the campaign judged it: the run's network state and the stored controls included."""
    run = store.run(run_id) or {}
    rows, controls = stored_run(store, run_id)
    verdicts = analyse([m for _, m, _ in rows], controls, run.get("network") or "ok", options)
    return [(mid, old or {}, new) for (mid, _, old), new in zip(rows, verdicts, strict=True)]


def reanalyse(
    store: Store,
    run_id: int | None = None,
    public_ranges: Sequence[Network] = (),
    fingerprints: Any = None,
) -> dict[str, int]:
    """Re-judge every measurement of one run (or all runs); returns counts of work and changes."""
    options = CampaignOptions(public_ranges=tuple(public_ranges), fingerprints=fingerprints)
    runs = [store.run(run_id)] if run_id is not None else store.runs()
    counts = {"runs": 0, "measurements": 0, "changed": 0}
    for run in runs:
        if run is None:
            continue
        for mid, old, new in judge_run(store, run["id"], options):
            data = new.to_dict()
            if old.get("verdict") != data["verdict"] or sorted(
                old.get("outcomes") or []
            ) != sorted(data["outcomes"]):
                counts["changed"] += 1
            store.set_verdict(mid, data)
            counts["measurements"] += 1
        counts["runs"] += 1
    custody.log(store, "analysis", {"runs": counts["runs"], "changed": counts["changed"]},
                {"chain_head": store.head()})
    return counts
