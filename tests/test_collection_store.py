"""The collection's storage on its own: a bundle and its points are kept all or nothing, the
same record in two bundles is indexed once, and the queries read back what was written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from core.errors import TimeFormatError
from results.collection_store import CollectionStore, PointRow, utc_text


def row(n: int, started: str, probe: str = "p1") -> PointRow:
    return PointRow(f"{n:064x}", probe, 1, n, started, "KE", json.dumps({"n": n}))


def test_a_bundle_and_its_points_are_kept_together(tmp_path: Path) -> None:
    with CollectionStore(tmp_path / "c") as store:
        with store.incoming(b"zip one") as temp:
            added = store.add_bundle("a" * 64, temp, 7, "p1", 1,
                                     [row(1, "2026-01-01T00:00:00.000000Z"),
                                      row(2, "2026-01-02T00:00:00.000000Z")])
        assert (added.known, added.points, added.new_points) == (False, 2, 2)
        assert (store.bundles / f"{'a' * 64}.zip").read_bytes() == b"zip one"
        assert [p.name for p in store.bundles.iterdir()] == [f"{'a' * 64}.zip"]  # no temp left
        # An overlapping bundle: its record 2 is there already (the same point: a different
        # one is refused, see test_bundle_claims), record 3 is new.
        with store.incoming(b"zip two") as temp:
            second = store.add_bundle("b" * 64, temp, 7, "p2", 1,
                                      [row(2, "2026-01-02T00:00:00.000000Z"),
                                       row(3, "2026-01-03T00:00:00.000000Z", "p2")])
        assert (second.points, second.new_points) == (2, 1)
        assert store.bundle("a" * 64) == added.__class__("a" * 64, True, ("p1",), 1, 2, 0)
        status = store.status()
        assert (status["bundles"], status["bytes"], status["points"]) == (2, 14, 3)
        assert status["probes"] == ["p1", "p2"]
        texts = store.point_texts("2026-01-02T00:00:00.000000Z", "\uffff")
        assert [json.loads(t)["n"] for _, t in texts] == [2, 3]
        origin = store.origin([texts[1][0]])
        assert origin[0]["bundle"] == "b" * 64 and origin[0]["measurement_id"] == 3


def test_a_bundle_that_cannot_be_moved_into_place_leaves_no_index_rows(tmp_path: Path) -> None:
    with CollectionStore(tmp_path / "c") as store:
        with store.incoming(b"zip") as temp:
            temp.unlink()  # the move inside the transaction fails
            with pytest.raises(OSError):
                store.add_bundle("a" * 64, temp, 3, "p1", 1, [row(1, "2026-01-01")])
        assert store.bundle("a" * 64) is None
        assert store.status()["points"] == 0


def test_a_known_bundle_is_not_added_twice(tmp_path: Path) -> None:
    with CollectionStore(tmp_path / "c") as store:
        with store.incoming(b"zip") as temp:
            store.add_bundle("a" * 64, temp, 3, "p1", 1, [row(1, "2026-01-01")])
        with store.incoming(b"zip") as temp:
            again = store.add_bundle("a" * 64, temp, 3, "p1", 1, [row(1, "2026-01-01")])
        assert again.known and again.new_points == 0
        assert store.status()["bundles"] == 1
        assert len(list(store.bundles.iterdir())) == 1  # the second temp file is gone


def test_utc_text_sorts_as_time_does() -> None:
    assert utc_text("2026-11-29") == "2026-11-29T00:00:00.000000Z"
    assert utc_text("2026-11-29T03:04:05+03:00") == "2026-11-29T00:04:05.000000Z"
    with pytest.raises(TimeFormatError):
        utc_text("yesterday")
