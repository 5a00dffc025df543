"""Recompute verdicts for stored runs (after new fingerprints, say) without touching raw records.

Raw records are read back exactly as they were stored; only the derived verdict columns change.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from core.observations import Measurement
from core.verdicts import Verdict
from results import custody
from results.store import Store
from services.campaign import CampaignOptions, analyse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def judge_run(
    store: Store, run_id: int, options: CampaignOptions
) -> list[tuple[int, dict[str, Any], Verdict]]:
    """(measurement id, stored verdict, fresh verdict) for every measurement of one run, judged
    as the campaign judged it: the run's network state and the stored controls included."""
    run = store.run(run_id) or {}
    rows = list(store.iter_measurements(run_id))
    verdicts = judge([(mid, m) for mid, m, _ in rows], store.load_control, run.get("network"),
                     options)
    return [(mid, old or {}, new) for (mid, _, old), new in zip(rows, verdicts, strict=True)]


def judge(measurements: Sequence[tuple[int, Measurement]],
          control_of: Callable[[int], Measurement | None], network: str | None,
          options: CampaignOptions) -> list[Verdict]:
    """Verdicts for one run's measurements ((id, measurement), in the order they were
    recorded), as the campaign judged them: each with the control of its target (the control
    of its measurement id, `control_of`), in the run's network state (None: not ended, "ok").
    A database (`judge_run`) and an evidence bundle (`services.bundle_claims`) both judge so."""
    controls = {}
    for mid, m in measurements:
        control = control_of(mid)
        if control is not None:
            controls[m.target.url] = control
    return analyse([m for _, m in measurements], controls, network or "ok", options)


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
