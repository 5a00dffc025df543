"""Where a run measured from: the ip2asn table (probes.ipasn), the helper's /v1/whoami, and the
vantage record (services.vantage) with declared and looked-up ISP, ASN and country. The probe's
address must never reach the database. Loopback only."""

from __future__ import annotations

import gzip
import json
import sqlite3
from pathlib import Path

import pytest

import cli
from core.errors import TableError
from probes.helper_client import public_address
from probes.ipasn import ASInfo, check_table, lookup, table_digest
from services.helper_server import HelperConfig, make_server
from services.vantage import NetworkOptions, network_identity, parse_asn, parse_country

TABLE = """\
# range_start\trange_end\tAS_number\tcountry_code\tAS_description
1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET
1.0.1.0\t1.0.3.255\t0\tNone\tNot routed
10.0.0.0\t10.255.255.255\t64496\tKE\tEXAMPLE-TELECOM Example Telecom Ltd
127.0.0.0\t127.255.255.255\t64500\tke\tLOOPBACK-ISP Loopback Networks
192.0.2.0\t192.0.2.255\t64511\tZZ\t
::1\t::1\t64501\tTZ\tV6-LOOP
2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64502\tDE\tDOC-NET
"""


@pytest.fixture
def table(tmp_path: Path) -> Path:
    path = tmp_path / "ip2asn.tsv"
    path.write_text(TABLE)
    return path


def test_lookup_finds_the_range_in_either_family(table: Path) -> None:
    assert lookup(table, "1.0.0.7") == ASInfo(13335, "US", "CLOUDFLARENET")
    assert lookup(table, "10.20.30.40") == ASInfo(64496, "KE", "EXAMPLE-TELECOM Example "
                                                                 "Telecom Ltd")
    assert lookup(table, "127.0.0.1") == ASInfo(64500, "KE", "LOOPBACK-ISP Loopback Networks")
    assert lookup(table, "::ffff:127.0.0.1") == lookup(table, "127.0.0.1")  # a dual-stack socket
    assert lookup(table, "::1") == ASInfo(64501, "TZ", "V6-LOOP")
    assert lookup(table, "2001:db8::42").asn == 64502  # type: ignore[union-attr]
    # no range, an unrouted range, the gap after the last range of a family
    assert lookup(table, "9.9.9.9") is None
    assert lookup(table, "1.0.2.1") is None
    assert lookup(table, "203.0.113.1") is None
    assert lookup(table, "2001:db9::1") is None
    # "ZZ" and an empty description are unknowns, not values
    assert lookup(table, "192.0.2.1") == ASInfo(64511, None, None)
    assert ASInfo(64500, None, None).label == "AS64500"


def test_a_gzipped_table_reads_the_same(table: Path, tmp_path: Path) -> None:
    packed = tmp_path / "ip2asn.tsv.gz"
    packed.write_bytes(gzip.compress(table.read_bytes()))
    for address in ("1.0.0.7", "127.0.0.1", "::1", "9.9.9.9"):
        assert lookup(packed, address) == lookup(table, address)
    assert table_digest(packed) != table_digest(table)
    assert len(table_digest(table)) == 64


@pytest.mark.parametrize(("line", "why"), [
    ("127.0.0.0 127.255.255.255 64500 KE X", "separated by tabs"),
    ("127.0.0.0\t127.0.0.x\t64500\tKE\tX", "127.0.0.x"),
    ("127.0.0.9\t127.0.0.1\t64500\tKE\tX", "is not a range"),
    ("127.0.0.0\t::1\t64500\tKE\tX", "is not a range"),
    ("127.0.0.0\t127.255.255.255\tAS64500\tKE\tX", "AS number 'AS64500'"),
    ("127.0.0.0\t127.255.255.255\t99999999999\tKE\tX", "below 2^32"),
    ("127.0.0.x\t127.255.255.255\t64500\tKE\tX", "127.0.0.x"),
])
def test_a_broken_line_is_named_with_file_and_line(tmp_path: Path, line: str, why: str) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(f"1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n{line}\n")
    with pytest.raises(TableError) as info:
        lookup(path, "200.0.0.1")  # past every range: the broken line is the candidate
    message = str(info.value)
    assert message.startswith(f"{path}:2: ") and why in message and "\n" not in message
    with pytest.raises(TableError):
        check_table(path)


def test_a_missing_or_damaged_table_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="cannot read the ASN table"):
        lookup(tmp_path / "nope.tsv", "127.0.0.1")
    damaged = tmp_path / "cut.tsv.gz"
    damaged.write_bytes(gzip.compress(TABLE.encode() * 50)[:300])
    with pytest.raises(TableError, match="damaged"):
        lookup(damaged, "2001:db8:ffff::1")  # the last range: the whole file is read


def test_declared_values_are_checked() -> None:
    assert parse_asn("as64500") == parse_asn(" 64500 ") == "AS64500"
    assert parse_country(" ke") == "KE"
    for bad in ("AS", "ASX1", "0", "AS4294967296", "64500a"):
        with pytest.raises(ValueError, match="AS64500"):
            parse_asn(bad)
    for bad in ("K", "KEN", "K3", "ÉÉ"):
        with pytest.raises(ValueError, match="two-letter"):
            parse_country(bad)


@pytest.fixture
def helper():
    with make_server("127.0.0.1", 0, HelperConfig(allow_private=True)) as server:
        yield f"http://127.0.0.1:{server.port}"


def test_the_helper_tells_the_probe_its_address(helper: str) -> None:
    assert public_address(helper) == ("127.0.0.1", None)
    address, why = public_address("http://127.0.0.1:9", timeout=2)
    assert address is None and why == "helper unreachable: connection_refused"
    assert public_address("ftp://x.example/")[1] == "helper URL 'ftp://x.example/' is not an " \
                                                    "http:// or https:// URL"


def test_looked_up_values_fill_what_was_not_declared(table: Path, helper: str) -> None:
    looked = network_identity(NetworkOptions(asn_table=table), helper)
    assert looked == {
        "asn": "AS64500", "network_name": "LOOPBACK-ISP Loopback Networks", "country": "KE",
        "network_source": {"declared": [], "looked_up": ["asn", "country", "network_name"],
                           "table_sha256": table_digest(table), "address_from": "test helper"},
    }
    mixed = network_identity(NetworkOptions(isp="Safaricom", country="TZ", asn_table=table),
                             helper)
    assert (mixed["asn"], mixed["network_name"], mixed["country"]) == (
        "AS64500", "Safaricom", "TZ")
    assert mixed["network_source"]["declared"] == ["country", "network_name"]
    assert mixed["network_source"]["looked_up"] == ["asn"]
    assert "127.0.0.1" not in json.dumps([looked, mixed])


def test_a_failed_lookup_is_recorded_and_declared_values_stay(table: Path) -> None:
    offline = network_identity(NetworkOptions(asn="AS64496", asn_table=table),
                               "http://127.0.0.1:9", timeout=2)
    assert offline["asn"] == "AS64496"
    assert offline["network_error"] == "public address unknown: helper unreachable: " \
                                       "connection_refused"
    assert network_identity(NetworkOptions(asn_table=table), None)["network_error"].startswith(
        "no test helper")
    assert network_identity(NetworkOptions(), None) == {}


def test_unrouted_address_is_an_error_not_a_guess(tmp_path: Path, helper: str) -> None:
    path = tmp_path / "other.tsv"
    path.write_text("1.0.0.0\t1.0.0.255\t13335\tUS\tCLOUDFLARENET\n")
    found = network_identity(NetworkOptions(asn_table=path), helper)
    assert "asn" not in found and "no routed range" in found["network_error"]


# --- end to end: a run records its network, the report names it, the address stays out -------


def test_a_run_records_its_network_and_the_report_names_it(tmp_path: Path, table: Path,
                                                            monkeypatch, capsys) -> None:
    from tests.fakes.dns_server import FakeDNSServer, Rule
    from tests.fakes.servers import HTTPServer, page

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    db = tmp_path / "nv.db"
    honest = {name: Rule(addresses=["127.0.0.1"]) for name in ("ok.test", "gone.test")}
    # The probe's resolver does not know gone.test (NXDOMAIN); the helper's does: a finding.
    with FakeDNSServer({"ok.test": honest["ok.test"]}) as dns, FakeDNSServer(honest) as th_dns, \
            HTTPServer({"/": page("Plain")}) as web, \
            make_server("127.0.0.1", 0, HelperConfig(resolver=th_dns.address,
                                                     allow_private=True)) as server:
        helper = f"http://127.0.0.1:{server.port}"
        args = ["--db", str(db), "run", "--targets", f"http://ok.test:{web.port}/",
                f"http://gone.test:{web.port}/",
                "--resolver", dns.address, "--no-system-resolver", "--no-ipv6", "--no-netcheck",
                "--timeout", "1", "--accept-risks", "--json", "--helper", helper,
                "--asn-table", str(table), "--isp", "Loopback Telecom"]
        assert cli.main(args) == 0
    capsys.readouterr()
    with sqlite3.connect(db) as conn:
        (vantage,) = conn.execute("SELECT vantage FROM runs").fetchone()
        records = [r for (r,) in conn.execute("SELECT canonical FROM records")]
    recorded = json.loads(vantage)
    assert (recorded["asn"], recorded["network_name"], recorded["country"]) == (
        "AS64500", "Loopback Telecom", "KE")
    # The address the helper saw is nowhere in the run's record (measurement records name the
    # loopback target's address, so only the run_start record is looked at).
    run_start = json.loads(next(r for r in records if '"run_start"' in r))
    assert run_start["vantage"] == recorded
    assert "127.0.0.1" not in json.dumps(run_start["vantage"])
    html = tmp_path / "r.html"
    assert cli.main(["--db", str(db), "report", "--out", str(html)]) == 0
    text = html.read_text()
    assert "AS64500" in text and "Loopback Telecom" in text
    assert "The probe&#x27;s operator declared the ISP when" in text
    assert "The ASN and country were looked up" in text and table_digest(table) in text
    assert cli.main(["--db", str(db), "export", "--format", "ooni",
                     "--out", str(tmp_path / "o.jsonl")]) == 0
    exported = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[0])
    assert (exported["probe_asn"], exported["probe_cc"]) == ("AS64500", "KE")


@pytest.mark.parametrize(("extra", "needle"), [
    (["--asn", "ASX"], "--asn 'ASX'"),
    (["--country", "Kenya"], "--country 'Kenya'"),
    (["--asn-table", "{missing}"], "cannot read the ASN table"),
    (["--asn-table", "{bad}", "--helper", "http://127.0.0.1:9"], "bad.tsv:1:"),
    (["--asn-table", "{good}"], "--asn-table needs a --helper"),
])
def test_bad_network_options_are_one_line_errors(tmp_path: Path, table: Path, monkeypatch,
                                                 capsys, extra: list[str], needle: str) -> None:
    monkeypatch.delenv("NETVIGIL_HELPER", raising=False)
    bad = tmp_path / "bad.tsv"
    bad.write_text("not a table\n")
    paths = {"missing": tmp_path / "none.tsv", "bad": bad, "good": table}
    extra = [e.format(**paths) for e in extra]
    db = tmp_path / "nv.db"
    assert cli.main(["--db", str(db), "run", "--targets", "http://ok.test/", "--accept-risks",
                     "--no-netcheck", *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1
    assert not db.exists()  # nothing was measured
