"""Export measurements as Apache Parquet, for researchers' data frames (pandas, polars, R, DuckDB).

One row per measurement, typed columns: the measurement (ids, target, start as a UTC timestamp,
runtime), its verdict (lists stay lists), and its run's network state and vantage (ASN,
country, vantage id), so that networks can be compared without a join. Rows are written in row
groups of `ROW_GROUP` measurements: memory stays bounded whatever the database's size.

pyarrow is the optional `[parquet]` extra; it is imported when an export runs.

    with Store(path) as store:
        export_parquet(store, "measurements.parquet")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.times import parse_utc_or_none
from core.verdicts import split_list
from results.store import Store
from results.timeline import run_fields

ROW_GROUP = 10_000

#: Column -> pyarrow type name (see `_schema`), in file order.
COLUMNS = {
    "id": "int64", "run_id": "int64", "target": "string", "platform": "string",
    "category": "string", "hostname": "string", "started": "timestamp", "runtime": "float64",
    "verdict": "string", "techniques": "list", "outcomes": "list", "confidence": "float64",
    "confirmed": "bool", "reason": "string", "run_network": "string", "asn": "string",
    "country": "string", "vantage": "string",
}


def _schema(pa: Any) -> Any:
    types = {"int64": pa.int64(), "string": pa.string(), "float64": pa.float64(),
             "bool": pa.bool_(), "timestamp": pa.timestamp("us", tz="UTC"),
             "list": pa.list_(pa.string())}
    return pa.schema([(name, types[kind]) for name, kind in COLUMNS.items()])


def _lists(value: Any) -> list[str]:
    return value if isinstance(value, list) else split_list(value)


def export_parquet(store: Store, out: str | Path, run_id: int | None = None) -> int:
    """Write the measurements (of one run, or all) to `out`; returns how many rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _schema(pa)
    runs: dict[int, dict[str, Any]] = {}
    batch: dict[str, list[Any]] = {name: [] for name in COLUMNS}
    count = 0
    with pq.ParquetWriter(str(out), schema, compression="zstd") as writer:
        for row in store.iter_rows(run_id):
            run = runs.get(row["run_id"])
            if run is None:
                run = runs[row["run_id"]] = run_fields(store.run(row["run_id"]))
            values = {**row, **run, "target": row["target_url"],
                      "started": parse_utc_or_none(row["started"]),
                      "techniques": _lists(row.get("techniques")),
                      "outcomes": _lists(row.get("outcomes"))}
            for name in COLUMNS:
                batch[name].append(values.get(name))
            count += 1
            if len(batch["id"]) >= ROW_GROUP:
                writer.write_table(pa.table(batch, schema=schema))
                batch = {name: [] for name in COLUMNS}
        if batch["id"] or count == 0:
            writer.write_table(pa.table(batch, schema=schema))
    return count
