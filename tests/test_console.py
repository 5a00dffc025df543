"""The command line's output: views as data (presentation.views) and the one output helper
(presentation.console.Output): JSON for scripts, views for people, notices on stderr."""

from __future__ import annotations

import io
import json
from types import SimpleNamespace

from presentation import views
from presentation.console import Output
from presentation.views import Styled, Table, line


def test_json_for_scripts_and_views_for_people(capsys) -> None:
    built: list[int] = []

    def view() -> views.View:
        built.append(1)
        return [line("for people")]

    Output(as_json=True).show({"n": 1, "path": __import__("pathlib").Path("x")}, view)
    assert json.loads(capsys.readouterr().out) == {"n": 1, "path": "x"}
    assert built == []  # the view is not even built for a script
    Output().show({"n": 1}, view)
    assert capsys.readouterr().out == "for people\n"


def test_text_is_never_markup_and_lines_never_wrap(capsys) -> None:
    hostile = "[bold red]not a style[/] " + "x" * 200
    Output().render([line(Styled("FAIL", "red"), f" {hostile}"),
                     Table("t", ("a", "b"), (("[/]", Styled("ok", "green")),))])
    out = capsys.readouterr().out
    assert f"FAIL {hostile}\n" in out  # one line, brackets as they are
    assert "[/]" in out and "ok" in out


def test_notices_go_to_stderr_and_the_answer_to_stdout(capsys, monkeypatch) -> None:
    out = Output()
    out.render([line("the answer"), line("run 3: refused", stderr=True)])
    out.message("wrote case.zip")
    out.warning(None)
    out.warning("helper unreachable; verdicts use weaker controls")
    out.error("--since 'x': not a time")
    captured = capsys.readouterr()
    assert captured.out == "the answer\n"
    assert captured.err.splitlines() == [
        "run 3: refused", "wrote case.zip",
        "netvigil: warning: helper unreachable; verdicts use weaker controls",
        "netvigil: error: --since 'x': not a time"]
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert out.ask("NOTICE", "ok? ") is None  # no terminal: nobody to ask
    assert "NOTICE" in capsys.readouterr().err


def test_views_describe_rows_in_words() -> None:
    row = {"id": 7, "run_id": 2, "target_url": "https://x.test/", "started": "2026-11-01T10:00Z",
           "runtime": 1.5, "verdict": "blocked", "techniques": "dns", "reason": "NXDOMAIN",
           "observations": [
               {"step": "dns", "t0": 0.0, "engine": "udp", "resolver": "9.9.9.9:53",
                "query_type": "A", "hostname": "x.test", "failure": "dns_nxdomain_error",
                "responses": [{"rcode": "NXDOMAIN"}, {"addresses": ["10.0.0.1", "10.0.0.2"]}]},
               {"step": "tcp", "t0": 0.25, "address": "10.0.0.1", "port": 443}]}
    assert views.describe(row).splitlines() == [
        "measurement 7 (run 2): https://x.test/",
        "  started 2026-11-01T10:00Z, 1.50 s",
        "  verdict blocked [dns] NXDOMAIN",
        "    0.000s dns  udp 9.9.9.9:53 A x.test -> NXDOMAIN | 10.0.0.1,10.0.0.2  "
        "[dns_nxdomain_error]",
        "    0.250s tcp  connect 10.0.0.1:443  [ok]"]
    assert views.control_warning("helper") is None and views.control_warning("none") is None
    assert views.control_warning("helper unreachable: connection_refused") == (
        "helper unreachable: connection_refused; verdicts use weaker controls")
    result = {"runs": [1, 2], "sent": 1, "pending": [3], "error": "HTTP 413"}
    assert views.submit_line(result) == "submitted 2 runs in 1 bundle, 1 pending; HTTP 413"


def test_a_verification_for_people() -> None:
    report = SimpleNamespace(problems=["record 3: hash differs"], notices=["1 key retired"],
                             counts={"records": 9}, ok=False)
    assert [item.text for item in views.verification_view(report, "nv.db")  # type: ignore[union-attr]
            ] == ["FAIL record 3: hash differs", "note: 1 key retired",
                  "nv.db: 1 problem (9 records)"]
