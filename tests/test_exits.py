"""Issue 12, "Errors and exits": every mistake a new user makes is one line and an honest exit
status, through the real entry point (`cli.main`), before any traffic or any file is written.

Each test names the item of the issue it reproduces. Where a check already held when these tests
were written (the settings refactor had moved it before any traffic), the test stays as a guard.
"""

from __future__ import annotations

import functools
import json

import pytest

import cli
from core.target import Target
from probes.measure import measure
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
