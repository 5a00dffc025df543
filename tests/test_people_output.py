"""Output a person can use (issue 12): no wrapping in pipes, words whole, failures in plain
words, proper plurals."""

from __future__ import annotations

import json

import cli
from core import failures
from core.words import counted
from presentation import views
from presentation.console import Output


def test_a_pipe_gets_whole_rows_whatever_columns_says(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    url = "https://a-very-long-hostname.example.org/and/a/long/path/to/a/page.html"
    table = views.Table("2 measurements", ("target", "verdict", "reason"),
                        ((url, views.verdict_cell("insufficient"),
                          "the system resolver answered dns_nxdomain_error"),))
    Output().render([table, views.line("details: netvigil measurements --run 2")])
    out = capsys.readouterr().out
    assert "\x1b[" not in out  # no colours, no bold numbers in a pipe
    assert url in out and "insufficient" in out
    assert "NXDOMAIN (the name does not exist)" not in out  # views translate, not the console
    assert "details: netvigil measurements --run 2" in out.splitlines()[-1]


def test_reasons_show_failures_in_plain_words():
    assert failures.in_words("system answered dns_nxdomain_error") == (
        "system answered NXDOMAIN (the name does not exist)")
    assert failures.in_words("TCP connect failed (connection_reset)") == (
        "TCP connect failed (the connection was reset)")
    assert set(failures.DESCRIPTIONS) >= failures.ALL
    row = {"id": 1, "run_id": 2, "started": "t", "target_url": "https://x/",
           "verdict": "blocked", "techniques": "dns", "reason": "answered dns_nxdomain_error"}
    assert views.measurements_table([row]).rows[0][-1] == (
        "answered NXDOMAIN (the name does not exist)")


def test_counts_are_singular_or_plural():
    assert counted(1, "problem") == "1 problem" and counted(2, "problem") == "2 problems"
    assert counted(0, "run head", "run heads") == "0 run heads"
    assert views.measurements_table([]).title == "0 measurements"
    assert views.analyze_line({"measurements": 1, "runs": 1, "changed": 0}) == (
        "recomputed 1 verdict in 1 run; 0 changed")


def test_a_listing_cut_at_its_limit_says_how_many_there_are(tmp_path, capsys) -> None:
    """`measurements` used to stop at 200 silently ("200 measurements" of 300)."""
    from results.store import Store
    from tests.conftest import import_wc05

    db = tmp_path / "m.db"
    with Store(db) as store:
        import_wc05(store)  # 50 measurements
    assert cli.main(["--db", str(db), "measurements", "list", "--limit", "10"]) == 0
    shown = capsys.readouterr()
    assert "10 of 50 measurements" in shown.out
    assert "--limit 50 lists them all" in shown.err
    assert cli.main(["--db", str(db), "measurements", "list"]) == 0
    whole = capsys.readouterr()
    assert "50 measurements" in whole.out and "of 50" not in whole.out
    assert "--limit" not in whole.err
    assert cli.main(["--db", str(db), "measurements", "list", "--limit", "10", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)) == 10  # scripts get the rows, unchanged
