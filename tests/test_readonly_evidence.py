"""Issue 12, "Evidence on read-only media": an expert reads a write-blocked copy.

Every reading command works on a read-only database and leaves it as it was; a command that
logs itself in the custody log does so only where it can (and `verify` only when asked), and
says which. Three ways to make the copy read-only:

- the file 0444 in a folder 0555: as root (these tests' usual user) modes stop nothing, so
  netvigil itself must take them as meant: SQLite's own read-only open, nothing made beside it;
- `Store(..., access="read")` on a writable file: the read-only connection, whatever the modes;
- a read-only bind mount: the kernel refuses every write, as a write blocker does (needs root;
  skipped elsewhere with the reason, and a failure in CI, where it must run).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sqlite3
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import cli
from core.errors import StoreError
from results import custody
from results.store import Store
from tests.conftest import CORPUS, import_wc05

#: verify judges again with the fingerprints the OONI import was judged with.
JUDGED = ["--fingerprints", str(CORPUS / "fingerprints")]
#: Every command that only reads the database, with its output files ({out} is a folder).
READERS = [
    ["verify", *JUDGED],
    ["verify", "--no-reclassify", "--json"],
    ["measurements"],
    ["measurements", "show", "1", "--json"],
    ["events", "--json"],
    ["export", "--format", "csv", "--out", "{out}/m.csv"],
    ["export", "--format", "jsonl"],
    ["export", "--format", "parquet", "--out", "{out}/m.parquet"],
    ["report", "--out", "{out}/report.html"],
    ["evidence", "export", "--out", "{out}/case.zip", *JUDGED],
    ["evidence", "custody", "--json"],
    ["plot", "timeline", "--out", "{out}/t.png"],
    ["plot", "reachability", "--out", "{out}/r.png"],
    ["key", "show"],
]
#: Commands that log themselves in the custody log where they can.
LOGGING = [["verify", "--record-custody", *JUDGED], ["report", "--out", "{out}/report.html"],
           ["evidence", "export", "--out", "{out}/case.zip", *JUDGED]]
#: Commands that must write: refused in one line on a read-only database.
WRITERS = [["analyze"], ["key", "rotate"],
           ["run", "--targets", "https://127.0.0.1:1/", "--no-netcheck", "--accept-risks"]]


@pytest.fixture()
def evidence(tmp_path: Path) -> Path:
    """A folder holding one database of real OONI measurements (runs, verdicts, events)."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    with Store(folder / "case.db") as store:
        import_wc05(store)
    return folder / "case.db"


def state(folder: Path) -> dict[str, str]:
    """Every file of `folder` and the SHA-256 of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def custody_count(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro&immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM custody").fetchone()[0])
    finally:
        conn.close()


def run_cli(db: Path, command: list[str], out: Path, capsys: pytest.CaptureFixture[str]
            ) -> tuple[int, str, str]:
    code = cli.main(["--db", str(db), *(part.format(out=out) for part in command)])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err, captured.err
    return code, captured.out, captured.err


def check_read_only(db: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every reader and logging command works on `db` and says custody was not recorded; every
    writer is refused in one line; the folder of `db` is byte for byte what it was."""
    before, entries = state(db.parent), custody_count(db)
    for command in READERS + LOGGING:
        code, stdout, stderr = run_cli(db, command, out, capsys)
        assert code == 0, (command, stderr)
    for command in LOGGING:
        code, stdout, stderr = run_cli(db, command, out, capsys)
        assert "custody: not recorded (read-only database)" in stdout + stderr, command
    for command in WRITERS:
        code, stdout, stderr = run_cli(db, command, out, capsys)
        assert code == 1, (command, stderr)
        assert [line for line in stderr.splitlines() if line.startswith("netvigil: error: ")]
        assert str(db) in stderr and "read-only" in stderr, (command, stderr)
    assert state(db.parent) == before  # not a byte changed, no -wal or -shm made
    assert custody_count(db) == entries
    # What was read is whole: the bundle made from the read-only copy checks on its own.
    assert zipfile.is_zipfile(out / "case.zip")
    assert cli.main(["evidence", "verify", str(out / "case.zip")]) == 0
    capsys.readouterr()


def test_a_file_0444_in_a_folder_0555_is_read_and_left_as_it_was(evidence, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    evidence.chmod(0o444)
    evidence.parent.chmod(0o555)
    try:
        check_read_only(evidence, out, capsys)
    finally:
        evidence.parent.chmod(0o755)
        evidence.chmod(0o644)


def test_the_read_only_open_cannot_write_whatever_the_modes(evidence):
    before = state(evidence.parent)
    with Store(evidence, access="read") as store:
        assert store.read_only
        assert store.measurements(limit=1)
        assert custody.log_if_writable(store, "verify", {"scope": "database"}) is None
        assert custody.outcome(store) == "custody: not recorded (read-only database)"
        with pytest.raises(StoreError, match="open read-only"):
            store.begin_run({}, {})
        # Below our own check, SQLite's: the connection itself refuses to write.
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            store.db.conn.execute("INSERT INTO keys (key_id) VALUES ('x')")
    after = state(evidence.parent)
    assert after[evidence.name] == before[evidence.name]


def test_verify_logs_custody_only_when_asked_and_says_so(evidence, tmp_path, capsys):
    entries = custody_count(evidence)
    code, stdout, _ = run_cli(evidence, ["verify", *JUDGED], tmp_path, capsys)
    assert code == 0 and "custody: not recorded (not asked to" in stdout
    assert custody_count(evidence) == entries  # reading twice leaves the log alone
    code, stdout, _ = run_cli(evidence, ["verify", "--record-custody", "--json", *JUDGED],
                              tmp_path, capsys)
    assert code == 0 and "custody: recorded" in stdout
    assert custody_count(evidence) == entries + 1
    code, stdout, stderr = run_cli(evidence, ["report", "--out", "{out}/r.html"], tmp_path, capsys)
    assert code == 0 and "custody: recorded" in stderr
    assert custody_count(evidence) == entries + 2


# --- a read-only bind mount: the kernel's write blocker -------------------------------------------

def _unavailable(reason: str) -> None:
    """Skip with the reason; in CI (CI=true) fail instead, as tests/conftest.py does for the lab:
    there the mount must work, or this test silently stops testing anything."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the read-only mount test: {reason}")
    pytest.skip(reason)


@pytest.fixture()
def read_only_mount(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(source, mount point): whatever is in source shows read-only at the mount point."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        _unavailable("a read-only bind mount needs root and mount(8)")
    source, point = tmp_path / "copy", tmp_path / "blocked"
    source.mkdir()
    point.mkdir()
    mounted = False
    try:
        for argv in (["mount", "--bind", str(source), str(point)],
                     ["mount", "-o", "remount,bind,ro", str(point)]):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
            if done.returncode != 0:
                _unavailable(f"{' '.join(argv)} failed: {done.stderr.strip()}")
            mounted = True
        probe = point / "probe"
        with pytest.raises(OSError):
            probe.write_text("x")
        yield source, point
    finally:
        if mounted:
            subprocess.run(["umount", str(point)], check=True, timeout=30)


def test_a_copy_on_a_read_only_mount_is_read_and_left_as_it_was(evidence, read_only_mount,
                                                                   tmp_path, capsys):
    source, point = read_only_mount
    shutil.copy2(evidence, source / "case.db")
    out = tmp_path / "out"
    out.mkdir()
    check_read_only(point / "case.db", out, capsys)


def test_an_unmerged_log_on_a_read_only_mount_is_refused_not_read_past(read_only_mount,
                                                                       tmp_path, capsys):
    source, point = read_only_mount
    db = tmp_path / "live.db"
    with Store(db) as store:
        store.begin_run({"software": "test"}, {})
        # Copied while the writer is open: the newest transactions are in the -wal file only.
        shutil.copy2(db, source / "live.db")
        shutil.copy2(db.with_name("live.db-wal"), source / "live.db-wal")
    assert (source / "live.db-wal").stat().st_size > 0
    code, _, stderr = run_cli(point / "live.db", ["measurements"], tmp_path, capsys)
    assert code == 1
    assert str(point / "live.db") in stderr and "write-ahead log" in stderr
