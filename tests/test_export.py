"""JSONL and CSV export of stored measurements."""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.observations import Measurement, measurement_from_dict, measurement_to_dict
from results.export import CSV_COLUMNS, export_csv, export_jsonl
from results.store import Store
from tests.test_store import BLOCKPAGE, CONFIG, LEAF, VANTAGE, VERDICT, make_measurement


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db") as s:
        yield s


def _two_runs(store: Store) -> tuple[int, int, int, int]:
    run1 = store.begin_run(VANTAGE, CONFIG)
    a = store.add_measurement(run1, make_measurement("https://a.example/"), VERDICT)
    b = store.add_measurement(run1, make_measurement("https://b.example/"))  # not judged
    run2 = store.begin_run(VANTAGE, CONFIG)
    store.add_measurement(run2, make_measurement("https://c.example/"),
                          {"verdict": "ok", "confidence": 0.7, "reason": "=cmd|' /C calc'!A0"})
    return run1, run2, a, b


def test_jsonl_holds_rows_verdicts_and_full_observations(store: Store) -> None:
    run1, _, a, b = _two_runs(store)
    out = io.StringIO()
    assert export_jsonl(store, out) == 3
    lines = out.getvalue().splitlines()
    objs = [json.loads(line) for line in lines]
    assert [o["target"] for o in objs] == [
        "https://a.example/", "https://b.example/", "https://c.example/"]
    first = objs[0]
    assert (first["id"], first["run_id"], first["started"]) == (a, run1,
                                                               "2025-01-02T03:04:05.123456Z")
    assert first["verdict"] == "blocked" and first["techniques"] == ["dns", "http"]
    assert first["outcomes"] == VERDICT["outcomes"] and first["confirmed"] is True
    assert first["confidence"] == 0.9 and first["details"] == VERDICT["details"]
    http = next(o for o in first["observations"] if o["step"] == "http")
    tls = next(o for o in first["observations"] if o["step"] == "tls")
    assert base64.b64decode(http["body"]) == BLOCKPAGE
    assert base64.b64decode(tls["peer_certificates"][0]) == LEAF
    assert "body_ref" not in http
    # The observations are exactly what measurement_to_dict gives: they read back losslessly.
    original = make_measurement("https://a.example/")
    assert first["observations"] == measurement_to_dict(original)["observations"]
    rebuilt = measurement_from_dict({"target": {"url": first["target"], "platform": "news",
                                                "category": "NEWS"},
                                     "started": first["started"], "runtime": first["runtime"],
                                     "observations": first["observations"]})
    assert rebuilt == original
    unjudged = objs[1]
    assert unjudged["id"] == b and unjudged["verdict"] is None and unjudged["techniques"] == []


def test_jsonl_one_run_only(store: Store) -> None:
    _, run2, _, _ = _two_runs(store)
    out = io.StringIO()
    assert export_jsonl(store, out, run_id=run2) == 1
    (obj,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert obj["run_id"] == run2 and obj["target"] == "https://c.example/"


def test_csv_is_one_flat_row_per_measurement(store: Store) -> None:
    run1, run2, a, b = _two_runs(store)
    out = io.StringIO()
    assert export_csv(store, out) == 3
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0]["id"] == str(a) and rows[0]["run_id"] == str(run1)
    assert rows[0]["target"] == "https://a.example/" and rows[0]["hostname"] == "a.example"
    assert rows[0]["verdict"] == "blocked" and rows[0]["techniques"] == "dns,http"
    assert rows[0]["outcomes"] == "dns.injected,http.blockpage:ooni.zz_1"
    assert rows[0]["confirmed"] == "true" and float(rows[0]["confidence"]) == 0.9
    assert rows[1]["id"] == str(b) and rows[1]["verdict"] == "" and rows[1]["confirmed"] == ""
    assert rows[2]["run_id"] == str(run2) and rows[2]["confirmed"] == "false"
    # A cell a spreadsheet would run as a formula is neutralised.
    assert rows[2]["reason"] == "'=cmd|' /C calc'!A0"
    only = io.StringIO()
    assert export_csv(store, only, run_id=run2) == 1
    assert len(list(csv.DictReader(io.StringIO(only.getvalue())))) == 1


def test_empty_database_exports_nothing_but_a_header(store: Store) -> None:
    jsonl, table = io.StringIO(), io.StringIO()
    assert export_jsonl(store, jsonl) == 0 and jsonl.getvalue() == ""
    assert export_csv(store, table) == 0
    assert table.getvalue() == ",".join(CSV_COLUMNS) + "\n"


def test_export_streams(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each measurement is written before the next is read."""
    _two_runs(store)
    out = io.StringIO()
    seen: list[int] = []
    load = store.load_measurement

    def spy(measurement_id: int) -> Measurement:
        seen.append(out.getvalue().count("\n"))  # lines already written when loading this one
        return load(measurement_id)

    monkeypatch.setattr(store, "load_measurement", spy)
    export_jsonl(store, out)
    assert seen == [0, 1, 2]


def test_csv_carries_the_runs_network_state_and_vantage(store: Store) -> None:
    # The columns the Parquet export has (issue 12): which network and state each row measured.
    run1, run2, _, _ = _two_runs(store)
    store.finish_run(run1, "ok", {})
    out = io.StringIO()
    export_csv(store, out)
    header, *lines = list(csv.reader(io.StringIO(out.getvalue())))
    assert header[-4:] == ["run_network", "asn", "country", "vantage"]
    rows = [dict(zip(header, line, strict=True)) for line in lines]
    # VANTAGE says asn 64500 and the unknown country ZZ; no vantage_id: "local"
    assert (rows[0]["run_network"], rows[0]["asn"], rows[0]["country"], rows[0]["vantage"]) == (
        "ok", "AS64500", "", "local")
    assert rows[2]["run_id"] == str(run2) and rows[2]["run_network"] == ""  # run still open
