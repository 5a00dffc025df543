"""Export stored measurements for people and other tools: JSONL (everything), CSV (flat) and
OONI web_connectivity measurements (`ooni.write`), one JSON object per line.

All stream: one measurement is read, written and forgotten before the next, so exporting a
database larger than memory works.

    with Store(path) as store, open("run3.jsonl", "w") as out:
        export_jsonl(store, out, run_id=3)
"""

from __future__ import annotations

import csv
import json
from typing import Any, TextIO

from core.observations import measurement_to_dict
from ooni.write import RunInfo, to_ooni
from results.rows import verdict_from_row
from results.store import Store
from results.timeline import run_fields

CSV_COLUMNS = (
    "id", "run_id", "target", "platform", "category", "hostname", "started", "runtime",
    "verdict", "techniques", "outcomes", "confidence", "confirmed", "reason",
    # the run's network state and vantage, as in the Parquet export (`timeline.run_fields`)
    "run_network", "asn", "country", "vantage",
)

# A spreadsheet runs a cell that starts with one of these as a formula; targets and reasons
# may carry text that came from the network, so such cells are quoted with a leading '.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_TEXT_COLUMNS = frozenset({"target", "platform", "category", "hostname", "reason", "outcomes",
                           "run_network", "asn", "country", "vantage"})


def export_jsonl(store: Store, out: TextIO, run_id: int | None = None) -> int:
    """One JSON object per measurement, oldest first; returns how many were written.

    Each object holds the row (id, run_id, target, started, ...), the verdict fields and the
    full observations as `measurement_to_dict` gives them (bodies and certificates in base64).
    """
    count = 0
    for row in store.iter_rows(run_id):
        m = store.load_measurement(row["id"])
        data = measurement_to_dict(m)
        verdict = verdict_from_row(row)
        obj: dict[str, Any] = {
            "id": row["id"],
            "run_id": row["run_id"],
            "target": m.target.url,
            "platform": m.target.platform,
            "category": m.target.category,
            "started": m.started,
            "runtime": m.runtime,
            "verdict": verdict.get("verdict"),
            "techniques": verdict.get("techniques", []),
            "outcomes": verdict.get("outcomes", []),
            "confidence": verdict.get("confidence"),
            "confirmed": verdict.get("confirmed"),
            "reason": verdict.get("reason"),
            "details": verdict.get("details"),
            "observations": data["observations"],
        }
        # ASCII-only JSON: safe on any terminal encoding; JSON readers restore the text.
        out.write(json.dumps(obj) + "\n")
        count += 1
    return count


def export_ooni(store: Store, out: TextIO, run_id: int | None = None) -> int:
    """One OONI web_connectivity measurement per line (`ooni.write.to_ooni`), with the
    stored control and verdict, oldest first; returns how many were written."""
    runs: dict[int, RunInfo] = {}
    count = 0
    for row in store.iter_rows(run_id):
        run = runs.get(row["run_id"])
        if run is None:
            run = runs[row["run_id"]] = RunInfo.from_row(store.run(row["run_id"]))
        mid = row["id"]
        data = to_ooni(store.load_measurement(mid), store.load_control(mid),
                       verdict_from_row(row), run, measurement_id=mid)
        out.write(json.dumps(data) + "\n")
        count += 1
    return count


def export_csv(store: Store, out: TextIO, run_id: int | None = None) -> int:
    """One row per measurement with the verdict columns; returns how many rows were written.

    Lists (techniques, outcomes) are comma lists inside one cell; `confirmed` is true/false,
    empty when the measurement has not been judged. The last columns are the run's network
    state and vantage (vantage id, ASN, country), as the Parquet export has them.
    """
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    runs: dict[int, dict[str, Any]] = {}  # each run's row is read once
    count = 0
    for row in store.iter_rows(run_id):
        run = runs.get(row["run_id"])
        if run is None:
            run = runs[row["run_id"]] = run_fields(store.run(row["run_id"]))
        values = {
            **row,
            **run,
            "target": row["target_url"],
            "confirmed": "" if row["confirmed"] is None else str(row["confirmed"]).lower(),
        }
        writer.writerow([_cell(name, values.get(name)) for name in CSV_COLUMNS])
        count += 1
    return count


def _cell(name: str, value: Any) -> Any:
    if value is None:
        return ""
    if name in _TEXT_COLUMNS and isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value
