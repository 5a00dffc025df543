"""Benchmark: OONI measurements parsed and classified per second, on one core.

    .venv/bin/python bench/classify.py [--seconds 3] [--corpus ../shared/corpus]

Reads the 50 labelled web_connectivity 0.5 measurements of `ooni/wc05_qa` once (file reading is
not timed), then times, in this single process: `parse_ooni` + `classify` together, and
`classify` alone on already parsed measurements, with OONI's blocking fingerprints loaded (the
realistic, slower case). Prints one JSON object. Nothing touches the network.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.classify import classify
from analysis.context import Context
from ooni.fingerprints import load_fingerprints
from ooni.read import parse_ooni

DEFAULT_CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"


def _rate(work: Any, items: list[Any], seconds: float) -> tuple[float, int]:
    """Items per second: `work` applied to `items` in rounds until `seconds` have passed."""
    done = 0
    start = time.perf_counter()
    while True:
        for item in items:
            work(item)
        done += len(items)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, done


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    args = parser.parse_args()
    fingerprints = args.corpus / "fingerprints"
    ctx = Context(fingerprints=load_fingerprints(
        fingerprints / "fingerprints_http.csv", fingerprints / "fingerprints_dns.csv"))
    files = sorted((args.corpus / "ooni" / "wc05_qa").glob("*.json"))
    raw = [json.loads(p.read_text("utf-8")) for p in files]
    parsed = [parse_ooni(d) for d in raw]

    def parse_and_classify(data: dict[str, Any]) -> None:
        item = parse_ooni(data)
        classify(item.measurement, item.control, ctx)

    both, n_both = _rate(parse_and_classify, raw, args.seconds)
    alone, n_alone = _rate(lambda i: classify(i.measurement, i.control, ctx), parsed, args.seconds)
    print(json.dumps({
        "corpus": "ooni/wc05_qa",
        "measurements": len(raw),
        "fingerprints": len(ctx.fingerprints or ()),
        "parse_and_classify_per_second": round(both),
        "classify_per_second": round(alone),
        "runs": {"parse_and_classify": n_both, "classify": n_alone},
        "python": sys.version.split()[0],
    }, indent=2))


if __name__ == "__main__":
    main()
