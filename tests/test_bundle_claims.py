"""Attacks on what a bundle claims, performed as a forger would (issue 11, sections 1 and 2).

The forger edits files inside the zip and then redoes every hash they can: the record chain
after an edited record, the verdict links, the events (found again from the forged verdicts
with netvigil's own code), bag-info.txt and both manifests. What they cannot redo is a
signature. Each attack runs against `netvigil evidence verify` (exit status and output) and
against a collector started with `--allow-key <the genuine key>`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import cli
from results.canonical import canonical_json, chain_hash
from results.store import Store
from results.timeline import BundlePoints
from services.collector_intake import Collection
from services.collector_server import CollectorConfig, make_server
from services.evidence import check_bundle, event_dicts, export_evidence, reclassifier
from tests.conftest import import_wc05, wc05_fingerprints
from tests.test_collector import post
from tests.test_evidence import URLS, add_run, members, redo_manifests, write_zip

Files = dict[str, bytes]


@pytest.fixture(scope="module")
def wc05_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("claims") / "wc.db"
    with Store(path, keys=path.parent / "keys") as store:
        import_wc05(store)
    return path


@pytest.fixture
def wc05(wc05_db: Path) -> Iterator[Store]:
    with Store(wc05_db, keys=wc05_db.parent / "keys") as store:
        yield store


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db", keys=tmp_path / "keys-s") as store:
        for i, url in enumerate(URLS):
            add_run(store, url, control=i == 1)
        yield store


# --- the forger's tools ----------------------------------------------------------------------


def root(files: Files) -> str:
    return next(iter(files)).split("/", 1)[0]


def lines(files: Files, name: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in files[f"{root(files)}/data/{name}"].splitlines()]


def jsonl(rows: list[dict[str, Any]]) -> bytes:
    return b"".join(canonical_json(r) + b"\n" for r in rows)


def json_array(rows: list[dict[str, Any]]) -> bytes:
    """As netvigil writes a JSON array: one element per line."""
    if not rows:
        return b"[]\n"
    return b"[\n" + b",\n".join(canonical_json(r) for r in rows) + b"\n]\n"


def forge(files: Files, records: list[dict[str, Any]] | None = None,
          verdicts: list[dict[str, Any]] | None = None,
          signatures: list[dict[str, Any]] | None = None,
          keys: list[dict[str, Any]] | None = None) -> Files:
    """Replace what is given, then redo every hash a forger can: the chain, the verdict
    links, the events (found again from the forged verdicts), bag-info.txt, the manifests."""
    r = root(files)
    files = dict(files)
    records = records if records is not None else lines(files, "records.jsonl")
    prev = records[0]["prev_sha256"]
    old_to_new = {}
    for rec in records:
        rec["prev_sha256"] = prev
        new = chain_hash(prev, rec["canonical"].encode())
        old_to_new[rec["sha256"]] = new
        rec["sha256"] = prev = new
    files[f"{r}/data/records.jsonl"] = jsonl(records)
    verdicts = verdicts if verdicts is not None else lines(files, "verdicts.jsonl")
    for v in verdicts:
        v["record_sha256"] = old_to_new.get(v["record_sha256"], v["record_sha256"])
    files[f"{r}/data/verdicts.jsonl"] = jsonl(verdicts)
    if signatures is not None:
        files[f"{r}/data/signatures.json"] = json_array(signatures)
    if keys is not None:
        files[f"{r}/data/keys.json"] = json_array(keys)
    points = BundlePoints()
    for rec in records:
        points.record(rec["id"], rec["run_id"], rec["kind"], json.loads(rec["canonical"]))
    files[f"{r}/data/events.json"] = json_array(event_dicts(points.points(verdicts)))
    info = files[f"{r}/bag-info.txt"].decode()
    head = info.split("Netvigil-Chain-Head: ")[1].split("\n")[0]
    files[f"{r}/bag-info.txt"] = info.replace(head, records[-1]["sha256"]).encode()
    return redo_manifests(files, r)


def evidence_verify(path: Path, capsys: pytest.CaptureFixture[str], *extra: str
                    ) -> tuple[int, dict[str, Any]]:
    status = cli.main(["evidence", "verify", str(path), "--json", *extra])
    return status, json.loads(capsys.readouterr().out)


def collector(tmp_path: Path, key: str, **options: Any) -> Any:
    config = CollectorConfig(folder=tmp_path / "collection", allowed_keys=(key,), **options)
    return make_server("127.0.0.1", 0, config)


def genuine_key(store: Store) -> str:
    return str(store.keys.current().key_id)


# --- 1. verdicts bound to the signed records -------------------------------------------------


def whitewash(verdicts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for v in verdicts:
        if v["verdict"] == "blocked":
            v.update(verdict="ok", techniques=[], outcomes=[], confirmed=False,
                     reason="the page loaded as the control saw it", details={})
    return verdicts


def test_whitewashed_verdicts_fail_verify_and_the_collector(
        wc05: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    genuine = tmp_path / "genuine.zip"
    export_evidence(wc05, genuine, fingerprints=wc05_fingerprints())
    files = members(genuine)
    verdicts = lines(files, "verdicts.jsonl")
    blocked = sorted(v["measurement_id"] for v in verdicts if v["verdict"] == "blocked")
    assert blocked
    forged = write_zip(tmp_path / "forged.zip", forge(files, verdicts=whitewash(verdicts)))
    assert json.loads(members(forged)[f"{root(files)}/data/events.json"]) == []

    status, report = evidence_verify(forged, capsys)
    assert status == 1 and not report["ok"]
    named = {p["subject"].split(" (")[0]: p for p in report["problems"]
             if p["file"] == "data/verdicts.jsonl"}
    assert set(named) == {f"measurement {m}" for m in blocked}
    # The events the records give are missing from the emptied events file, and named too.
    assert any(p["file"] == "data/events.json" and "is missing" in p["what"]
               for p in report["problems"])
    first = named[f"measurement {blocked[0]}"]
    assert first["file"] == "data/verdicts.jsonl"
    assert "verdict is 'ok', the records give 'blocked'" in first["what"]
    assert "techniques is []" in first["what"]
    status, report = evidence_verify(genuine, capsys)
    assert status == 0 and report["ok"], report["problems"]

    with collector(tmp_path, genuine_key(wc05)) as server:
        url = f"http://127.0.0.1:{server.port}"
        refused = post(url, forged.read_bytes(), token=None)
        assert refused.status_code == 422
        assert "differs from its records classified again" in refused.json()["error"]
        taken = post(url, genuine.read_bytes(), token=None)
        assert taken.status_code == 201
        assert taken.json()["new_points"] == len(verdicts)  # nothing was taken before
    with Collection(tmp_path / "collection") as collection:
        assert sum(p.verdict == "blocked" for p in collection.points()) == len(blocked)


def test_invented_blocking_fails(small: Store, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    # Run 2 has a control that shows the real page: judged again, it is not what is claimed.
    genuine = tmp_path / "genuine.zip"
    export_evidence(small, genuine)
    files = members(genuine)
    verdicts = lines(files, "verdicts.jsonl")
    target = next(v for v in verdicts if v["run_id"] == 2)
    claim = "ok" if target["verdict"] != "ok" else "blocked"
    target.update(verdict=claim, techniques=["http"] if claim == "blocked" else [],
                  outcomes=["http.blockpage:invented"] if claim == "blocked" else [],
                  confirmed=claim == "blocked", confidence=1.0)
    forged = write_zip(tmp_path / "forged.zip", forge(files, verdicts=verdicts))
    status, report = evidence_verify(forged, capsys)
    assert status == 1
    [problem] = [p for p in report["problems"] if p["file"] == "data/verdicts.jsonl"]
    assert problem["subject"].startswith(f"measurement {target['measurement_id']} ")
    assert f"verdict is {claim!r}" in problem["what"] and "confidence is 1," in problem["what"]
    with collector(tmp_path, genuine_key(small)) as server:
        assert post(f"http://127.0.0.1:{server.port}", forged.read_bytes(),
                    token=None).status_code == 422


def test_the_bundle_names_and_carries_what_its_verdicts_were_judged_with(
        wc05: Store, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    export_evidence(wc05, out, fingerprints=wc05_fingerprints())
    files = members(out)
    context = json.loads(files[f"{root(files)}/data/analysis.json"])
    assert context["analysis"].startswith("netvigil ")
    assert len(context["fingerprints"]["http"]) + len(context["fingerprints"]["dns"]) == len(
        wc05_fingerprints())
    report = check_bundle(out)
    assert report.ok, report.problems
    assert any(context["fingerprints_sha256"] in n and "not signed" in n
               for n in report.notices), report.notices
    # Fingerprints that do not match their stated hash are refused, not used.
    context["fingerprints"]["http"] = context["fingerprints"]["http"][1:]
    files[f"{root(files)}/data/analysis.json"] = canonical_json(context)
    report = check_bundle(write_zip(tmp_path / "f.zip", redo_manifests(files, root(files))))
    assert [p.file for p in report.problems] == ["data/analysis.json"]


def test_export_refuses_verdicts_its_bundle_could_not_back(wc05: Store, tmp_path: Path) -> None:
    # Judged with OONI's fingerprints: without them, the stored verdicts do not follow.
    from core.errors import EvidenceError

    with pytest.raises(EvidenceError, match="give the ones the runs were judged with"):
        export_evidence(wc05, tmp_path / "b.zip")
    assert not (tmp_path / "b.zip").exists()


def test_a_later_different_claim_about_a_known_record_is_refused(
        wc05: Store, tmp_path: Path) -> None:
    """A bundle that holds together on its own (its verdicts are what its records give with
    the settings it carries) but says something else about records the collection holds: a
    collector keeps the first and answers 422 to the other, never silently."""
    genuine = tmp_path / "genuine.zip"
    export_evidence(wc05, genuine, fingerprints=wc05_fingerprints())
    files = members(genuine)
    fresh = reclassifier(wc05)  # no fingerprints: blockpages are no longer proof
    verdicts = lines(files, "verdicts.jsonl")
    by_run: dict[int, Any] = {}
    for v in verdicts:
        judged = by_run.setdefault(v["run_id"], fresh(v["run_id"]))[v["measurement_id"]]
        v.update(json.loads(canonical_json(judged)))
    r = root(files)
    context = json.loads(files[f"{r}/data/analysis.json"])
    context.update(fingerprints=None, fingerprints_sha256=None)
    files[f"{r}/data/analysis.json"] = canonical_json(context)
    other = write_zip(tmp_path / "other.zip", forge(files, verdicts=verdicts))
    assert check_bundle(other).ok  # consistent on its own: judged without fingerprints
    assert members(other)[f"{r}/data/verdicts.jsonl"] != files[f"{r}/data/verdicts.jsonl"]
    with collector(tmp_path, genuine_key(wc05)) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert post(url, genuine.read_bytes(), token=None).status_code == 201
        answer = post(url, other.read_bytes(), token=None)
        assert answer.status_code == 422
        assert "says other than bundle" in answer.json()["error"]


# --- 2. records no signature covers ----------------------------------------------------------


def drop_last_run_end(files: Files, edit: Callable[[dict[str, Any]], None]) -> Files:
    """Change a measurement record of the last run, drop that run's end and signature."""
    records = lines(files, "records.jsonl")
    last = records[-1]["run_id"]
    assert records[-1]["kind"] == "run_end"
    record = next(r for r in records if r["run_id"] == last and r["kind"] == "measurement")
    content = json.loads(record["canonical"])
    edit(content)
    record["canonical"] = canonical_json(content).decode()
    signatures = [s for s in lines_array(files, "signatures.json") if s["run_id"] != last]
    return forge(files, records=records[:-1], signatures=signatures)


def lines_array(files: Files, name: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(files[f"{root(files)}/data/{name}"])
    return data


def slower(content: dict[str, Any]) -> None:
    content["measurement"]["runtime"] = 9.75  # its verdict stays what it was


def test_an_unsigned_last_run_fails_unless_allowed(
        small: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    genuine = tmp_path / "genuine.zip"
    export_evidence(small, genuine)
    forged = write_zip(tmp_path / "forged.zip", drop_last_run_end(members(genuine), slower))

    status, report = evidence_verify(forged, capsys)
    assert status == 1
    run3 = [p for p in report["problems"] if p["subject"] == "run 3"]
    assert len(run3) == 2, report["problems"]  # its records; its verdict cannot be judged again
    assert "covered by no signature" in run3[0]["what"]
    # No notice claims a coverage that does not exist.
    assert not any("covers its records" in n for n in report["notices"])

    status, report = evidence_verify(forged, capsys, "--allow-unsigned")
    assert [p["subject"] for p in report["problems"]] == ["run 3"]  # its verdict: no run_end
    assert any(n.startswith("UNSIGNED, accepted because --allow-unsigned was given: run 3")
               for n in report["notices"])


def test_the_collector_indexes_only_what_a_signature_covers(
        small: Store, tmp_path: Path) -> None:
    genuine = tmp_path / "genuine.zip"
    export_evidence(small, genuine)
    files = members(genuine)
    # Careful this time: the forged run has no verdict to judge, only an unsigned record.
    forged_files = drop_last_run_end(files, slower)
    r = root(files)
    verdicts = [v for v in lines(forged_files, "verdicts.jsonl") if v["run_id"] != 3]
    forged_files[f"{r}/data/verdicts.jsonl"] = jsonl(verdicts)
    forged = write_zip(tmp_path / "forged.zip", forge(forged_files, verdicts=verdicts))
    assert check_bundle(forged, allow_unsigned=True).ok
    key = genuine_key(small)
    with collector(tmp_path, key) as server:
        answer = post(f"http://127.0.0.1:{server.port}", forged.read_bytes(), token=None)
        assert answer.status_code == 422 and "covered by no signature" in answer.json()["error"]
    with collector(tmp_path, key, allow_unsigned=True) as server:
        answer = post(f"http://127.0.0.1:{server.port}", forged.read_bytes(), token=None)
        assert answer.status_code == 201
        assert answer.json()["points"] == 2  # runs 1 and 2; run 3's record is not indexed
    with Collection(tmp_path / "collection") as collection:
        assert {o["run_id"] for o in collection.origin([p.measurement_id for p in
                                                        collection.points()])} == {1, 2}


def test_a_probe_is_named_by_the_key_that_signed_not_by_the_one_listed_first(
        small: Store, tmp_path: Path) -> None:
    victim = tmp_path / "victim.zip"
    export_evidence(small, victim)
    victim_keys = lines_array(members(victim), "keys.json")
    with Store(tmp_path / "f.db", keys=tmp_path / "keys-forger") as forger:
        add_run(forger, "https://invented.example/")
        own = tmp_path / "own.zip"
        export_evidence(forger, own)
        forger_key = genuine_key(forger)
    files = members(own)
    keys = victim_keys + lines_array(files, "keys.json")  # the victim's key listed first
    impersonating = write_zip(tmp_path / "imp.zip", forge(files, keys=keys))
    assert check_bundle(impersonating).ok
    with Collection(tmp_path / "c") as collection:
        added = collection.add(impersonating.read_bytes())
        assert added.probes == (forger_key,)
        assert {o["probe"] for o in collection.origin([1])} == {forger_key}


def test_the_index_refuses_a_second_different_point_for_a_record(tmp_path: Path) -> None:
    from core.errors import BundleRejected
    from results.collection_store import CollectionStore, PointRow

    def point(verdict: str) -> PointRow:
        return PointRow("ab" * 32, "p1", 1, 1, "2026-01-01T00:00:00.000000Z", "KE",
                        json.dumps({"verdict": verdict}))

    with CollectionStore(tmp_path / "c") as store:
        with store.incoming(b"one") as temp:
            store.add_bundle("a" * 64, temp, 3, ("p1",), 1, [point("blocked")])
        with store.incoming(b"two") as temp, pytest.raises(BundleRejected) as refused:
            store.add_bundle("b" * 64, temp, 3, ("p1",), 1, [point("ok")])
        assert refused.value.problems and "a" * 64 in str(refused.value)
        assert store.bundle("b" * 64) is None  # nothing of it kept
        assert [json.loads(t) for _, t in store.point_texts("", "\uffff")] == [
            {"verdict": "blocked"}]


def test_shifted_measurement_ids_cannot_move_a_control(small: Store, tmp_path: Path) -> None:
    """Verdict lines number the measurements; the signed control names its measurement by
    that number. Renumbering every line by one would give run 2's control to another
    measurement: the control is then not of its run (or not of its host), a problem."""
    genuine = tmp_path / "genuine.zip"
    export_evidence(small, genuine)
    files = members(genuine)
    verdicts = lines(files, "verdicts.jsonl")
    for v in verdicts:
        v["measurement_id"] += 1
    report = check_bundle(write_zip(tmp_path / "f.zip", forge(files, verdicts=verdicts)))
    assert [p.subject for p in report.problems] == [
        next(f"record {r['id']} (run 2)" for r in lines(files, "records.jsonl")
             if r["kind"] == "control")]
    # Renumbering one line alone breaks the order the ids follow.
    verdicts = lines(files, "verdicts.jsonl")
    verdicts[0]["measurement_id"] = 7
    report = check_bundle(write_zip(tmp_path / "g.zip", forge(files, verdicts=verdicts)))
    assert any("does not follow the order" in p.what for p in report.problems)
