"""The `netvigil` command end to end on loopback fakes: run, measurements, export, analyze."""

import argparse
import asyncio
import csv
import io
import json
import sqlite3

import pytest

import cli
from core.errors import (
    ConfigError,
    HelperError,
    IntegrityError,
    StoreError,
    TargetError,
)
from core.target import Target
from probes.config import ProbeConfig, Timeouts
from results.store import Store
from services import campaign
from tests.fakes.certs import FakePKI
from tests.fakes.dns_server import FakeDNSServer, Rule
from tests.fakes.servers import HTTPServer, TCPServer, page


@pytest.fixture()
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NETVIGIL_ACCEPT_RISKS", raising=False)
    return tmp_path


@pytest.fixture(scope="module")
def lab():
    pki = FakePKI()
    rules = {"ok.test": Rule(addresses=["127.0.0.1"]), "tls.test": Rule(addresses=["127.0.0.1"])}
    with FakeDNSServer(rules) as dns, HTTPServer({"/": page("Plain")}) as web, HTTPServer(
        {"/": page("Secure")}, tls=pki.good("tls.test")
    ) as secure, TCPServer("reset") as reset:
        yield {"dns": dns, "web": web, "secure": secure, "reset": reset, "pki": pki}


def run_args(env, lab, *targets, extra=()):
    ca = lab["pki"].write_ca_bundle(env)
    return ["--db", str(env / "nv.db"), "run", "--targets", *targets,
            "--resolver", lab["dns"].address, "--no-system-resolver", "--no-ipv6",
            "--no-netcheck", "--timeout", "1", "--ca-bundle", ca, "--json", *extra]


def test_run_json_contract_and_store(env, lab, capsys):
    urls = [f"http://ok.test:{lab['web'].port}/", f"https://tls.test:{lab['secure'].port}/",
            f"https://ok.test:{lab['reset'].port}/"]
    assert cli.main(run_args(env, lab, *urls, extra=["--accept-risks"])) == 0
    out = json.loads(capsys.readouterr().out)
    run = out["run"]
    assert {"id", "started", "finished", "network"} <= set(run)
    assert run["network"] == "ok" and run["status"] == "finished"
    by_target = {m["target"]: m for m in out["measurements"]}
    assert set(by_target) == set(urls)
    for m in out["measurements"]:
        assert {"id", "target", "verdict", "techniques", "outcomes", "confidence",
                "confirmed"} <= set(m)
        assert m["verdict"] in ("ok", "blocked", "down", "insufficient")
    # a valid HTTPS fetch is ok even without a control
    assert by_target[urls[1]]["verdict"] == "ok"
    # every observation is stored, and the store agrees with the JSON
    with Store(env / "nv.db") as store:
        rows = store.measurements(run_id=run["id"])
        assert len(rows) == 3
        shown = store.measurement(by_target[urls[1]]["id"])
        steps = [o["step"] for o in shown["observations"]]
        assert steps[:1] == ["dns"] and "tls" in steps and "http" in steps
        assert store.verify_chain() == []


def test_measurements_show_export_and_analyze(env, lab, capsys):
    url = f"http://ok.test:{lab['web'].port}/"
    assert cli.main(run_args(env, lab, url, extra=["--accept-risks"])) == 0
    mid = json.loads(capsys.readouterr().out)["measurements"][0]["id"]
    db = str(env / "nv.db")
    assert cli.main(["--db", db, "measurements", "show", str(mid)]) == 0
    text = capsys.readouterr().out
    assert url in text and "GET" in text and "Plain" in text
    assert cli.main(["--db", db, "measurements", "--json"]) == 0
    assert [r["id"] for r in json.loads(capsys.readouterr().out)] == [mid]
    assert cli.main(["--db", db, "export", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1
    assert cli.main(["--db", db, "export", "--format", "jsonl"]) == 0
    (line,) = capsys.readouterr().out.strip().splitlines()
    assert json.loads(line)["observations"]
    assert cli.main(["--db", db, "analyze", "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["measurements"] == 1 and counts["changed"] == 0


def test_bad_targets_file_is_one_line_error_and_measures_nothing(env, lab, capsys):
    bad = env / "list.txt"
    bad.write_text("# my list\nexample.org\nhttp://exa mple.org/\n")
    code = cli.main(run_args(env, lab, str(bad), extra=["--accept-risks"]))
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and f"{bad}:3:" in err
    assert lab["dns"].queries == [] or all(q[0] != "example.org" for q in lab["dns"].queries)
    if (env / "nv.db").exists():
        runs = sqlite3.connect(env / "nv.db").execute("select count(*) from runs").fetchone()
        assert runs[0] == 0


def test_risk_notice_must_be_accepted(env, lab, capsys, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    url = f"http://ok.test:{lab['web'].port}/"
    assert cli.main(run_args(env, lab, url)) == 2
    captured = capsys.readouterr()
    assert "risk" in captured.err.lower() and captured.out == ""
    monkeypatch.setenv("NETVIGIL_ACCEPT_RISKS", "1")
    assert cli.main(run_args(env, lab, url)) == 0


def test_targets_list(capsys):
    assert cli.main(["targets", "list", "--json"]) == 0
    platforms = json.loads(capsys.readouterr().out)
    assert len(platforms) >= 25
    assert {"telegram", "signal", "tor"} <= {p["name"] for p in platforms}


def _command_paths(parser, prefix=()):
    """Every command and nested subcommand of the parser, walked from its declarations."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found.append((*prefix, name))
                found += _command_paths(child, (*prefix, name))
    return found


def test_help_has_examples(capsys):
    # every command and every nested subcommand, so that a new one cannot come without an example
    paths = _command_paths(cli._parser())
    assert {("run",), ("evidence", "export"), ("evidence", "timestamp"), ("collector", "serve"),
            ("measurements", "show"), ("ooni", "import"), ("key", "rotate"),
            ("plot", "reachability"), ("helper", "serve")} <= set(paths)
    assert len(paths) > 30
    for path in paths:
        with pytest.raises(SystemExit):
            cli.main([*path, "--help"])
        assert "examples:" in capsys.readouterr().out, path


def test_interrupted_campaign_keeps_finished_measurements(tmp_path, lab):
    cfg = ProbeConfig(timeouts=Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=30, http=30,
                                        http_body=30),
                      resolvers=(lab["dns"].address,), system_resolver=False, ipv6=False)
    options = campaign.CampaignOptions(config=cfg, check_network=False)
    with TCPServer("stall") as stall, Store(tmp_path / "i.db") as store:
        targets = [Target(f"http://ok.test:{lab['web'].port}/"),
                   Target(f"http://ok.test:{stall.port}/")]

        async def main() -> None:
            task = asyncio.create_task(campaign.run(targets, store, options))
            while not store.measurements():
                await asyncio.sleep(0.05)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        (run,) = store.runs()
        assert run["status"] == "interrupted"
        assert [m["target_url"] for m in store.measurements()] == [targets[0].url]


def test_run_with_a_helper_judges_against_its_control(env, lab, capsys):
    from services.helper_server import HelperConfig, make_server

    honest = {"ok.test": Rule(addresses=["127.0.0.1"]), "gone.test": Rule(addresses=["127.0.0.1"])}
    fast = ProbeConfig(timeouts=Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=1, http=1,
                                         http_body=2), resolvers=(), ipv6=False)
    with FakeDNSServer(honest) as control_dns, make_server(
        "127.0.0.1", 0, HelperConfig(resolver=control_dns.address, allow_private=True, probe=fast)
    ) as helper:
        ok_url = f"http://ok.test:{lab['web'].port}/"
        blocked_url = f"http://gone.test:{lab['web'].port}/"  # NXDOMAIN for the probe only
        args = run_args(env, lab, ok_url, blocked_url,
                        extra=["--accept-risks", "--helper", f"http://127.0.0.1:{helper.port}"])
        assert cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["run"]["control"] == "helper"
    verdicts = {m["target"]: m for m in out["measurements"]}
    assert verdicts[ok_url]["verdict"] == "ok"
    blocked = verdicts[blocked_url]
    assert (blocked["verdict"], blocked["techniques"]) == ("blocked", ["dns"])
    assert "dns.nxdomain" in blocked["outcomes"]
    # the control is stored with the run, so re-analysis reaches the same verdicts
    assert cli.main(["analyze", "--db", str(env / "nv.db"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["changed"] == 0
    # and the OONI export reads back, through our OONI reader, to the same verdicts
    exported = env / "ooni.jsonl"
    assert cli.main(["export", "--db", str(env / "nv.db"), "--format", "ooni",
                     "--out", str(exported)]) == 0
    assert cli.main(["ooni", "classify", str(exported), "--json"]) == 0
    rows = {r["input"]: r for r in json.loads(capsys.readouterr().out)}
    for target, m in verdicts.items():
        assert (rows[target]["verdict"], rows[target]["techniques"]) == (
            m["verdict"], m["techniques"])
        assert '"probe_ip": "127.0.0.1"' in exported.read_text()


def test_unreachable_helper_is_reported_and_the_run_goes_on(env, lab, capsys):
    url = f"http://ok.test:{lab['web'].port}/"
    args = run_args(env, lab, url, extra=["--accept-risks", "--helper", "http://127.0.0.1:9"])
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    run = json.loads(captured.out)["run"]
    assert run["control"] == "helper unreachable: connection_refused"
    assert "weaker controls" in captured.err


def test_ooni_classify_and_import_real_files(env, capsys):
    from tests.conftest import CORPUS

    files = sorted((CORPUS / "ooni").glob("real_*.json"))
    if not files:
        pytest.skip(f"OONI corpus not present at {CORPUS}")
    broken = env / "broken.jsonl"
    broken.write_text('{"test_keys": null}\n{not json\n')
    assert cli.main(["ooni", "classify", *map(str, files), str(broken), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == len(files) + 2
    assert sum("error" in r for r in rows) == 2
    good = [r for r in rows if "error" not in r]
    assert all({"file", "input", "verdict", "techniques", "outcomes", "confidence", "confirmed",
                "reason", "ooni_blocking", "ooni_accessible"} <= set(r) for r in good)
    db = str(env / "ooni.db")
    assert cli.main(["ooni", "import", *map(str, files), "--db", db, "--json"]) == 0
    counts = json.loads(capsys.readouterr().out)
    assert counts["measurements"] == len(files) and not counts["errors"]
    with Store(db) as store:
        assert len(store.measurements()) == len(files)
        assert "probe_ip" not in json.dumps(store.runs())


def test_events_and_plots_on_imported_ooni_data(env, capsys):
    from tests.conftest import CORPUS

    wc05 = CORPUS / "ooni" / "wc05_qa"
    if not wc05.is_dir():
        pytest.skip(f"OONI corpus not present at {wc05}")
    db = str(env / "wc.db")
    fingerprints = str(CORPUS / "fingerprints")
    assert cli.main(["ooni", "import", str(wc05), "--db", db, "--fingerprints", fingerprints,
                     "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["events", "--db", db, "--json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found and all(e["kind"] == "blocking" and e["asn"] == "AS137" for e in found)
    # a single confirmed measurement is enough for an event; unconfirmed singles are not
    assert all(e["measurements"] >= 2 or e["confidence"] >= 0.99 for e in found)
    assert cli.main(["events", "--db", db, "--kind", "outage", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    png, svg = env / "t.png", env / "t.svg"
    assert cli.main(["plot", "timeline", "--db", db, "--out", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert cli.main(["plot", "timeline", "--db", db, "--out", str(svg)]) == 0
    assert "AS137" in svg.read_text()
    assert cli.main(["plot", "reachability", "--db", db, "--out", str(env / "r.png")]) == 0
    assert cli.main(["plot", "timeline", "--db", db, "--out", str(env / "t.gif")]) == 2


def test_verify_evidence_and_key_commands(env, lab, capsys):
    url = f"http://ok.test:{lab['web'].port}/"
    assert cli.main(run_args(env, lab, url, extra=["--accept-risks"])) == 0
    capsys.readouterr()
    db = str(env / "nv.db")
    assert cli.main(["verify", "--db", db]) == 0
    assert "all holds" in capsys.readouterr().out
    bundle = env / "case.zip"
    assert cli.main(["evidence", "export", "--db", db, "--out", str(bundle)]) == 0
    assert cli.main(["evidence", "verify", str(bundle), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["ok"] is True
    assert cli.main(["key", "show", "--db", db, "--json"]) == 0
    key_id = json.loads(capsys.readouterr().out)["key_id"]
    assert cli.main(["key", "rotate", "--db", db, "--json"]) == 0
    capsys.readouterr()
    assert cli.main(["verify", "--db", db, "--json"]) == 0  # old runs still verify
    assert key_id in capsys.readouterr().out
    # one changed byte in a stored measurement is caught, and named
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER IF EXISTS records_no_update")  # a tamperer would, too
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                                "AND tbl_name = 'records'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    rid, text = conn.execute("SELECT id, canonical FROM records WHERE kind = 'measurement'"
                             ).fetchone()
    conn.execute("UPDATE records SET canonical = ? WHERE id = ?",
                 (text.replace("ok.test", "ok.tesu", 1), rid))
    conn.commit()
    conn.close()
    assert cli.main(["verify", "--db", db, "--json"]) == 1
    problems = json.loads(capsys.readouterr().out)["problems"]
    assert any(p["subject"] == f"record {rid}" for p in problems)
    assert cli.main(["evidence", "verify"]) == 2


# --- the error mapping, nested actions, the output helper ---------------------------------------

@pytest.mark.parametrize(("error", "code"), [
    (ConfigError("--limit: too many", "--limit"), 2),
    (TargetError("bad line", "list.txt", 3), 2),
    (StoreError("the database is newer than this netvigil", "nv.db"), 1),
    (IntegrityError("body abc does not match its hash"), 1),
    (HelperError("helper answered HTTP 500", 500), 1),
])
def test_main_maps_the_exception_tree_to_one_line_and_an_exit_status(
        tmp_path, monkeypatch, capsys, error, code):
    def fail(*args, **kwargs):
        raise error

    monkeypatch.setattr("services.actions.measurements", fail)
    assert cli.main(["--db", str(tmp_path / "nv.db"), "measurements"]) == code
    captured = capsys.readouterr()
    assert captured.err == f"netvigil: error: {error}\n" and captured.out == ""
    assert "Traceback" not in captured.err


def test_an_interrupt_is_exit_130_without_a_traceback(tmp_path, monkeypatch, capsys):
    def stop(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("services.actions.measurements", stop)
    assert cli.main(["--db", str(tmp_path / "nv.db"), "measurements", "list"]) == 130
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_a_bug_is_not_hidden_as_a_user_error(tmp_path, monkeypatch):
    def bug(*args, **kwargs):
        raise ValueError("a plain ValueError is a bug, not bad input")

    monkeypatch.setattr("services.actions.measurements", bug)
    with pytest.raises(ValueError, match="a bug"):
        cli.main(["--db", str(tmp_path / "nv.db"), "measurements"])


@pytest.mark.parametrize(("argv", "unknown"), [
    (["measurements", "show", "1", "--verdict", "ok"], "--verdict"),
    (["evidence", "verify", "case.zip", "--out", "x.zip"], "--out"),
    (["evidence", "custody", "--tsa", "http://tsa.test/"], "--tsa"),
    (["evidence", "export", "--out", "x.zip", "--tsa-root", "r.pem"], "--tsa-root"),
    (["collector", "status", "--dir", ".", "--token", "s3cret"], "--token"),
    (["collector", "events", "--dir", ".", "--chart", "timeline"], "--chart"),
    (["ooni", "classify", "m.json", "--public-range", "10.0.0.0/8"], "--public-range"),
    (["plot", "reachability", "--out", "r.png", "--title", "x"], "--title"),
    (["key", "show", "--since", "2026-01-01"], "--since"),
])
def test_an_option_of_one_action_is_refused_on_another(tmp_path, capsys, argv, unknown):
    assert cli.main(["--db", str(tmp_path / "nv.db"), *argv]) == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {unknown}" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "nv.db").exists()


def test_measurements_lists_when_the_action_is_left_out(tmp_path, capsys):
    db = str(tmp_path / "nv.db")
    Store(db).close()  # reading commands open an existing database only (issue 12)
    for argv in (["--db", db, "measurements", "--json"], [f"--db={db}", "measurements", "--json"],
                 ["measurements", "--db", db, "--limit", "5", "--json"],
                 ["measurements", "list", "--db", db, "--json"]):
        assert cli.main(argv) == 0, argv
        assert json.loads(capsys.readouterr().out) == []
    assert cli.implied_action(["--db", "x", "measurements", "show", "3"]) == [
        "--db", "x", "measurements", "show", "3"]
    assert cli.implied_action(["measurements", "--help"]) == ["measurements", "--help"]
    assert cli.implied_action(["measurements"]) == ["measurements", "list"]


def test_a_run_for_people_is_a_table_and_a_summary(env, lab, capsys):
    url = f"http://ok.test:{lab['web'].port}/"
    argv = [a for a in run_args(env, lab, url, extra=["--accept-risks"]) if a != "--json"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert url in out and "verdict" in out
    assert "network: ok (your network worked during this run)" in out
    assert "verdicts: 1 insufficient; stored in run 1 (details: netvigil measurements --run 1)" \
        in out  # plain HTTP without a control proves nothing either way
