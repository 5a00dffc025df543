"""A volunteer's database says which sites they tried: netvigil makes it owner-only (issue 12)."""

from __future__ import annotations

import stat
from pathlib import Path

import cli
from results.store import Store


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_database_and_its_folder_are_the_owners_only(tmp_path: Path) -> None:
    db = tmp_path / "data" / "netvigil" / "netvigil.db"
    with Store(db) as store:
        store.db.conn.execute("SELECT 1")
        made = [p for p in db.parent.iterdir() if p.name.startswith("netvigil.db")]
        assert {p.name for p in made} >= {"netvigil.db", "netvigil.db-wal"}
        assert {p.name: _mode(p) for p in made} == {p.name: 0o600 for p in made}
    assert _mode(db.parent) == 0o700


def test_an_existing_database_keeps_its_mode(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    with Store(db):
        pass
    db.chmod(0o640)  # the owner chose to share it with a group: not undone behind their back
    with Store(db):
        pass
    assert _mode(db) == 0o640


def test_an_import_through_the_command_makes_an_owner_only_database(tmp_path: Path,
                                                                    capsys) -> None:
    from tests.conftest import WC05

    one = sorted(WC05.glob("*.json"))[0]
    db = tmp_path / "vol" / "probe.db"
    assert cli.main(["--db", str(db), "ooni", "import", str(one)]) == 0
    assert _mode(db) == 0o600 and _mode(db.parent) == 0o700
