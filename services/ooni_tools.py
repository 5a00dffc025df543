"""OONI data in netvigil: classify OONI measurement files, or import them into the store.

Behind `netvigil ooni classify` and `netvigil ooni import`. Files may be `.json` (one measurement
or a list), `.jsonl`, either gzipped; a directory is read recursively. A measurement that cannot be
read becomes a per-item error in the output and never stops the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from analysis.classify import classify
from analysis.context import Context
from analysis.fingerprints import Fingerprints
from core.errors import OONIFormatError
from ooni.read import OONIMeasurement
from ooni.read_file import read_ooni_file
from results import custody
from results.store import Store

_SUFFIXES = (".json", ".jsonl", ".json.gz", ".jsonl.gz")


def ooni_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Every measurement file named, directories expanded recursively, in a stable order."""
    for spec in paths:
        path = Path(spec)
        if path.is_dir():
            yield from sorted(
                p for p in path.rglob("*") if p.is_file() and p.name.lower().endswith(_SUFFIXES)
            )
        else:
            yield path  # a missing file becomes one error from the reader


def _items(paths: Iterable[str | Path]) -> Iterator[tuple[Path, OONIMeasurement | OONIFormatError]]:
    for path in ooni_files(paths):
        for item in read_ooni_file(path):
            yield path, item


def classify_files(
    paths: Iterable[str | Path], fingerprints: Fingerprints | None = None
) -> list[dict[str, Any]]:
    """One row per measurement: our verdict beside OONI's own, or the error that stopped it."""
    ctx = Context(fingerprints=fingerprints)
    rows: list[dict[str, Any]] = []
    for path, item in _items(paths):
        if isinstance(item, OONIFormatError):
            rows.append({"file": str(path), "error": str(item)})
            continue
        verdict = classify(item.measurement, item.control, ctx)
        rows.append({
            "file": str(path),
            "input": item.meta.get("input"),
            **verdict.to_dict(),
            "ooni_blocking": item.meta.get("ooni_blocking"),
            "ooni_accessible": item.meta.get("ooni_accessible"),
        })
    return rows


def import_files(
    paths: Iterable[str | Path], store: Store, fingerprints: Fingerprints | None = None
) -> dict[str, Any]:
    """Store OONI measurements as runs (one per OONI report) with their controls and verdicts.

    The probe's ASN, country and network name are kept; `probe_ip` never is.
    """
    ctx = Context(fingerprints=fingerprints)
    runs: dict[str, int] = {}
    counts: dict[str, Any] = {"measurements": 0, "runs": 0, "errors": []}
    for path, item in _items(paths):
        if isinstance(item, OONIFormatError):
            counts["errors"].append(str(item))
            continue
        report = str(item.meta.get("report_id") or f"{path}")
        run_id = runs.get(report)
        if run_id is None:
            vantage = {"tool": "ooni", "source": "ooni import", **item.vantage()}
            config = {"report_id": report, **item.test()}
            run_id = runs[report] = store.begin_run(vantage, config)
        verdict = classify(item.measurement, item.control, ctx)
        mid = store.add_measurement(run_id, item.measurement, verdict.to_dict())
        if item.control is not None:
            store.add_control(run_id, mid, item.control, source="ooni")
        counts["measurements"] += 1
    for run_id in runs.values():
        store.finish_run(run_id, "ok", {"imported": True})
    counts["runs"] = len(runs)
    custody.log(store, "import", {"source": "ooni", "measurements": counts["measurements"],
                                  "runs": counts["runs"], "errors": len(counts["errors"])},
                {"chain_head": store.head()})
    return counts
