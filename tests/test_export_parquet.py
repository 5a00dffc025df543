"""Parquet export: typed columns that agree with the CSV export, the run's network and vantage
on every row, bounded row groups, and a one-line error when pyarrow or --out is missing."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import cli
from results import export_parquet as module
from results.export import export_csv
from results.export_parquet import export_parquet
from results.store import Store
from tests.conftest import import_wc05


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "p.db", keys=tmp_path / "keys") as s:
        import_wc05(s)
        yield s


def test_rows_agree_with_the_csv_export(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "m.parquet"
    assert export_parquet(store, out) == 50
    table = pq.read_table(out)
    assert table.schema.field("started").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("outcomes").type == pa.list_(pa.string())
    assert table.schema.field("confirmed").type == pa.bool_()
    rows = table.to_pylist()
    text = io.StringIO()
    export_csv(store, text)
    flat = list(csv.DictReader(io.StringIO(text.getvalue())))
    assert [r["id"] for r in rows] == [int(f["id"]) for f in flat]
    for row, cells in zip(rows, flat, strict=True):
        assert row["target"] == cells["target"].removeprefix("'")
        assert row["verdict"] == cells["verdict"]
        assert ",".join(row["outcomes"]) == cells["outcomes"].removeprefix("'")
        assert row["confirmed"] == (cells["confirmed"] == "true")
        assert row["confidence"] == pytest.approx(float(cells["confidence"]))
        started = datetime.fromisoformat(cells["started"].replace("Z", "+00:00"))
        assert row["started"] == started.astimezone(UTC)
    # the imported runs carry their vantage: every row says which network it measured
    assert {r["asn"] for r in rows} == {"AS137"}
    assert {r["country"] for r in rows} == {"IT"}
    assert all(r["run_network"] for r in rows)
    assert sum(r["verdict"] == "blocked" for r in rows) > 10


def test_row_groups_bound_memory_and_a_run_can_be_chosen(store: Store, tmp_path: Path,
                                                         monkeypatch) -> None:
    monkeypatch.setattr(module, "ROW_GROUP", 7)
    out = tmp_path / "m.parquet"
    assert export_parquet(store, out) == 50
    assert pq.ParquetFile(out).metadata.num_row_groups == 8  # 7 full groups and one of 1
    one = tmp_path / "one.parquet"
    first_run = min(r["id"] for r in store.runs())
    n = export_parquet(store, one, run_id=first_run)
    assert n >= 1 and set(pq.read_table(one).column("run_id").to_pylist()) == {first_run}
    empty = tmp_path / "empty.parquet"
    assert export_parquet(store, empty, run_id=10_000) == 0
    assert pq.read_table(empty).num_rows == 0


def test_the_command(store: Store, tmp_path: Path, monkeypatch, capsys) -> None:
    out = tmp_path / "cli.parquet"
    db = str(store.path)
    assert cli.main(["--db", db, "export", "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).num_rows == 50
    assert cli.main(["--db", db, "export", "--format", "parquet"]) == 2
    assert "give --out" in capsys.readouterr().err
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)  # as if not installed
    assert cli.main(["--db", db, "export", "--format", "parquet", "--out", str(out)]) == 2
    assert "pip install 'netvigil[parquet]'" in capsys.readouterr().err
