"""Events in evidence bundles: exported with the verdicts they come from, found again from the
bundle alone by `netvigil evidence verify`, and any claimed event that does not follow (or any
that follows but is missing) is named. Real OONI measurements (wc05) make the events."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from results.store import Store
from services.events import events
from services.evidence import check_bundle, export_evidence, verify_database
from tests.conftest import import_wc05, wc05_fingerprints
from tests.test_evidence import members, redo_manifests, write_zip


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bundle-events") / "wc.db"
    with Store(path, keys=path.parent / "keys") as store:
        import_wc05(store)
    return path


@pytest.fixture
def store(db: Path) -> Iterator[Store]:
    with Store(db, keys=db.parent / "keys") as s:
        yield s


def root_of(files: dict[str, bytes]) -> str:
    return next(iter(files)).split("/", 1)[0]


def events_file(files: dict[str, bytes]) -> list[dict]:
    return json.loads(files[f"{root_of(files)}/data/events.json"])


def forged(tmp_path: Path, files: dict[str, bytes], claimed: list[dict]) -> Path:
    root = root_of(files)
    files = dict(files)
    files[f"{root}/data/events.json"] = json.dumps(claimed).encode()
    return write_zip(tmp_path / "forged.zip", redo_manifests(files, root))


def test_the_bundle_carries_the_events_and_they_check(store: Store, tmp_path: Path) -> None:
    found = [e.to_dict() for e in events(store)]
    assert len(found) >= 3
    out = tmp_path / "all.zip"
    export_evidence(store, out, fingerprints=wc05_fingerprints())
    assert events_file(members(out)) == found  # exactly what `netvigil events --json` says
    report = check_bundle(out)
    assert report.ok, report.problems
    assert report.counts["events"] == len(found)


def test_an_event_bundle_holds_that_event(store: Store, tmp_path: Path) -> None:
    chosen = events(store)[-1]
    out = tmp_path / "event.zip"
    export_evidence(store, out, measurement_ids=list(chosen.measurement_ids),
                    fingerprints=wc05_fingerprints())
    assert chosen.id in {e["id"] for e in events_file(members(out))}
    assert check_bundle(out).ok


def test_changed_missing_and_invented_events_are_named(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "all.zip"
    export_evidence(store, out, fingerprints=wc05_fingerprints())
    files = members(out)
    claimed = events_file(files)
    first, second = claimed[0]["id"], claimed[1]["id"]

    changed = [dict(e) for e in claimed]
    changed[0]["confidence"] = 1.0 if changed[0]["confidence"] != 1.0 else 0.5
    changed[0]["start"] = "2020-01-01T00:00:00Z"
    problems = [str(p) for p in check_bundle(forged(tmp_path, files, changed)).problems]
    assert problems == [f"data/events.json: event {first}: differs from what the verdicts give "
                        "in confidence, start"]

    problems = [str(p) for p in check_bundle(forged(tmp_path, files, claimed[1:])).problems]
    assert problems == [f"data/events.json: event {first}: follows from the bundle's verdicts "
                        "but is missing"]

    invented = [*claimed, {**claimed[1], "id": "0123456789abcdef"}]
    problems = [str(p) for p in check_bundle(forged(tmp_path, files, invented)).problems]
    assert problems == ["data/events.json: event 0123456789abcdef: does not follow from the "
                        "bundle's verdicts"]
    assert second != first

    broken = check_bundle(forged(tmp_path, files, {"not": "a list"}))  # type: ignore[arg-type]
    assert [p.file for p in broken.problems] == ["data/events.json"]


def test_a_changed_verdict_is_named_not_taken_into_the_events(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "all.zip"
    export_evidence(store, out, fingerprints=wc05_fingerprints())
    files = members(out)
    root = root_of(files)
    claimed = events_file(files)
    target = claimed[0]["measurement_ids"][0]
    lines = files[f"{root}/data/verdicts.jsonl"].decode().splitlines()
    edited = []
    for line in lines:
        row = json.loads(line)
        if row["measurement_id"] == target:
            row.update(verdict="ok", techniques=[], outcomes=[], confirmed=False)
        edited.append(json.dumps(row, sort_keys=True, separators=(",", ":")))
    files[f"{root}/data/verdicts.jsonl"] = ("\n".join(edited) + "\n").encode()
    report = check_bundle(write_zip(tmp_path / "f.zip", redo_manifests(files, root)))
    assert not report.ok
    # The verdict is classified again from its records, so the changed line itself is named
    # (events are found again from the records' verdicts: the claimed ones still follow).
    [problem] = report.problems
    assert (problem.file, problem.subject.split(" (")[0]) == ("data/verdicts.jsonl",
                                                             f"measurement {target}")
    assert "verdict is 'ok', the records give 'blocked'" in problem.what


def test_a_database_check_says_events_are_found_again(store: Store) -> None:
    report = verify_database(store, reclassify=False)
    assert report.ok
    assert any(f"{len(events(store))} events" in n for n in report.notices), report.notices
