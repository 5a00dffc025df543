"""Signing keys, run signatures and the clock's state: made, kept, rotated, checked.

Runs are built by hand (Store.begin_run / add_measurement / finish_run): no network at all.
"""

from __future__ import annotations

import base64
import json
import sqlite3
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from probes.clock_state import UNKNOWN_SOURCE, clock_state, parse_chrony, parse_timedatectl
from results import signing
from results.bundle_export import verify
from results.canonical import chain_hash
from results.signing import KeyStore, rotate_key, verify_signature
from results.store import Store
from services.evidence import current_key
from tests.test_store import CONFIG, VANTAGE, make_measurement

CLOCK = {"source": "chrony", "synchronised": True, "offset_s": -0.0012, "max_error_s": 0.01}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "s.db", keys=tmp_path / "keys") as s:
        yield s


def finished_run(store: Store, url: str = "https://blocked.example/") -> int:
    run_id = store.begin_run(VANTAGE, CONFIG)
    store.record_clock(run_id, CLOCK)
    store.add_measurement(run_id, make_measurement(url))
    store.finish_run(run_id, "ok", {"counts": {}})
    return run_id


def signatures(store: Store) -> list[tuple[int, str, str, str]]:
    return store.db.conn.execute(
        "SELECT run_id, head_sha256, key_id, signature FROM signatures ORDER BY id").fetchall()


def last_record(store: Store, run_id: int) -> tuple[str, str]:
    row = store.db.conn.execute("SELECT kind, sha256 FROM records WHERE run_id = ? "
                                "ORDER BY id DESC LIMIT 1", (run_id,)).fetchone()
    return row[0], row[1]


# --- the key store -------------------------------------------------------------------------------


def test_key_is_made_once_owner_only_and_carries_no_identity(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    signer = keys.current()
    assert keys.current().key_id == signer.key_id  # loaded, not made again
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    pem = tmp_path / "keys" / f"{signer.key_id}.pem"
    assert stat.S_IMODE(pem.stat().st_mode) == 0o600
    assert pem.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    info = json.loads((tmp_path / "keys" / "current.json").read_text())
    # Only the key itself: no host, user or address anywhere.
    assert set(info) == {"key_id", "public_key", "created"}
    raw = base64.b64decode(info["public_key"])
    assert len(raw) == 32 and signing.key_id(raw) == signer.key_id == info["key_id"]


def test_key_directory_comes_from_the_environment(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "envkeys"))
    assert signing.default_key_dir() == tmp_path / "envkeys"
    with Store(tmp_path / "e.db") as s:
        finished_run(s)
        assert signatures(s)[0][2] == json.loads(
            (tmp_path / "envkeys" / "current.json").read_text())["key_id"]
    monkeypatch.delenv("NETVIGIL_KEYS")
    assert signing.default_key_dir().parts[-2:] == ("netvigil", "keys")


def test_a_damaged_key_file_is_refused(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    signer = keys.current()
    other = KeyStore(tmp_path / "other").current()
    (tmp_path / "keys" / f"{signer.key_id}.pem").write_bytes(
        (tmp_path / "other" / f"{other.key_id}.pem").read_bytes())
    with pytest.raises(ValueError, match="does not hold key"):
        keys.current()


# --- signing runs --------------------------------------------------------------------------------


def test_finishing_a_run_signs_its_chain_head(store: Store) -> None:
    run_id = finished_run(store)
    [(sig_run, head, kid, signature)] = signatures(store)
    kind, digest = last_record(store, run_id)
    assert (sig_run, kind, head) == (run_id, "run_end", digest)
    public = store.db.conn.execute("SELECT public_key FROM keys WHERE key_id = ?",
                                   (kid,)).fetchone()[0]
    assert verify_signature(public, head, signature) is None
    assert verify_signature(public, "0" * 64, signature) == \
        "the signature does not verify with its key"
    report = verify(store)
    assert report.ok, report.problems
    assert report.counts["signatures"] == 1
    # The key id to compare with the one the volunteer published.
    assert report.notices == [f"runs are signed with key {kid}"]
    assert current_key(store)["key_id"] == kid


def test_an_interrupted_run_is_signed_too(store: Store) -> None:
    run_id = store.begin_run(VANTAGE, CONFIG)
    store.finish_run(run_id, "local_failure", {}, status="interrupted")
    assert signatures(store)[0][1] == last_record(store, run_id)[1]
    assert verify(store).ok


def test_rotation_keeps_old_signatures_verifying(store: Store, tmp_path: Path) -> None:
    first = finished_run(store)
    old = store.keys.current()
    result = rotate_key(store)
    assert result["retired"] == old.key_id and result["key_id"] != old.key_id
    assert not (tmp_path / "keys" / f"{old.key_id}.pem").exists()  # the private half is gone
    second = finished_run(store, "https://other.example/")
    sigs = {run: kid for run, _, kid, _ in signatures(store)}
    assert sigs == {first: old.key_id, second: result["key_id"]}
    keys = dict(store.db.conn.execute("SELECT key_id, retired FROM keys").fetchall())
    assert keys[old.key_id] is not None and keys[result["key_id"]] is None
    assert verify(store).ok


def test_another_database_learns_that_a_key_was_retired(tmp_path: Path) -> None:
    keys = KeyStore(tmp_path / "keys")
    with Store(tmp_path / "a.db", keys=keys) as a, Store(tmp_path / "b.db", keys=keys) as b:
        finished_run(a)
        finished_run(b)
        old = keys.current().key_id
        rotate_key(a)
        finished_run(b)  # b signs with the new key and marks the old one retired
        retired = b.db.conn.execute("SELECT retired FROM keys WHERE key_id = ?",
                                    (old,)).fetchone()[0]
        assert retired is not None
        assert verify(b).ok


def test_a_signature_made_after_the_key_was_retired_fails(store: Store) -> None:
    finished_run(store)
    old = store.keys.current()
    rotate_key(store)
    run_id = finished_run(store, "https://other.example/")
    _, head = last_record(store, run_id)
    with store.transaction() as conn:
        signing.sign_run(conn, store.keys, old, run_id, head)
    problems = verify(store).about(f"run {run_id}")
    assert any("after key" in p.what and "retired" in p.what for p in problems)


def test_keys_may_be_retired_but_never_changed_or_removed(store: Store) -> None:
    finished_run(store)
    conn = store.db.conn
    for sql in ("UPDATE keys SET public_key = 'x'", "DELETE FROM keys",
                "UPDATE keys SET created = 'x'"):
        with pytest.raises(sqlite3.IntegrityError):
            conn.execute(sql)
    conn.execute("UPDATE keys SET retired = '2030-01-01T00:00:00.000000Z'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE keys SET retired = '2031-01-01T00:00:00.000000Z'")
    for table in ("signatures", "clock", "custody"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(f"DELETE FROM {table}")


@pytest.mark.parametrize("change", ["signature", "head", "key"])
def test_a_changed_signature_names_the_run(store: Store, change: str) -> None:
    run_id = finished_run(store)
    conn = store.db.conn
    conn.execute("DROP TRIGGER signatures_no_update")  # a tamperer can; verify must notice
    _, head, _, signature = signatures(store)[0]
    if change == "signature":
        # The character before the padding: a sloppy base64 reader would ignore its low bits.
        i = signature.index("=") - 1
        new = signature[:i] + chr(ord(signature[i]) ^ 1) + signature[i + 1:]
        conn.execute("UPDATE signatures SET signature = ?", (new,))
    elif change == "head":
        conn.execute("UPDATE signatures SET head_sha256 = ?", (chain_hash(head, b"x"),))
    else:
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("UPDATE signatures SET key_id = ?", ("f" * 32,))
    assert [p.subject for p in verify(store).problems] == [f"run {run_id} (signature 1)"]


def test_non_canonical_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="canonical"):
        signing.b64decode_strict("QR==")  # decodes like "QQ==" but is not how it is written
    with pytest.raises(ValueError, match="base64"):
        signing.b64decode_strict("not base64!")


def test_a_removed_signature_leaves_the_run_unsigned(store: Store) -> None:
    run_id = finished_run(store)
    store.db.conn.execute("DROP TRIGGER signatures_no_delete")
    store.db.conn.execute("DELETE FROM signatures")
    assert [str(p) for p in verify(store).problems] == [
        f"run {run_id}: its chain head has no signature"]


def test_runs_from_before_signing_are_notices_not_problems(tmp_path: Path) -> None:
    (tmp_path / "not-a-dir").write_text("")
    with Store(tmp_path / "s.db", keys=tmp_path / "not-a-dir") as s:
        with pytest.warns(UserWarning, match="will not be signed"):
            legacy = finished_run(s)  # stored all the same: a run is never lost for a key
        assert s.run(legacy)["status"] == "finished"  # type: ignore[index]
        assert verify(s).ok  # no key in the database yet: data from before signing
    with Store(tmp_path / "s.db", keys=tmp_path / "keys") as s:
        finished_run(s, "https://other.example/")
        report = verify(s)
        assert report.ok, report.problems
        assert any(n.startswith(f"run {legacy} ended before") for n in report.notices)


def test_an_unfinished_run_is_a_notice(store: Store) -> None:
    run_id = store.begin_run(VANTAGE, CONFIG)
    report = verify(store)
    assert report.ok and f"run {run_id} has not ended" in report.notices[0]


# --- the clock -----------------------------------------------------------------------------------


def test_the_clock_state_is_chained_with_the_run_and_signed(store: Store) -> None:
    run_id = store.begin_run(VANTAGE, CONFIG)
    store.record_clock(run_id, {"source": "kernel", "synchronised": False})
    store.finish_run(run_id, "ok", {})
    kinds = [k for (k,) in store.db.conn.execute(
        "SELECT kind FROM records WHERE run_id = ? ORDER BY id", (run_id,))]
    assert kinds == ["run_start", "clock", "run_end"]  # before the signed head: covered by it
    row = store.db.conn.execute("SELECT source, synchronised, offset_s FROM clock").fetchone()
    assert row == ("kernel", 0, None)
    with pytest.raises(ValueError, match="not running"):
        store.record_clock(run_id, CLOCK)
    assert verify(store).ok


def test_a_clock_state_naming_a_public_address_is_refused(store: Store) -> None:
    run_id = store.begin_run(VANTAGE, CONFIG)
    with pytest.raises(ValueError, match="public IP"):
        store.record_clock(run_id, {"source": "chrony", "server": "8.8.8.8"})
    with pytest.raises(ValueError, match="source"):
        store.record_clock(run_id, {"synchronised": True})


def test_chrony_tracking_is_read_without_the_server() -> None:
    csv = ("C0A80101,192.168.1.1,3,1700000000.123,0.000250000,-0.000010,0.000030,-1.234,"
           "0.001,0.050,0.020000,0.001000,64.2,Normal\n")
    state = parse_chrony(csv)
    assert state is not None
    assert state["source"] == "chrony" and state["synchronised"] is True
    assert state["offset_s"] == pytest.approx(-0.00025)  # positive correction: the clock is slow
    assert state["max_error_s"] == pytest.approx(0.00025 + 0.001 + 0.01)
    assert "192.168.1.1" not in json.dumps(state)
    unsynced = parse_chrony(csv.replace("Normal", "Not synchronised"))
    assert unsynced is not None and unsynced["synchronised"] is False
    assert unsynced["offset_s"] is None
    assert parse_chrony("506 Cannot talk to daemon") is None


def test_timedatectl_and_the_fallbacks() -> None:
    state = parse_timedatectl("NTP=yes\nNTPSynchronized=yes\n", {"max_error_s": 0.02})
    assert state == {"source": "systemd-timesyncd", "synchronised": True, "offset_s": None,
                     "max_error_s": 0.02}
    assert parse_timedatectl("", None) is None

    def nothing(argv: object) -> None:
        return None

    assert clock_state(nothing, lambda: None)["source"] == UNKNOWN_SOURCE
    kernel = clock_state(nothing, lambda: {"synchronised": True, "max_error_s": 0.5})
    assert kernel["source"] == "kernel" and kernel["synchronised"] is True
    commands: list[list[str]] = []

    def timedatectl(argv: Sequence[str]) -> str | None:
        commands.append(list(argv))
        return "NTP=no\nNTPSynchronized=no\n" if argv[0] == "timedatectl" else None

    state = clock_state(timedatectl, lambda: None)
    assert (state["source"], state["synchronised"]) == ("system", False)
    assert [c[0] for c in commands] == ["chronyc", "timedatectl"]
    assert state["checked"].endswith("Z")
