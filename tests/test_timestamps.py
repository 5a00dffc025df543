"""RFC 3161 timestamps of run heads, against a local authority the test makes (tests.fakes.tsa).

Heads wait while no authority answers (a closed loopback port) and are stamped on the next call;
stored tokens verify against their head and the authority's chain, in `verify` and in bundles,
and a changed token byte or a different head is reported. No traffic leaves loopback.
"""

from __future__ import annotations

import base64
import json
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from results import tsa_tokens as T
from results.bundle_export import export_bundle, verify, verify_bundle
from results.store import Store
from services.timestamps import stamp_pending
from tests.fakes.tsa import FakeTSA
from tests.test_evidence import add_run, flip_bytes, members, redo_manifests, write_zip

ECDSA_SHA256_OID = bytes.fromhex("06082a8648ce3d040302")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "t.db", keys=tmp_path / "keys") as s:
        add_run(s, "https://news.example/")
        add_run(s, "https://chat.example/")
        yield s


@pytest.fixture
def tsa() -> Iterator[FakeTSA]:
    with FakeTSA() as authority:
        yield authority


def closed_port_url() -> str:
    """A loopback URL nothing listens on: connecting is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/tsa"


def rows(store: Store) -> list[dict[str, object]]:
    cursor = store.db.conn.execute("SELECT * FROM timestamps ORDER BY id")
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def stamped(store: Store, tsa: FakeTSA) -> Store:
    result = stamp_pending(store, tsa.url, timeout=5, roots_pem=tsa.ca_pem)
    assert result["stamped"] == 2, result
    return store


def tamper(store: Store, sql: str, args: tuple[object, ...]) -> None:
    """Edit a stamped row the way a tamperer would: without the triggers."""
    conn = store.db.conn
    conn.execute("DROP TRIGGER timestamps_stamped_no_update")
    conn.execute(sql, args)


def flipped_token(token: str, i: int) -> str:
    return base64.b64encode(flip_bytes(base64.b64decode(token), i)).decode("ascii")


def imprint_offset(token: str, head: str) -> int:
    """Where the stamped message's SHA-256 sits in the token (inside the signed TSTInfo)."""
    import hashlib

    digest = hashlib.sha256(b"netvigil run head v1\n" + head.encode()).digest()
    return base64.b64decode(token).index(digest)


# --- queueing and sending --------------------------------------------------------------------


def test_heads_wait_while_offline_and_are_stamped_when_the_authority_answers(
    store: Store, tsa: FakeTSA
) -> None:
    offline = stamp_pending(store, closed_port_url(), timeout=2)
    assert offline["queued"] == 2 and offline["stamped"] == 0 and offline["pending"] == 2
    assert offline["unreachable"] == 2 and offline["sent"] == 1  # the rest not tried in vain
    assert [(r["status"], r["attempts"], r["token"]) for r in rows(store)] == [
        ("queued", 1, None), ("queued", 1, None)]
    assert all("Connection" in str(r["last_error"]) for r in rows(store))
    assert tsa.requests == 0

    online = stamp_pending(store, tsa.url, timeout=5, roots_pem=tsa.ca_pem)
    assert (online["queued"], online["sent"], online["stamped"], online["pending"]) == (0, 2, 2, 0)
    assert tsa.requests == 2
    heads = dict(store.db.conn.execute("SELECT run_id, head_sha256 FROM signatures"))
    for row in rows(store):
        assert row["status"] == "stamped" and row["attempts"] == 2 and row["last_error"] is None
        assert row["head_sha256"] == heads[row["run_id"]] and row["tsa_url"] == tsa.url
        assert str(row["tsa_chain"]).count("BEGIN CERTIFICATE") == 2  # the TSA's, its root
    report = verify(store)
    assert report.ok, report.problems
    assert report.counts["timestamps"] == 2
    assert any(T.fingerprint(str(rows(store)[0]["tsa_chain"])) in n and "2 run head" in n
               for n in report.notices)


def test_nothing_is_sent_when_there_is_nothing_to_stamp(tmp_path: Path, tsa: FakeTSA) -> None:
    with Store(tmp_path / "empty.db", keys=tmp_path / "keys") as empty:
        run_id = empty.begin_run({"software": "netvigil"}, {})  # not ended: no head to stamp
        result = stamp_pending(empty, tsa.url, timeout=5, roots_pem=tsa.ca_pem)
        assert (result["queued"], result["sent"], result["pending"]) == (0, 0, 0)
        assert tsa.requests == 0
        empty.finish_run(run_id, "ok", {})
        assert stamp_pending(empty, tsa.url, timeout=5, roots_pem=tsa.ca_pem)["stamped"] == 1
        again = stamp_pending(empty, tsa.url, timeout=5, roots_pem=tsa.ca_pem)
        assert (again["queued"], again["sent"]) == (0, 0) and tsa.requests == 1


def test_a_refusal_or_a_chain_without_root_fails_and_is_tried_again(
    store: Store, tsa: FakeTSA
) -> None:
    tsa.refuse = True
    refused = stamp_pending(store, tsa.url, timeout=5, roots_pem=tsa.ca_pem)
    assert (refused["failed"], refused["stamped"], refused["pending"]) == (2, 0, 2)
    assert all(r["status"] == "failed" and "refused" in str(r["last_error"])
               for r in rows(store))
    tsa.refuse = False
    rootless = stamp_pending(store, tsa.url, timeout=5)  # the answer holds only the TSA's cert
    assert rootless["failed"] == 2 and "root" in rootless["errors"][0]["error"]
    assert stamp_pending(store, tsa.url, timeout=5, roots_pem=tsa.ca_pem)["stamped"] == 2
    assert [r["attempts"] for r in rows(store)] == [3, 3]


def test_a_stamp_from_another_authority_than_the_chain_is_refused(
    store: Store, tsa: FakeTSA
) -> None:
    with FakeTSA("impostor") as other:
        result = stamp_pending(store, other.url, timeout=5, roots_pem=tsa.ca_pem)
    assert result["failed"] == 2 and result["stamped"] == 0


def test_a_stamp_never_changes(store: Store, tsa: FakeTSA) -> None:
    stamped(store, tsa)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.conn.execute("UPDATE timestamps SET gen_time = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store.db.conn.execute("DELETE FROM timestamps")


# --- verification ------------------------------------------------------------------------------


def test_the_token_verifies_against_its_head_and_chain_only(store: Store, tsa: FakeTSA) -> None:
    row = rows(stamped(store, tsa))[0]
    head, token, chain = str(row["head_sha256"]), str(row["token"]), str(row["tsa_chain"])
    assert T.verify_stamp(head, token, chain) == (None, row["gen_time"])
    why, _ = T.verify_stamp(rows(store)[1]["head_sha256"], token, chain)  # type: ignore[arg-type]
    assert why and "Mismatch between messages" in why
    with FakeTSA("impostor") as other:  # the same names, another root
        forged_chain = chain.split("-----END CERTIFICATE-----\n")[0] + \
            "-----END CERTIFICATE-----\n" + other.ca_pem.decode()
    why, _ = T.verify_stamp(head, token, forged_chain)
    assert why and "does not verify" in why


def test_every_changed_byte_of_a_token_fails_but_the_unsigned_algorithm_id(
    store: Store, tsa: FakeTSA
) -> None:
    row = rows(stamped(store, tsa))[0]
    head, token, chain = str(row["head_sha256"]), str(row["token"]), str(row["tsa_chain"])
    der = base64.b64decode(token)
    # The SignerInfo's signature algorithm identifier is outside what the TSA signs, and
    # OpenSSL takes the algorithm from the key: documented in results.tsa_tokens.
    oid = der.rindex(ECDSA_SHA256_OID)
    unsigned = set(range(oid + 2, oid + len(ECDSA_SHA256_OID)))
    passed = [i for i in range(len(der)) if i not in unsigned
              and T.verify_stamp(head, flipped_token(token, i), chain)[0] is None]
    assert passed == []


def test_verify_names_the_run_of_a_changed_token_or_head(store: Store, tsa: FakeTSA) -> None:
    row = rows(stamped(store, tsa))[0]
    token = str(row["token"])
    i = imprint_offset(token, str(row["head_sha256"]))
    tamper(store, "UPDATE timestamps SET token = ? WHERE id = 1", (flipped_token(token, i),))
    problems = verify(store).about("run 1")
    assert [p.subject for p in problems] == ["run 1 (timestamp 1)"]
    assert "does not verify" in problems[0].what and problems[0].file is None

    other = rows(store)[1]["head_sha256"]
    store.db.conn.execute("UPDATE timestamps SET token = ?, head_sha256 = ? WHERE id = 1",
                          (token, other))
    problems = verify(store).about("run 1")
    assert [p.subject for p in problems] == ["run 1 (timestamp 1)"]
    assert f"it stamps {other}" in problems[0].what


def test_a_changed_gen_time_column_is_caught(store: Store, tsa: FakeTSA) -> None:
    stamped(store, tsa)
    tamper(store, "UPDATE timestamps SET gen_time = '2020-01-01T00:00:00.000000Z' WHERE id = 2",
           ())
    assert "its gen_time is 2020" in verify(store).about("run 2")[0].what


# --- bundles -----------------------------------------------------------------------------------


def test_bundles_carry_the_tokens_and_check_them(
    store: Store, tsa: FakeTSA, tmp_path: Path
) -> None:
    stamp_pending(store, closed_port_url(), timeout=2)  # a queued head is not evidence yet
    store.db.conn.execute("DELETE FROM timestamps WHERE id = 2")
    assert stamp_pending(store, tsa.url, timeout=5, roots_pem=tsa.ca_pem)["stamped"] == 2
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    report = verify_bundle(out)
    assert report.ok, report.problems
    files = members(out)
    name = "b/data/timestamps.json"
    items = json.loads(files[name])
    assert [t["run_id"] for t in items] == [1, 2] and report.counts["timestamps"] == 2

    token = items[0]["token"]
    items[0]["token"] = flipped_token(token, imprint_offset(token, items[0]["head_sha256"]))
    report = verify_bundle(write_zip(tmp_path / "t.zip", redo_manifests(
        {**files, name: _json_array(items)})))
    assert [(p.subject, p.file) for p in report.problems] == [
        ("run 1 (timestamp 1)", "data/timestamps.json")]

    items[0]["token"], items[0]["head_sha256"] = token, items[1]["head_sha256"]
    report = verify_bundle(write_zip(tmp_path / "h.zip", redo_manifests(
        {**files, name: _json_array(items)})))
    assert [p.subject for p in report.problems] == ["run 1 (timestamp 1)"]
    assert "it stamps" in report.problems[0].what


def test_a_bundle_from_before_timestamps_still_verifies(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "b.zip"
    export_bundle(store, out)
    files = {n: d for n, d in members(out).items() if not n.endswith("timestamps.json")}
    assert verify_bundle(write_zip(tmp_path / "old.zip", redo_manifests(files))).ok


def _json_array(items: list[dict[str, object]]) -> bytes:
    from results.canonical import canonical_json

    return ("[\n" + ",\n".join(canonical_json(i).decode() for i in items) + "\n]\n").encode()


def test_the_command_queues_while_offline_then_stamps_and_logs_custody(
    store: Store, tsa: FakeTSA, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import cli

    db = str(store.path)
    root = tmp_path / "root.pem"
    root.write_bytes(tsa.ca_pem)
    base = ["--db", db, "evidence", "timestamp", "--tsa-root", str(root), "--json"]
    assert cli.main([*base, "--tsa", closed_port_url(), "--tsa-timeout", "2"]) == 1
    offline = json.loads(capsys.readouterr().out)
    assert (offline["queued"], offline["stamped"], offline["pending"]) == (2, 0, 2)
    assert cli.main([*base, "--tsa", tsa.url]) == 0
    online = json.loads(capsys.readouterr().out)
    assert (online["queued"], online["stamped"], online["pending"]) == (0, 2, 0)
    assert cli.main(["--db", db, "evidence", "custody", "--json"]) == 0
    logged = [e for e in json.loads(capsys.readouterr().out) if e["action"] == "timestamp"]
    assert sorted(e["details"]["run"] for e in logged) == sorted(r["run_id"] for r in rows(store))
    assert cli.main(["--db", db, "verify", "--json"]) == 0


def test_the_command_names_a_bad_root_file(store: Store, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    import cli

    bad = tmp_path / "root.pem"
    bad.write_text("not a certificate\n")
    code = cli.main(["--db", str(store.path), "evidence", "timestamp", "--tsa",
                     closed_port_url(), "--tsa-root", str(bad)])
    assert code == 2
    assert str(bad) in capsys.readouterr().err
    assert rows(store) == []


def test_monitor_stamps_each_run_once_the_authority_answers(tmp_path: Path, tsa: FakeTSA) -> None:
    from core.target import Target
    from services.campaign import CampaignOptions
    from services.monitor import Schedule, monitor
    from tests.test_monitor import FakeTime, fake_job

    t, lines = FakeTime(), []
    urls = iter([closed_port_url(), tsa.url, tsa.url])

    def after_run(s: Store) -> str:
        result = stamp_pending(s, next(urls), timeout=2, roots_pem=tsa.ca_pem)
        return f"{result['stamped']} stamped, {result['pending']} waiting"

    db = tmp_path / "m.db"
    monitor([Target("http://a.test/")], db, CampaignOptions(), Schedule(every=5, max_runs=3),
            log=lines.append, sleep=t.sleep, clock=t.clock, job=fake_job(t), after_run=after_run)
    assert [line.split(" ", 1)[1] for line in lines if "stamped" in line] == [
        "0 stamped, 1 waiting", "2 stamped, 0 waiting", "1 stamped, 0 waiting"]
    with Store(db) as s:
        assert [r["status"] for r in rows(s)] == ["stamped"] * 3
        assert verify(s).ok
