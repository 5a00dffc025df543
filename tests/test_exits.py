"""Issue 12, "Errors and exits": every mistake a new user makes is one line and an honest exit
status, through the real entry point (`cli.main`), before any traffic or any file is written.

Each test names the item of the issue it reproduces. Where a check already held when these tests
were written (the settings refactor had moved it before any traffic), the test stays as a guard.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

import cli
from core.target import Target
from probes.measure import measure
from results.store import Store
from services import campaign
from tests.test_cli import env, lab, run_args  # noqa: F401 - the loopback lab and its run line

RUN = ["run", "--targets", "https://127.0.0.1:1/", "--no-netcheck", "--accept-risks"]
MONITOR = ["monitor", "--every", "1h", "--max-runs", "1", "--targets", "https://127.0.0.1:1/",
           "--no-netcheck", "--accept-risks"]


def one_error_line(err: str) -> str:
    """The single `netvigil: error:` line of stderr (no traceback around it)."""
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("netvigil: error: ")]
    assert len(errors) == 1, err
    return errors[0]


# --- 1. option values that used to end in a traceback, or were silently accepted ---------------

@pytest.mark.parametrize("command", [RUN, MONITOR], ids=["run", "monitor"])
@pytest.mark.parametrize("option, value", [
    ("--concurrency", "0"), ("--concurrency", "-3"), ("--rate", "0"), ("--rate", "nan"),
    ("--per-host-rate", "0"), ("--timeout", "0"), ("--timeout", "-1"),
])
def test_a_bad_limit_or_timeout_is_one_line_naming_its_option(tmp_path, capsys, command, option,
                                                              value):
    db = tmp_path / "nv.db"
    assert cli.main(["--db", str(db), *command, option, value]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert f"{option} {value}" in line
    assert not db.exists()  # refused before anything was opened, measured or stored


# --- 2. option values that silently lost the run -------------------------------------------------

def test_a_ca_bundle_that_is_not_pem_is_refused_before_any_traffic(tmp_path, capsys):
    hostname = tmp_path / "hostname"
    hostname.write_text("probe-1\n")
    db = tmp_path / "nv.db"
    assert cli.main(["--db", str(db), *RUN, "--ca-bundle", str(hostname)]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--ca-bundle" in line and str(hostname) in line and "CA certificates" in line
    assert not db.exists()


@pytest.mark.parametrize("url", ["notaurl", "http://dns.example/dns-query", "https:///dns-query",
                                 "https://dns.example:99999/"])
def test_a_doh_url_must_be_https_with_a_host(tmp_path, capsys, url):
    db = tmp_path / "nv.db"
    assert cli.main(["--db", str(db), *RUN, "--doh", url]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"netvigil: error: --doh {url}")
    assert not db.exists()


def test_a_run_with_internal_errors_says_so_and_fails(env, lab, capsys, monkeypatch):  # noqa: F811
    """A target the probe could not measure (a bug, not a network failure) is a lost result:
    the run keeps what it measured, and the command says so on stderr and exits 1."""
    good = f"http://ok.test:{lab['web'].port}/"
    broken = f"http://ok.test:{lab['web'].port}/broken"

    async def flaky(target: Target, config):
        if target.url == broken:
            raise RuntimeError("probe bug")
        return await measure(target, config)

    real = campaign.run_campaign
    monkeypatch.setattr(campaign, "run_campaign", functools.partial(real, measure_fn=flaky))
    assert cli.main(run_args(env, lab, good, broken, extra=["--accept-risks"])) == 1
    captured = capsys.readouterr()
    out = json.loads(captured.out)  # the JSON still comes out whole, errors included
    assert [m["target"] for m in out["measurements"]] == [good]
    assert out["run"]["errors"] and broken in out["run"]["errors"][0]
    line = one_error_line(captured.err)
    assert "1 of 2 targets were not measured" in line and "probe bug" in line


def test_a_run_without_internal_errors_still_exits_0(env, lab, capsys):  # noqa: F811
    assert cli.main(run_args(env, lab, f"http://ok.test:{lab['web'].port}/",
                             extra=["--accept-risks"])) == 0
    assert "error" not in capsys.readouterr().err


# --- 3. typos in a targets file ------------------------------------------------------------------

@pytest.mark.parametrize("typo, says", [
    ("http//example.com/page", "malformed scheme"),
    ("https:/example.org/", "malformed scheme"),
    ("https:example.org", "malformed scheme"),
    ("tcp/example.org:443", "malformed scheme"),
    ("telegarm", "not a domain name (no dot)"),
    ("localhost:8080", "not a domain name (no dot)"),
])
def test_a_typo_in_a_targets_file_is_refused_with_its_file_and_line(tmp_path, capsys, typo, says):
    listing = tmp_path / "list.txt"
    listing.write_text(f"# my list\nexample.org\n{typo}\n")
    db = tmp_path / "nv.db"
    assert cli.main(["--db", str(db), *RUN[:2], str(listing), *RUN[3:]]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"netvigil: error: {listing}:3: ") and says in line
    assert not db.exists()


def test_a_typo_in_a_citizen_lab_list_is_refused_too(tmp_path, capsys):
    listing = tmp_path / "ir.csv"
    listing.write_text("url,category_code\nhttps://example.org/,NEWS\nhttps:/example.net/,NEWS\n")
    assert cli.main(["--db", str(tmp_path / "nv.db"), *RUN[:2], str(listing), *RUN[3:]]) == 2
    assert f"{listing}:3: " in one_error_line(capsys.readouterr().err)


def test_the_same_word_is_refused_on_the_command_line(tmp_path, capsys):
    assert cli.main(["--db", str(tmp_path / "nv.db"), *RUN[:2], "telegarm", *RUN[3:]]) == 2
    assert "telegarm: not a platform" in one_error_line(capsys.readouterr().err)


def test_what_a_file_may_still_say(tmp_path, capsys):
    """Real entries keep working: a domain, an explicit URL to a one-label name, an address."""
    listing = tmp_path / "list.txt"
    listing.write_text("example.org\nhttp://intranet/\n127.0.0.1:8080\n[::1]:8443/x\n"
                       "https.example.com/path\n")
    from targets.loaders import load_targets

    assert [t.url for t in load_targets([str(listing)])] == [
        "https://example.org/", "http://intranet/", "https://127.0.0.1:8080/",
        "https://[::1]:8443/x", "https://https.example.com/path"]


# --- 1. a database that cannot be opened: one line naming the path ------------------------------

def a_database(path: Path) -> Path:
    """A database with one finished run."""
    with Store(path) as store:
        run = store.begin_run({"software": "test"}, {})
        store.finish_run(run, "ok", {"counts": {}})
    return path


@pytest.mark.parametrize("where, says", [
    ("/proc/netvigil-test.db", "cannot open the database /proc/netvigil-test.db for writing"),
    ("/proc/netvigil-test/nv.db", "cannot create the folder of the database"),
    ("{tmp}/a-file/nv.db", "a-file is a file, not a folder"),
])
def test_run_on_a_path_that_cannot_hold_a_database_is_one_line(tmp_path, capsys, where, says):
    (tmp_path / "a-file").write_text("not a folder\n")
    db = where.format(tmp=tmp_path)
    assert cli.main(["--db", db, *RUN]) == 1
    line = one_error_line(capsys.readouterr().err)
    assert db in line and says in line


@pytest.mark.parametrize("command", [["measurements"], ["events"], ["verify"],
                                     ["evidence", "custody"], ["export", "--format", "csv"]])
def test_a_read_command_on_what_is_not_a_database_is_one_line(tmp_path, capsys, command):
    junk = tmp_path / "notes.txt"
    junk.write_bytes(b"these are my notes, not a database\n" * 200)
    for db, says in ((tmp_path, "is a folder"), (junk, "is not a netvigil database")):
        assert cli.main(["--db", str(db), *command]) == 1
        line = one_error_line(capsys.readouterr().err)
        assert str(db) in line and says in line
    assert junk.read_bytes().startswith(b"these are my notes")


# --- 4. read commands open an existing database only; a selection must name something ---------

@pytest.mark.parametrize("command", [
    ["measurements"], ["measurements", "show", "1"], ["events"], ["verify"],
    ["verify", "--record-custody"], ["evidence", "custody"], ["key", "show"],
    ["export", "--out", "{tmp}/out.jsonl"], ["evidence", "export", "--out", "{tmp}/case.zip"],
    ["report", "--out", "{tmp}/report.html"], ["plot", "timeline", "--out", "{tmp}/t.png"],
    ["analyze"],
])
def test_a_mistyped_db_is_an_error_and_makes_no_database(tmp_path, capsys, command):
    typo = tmp_path / "netvigl.db"
    argv = ["--db", str(typo), *(part.format(tmp=tmp_path) for part in command)]
    assert cli.main(argv) == 1
    line = one_error_line(capsys.readouterr().err)
    assert f"no database at {typo}" in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no database, no output file


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "ooni"])
def test_export_of_a_run_that_does_not_exist_is_an_error_before_the_file(tmp_path, capsys, fmt):
    db = a_database(tmp_path / "nv.db")
    out = tmp_path / "out.txt"
    assert cli.main(["--db", str(db), "export", "--format", fmt, "--run", "99",
                     "--out", str(out)]) == 2
    assert "--run 99: no such run" in one_error_line(capsys.readouterr().err)
    assert not out.exists()
    assert cli.main(["--db", str(db), "export", "--format", fmt, "--run", "1",
                     "--out", str(out)]) == 0  # the run that exists still exports


@pytest.mark.parametrize("command", [["measurements", "--run", "99"], ["analyze", "--run", "99"],
                                     ["evidence", "export", "--run", "99", "--out", "{out}"]])
def test_other_selections_that_name_nothing_are_errors(tmp_path, capsys, command):
    db = a_database(tmp_path / "nv.db")
    out = tmp_path / "case.zip"
    assert cli.main(["--db", str(db), *(p.format(out=out) for p in command)]) == 2
    assert "99" in one_error_line(capsys.readouterr().err)
    assert not out.exists()


def test_a_database_of_a_newer_netvigil_is_one_line_for_readers_and_writers(tmp_path, capsys):
    import sqlite3

    from results.schema import SCHEMA_VERSION

    db = a_database(tmp_path / "nv.db")
    conn = sqlite3.connect(db)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    for command in (["measurements"], ["verify", "--record-custody"], RUN):
        assert cli.main(["--db", str(db), *command]) == 1
        line = one_error_line(capsys.readouterr().err)
        assert str(db) in line and "newer than this netvigil" in line
