"""Settings built from arguments and the environment (services.settings), the risk notice
(services.consent.ensure) and the monitor's after-run steps (services.after_run)."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

import cli
from core.errors import ConfigError, TargetError
from services import after_run, consent
from services.settings import Env, Settings, Tsa

HTTP_FP = ("name,scope,location_found,pattern_type,pattern\n"
           "t.block,isp,body,contains,Access denied by order\n")
DNS_FP = "name,scope,location_found,pattern_type,pattern\nt.dns,isp,dns,full,10.10.34.34\n"


def args(**values: object) -> dict[str, object]:
    """The options of `run` as argparse leaves them, with `values` on top."""
    base: dict[str, object] = {
        "db": Path("x.db"), "targets": ["http://ok.test/"], "resolver": None, "doh": None,
        "dns_over_tcp": False, "ca_bundle": None, "helper": None, "asn": None, "isp": None,
        "country": None, "asn_table": None, "concurrency": 16, "rate": 50.0,
        "per_host_rate": 4.0, "timeout": None, "no_ipv6": False, "public_range": [],
        "fingerprints": [], "no_system_resolver": False, "no_netcheck": False,
        "accept_risks": False, "json": False,
    }
    return {**base, **values}


def test_the_environment_gives_defaults_and_an_argument_wins() -> None:
    environ = {"NETVIGIL_HELPER": "http://th.env:8080", "NETVIGIL_HELPER_TOKEN": "s3cret",
               "NETVIGIL_COLLECTOR": "http://col.env", "NETVIGIL_COLLECTOR_TOKEN": " t0k ",
               "NETVIGIL_ACCEPT_RISKS": "yes"}
    s = Settings.from_args(args(), environ)
    assert s.campaign is not None
    assert (s.campaign.helper_url, s.campaign.helper_token) == ("http://th.env:8080", "s3cret")
    assert s.env == Env("http://th.env:8080", "s3cret", "http://col.env", "t0k", True)
    assert s.collector is None  # run has no --collector: the default is not even looked at
    given = Settings.from_args(args(helper="http://th.arg", collector=None), environ)
    assert given.campaign is not None and given.campaign.helper_url == "http://th.arg"
    assert given.collector == "http://col.env"
    assert Settings.from_args(args(collector="http://col.arg"), environ).collector == \
        "http://col.arg"
    # empty means unset, as systemd's Environment=NAME= writes it
    assert Env.read({"NETVIGIL_HELPER": " ", "NETVIGIL_ACCEPT_RISKS": "0"}) == Env()


def test_campaign_settings_scale_timeouts_and_merge_fingerprint_folders(tmp_path: Path) -> None:
    folder = tmp_path / "fp"
    folder.mkdir()
    (folder / "fingerprints_http.csv").write_text(HTTP_FP)
    (folder / "fingerprints_dns.csv").write_text(DNS_FP)
    (folder / "README.md").write_text("not a CSV: ignored\n")
    s = Settings.from_args(args(timeout=1.0, resolver=["127.0.0.1:5353"], no_ipv6=True,
                                public_range=["198.18.0.1/15"], fingerprints=[str(folder)]), {})
    assert s.campaign is not None
    timeouts = s.campaign.config.timeouts
    assert timeouts.tcp == 1.0
    assert timeouts.dns_listen == type(timeouts)().dns_listen  # a window, not a timeout
    assert s.campaign.config.resolvers == ("127.0.0.1:5353",) and not s.campaign.config.ipv6
    assert s.public_ranges == (ipaddress.ip_network("198.18.0.0/15"),)
    assert s.fingerprints is not None
    assert [f.name for f in s.fingerprints.http] == ["t.block"]
    assert [f.name for f in s.fingerprints.dns] == ["t.dns"]
    assert s.campaign.fingerprints is s.fingerprints
    assert [t.url for t in s.targets] == ["http://ok.test/"]


def test_no_targets_means_the_catalogue() -> None:
    s = Settings.from_args(args(targets=None), {})
    assert len({t.platform for t in s.targets}) >= 25


@pytest.mark.parametrize(("values", "option"), [
    ({"resolver": ["1.2.3"]}, "--resolver"),
    ({"public_range": ["10.0.0.0/33"]}, "--public-range"),
    ({"fingerprints": ["/nonexistent/fp"]}, "--fingerprints"),
    ({"timeout": -1.0}, "--timeout"),
    ({"ca_bundle": "/nonexistent.pem"}, "--ca-bundle"),
    ({"asn": "ASX"}, "--asn"),
    ({"country": "Kenya"}, "--country"),
    ({"concurrency": 0}, "--concurrency"),
    ({"since": "yesterday"}, "--since"),
    ({"until": "2026-13-45"}, "--until"),
    ({"every": "15", "jitter": None, "max_runs": None}, "--every"),
    ({"every": "0s", "jitter": None, "max_runs": None}, "--every"),
    ({"every": "1m", "jitter": "x", "max_runs": None}, "--jitter"),
    ({"every": "1m", "jitter": None, "max_runs": 0}, "--max-runs"),
    ({"tsa": "http://tsa.test/", "tsa_root": Path("/nonexistent.pem")}, "--tsa-root"),
    ({"tsa": "http://tsa.test/", "tsa_timeout": 0.0}, "--tsa-timeout"),
    ({"listen": "example.org:80"}, "--listen"),
])
def test_a_bad_value_is_a_config_error_naming_its_option(values: dict[str, object],
                                                         option: str) -> None:
    with pytest.raises(ConfigError) as info:
        Settings.from_args(args(**values), {})
    assert info.value.option == option
    assert option in str(info.value) or info.value.option == "--fingerprints"
    assert "\n" not in str(info.value) and info.value.exit_code == 2


def test_server_settings_take_tokens_from_the_environment(tmp_path: Path) -> None:
    collector = Settings.from_args({"dir": tmp_path, "listen": "127.0.0.1:0", "tokens": [],
                                    "allow_key": [], "max_size": 1.0},
                                   {"NETVIGIL_COLLECTOR_TOKEN": "env-token"})
    assert collector.collection is not None
    assert (collector.collection.tokens, collector.collection.max_body) == (("env-token",),
                                                                            1 << 20)
    helper = Settings.from_args({"listen": "[::1]:8080", "helper_token": "arg", "resolver": None,
                                 "allow_private": True, "public_range": []},
                                {"NETVIGIL_HELPER_TOKEN": "env"})
    assert helper.helper is not None and helper.helper.token == "arg"
    assert helper.listen == "[::1]:8080"
    with pytest.raises(ConfigError, match="--max-size"):
        Settings.from_args({"dir": tmp_path, "tokens": [], "max_size": 0.0}, {})


def test_a_bad_targets_file_names_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "list.txt"
    bad.write_text("example.org\nftp://x.org/\n")
    with pytest.raises(TargetError) as info:
        Settings.from_args(args(targets=[str(bad)]), {})
    assert (info.value.path, info.value.line) == (str(bad), 2)


def test_the_command_line_names_the_option_in_one_line(tmp_path: Path, capsys) -> None:
    db = tmp_path / "nv.db"
    for argv, option in [
        (["run", "--public-range", "nope", "--accept-risks"], "--public-range nope"),
        (["monitor", "--every", "15"], "--every 15"),
        (["events", "--until", "soon"], "--until 'soon'"),
        (["helper", "serve", "--listen", "nowhere"], "--listen 'nowhere'"),
        (["collector", "serve", "--dir", str(tmp_path), "--max-size", "-1"], "--max-size -1"),
    ]:
        assert cli.main(["--db", str(db), *argv]) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("netvigil: error: ") and option in err, (argv, err)
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not db.exists()


# --- consent ---------------------------------------------------------------------------------

def test_consent_by_flag_environment_marker_or_answer(tmp_path: Path) -> None:
    asked: list[str] = []

    def nobody(notice: str, question: str) -> None:
        asked.append(notice)
        return None

    with pytest.raises(ConfigError, match="--accept-risks") as info:
        consent.ensure(False, False, nobody, tmp_path)
    assert info.value.option == "--accept-risks" and "risk" in asked[0]
    consent.ensure(False, True, nobody, tmp_path)  # the environment accepts, nothing is kept
    assert not (tmp_path / "accepted-risks").exists()
    with pytest.raises(ConfigError, match="nothing was measured"):
        consent.ensure(False, False, lambda notice, question: "no", tmp_path)
    consent.ensure(False, False, lambda notice, question: " YES ", tmp_path)
    assert (tmp_path / "accepted-risks").exists()
    consent.ensure(False, False, nobody, tmp_path)  # remembered: not asked again
    assert len(asked) == 1
    other = tmp_path / "other"
    consent.ensure(True, False, nobody, other)
    assert (other / "accepted-risks").exists()


# --- the monitor's after-run steps -------------------------------------------------------------

def test_after_run_stamps_then_submits_as_the_settings_ask(monkeypatch) -> None:
    calls: list[tuple[str, object]] = []

    def stamp(store: object, url: str, timeout: float, roots_pem: bytes | None) -> dict:
        calls.append(("stamp", (url, timeout, roots_pem)))
        return {"stamped": 1, "pending": 0, "unreachable": 0, "failed": 0, "errors": []}

    def submit(store: object, url: str, token: str | None, public_ranges: object = (),
               fingerprints: object = None) -> dict:  # bundles carry what runs were judged with
        calls.append(("submit", (url, token)))
        return {"runs": [4], "sent": 1, "pending": [], "error": None}

    monkeypatch.setattr("services.timestamps.stamp_pending", stamp)
    monkeypatch.setattr("services.submit.submit", submit)
    assert after_run.pipeline(Settings(db=Path("x.db"))) is None
    settings = Settings(db=Path("x.db"), env=Env(collector_token="tok"),
                        tsa=Tsa("http://tsa.test/", 3.0, b"PEM"), collector="http://col.test")
    pipeline = after_run.pipeline(settings)
    assert pipeline is not None
    line = pipeline(object())  # type: ignore[arg-type]
    assert calls == [("stamp", ("http://tsa.test/", 3.0, b"PEM")),
                     ("submit", ("http://col.test", "tok"))]
    assert line == ("timestamps: 1 stamped, 0 waiting (0 unreachable, 0 refused or bad); "
                    "submitted 1 run in 1 bundle, 0 pending")
