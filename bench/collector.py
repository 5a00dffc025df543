"""Benchmark: what a bundle costs to export, to check, and to collect.

    .venv/bin/python bench/collector.py [--copies 40] [--corpus ../shared/corpus]

Imports the 50 labelled OONI measurements of `ooni/wc05_qa` COPIES times into a fresh store
(real verdicts and events, with OONI's fingerprints), then times on one core: exporting one
evidence bundle of everything, checking it on its own (`netvigil evidence verify`: hashes,
chain, signatures, verdict links, events found again), and a collector accepting it (the same
check, then the index). Prints one JSON object with seconds, sizes and the peak memory.
Nothing touches the network.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ooni.fingerprints import load_fingerprints
from results.store import Store
from services.collector_intake import Collection
from services.evidence import check_bundle, export_evidence
from services.ooni_tools import import_files

T = TypeVar("T")
DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def timed(work: Callable[[], T]) -> tuple[T, float]:
    """What `work()` returns, and the CPU seconds it took."""
    began = time.process_time()
    result = work()
    return result, round(time.process_time() - began, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=40)
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    wc05 = args.corpus / "ooni" / "wc05_qa"
    fingerprints = load_fingerprints(args.corpus / "fingerprints" / "fingerprints_http.csv",
                                     args.corpus / "fingerprints" / "fingerprints_dns.csv")
    with tempfile.TemporaryDirectory() as folder:
        base = Path(folder)
        os.environ["NETVIGIL_KEYS"] = str(base / "keys")
        with Store(base / "probe.db") as store:
            for _ in range(args.copies):
                import_files([wc05], store, fingerprints)
            judged = sum(1 for m in store.measurements(limit=None) if m["verdict"])
            summary, export_s = timed(lambda: export_evidence(store, base / "b.zip",
                                                              fingerprints=fingerprints))
        report, check_s = timed(lambda: check_bundle(base / "b.zip"))
        assert report.ok, report.problems[:3]
        data = (base / "b.zip").read_bytes()
        with Collection(base / "collection") as collection:
            added, collect_s = timed(lambda: collection.add(data))
            events, events_s = timed(collection.events)
        print(json.dumps({
            "measurements": judged, "records": summary["records"][1],
            "bundle_mib": round(len(data) / 2**20, 2), "events": len(events),
            "cpu_s": {"export": export_s, "check": check_s, "collect": collect_s,
                      "events_across_probes": events_s},
            "check_per_1000_measurements_s": round(check_s / judged * 1000, 2),
            "indexed_points": added.points,
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }, indent=2))


if __name__ == "__main__":
    main()
