"""The SQLite store: schema, round trips, dedup, derived tables, verdicts, integrity, filters.

Measurements are built by hand: no network at all.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import threading
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.errors import IntegrityError
from core.observations import (
    DNSQuery,
    DNSResponse,
    HTTPRequest,
    Measurement,
    TCPConnect,
    TLSHandshake,
)
from core.target import Target
from results.canonical import GENESIS, chain_hash
from results.schema import SCHEMA_VERSION
from results.store import Store

BLOCKPAGE = b"<html><title>Access denied</title>" + b"x" * 2000 + b"</html>"
LEAF = b"\x30\x82\x01\x0a" + b"leaf-certificate" * 8  # fake DER: the store does not parse it
INTERMEDIATE = b"\x30\x82\x01\x0b" + b"intermediate" * 8
VANTAGE = {"tool": "netvigil", "version": "0.1.0", "os": "linux", "asn": 64500, "country": "ZZ"}
CONFIG = {"resolvers": ["192.0.2.53"], "timeouts": {"dns": 5.0}}
VERDICT = {
    "verdict": "blocked", "techniques": ["dns", "http"],
    "outcomes": ["dns.injected", "http.blockpage:ooni.zz_1"], "confidence": 0.9,
    "confirmed": True, "reason": "a second DNS answer and a known blockpage",
    "details": {"fingerprint": "ooni.zz_1"},
}


def make_measurement(
    url: str = "https://blocked.example/", body: bytes = BLOCKPAGE, started: str | None = None
) -> Measurement:
    """A complete measurement: injected DNS, a TCP connect, a TLS handshake, an HTTP fetch."""
    target = Target(url, platform="news", category="NEWS")
    host = target.hostname
    return Measurement(
        target=target,
        started=started or "2025-01-02T03:04:05.123456Z",
        runtime=1.25,
        observations=(
            DNSQuery(0.0, 0.031, host, "A", "udp", "192.0.2.53:53", None, (
                DNSResponse(0.011, "NOERROR", ("10.10.34.35",), ttl=30),
                DNSResponse(0.031, "NOERROR", ("198.51.100.7", "198.51.100.8"), ttl=300),
            )),
            DNSQuery(0.0, 0.02, host, "AAAA", "udp", "192.0.2.53:53", "dns_nxdomain_error", (
                DNSResponse(0.02, "NXDOMAIN"),
            )),
            TCPConnect(0.04, 0.09, "198.51.100.7", 443, None),
            TLSHandshake(0.09, 0.2, "198.51.100.7", 443, host, None, version="TLSv1.3",
                         cipher="TLS_AES_128_GCM_SHA256", alpn="http/1.1",
                         peer_certificates=(LEAF, INTERMEDIATE), cert_verified=True),
            HTTPRequest(0.2, 0.35, url, "198.51.100.7", 443, None,
                        request_headers=(("User-Agent", "netvigil"),), status=200,
                        headers=(("Content-Type", "text/html"), ("Set-Cookie", "a=1"),
                                 ("Set-Cookie", "b=2")),
                        title="Access denied", body=body, body_length=len(body) + 100,
                        body_sha256=hashlib.sha256(body).hexdigest(), body_truncated=True,
                        goodput=12345.5, location=None),
        ),
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "sub" / "dir" / "t.db")  # the parent directories are created
    yield s
    s.close()


def _raw(store: Store) -> sqlite3.Connection:
    """A second connection that sees the committed data (not the store's own)."""
    return sqlite3.connect(store.path)


# --- schema --------------------------------------------------------------------------------


def test_fresh_database_is_migrated_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 1
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"runs", "measurements", "records", "bodies", "certificates", "dns_queries",
            "dns_answers", "tcp_connects", "tls_handshakes", "http_requests"} <= tables
    indexes = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {"measurements_run", "measurements_target", "measurements_verdict",
            "measurements_started"} <= indexes


def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    with Store(path) as s:
        run = s.begin_run(VANTAGE, CONFIG)
        s.add_measurement(run, make_measurement())
    with Store(path) as s:  # migrating again must neither fail nor duplicate anything
        assert len(s.measurements()) == 1
        assert s.verify_chain() == []
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        Store(path)


def test_foreign_keys_are_enforced(store: Store) -> None:
    with pytest.raises(sqlite3.IntegrityError):
        store.add_measurement(999, make_measurement())  # no such run
    assert store.measurements() == []  # and the failed transaction left nothing behind
    assert _raw(store).execute("SELECT count(*) FROM records").fetchone()[0] == 0


def test_default_path_honours_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("NETVIGIL_DB", str(tmp_path / "elsewhere.db"))
    assert Store.default_path() == tmp_path / "elsewhere.db"
    monkeypatch.delenv("NETVIGIL_DB")
    default = Store.default_path()
    assert default.name == "netvigil.db" and default.parent.name == "netvigil"


# --- writes and round trips ----------------------------------------------------------------


def test_round_trip_equals_original(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    original = make_measurement()
    mid = store.add_measurement(run, original)
    loaded = store.load_measurement(mid)
    assert loaded == original
    assert loaded.of(HTTPRequest)[0].body == BLOCKPAGE
    assert loaded.of(TLSHandshake)[0].peer_certificates == (LEAF, INTERMEDIATE)
    ((mid2, again, verdict),) = list(store.iter_measurements(run))
    assert (mid2, again, verdict) == (mid, original, {})


def test_record_keeps_blobs_out(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    mid = store.measurement(store.add_measurement(run, make_measurement()))
    assert mid is not None
    http = next(o for o in mid["observations"] if o["step"] == "http")
    tls = next(o for o in mid["observations"] if o["step"] == "tls")
    digest = hashlib.sha256(BLOCKPAGE).hexdigest()
    assert http["body"] == "" and http["body_sha256"] == digest
    assert http["body_ref"] == f"sha256:{digest}"
    assert tls["peer_certificates"] == [
        f"sha256:{hashlib.sha256(LEAF).hexdigest()}",
        f"sha256:{hashlib.sha256(INTERMEDIATE).hexdigest()}",
    ]
    assert store.body(digest) == BLOCKPAGE
    assert store.certificate(hashlib.sha256(LEAF).hexdigest()) == LEAF
    (canonical,) = _raw(store).execute(
        "SELECT canonical FROM records WHERE kind = 'measurement'"
    ).fetchone()
    assert "Access denied</title>" not in canonical  # the body text is only in `bodies`


def test_bodies_and_certificates_are_deduplicated(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    store.add_measurement(run, make_measurement("https://a.example/"))
    store.add_measurement(run, make_measurement("https://b.example/"))
    conn = _raw(store)
    assert conn.execute("SELECT count(*) FROM bodies").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM certificates").fetchone()[0] == 2
    length, data = conn.execute("SELECT length, data FROM bodies").fetchone()
    assert length == len(BLOCKPAGE) and zlib.decompress(data) == BLOCKPAGE
    assert len(data) < len(BLOCKPAGE)  # stored compressed
    assert conn.execute("SELECT count(*) FROM http_requests").fetchone()[0] == 2


def test_step_tables_are_filled(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    mid = store.add_measurement(run, make_measurement())
    q = store.db.query
    queries = list(q("SELECT * FROM dns_queries WHERE measurement_id = ? ORDER BY id", [mid]))
    assert [(r["query_type"], r["n_responses"], r["injected"], r["failure"]) for r in queries] == [
        ("A", 2, 1, None), ("AAAA", 1, 0, "dns_nxdomain_error"),
    ]
    answers = list(q("SELECT response_index, t, rcode, address, ttl FROM dns_answers "
                     "WHERE query_id = ? ORDER BY id", [queries[0]["id"]]))
    assert [tuple(a.values()) for a in answers] == [
        (0, 0.011, "NOERROR", "10.10.34.35", 30),
        (1, 0.031, "NOERROR", "198.51.100.7", 300),
        (1, 0.031, "NOERROR", "198.51.100.8", 300),
    ]
    (nx,) = q("SELECT rcode, address FROM dns_answers WHERE query_id = ?", [queries[1]["id"]])
    assert nx == {"rcode": "NXDOMAIN", "address": None}  # an empty response still has a row
    (tcp,) = q("SELECT address, port, failure, step_index FROM tcp_connects")
    assert tcp == {"address": "198.51.100.7", "port": 443, "failure": None, "step_index": 2}
    (tls,) = q("SELECT version, cipher, alpn, purpose, cert_verified, leaf_sha256, chain "
               "FROM tls_handshakes")
    assert tls["version"] == "TLSv1.3" and tls["alpn"] == "http/1.1"
    assert tls["purpose"] == "target" and tls["cert_verified"] == 1
    assert tls["leaf_sha256"] == hashlib.sha256(LEAF).hexdigest()
    assert '"' + hashlib.sha256(INTERMEDIATE).hexdigest() + '"' in tls["chain"]
    (http,) = q("SELECT * FROM http_requests")
    assert http["status"] == 200 and http["title"] == "Access denied"
    assert http["body_length"] == len(BLOCKPAGE) + 100 and http["body_truncated"] == 1
    assert http["body_sha256"] == http["body_ref"] == hashlib.sha256(BLOCKPAGE).hexdigest()
    assert http["goodput"] == 12345.5
    assert '["Set-Cookie", "b=2"]' in http["headers"]
    # Researchers can join the step tables to the measurement and its blob.
    (joined,) = q("SELECT m.target_url, b.length FROM http_requests h "
                  "JOIN measurements m ON m.id = h.measurement_id "
                  "JOIN bodies b ON b.sha256 = h.body_ref")
    assert joined == {"target_url": "https://blocked.example/", "length": len(BLOCKPAGE)}


def test_measurement_without_body_or_certificates(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    m = make_measurement(body=b"")
    m = dataclasses.replace(m, observations=tuple(
        dataclasses.replace(o, peer_certificates=(), cert_verified=False,
                            failure="connection_reset")
        if isinstance(o, TLSHandshake) else o for o in m.observations
    ))
    mid = store.add_measurement(run, m)
    assert store.load_measurement(mid) == m
    conn = _raw(store)
    assert conn.execute("SELECT count(*) FROM bodies").fetchone()[0] == 0
    assert conn.execute("SELECT leaf_sha256, chain FROM tls_handshakes").fetchone() == (None, "[]")


def test_run_lifecycle_and_records(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    row = store.run(run)
    assert row is not None and row["status"] == "running" and row["network"] is None
    assert row["vantage"] == VANTAGE and row["config"] == CONFIG
    store.add_measurement(run, make_measurement())
    store.finish_run(run, "ok", {"counts": {"blocked": 1}})
    row = store.run(run)
    assert row is not None
    assert (row["status"], row["network"], row["summary"]) == ("finished", "ok",
                                                                {"counts": {"blocked": 1}})
    assert row["finished"] >= row["started"]
    kinds = [r[0] for r in _raw(store).execute("SELECT kind FROM records ORDER BY id")]
    assert kinds == ["run_start", "measurement", "run_end"]
    with pytest.raises(ValueError, match="already finished"):
        store.finish_run(run, "ok", {})
    with pytest.raises(ValueError):
        store.finish_run(store.begin_run(VANTAGE, CONFIG), "sunny", {})
    second = store.begin_run(VANTAGE, CONFIG)
    store.finish_run(second, "local_failure", {}, status="interrupted")
    assert [r["id"] for r in store.runs()] == [second, second - 1, run]  # newest first
    assert len(store.runs(limit=1)) == 1
    assert store.run(12345) is None


def test_public_address_is_never_stored(store: Store) -> None:
    with pytest.raises(ValueError, match="probe_ip"):
        store.begin_run({**VANTAGE, "probe_ip": "203.0.113.9"}, CONFIG)
    with pytest.raises(ValueError):
        store.begin_run({**VANTAGE, "network": {"seen_as": "8.8.4.4"}}, CONFIG)
    assert store.runs() == []
    assert _raw(store).execute("SELECT count(*) FROM records").fetchone()[0] == 0


def test_each_measurement_is_one_transaction(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    store.add_measurement(run, make_measurement("https://first.example/"))
    bad = make_measurement("https://second.example/")
    # A verdict that cannot be stored fails the write after nothing (no partial rows)...
    with pytest.raises(ValueError):
        store.add_measurement(run, bad, {"verdict": "blocked", "outcomes": ["a,b"]})
    # ...and a failure in the middle (a step row the schema refuses) rolls everything back.
    broken = dataclasses.replace(bad, observations=(
        *bad.observations, TCPConnect(0.5, 0.6, None, 443, None),  # type: ignore[arg-type]
    ))
    with pytest.raises(sqlite3.IntegrityError):
        store.add_measurement(run, broken)
    conn = _raw(store)
    assert conn.execute("SELECT count(*) FROM measurements").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 2
    assert conn.execute("SELECT count(*) FROM tcp_connects").fetchone()[0] == 1
    assert store.verify_chain() == []
    # The store is still usable afterwards.
    store.add_measurement(run, make_measurement("https://third.example/"))
    assert store.verify_chain() == []


def test_ctrl_c_mid_write_loses_only_the_unfinished_measurement(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import results.rows

    run = store.begin_run(VANTAGE, CONFIG)
    store.add_measurement(run, make_measurement("https://done.example/"))

    def interrupted(*args: object) -> Iterator[object]:
        raise KeyboardInterrupt  # arrives after the record and the measurement row

    monkeypatch.setattr(results.rows, "step_rows", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.add_measurement(run, make_measurement("https://half.example/"))
    monkeypatch.undo()
    conn = _raw(store)
    assert [r[0] for r in conn.execute("SELECT target_url FROM measurements")] == [
        "https://done.example/"]
    assert conn.execute("SELECT count(*) FROM records").fetchone()[0] == 2
    assert store.verify_chain() == []


def test_committed_measurements_are_visible_to_other_readers(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    with Store(store.path) as reader:
        store.add_measurement(run, make_measurement())
        assert len(reader.measurements()) == 1  # WAL: a second connection reads it at once


def test_two_writers_keep_one_linear_chain(tmp_path: Path) -> None:
    # Two processes (here: threads with their own connections) appending at once must never
    # link two records to the same predecessor.
    path = tmp_path / "shared.db"
    with Store(path) as s:
        run = s.begin_run(VANTAGE, CONFIG)
    errors: list[BaseException] = []

    def writer(name: str) -> None:
        try:
            with Store(path) as s:
                for i in range(15):
                    s.add_measurement(run, make_measurement(f"https://{name}{i}.example/"))
        except BaseException as exc:  # reported below, with the assertion
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    with Store(path) as s:
        assert len(s.measurements()) == 30
        assert s.verify_chain() == []


def test_in_memory_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with Store(":memory:") as s:
        mid = s.add_measurement(s.begin_run(VANTAGE, CONFIG), make_measurement())
        assert s.load_measurement(mid) == make_measurement()
    assert list(tmp_path.iterdir()) == []


# --- verdicts ------------------------------------------------------------------------------


def test_verdict_set_and_replace(store: Store) -> None:
    run = store.begin_run(VANTAGE, CONFIG)
    mid = store.add_measurement(run, make_measurement(), VERDICT)
    (row,) = store.measurements()
    assert row["verdict"] == "blocked" and row["techniques"] == "dns,http"
    assert row["outcomes"] == "dns.injected,http.blockpage:ooni.zz_1"
    assert row["confirmed"] is True and row["confidence"] == 0.9
    assert row["details"] == {"fingerprint": "ooni.zz_1"}
    ((_, _, verdict),) = list(store.iter_measurements())
    assert verdict == VERDICT
    (canonical_before,) = _raw(store).execute(
        "SELECT canonical FROM records WHERE kind = 'measurement'").fetchone()
    store.set_verdict(mid, {"verdict": "ok", "confidence": 0.8, "reason": "control agrees"})
    (row,) = store.measurements()
    assert (row["verdict"], row["techniques"], row["outcomes"], row["confirmed"]) == (
        "ok", "", "", False)
    ((_, _, verdict),) = list(store.iter_measurements())
    assert verdict["techniques"] == [] and verdict["reason"] == "control agrees"
    (canonical_after,) = _raw(store).execute(
        "SELECT canonical FROM records WHERE kind = 'measurement'").fetchone()
    assert canonical_after == canonical_before  # derived columns only
    with pytest.raises(KeyError):
        store.set_verdict(mid + 100, VERDICT)


# --- integrity -----------------------------------------------------------------------------


def _filled(store: Store) -> list[int]:
    run = store.begin_run(VANTAGE, CONFIG)
    store.add_measurement(run, make_measurement("https://a.example/"))
    store.add_measurement(run, make_measurement("https://b.example/", body=b"other page"))
    store.finish_run(run, "ok", {})
    ids = [r[0] for r in _raw(store).execute("SELECT id FROM records ORDER BY id")]
    assert len(ids) == 4 and store.verify_chain() == []
    return ids


def test_chain_links_every_record(store: Store) -> None:
    _filled(store)
    rows = _raw(store).execute("SELECT canonical, sha256, prev_sha256 FROM records ORDER BY id")
    prev = GENESIS
    for canonical, digest, link in rows:
        assert link == prev
        assert digest == chain_hash(prev, canonical.encode("utf-8"))
        prev = digest
    assert store.head() == prev


@pytest.mark.parametrize("sql", [
    "UPDATE records SET canonical = 'x' WHERE id = 1",
    "DELETE FROM records WHERE id = 1",
    "UPDATE bodies SET length = 1",
    "DELETE FROM certificates",
])
def test_raw_tables_are_append_only(store: Store, sql: str) -> None:
    _filled(store)
    conn = _raw(store)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute(sql)


# To test that verify_chain catches tampering we must first tamper, and the append-only triggers
# forbid exactly that. A real attacker with write access to the file can drop a trigger too, so
# the test does the same: the triggers guard against mistakes, the hash chain against intent.
def _tamper(store: Store, table: str, sql: str, *args: object) -> None:
    conn = _raw(store)
    conn.execute(f"DROP TRIGGER {table}_no_update")
    conn.execute(f"DROP TRIGGER {table}_no_delete")
    conn.execute(sql, args)
    conn.commit()
    conn.close()


def test_verify_chain_catches_one_changed_byte(store: Store) -> None:
    ids = _filled(store)
    (text,) = _raw(store).execute("SELECT canonical FROM records WHERE id = ?",
                                  (ids[1],)).fetchone()
    changed = text.replace("198.51.100.7", "198.51.100.9", 1)
    assert len(changed) == len(text) and changed != text
    _tamper(store, "records", "UPDATE records SET canonical = ? WHERE id = ?", changed, ids[1])
    assert store.verify_chain() == [ids[1]]


def test_verify_chain_catches_a_rehashed_record(store: Store) -> None:
    # Recomputing the changed record's own hash does not help: the next record's link breaks.
    ids = _filled(store)
    conn = _raw(store)
    text, prev = conn.execute("SELECT canonical, prev_sha256 FROM records WHERE id = ?",
                              (ids[1],)).fetchone()
    changed = text.replace("Access", "Welcome")
    _tamper(store, "records", "UPDATE records SET canonical = ?, sha256 = ? WHERE id = ?",
            changed, chain_hash(prev, changed.encode()), ids[1])
    assert store.verify_chain() == [ids[2]]


def test_verify_chain_catches_a_broken_link(store: Store) -> None:
    ids = _filled(store)
    _tamper(store, "records", "UPDATE records SET prev_sha256 = ? WHERE id = ?", "f" * 64, ids[2])
    assert store.verify_chain() == [ids[2]]


def test_verify_chain_catches_a_removed_record(store: Store) -> None:
    ids = _filled(store)
    _tamper(store, "records", "DELETE FROM records WHERE id = ?", ids[1])
    # The measurement row still points at the record; foreign keys are off in this connection.
    assert store.verify_chain() == [ids[2]]


def test_verify_chain_catches_a_relabelled_record(store: Store) -> None:
    ids = _filled(store)
    _tamper(store, "records", "UPDATE records SET run_id = 77 WHERE id = ?", ids[3])
    assert store.verify_chain() == [ids[3]]


def test_verify_chain_catches_a_changed_body(store: Store) -> None:
    ids = _filled(store)
    digest = hashlib.sha256(BLOCKPAGE).hexdigest()
    forged = BLOCKPAGE.replace(b"denied", b"open!!")
    _tamper(store, "bodies", "UPDATE bodies SET data = ? WHERE sha256 = ?",
            zlib.compress(forged), digest)
    assert store.damaged_blobs() == [("bodies", digest)]
    assert store.verify_chain() == [ids[1]]  # the record that refers to the body
    with pytest.raises(IntegrityError):
        store.load_measurement(1)
    assert store.load_measurement(2).of(HTTPRequest)[0].body == b"other page"


def test_verify_chain_catches_a_changed_or_missing_certificate(store: Store) -> None:
    ids = _filled(store)
    leaf = hashlib.sha256(LEAF).hexdigest()
    intermediate = hashlib.sha256(INTERMEDIATE).hexdigest()
    _tamper(store, "certificates", "UPDATE certificates SET der = ? WHERE sha256 = ?",
            b"forged", leaf)
    conn = _raw(store)
    conn.execute("DELETE FROM certificates WHERE sha256 = ?", (intermediate,))
    conn.commit()
    assert store.damaged_blobs() == [("certificates", leaf)]
    assert store.verify_chain() == [ids[1], ids[2]]  # both measurements use the chain


# --- queries -------------------------------------------------------------------------------


def test_measurement_filters(store: Store) -> None:
    run1 = store.begin_run(VANTAGE, CONFIG)
    a = store.add_measurement(run1, make_measurement("https://a.example/"), VERDICT)
    b = store.add_measurement(run1, make_measurement("https://b.example/"),
                              {"verdict": "ok", "confidence": 0.8})
    run2 = store.begin_run(VANTAGE, CONFIG)
    c = store.add_measurement(run2, make_measurement("https://a.example/"))

    def ids(**kw: object) -> list[int]:
        return [r["id"] for r in store.measurements(**kw)]  # type: ignore[arg-type]

    assert ids() == [c, b, a]  # newest first
    assert ids(run_id=run1) == [b, a]
    assert ids(target="https://a.example/") == [c, a]
    assert ids(target="https://a.example") == [c, a]  # without the trailing slash
    assert ids(target="A.example") == [c, a]  # a hostname
    assert ids(verdict="blocked") == [a]
    assert ids(verdict="ok", run_id=run2) == []
    assert ids(limit=2) == [c, b]
    assert [r["id"] for r in store.iter_rows()] == [a, b, c]  # oldest first
    row = store.measurement(a)
    assert row is not None
    assert row["target_url"] == "https://a.example/" and row["platform"] == "news"
    assert row["hostname"] == "a.example" and row["runtime"] == 1.25
    assert [o["step"] for o in row["observations"]] == ["dns", "dns", "tcp", "tls", "http"]
    assert len(row["record_sha256"]) == 64
    assert store.measurement(9999) is None
    with pytest.raises(KeyError):
        store.load_measurement(9999)


def test_iter_rows_pages_through_many(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    import results.store_queries

    monkeypatch.setattr(results.store_queries, "_PAGE", 3)
    run = store.begin_run(VANTAGE, CONFIG)
    made = [store.add_measurement(run, make_measurement(f"https://s{i}.example/"))
            for i in range(7)]
    assert [mid for mid, _, _ in store.iter_measurements(run)] == made


def test_control_is_a_chained_raw_record_and_reads_back(tmp_path):
    from results.schema import SCHEMA_VERSION, user_version

    with Store(tmp_path / "c.db") as store:
        assert user_version(store._conn) == SCHEMA_VERSION >= 2
        run_id = store.begin_run({"tool": "netvigil"}, {})
        m = make_measurement()
        mid = store.add_measurement(run_id, m)
        assert store.load_control(mid) is None
        store.add_control(run_id, mid, m, source="helper")
        assert store.load_control(mid) == m
        kinds = [r[0] for r in store._conn.execute("SELECT kind FROM records ORDER BY id")]
        assert kinds == ["run_start", "measurement", "control"]
        assert store.verify_chain() == []
