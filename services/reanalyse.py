"""Recompute verdicts for stored runs (after new fingerprints, say) without touching raw records.

Raw records are read back exactly as they were stored; only the derived verdict columns change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Any

from results.store import Store
from services.campaign import CampaignOptions, analyse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
        rows = list(store.iter_measurements(run["id"]))
        controls = {}
        for mid, m, _ in rows:
            control = store.load_control(mid)
            if control is not None:
                controls[m.target.url] = control
        verdicts = analyse([m for _, m, _ in rows], controls, run["network"] or "ok", options)
        for (mid, _, old), new in zip(rows, verdicts, strict=True):
            data = new.to_dict()
            if (old or {}).get("verdict") != data["verdict"] or sorted(
                (old or {}).get("outcomes") or []
            ) != sorted(data["outcomes"]):
                counts["changed"] += 1
            store.set_verdict(mid, data)
            counts["measurements"] += 1
        counts["runs"] += 1
    return counts
