"""Verification of a database and of evidence bundles: any changed byte is found and named.

Tampering is done the way a tamperer would: by dropping the append-only triggers and editing
rows, or by editing files of a bundle (and, for a consistent forgery, redoing its manifests).
Runs are built by hand, judged by the real analysis; no network at all.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import shutil
import subprocess
import sys
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from results import custody
from results.bundle_export import export_bundle, verify, verify_bundle
from results.bundle_verify import manifest_text
from results.canonical import GENESIS, chain_hash
from results.store import Store
from results.verify import Reclassify
from services.evidence import check_bundle, custody_log, reclassifier, verify_database
from tests.test_store import CONFIG, VANTAGE, make_measurement

CLOCK = {"source": "chrony", "synchronised": True, "offset_s": 0.0004, "max_error_s": 0.01}
URLS = ("https://news.example/", "https://chat.example/", "https://video.example/")


def add_run(store: Store, url: str, control: bool = False) -> int:
    run_id = store.begin_run(VANTAGE, CONFIG)
    store.record_clock(run_id, CLOCK)
    mid = store.add_measurement(run_id, make_measurement(url))
    if control:
        store.add_control(run_id, mid, make_measurement(url, body=b"<html>the real page</html>"))
    for m, verdict in reclassifier(store)(run_id).items():
        store.set_verdict(m, verdict)
    store.finish_run(run_id, "ok", {"counts": {}})
    return run_id


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "e.db", keys=tmp_path / "keys") as s:
        for i, url in enumerate(URLS):
            add_run(s, url, control=i == 1)
        yield s


def flip(text: str, i: int) -> str:
    return text[:i] + chr(ord(text[i]) ^ 1) + text[i + 1:]


def flip_bytes(data: bytes, i: int) -> bytes:
    return data[:i] + bytes([data[i] ^ 1]) + data[i + 1:]


def measurement_record(store: Store, mid: int = 2) -> tuple[int, str]:
    return store.db.conn.execute(
        "SELECT r.id, r.canonical FROM measurements m JOIN records r ON r.id = m.record_id "
        "WHERE m.id = ?", (mid,)).fetchone()


def judge(store: Store) -> Reclassify:
    return reclassifier(store)


# --- the database --------------------------------------------------------------------------------


def test_an_intact_database_verifies(store: Store) -> None:
    report = verify(store, judge(store))
    assert report.ok, report.problems
    assert report.counts["records"] == 3 * 4 + 1  # start, clock, measurement, end; a control
    assert report.counts["signatures"] == 3 and report.counts["measurements"] == 3


def test_every_changed_byte_of_a_record_is_caught(store: Store) -> None:
    rid, text = measurement_record(store)
    conn = store.db.conn
    conn.execute("DROP TRIGGER records_no_update")  # what a tamperer can do; verify must notice
    for i in [*range(0, len(text), 97), len(text) - 1]:
        conn.execute("UPDATE records SET canonical = ? WHERE id = ?", (flip(text, i), rid))
        problems = verify(store).about(f"record {rid}")
        assert problems and "does not match its canonical text" in problems[0].what, i
    conn.execute("UPDATE records SET canonical = ? WHERE id = ?", (text, rid))
    assert verify(store).ok


def test_a_changed_body_blob_names_the_body_and_its_records(store: Store) -> None:
    conn = store.db.conn
    digest, data = conn.execute("SELECT sha256, data FROM bodies").fetchone()
    raw = bytearray(zlib.decompress(data))
    raw[100] ^= 1
    conn.execute("DROP TRIGGER bodies_no_update")
    conn.execute("UPDATE bodies SET data = ?", (zlib.compress(bytes(raw)),))
    report = verify(store)
    assert report.about(f"body {digest}")
    rid, _ = measurement_record(store, 1)
    assert any("refers to a body" in p.what for p in report.about(f"record {rid}"))
    assert any("cannot be rebuilt" in p.what for p in report.about("measurement 1"))


def test_a_changed_signature_names_the_run(store: Store) -> None:
    conn = store.db.conn
    signature = conn.execute("SELECT signature FROM signatures WHERE run_id = 2").fetchone()[0]
    conn.execute("DROP TRIGGER signatures_no_update")
    conn.execute("UPDATE signatures SET signature = ? WHERE run_id = 2", (flip(signature, 5),))
    assert [p.subject for p in verify(store).problems] == ["run 2 (signature 2)"]


@pytest.mark.parametrize(("table", "column"), [
    ("dns_queries", "resolver"), ("dns_answers", "address"), ("tcp_connects", "address"),
    ("tls_handshakes", "sni"), ("tls_handshakes", "chain"), ("http_requests", "headers"),
    ("http_requests", "title"), ("measurements", "target_url"), ("measurements", "started"),
])
def test_a_changed_byte_in_a_derived_row_names_the_measurement(
    store: Store, table: str, column: str
) -> None:
    conn = store.db.conn
    where = "query_id IN (SELECT id FROM dns_queries WHERE measurement_id = 2)" \
        if table == "dns_answers" else "id = 2" if table == "measurements" \
        else "measurement_id = 2"
    rowid, value = conn.execute(f"SELECT id, {column} FROM {table} WHERE {where} "
                                "ORDER BY id LIMIT 1").fetchone()
    conn.execute(f"UPDATE {table} SET {column} = ? WHERE id = ?", (flip(value, 3), rowid))
    report = verify(store)
    assert [p.subject for p in report.problems] == ["measurement 2"], report.problems


def test_a_changed_number_in_a_step_row_is_caught(store: Store) -> None:
    store.db.conn.execute("UPDATE tcp_connects SET port = 442 WHERE measurement_id = 3")
    [problem] = verify(store).problems
    assert problem.subject == "measurement 3" and "port is 442" in problem.what


def test_a_changed_verdict_column_is_caught_by_classifying_again(store: Store) -> None:
    conn = store.db.conn
    verdict, confidence = conn.execute(
        "SELECT verdict, confidence FROM measurements WHERE id = 1").fetchone()
    conn.execute("UPDATE measurements SET verdict = ? WHERE id = 1", (flip(verdict, 0),))
    assert verify(store).ok  # without a classifier the derived verdict is not checked
    [problem] = verify(store, judge(store)).problems
    assert problem.subject == "measurement 1" and "verdict" in problem.what
    conn.execute("UPDATE measurements SET verdict = ?, confidence = ? WHERE id = 1",
                 (verdict, confidence + 0.125))
    assert [p.subject for p in verify(store, judge(store)).problems] == ["measurement 1"]


def test_removed_rows_cannot_hide_raw_records(store: Store) -> None:
    conn = store.db.conn
    rid, _ = measurement_record(store, 3)
    control = conn.execute("SELECT record_id FROM controls").fetchone()[0]
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("DELETE FROM measurements WHERE id = 3")
    conn.execute("DELETE FROM controls")
    conn.execute("UPDATE runs SET network = 'local_failure' WHERE id = 1")
    subjects = {p.subject for p in verify(store).problems}
    assert {f"record {rid}", f"record {control}", "run 1", "measurement 3"} <= subjects


def test_a_changed_clock_row_is_caught(store: Store) -> None:
    conn = store.db.conn
    conn.execute("DROP TRIGGER clock_no_update")
    conn.execute("UPDATE clock SET offset_s = 0.0005 WHERE run_id = 2")
    assert [p.subject for p in verify(store).problems] == ["clock 2 (run 2)"]


# --- the custody log -----------------------------------------------------------------------------


def test_the_custody_log_is_a_chain(store: Store) -> None:
    entries = custody_log(store)
    assert [e["action"] for e in entries] == ["collection"] * 3  # one per finished run
    assert entries[0]["prev_sha256"] == GENESIS
    assert all(b["prev_sha256"] == a["sha256"] for a, b in itertools.pairwise(entries))
    heads = [r[0] for r in store.db.conn.execute(
        "SELECT head_sha256 FROM signatures ORDER BY run_id")]
    assert [e["hashes"]["head"] for e in entries] == heads
    assert entries[0]["tool_version"] == custody.tool_version()
    custody.log(store, "analysis", {"runs": [1]}, {"chain_head": store.head()})
    assert custody.check_custody(store.db.conn) == []
    with pytest.raises(ValueError, match="custody action"):
        custody.log(store, "shred", {}, {})
    conn = store.db.conn
    conn.execute("DROP TRIGGER custody_no_update")
    conn.execute("UPDATE custody SET details = ? WHERE id = 2",
                 (flip(conn.execute("SELECT details FROM custody WHERE id = 2").fetchone()[0],
                       3),))
    assert [p.subject for p in verify(store).problems] == ["custody 2"]


def test_the_custody_log_reads_back_one_action(store: Store) -> None:
    custody.log(store, "analysis", {"runs": [1]}, {"chain_head": store.head()})
    custody.log(store, "export", {"runs": [2]}, {"bundle": "0" * 64})
    assert [e["details"] for e in custody.read(store, "export")] == [{"runs": [2]}]
    assert [e["action"] for e in custody.read(store)] == ["collection"] * 3 + [
        "analysis", "export"]
    assert custody.read(store, "import") == []


def test_verifying_is_logged(store: Store) -> None:
    report = verify_database(store)
    assert report.ok, report.problems
    entry = custody_log(store)[-1]
    assert entry["action"] == "verify" and entry["details"]["ok"] is True
    assert entry["hashes"] == {"chain_head": store.head()}


# --- bundles -------------------------------------------------------------------------------------


def members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return path


def test_a_bundle_verifies_on_its_own(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "all.zip"
    info = export_bundle(store, out)
    assert info["anchor"] == GENESIS and info["head"] == store.head()
    assert info["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    store.close()
    (tmp_path / "e.db").unlink()  # nothing of the database is needed
    report = verify_bundle(out)
    assert report.ok, report.problems
    assert report.counts["records"] == 13 and report.counts["signatures"] == 3


def test_the_export_is_in_the_custody_log(store: Store, tmp_path: Path) -> None:
    info = export_bundle(store, tmp_path / "b.zip", run_ids=[2])
    entry = custody_log(store)[-1]
    assert entry["action"] == "export"
    assert entry["details"] == {"file": "b.zip", "runs": [2], "records": info["records"]}
    assert entry["hashes"]["bundle"] == info["sha256"]


def test_the_readme_tells_an_outsider_how_to_check_it(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    export_bundle(store, out, run_ids=[2])
    with zipfile.ZipFile(out) as zf:
        zf.extractall(tmp_path / "x")
    bag = tmp_path / "x" / "b"
    readme = (bag / "README.txt").read_text()
    script = readme.split("--- begin check.py ---\n")[1].split("--- end check.py ---")[0]
    (bag / "check.py").write_text(script)
    done = subprocess.run([sys.executable, "check.py"], cwd=bag, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    assert "run 2 signed by key" in done.stdout and done.stdout.startswith("run 2")
    if shutil.which("sha256sum"):
        for manifest in ("tagmanifest-sha256.txt", "manifest-sha256.txt"):
            check = subprocess.run(["sha256sum", "-c", "--quiet", manifest], cwd=bag,
                                   capture_output=True, text=True, timeout=30, check=False)
            assert check.returncode == 0, check.stdout + check.stderr
    # The outsider's script fails too when a record is changed.
    lines = (bag / "data" / "records.jsonl").read_bytes().split(b"\n")
    n = next(i for i, line in enumerate(lines) if b"chat.example" in line)
    lines[n] = lines[n].replace(b"chat.example", b"chat.exbmple")
    (bag / "data" / "records.jsonl").write_bytes(b"\n".join(lines))
    done = subprocess.run([sys.executable, "check.py"], cwd=bag, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode != 0 and f"line {n + 1}: hash differs" in done.stderr


def test_flipping_any_byte_of_any_file_fails_naming_the_file(
    store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = members(out)
    for name, data in files.items():
        for i in sorted({0, len(data) // 2, len(data) - 1}):
            tampered = write_zip(tmp_path / "t.zip", {**files, name: flip_bytes(data, i)})
            report = verify_bundle(tampered)
            rel = name.split("/", 1)[1]
            assert not report.ok, (rel, i)
            assert rel in {p.file for p in report.problems}, (rel, i, report.problems)


def test_a_changed_record_line_names_the_record(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = members(out)
    name = "b/data/records.jsonl"
    lines = files[name].split(b"\n")
    rid, _ = measurement_record(store)
    n = next(i for i, line in enumerate(lines) if json.loads(line)["id"] == rid)
    lines[n] = lines[n].replace(b"chat.example", b"chat.exbmple", 1)
    report = verify_bundle(write_zip(tmp_path / "t.zip", {**files, name: b"\n".join(lines)}))
    subjects = {(p.file, p.subject) for p in report.problems}
    assert ("data/records.jsonl", f"record {rid} (line {n + 1})") in subjects
    assert ("data/records.jsonl", "file") in subjects  # the manifest disagrees too


def test_a_changed_body_or_signature_file_names_what_it_holds(
    store: Store, tmp_path: Path
) -> None:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = members(out)
    body = next(n for n in files if "/data/bodies/" in n)
    report = verify_bundle(write_zip(tmp_path / "t.zip",
                                     {**files, body: flip_bytes(files[body], 50)}))
    digest = body.rsplit("/", 1)[1]
    assert report.about(f"body {digest}")[0].file == f"data/bodies/{digest}"
    assert any(p.subject.startswith("record ") and "refers to a body" in p.what
               for p in report.problems)
    sigs = "b/data/signatures.json"
    text = files[sigs].decode()
    i = text.index('"signature":"') + 20
    report = verify_bundle(write_zip(tmp_path / "t.zip",
                                     {**files, sigs: flip(text, i).encode()}))
    assert [p.subject for p in report.problems if p.file == "data/signatures.json"] == \
        ["file", "run 1 (signature 1)"]


def test_a_changed_manifest_is_named(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = members(out)
    name = "b/manifest-sha256.txt"
    report = verify_bundle(write_zip(tmp_path / "t.zip",
                                     {**files, name: flip_bytes(files[name], 10)}))
    assert {p.file for p in report.problems} >= {"manifest-sha256.txt"}


def redo_manifests(files: dict[str, bytes], root: str = "b") -> dict[str, bytes]:
    """What a careful forger does after editing data files: recompute both manifests."""
    sha = {n.split("/", 1)[1]: hashlib.sha256(d).hexdigest() for n, d in files.items()}
    files = dict(files)
    files[f"{root}/manifest-sha256.txt"] = manifest_text(
        {p: h for p, h in sha.items() if p.startswith("data/")})
    sha["manifest-sha256.txt"] = hashlib.sha256(files[f"{root}/manifest-sha256.txt"]).hexdigest()
    payload = [d for n, d in files.items() if n.startswith(f"{root}/data/")]
    info = files[f"{root}/bag-info.txt"].decode()
    oxum = info.split("Payload-Oxum: ")[1].split("\n")[0]
    files[f"{root}/bag-info.txt"] = info.replace(
        oxum, f"{sum(map(len, payload))}.{len(payload)}").encode()
    sha["bag-info.txt"] = hashlib.sha256(files[f"{root}/bag-info.txt"]).hexdigest()
    files[f"{root}/tagmanifest-sha256.txt"] = manifest_text(
        {p: h for p, h in sha.items() if not p.startswith("data/") and "tagmanifest" not in p})
    return files


def test_a_consistent_forgery_still_fails_on_the_signatures(
    store: Store, tmp_path: Path
) -> None:
    """Edit a record, redo every hash after it, the Payload-Oxum and both manifests: only the
    key could sign the new heads, so the runs whose heads changed are named."""
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = members(out)
    name = "b/data/records.jsonl"
    records = [json.loads(line) for line in files[name].split(b"\n")[:-1]]
    n = next(i for i, r in enumerate(records) if r["kind"] == "measurement" and r["run_id"] == 2)
    records[n]["canonical"] = records[n]["canonical"].replace("chat.example", "chat.exbmple")
    prev = records[0]["prev_sha256"]
    for r in records:
        r["prev_sha256"] = prev
        r["sha256"] = prev = chain_hash(prev, r["canonical"].encode())
    files[name] = b"".join(json.dumps(r).encode() + b"\n" for r in records)
    report = verify_bundle(write_zip(tmp_path / "t.zip", redo_manifests(files)))
    # The signed heads of runs 2 and 3 are gone, and so are the record hashes their verdicts
    # cite; the summary in bag-info.txt names the old head too.
    assert {p.subject.split(" (")[0] for p in report.problems} == {
        "run 2", "run 3", "measurement 2", "measurement 3", "Netvigil-Chain-Head"}


def test_a_removed_record_line_breaks_the_chain_there(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = members(out)
    name = "b/data/records.jsonl"
    lines = files[name].split(b"\n")
    del lines[3]  # record 4, a run_end
    report = verify_bundle(write_zip(tmp_path / "t.zip",
                                     redo_manifests({**files, name: b"\n".join(lines)})))
    subjects = [p.subject for p in report.problems]
    assert "record 5 (line 4)" in subjects  # its id and its link no longer follow


def test_a_subset_bundle_verifies_from_its_anchor(store: Store, tmp_path: Path) -> None:
    info = export_bundle(store, tmp_path / "b.zip", run_ids=[2])
    first, last = info["records"]
    before = store.db.conn.execute("SELECT sha256 FROM records WHERE id = ?",
                                   (first - 1,)).fetchone()[0]
    assert info["anchor"] == before != GENESIS
    report = verify_bundle(tmp_path / "b.zip")
    assert report.ok, report.problems
    assert report.counts["records"] == last - first + 1 == 5  # with run 2's control
    assert report.counts["signatures"] == 1
    assert any(before in n for n in report.notices)


def test_an_interleaved_run_makes_the_slice_contiguous(tmp_path: Path) -> None:
    with Store(tmp_path / "i.db", keys=tmp_path / "keys") as s:
        a, b = s.begin_run(VANTAGE, CONFIG), s.begin_run(VANTAGE, CONFIG)
        s.add_measurement(a, make_measurement(URLS[0]))
        s.add_measurement(b, make_measurement(URLS[1]))
        s.finish_run(a, "ok", {})
        s.finish_run(b, "ok", {})
        info = export_bundle(s, tmp_path / "a.zip", run_ids=[a])
        assert info["runs"] == [a, b] and info["selected_runs"] == [a]
    report = verify_bundle(tmp_path / "a.zip")
    assert report.ok, report.problems
    assert any(f"run {b} has not ended" in n for n in report.notices)  # its end is outside


def test_selection_by_measurement_and_time(store: Store, tmp_path: Path) -> None:
    assert export_bundle(store, tmp_path / "m.zip", measurement_ids=[3])["selected_runs"] == [3]
    started = store.run(2)["started"]  # type: ignore[index]
    ended = store.run(3)["started"]  # type: ignore[index]
    assert export_bundle(store, tmp_path / "t.zip", since=started,
                         until=ended)["selected_runs"] == [2]
    with pytest.raises(KeyError):
        export_bundle(store, tmp_path / "x.zip", run_ids=[99])
    with pytest.raises(ValueError, match="no run"):
        export_bundle(store, tmp_path / "x.zip", since="2999-01-01")
    for name in ("m.zip", "t.zip"):
        assert verify_bundle(tmp_path / name).ok


def test_not_a_bundle(tmp_path: Path, store: Store) -> None:
    (tmp_path / "junk.zip").write_bytes(b"not a zip")
    [problem] = verify_bundle(tmp_path / "junk.zip").problems
    assert "not a readable zip" in problem.what
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.txt", b"x")
    (tmp_path / "flat.zip").write_bytes(buf.getvalue())
    assert "one folder" in verify_bundle(tmp_path / "flat.zip").problems[0].what
    report = check_bundle(tmp_path / "flat.zip", store)
    assert not report.ok and custody_log(store)[-1]["details"]["ok"] is False
