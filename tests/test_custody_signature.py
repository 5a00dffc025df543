"""The custody log travels signed: a bundle carries the probe key's signature of the log's last
entry, so a forger who rewrites the log (and redoes every hash and manifest) is caught."""

from __future__ import annotations

import json
from pathlib import Path

from results.bundle_export import export_bundle
from results.canonical import chain_hash
from results.custody import entry_canonical
from results.store import Store
from services.evidence import check_bundle
from tests.test_evidence import members, redo_manifests, store, write_zip

__all__ = ["store"]  # the fixture, shared with tests.test_evidence


def exported(store: Store, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    return members(out)


def checked(tmp_path: Path, files: dict[str, bytes]) -> list[str]:
    report = check_bundle(write_zip(tmp_path / "forged.zip", redo_manifests(files, "b")))
    return [str(p) for p in report.problems]


def test_a_bundle_signs_its_custody_log(store: Store, tmp_path: Path) -> None:
    files = exported(store, tmp_path)
    signed = json.loads(files["b/data/custody_signature.json"])
    entries = [json.loads(line) for line in files["b/data/custody.jsonl"].splitlines()]
    assert signed["head_sha256"] == entries[-1]["sha256"]
    assert signed["key_id"] in {k["key_id"] for k in json.loads(files["b/data/keys.json"])}
    report = check_bundle(write_zip(tmp_path / "same.zip", files))
    assert report.ok, report.problems
    assert f"the custody log is signed by key {signed['key_id']}" in report.notices


def test_a_rewritten_custody_log_fails_on_its_signature(store: Store, tmp_path: Path) -> None:
    files = exported(store, tmp_path)
    entries = [json.loads(line) for line in files["b/data/custody.jsonl"].splitlines()]
    # The forger changes what the first entry says and redoes the whole chain after it.
    entries[0]["details"] = json.dumps({"forged": True}, separators=(",", ":"))
    prev = entries[0]["prev_sha256"]
    for e in entries:
        e["prev_sha256"] = prev
        text = entry_canonical(e["time"], e["action"], e["tool_version"],
                               json.loads(e["details"]), json.loads(e["hashes"]))
        e["sha256"] = prev = chain_hash(prev, text)
    files["b/data/custody.jsonl"] = b"".join(
        json.dumps(e, sort_keys=True, separators=(",", ":")).encode() + b"\n" for e in entries)
    problems = checked(tmp_path, files)
    assert len(problems) == 1, problems
    assert problems[0].startswith("data/custody_signature.json: custody signature: it signs ")
    assert f"last entry has hash {prev}" in problems[0]


def test_a_changed_or_foreign_signature_is_named(store: Store, tmp_path: Path) -> None:
    files = exported(store, tmp_path)
    signed = json.loads(files["b/data/custody_signature.json"])
    bad = dict(signed, signature=signed["signature"][:-4] + ("AAA=" if not
                                                              signed["signature"].endswith("AAA=")
                                                              else "BBB="))
    files["b/data/custody_signature.json"] = json.dumps(bad).encode()
    (problem,) = checked(tmp_path, files)
    assert problem.startswith("data/custody_signature.json: custody signature: ")
    foreign = dict(signed, key_id="0" * 32)
    files["b/data/custody_signature.json"] = json.dumps(foreign).encode()
    assert checked(tmp_path, files) == [
        "data/custody_signature.json: custody signature: it is signed by key " + "0" * 32
        + ", which data/keys.json does not hold"]
    files["b/data/custody_signature.json"] = b"{not json"
    (problem,) = checked(tmp_path, files)
    assert problem.startswith("data/custody_signature.json: file: unreadable")


def test_without_the_file_the_check_says_the_log_is_unsigned(store: Store,
                                                             tmp_path: Path) -> None:
    files = exported(store, tmp_path)
    del files["b/data/custody_signature.json"]
    report = check_bundle(write_zip(tmp_path / "old.zip", redo_manifests(files, "b")))
    assert report.ok
    assert any("custody log is not signed" in n for n in report.notices)


def test_a_bundle_carries_the_log_since_its_data_were_collected(store: Store,
                                                                tmp_path: Path) -> None:
    from results import custody
    from tests.test_evidence import add_run

    for _ in range(40):  # a long history before the run we export
        custody.log(store, "verify", {"scope": "database", "ok": True})
    late = add_run(store, "https://late.example/")
    out = tmp_path / "b.zip"  # the bag's folder is named after the file: b/
    export_bundle(store, out, run_ids=[late])
    files = members(out)
    entries = [json.loads(line) for line in files["b/data/custody.jsonl"].splitlines()]
    total = store.db.conn.execute("SELECT COUNT(*) FROM custody").fetchone()[0]
    assert 1 <= len(entries) <= 2 < total  # the run's collection (and no old history)
    assert entries[0]["action"] == "collection"
    anchor = entries[0]["prev_sha256"]
    assert anchor != "0" * 64
    info = files["b/bag-info.txt"].decode()
    assert f"Netvigil-Custody-Anchor: {anchor}" in info
    assert json.loads(files["b/data/custody_signature.json"])["anchor_sha256"] == anchor
    assert check_bundle(write_zip(tmp_path / "same.zip", files)).ok


def test_cutting_the_front_of_the_log_fails_on_the_signed_anchor(store: Store,
                                                                 tmp_path: Path) -> None:
    files = exported(store, tmp_path)
    entries = files["b/data/custody.jsonl"].splitlines(keepends=True)
    assert len(entries) >= 2
    new_anchor = json.loads(entries[1])["prev_sha256"]
    files["b/data/custody.jsonl"] = b"".join(entries[1:])
    info = files["b/bag-info.txt"].decode()
    files["b/bag-info.txt"] = info.replace("Netvigil-Custody-Anchor: " + "0" * 64,
                                           "Netvigil-Custody-Anchor: " + new_anchor).encode()
    problems = checked(tmp_path, files)
    assert problems == ["data/custody_signature.json: custody signature: it signs the anchor "
                        + "0" * 64 + f", but the custody log starts after {new_anchor}"]
    # and without mending bag-info.txt, the stated anchor gives it away as well
    files["b/bag-info.txt"] = info.encode()
    assert any(p.startswith("bag-info.txt: Netvigil-Custody-Anchor: differs")
               for p in checked(tmp_path, files))
