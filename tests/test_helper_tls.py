"""The helper over HTTPS (issue 12): `helper serve --tls-cert/--tls-key`, on loopback only.

A probe's bearer token must not cross the network in clear: the helper serves TLS itself, a
certificate that does not load is one line before anything is served, and a token on plain HTTP
at a public address is refused unless --insecure-http says a TLS proxy sits in front.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import trustme

import cli
from core.errors import ConfigError
from probes.helper_client import fetch_controls
from services.helper_server import HelperConfig, make_server
from services.settings import Settings
from services.settings_checks import server_tls
from tests.fakes.certs import FakePKI
from tests.fakes.servers import TCPServer
from tests.test_helper import FAST, ROOT, probe_measurement

TOKEN = "s3cret"


class Pems:
    """A certificate for 127.0.0.1 from the test CA, as files, and the bundle trusting it."""

    def __init__(self, folder: Path) -> None:
        pki = FakePKI()
        self.bundle = pki.write_ca_bundle(folder)
        leaf = pki.ca.issue_cert("127.0.0.1")
        self.cert, self.key = str(folder / "cert.pem"), str(folder / "key.pem")
        leaf.private_key_and_cert_chain_pem.write_to_path(self.cert)
        leaf.private_key_pem.write_to_path(self.key)
        other = trustme.CA().issue_cert("127.0.0.1")  # a key of another certificate
        self.other_key = str(folder / "other-key.pem")
        other.private_key_pem.write_to_path(self.other_key)


@pytest.fixture
def pems(tmp_path: Path) -> Pems:
    return Pems(tmp_path)


def _tls_helper(pems: Pems):
    config = HelperConfig(allow_private=True, probe=FAST, token=TOKEN)
    return make_server("127.0.0.1", 0, config, tls=server_tls(pems.cert, pems.key))


def test_the_probe_gets_controls_from_a_tls_helper(pems: Pems) -> None:
    with TCPServer("accept") as target, _tls_helper(pems) as server:
        url = f"tcp://127.0.0.1:{target.port}"
        result = fetch_controls(f"https://127.0.0.1:{server.port}", [probe_measurement(url)],
                                token=TOKEN, ca_bundle=pems.bundle)
        assert result.error is None and result.refused == {}
        assert url in result.controls
        # without the CA, the client refuses the certificate and says so, without raising
        untrusted = fetch_controls(f"https://127.0.0.1:{server.port}", [probe_measurement(url)],
                                   token=TOKEN)
        assert untrusted.error and untrusted.controls == {}


def test_plain_http_to_the_tls_port_fails_cleanly_and_the_helper_keeps_serving(
        pems: Pems, capsys) -> None:
    with _tls_helper(pems) as server:
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{server.port}/v1/health", timeout=5)
        plain = fetch_controls(f"http://127.0.0.1:{server.port}",
                               [probe_measurement("http://a.test/")], token=TOKEN)
        assert plain.error and plain.controls == {}
        health = requests.get(f"https://127.0.0.1:{server.port}/v1/health", timeout=5,
                              verify=pems.bundle)
        assert health.json()["ok"] is True
    err = capsys.readouterr().err
    assert "connection error: SSLError" in err and "Traceback" not in err


@pytest.mark.parametrize(("which", "says"), [
    ("mismatch", "cannot load"),
    ("missing", "cannot load"),
    ("not-pem", "cannot load"),
    ("cert-only", "--tls-key: give --tls-cert and --tls-key together"),
])
def test_a_certificate_that_does_not_load_is_one_line(pems: Pems, tmp_path: Path, capsys,
                                                      which: str, says: str) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    files = {"mismatch": ["--tls-cert", pems.cert, "--tls-key", pems.other_key],
             "missing": ["--tls-cert", str(tmp_path / "nope.pem"), "--tls-key", pems.key],
             "not-pem": ["--tls-cert", str(junk), "--tls-key", str(junk)],
             "cert-only": ["--tls-cert", pems.cert]}[which]
    assert cli.main(["helper", "serve", "--listen", "127.0.0.1:0", *files]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1, err


def _settings(*argv: str, environ: dict[str, str] | None = None) -> Settings:
    return Settings.from_args(cli._parser().parse_args(["helper", "serve", *argv]),
                              environ=environ or {})


def test_a_token_on_plain_http_at_a_public_address_is_refused_with_the_reason(
        pems: Pems, capsys) -> None:
    assert cli.main(["helper", "serve", "--listen", "0.0.0.0:0", "--token", TOKEN]) == 2
    err = capsys.readouterr().err
    assert "in clear" in err and "--tls-cert" in err and "--insecure-http" in err
    with pytest.raises(ConfigError, match="in clear"):  # the token from the environment too
        _settings("--listen", "0.0.0.0:8080", environ={"NETVIGIL_HELPER_TOKEN": TOKEN})
    # allowed: TLS, loopback, no token, or a proxy in front declared with --insecure-http
    for argv in (["--listen", "0.0.0.0:8443", "--token", TOKEN, "--tls-cert", pems.cert,
                  "--tls-key", pems.key],
                 ["--listen", "127.0.0.1:8080", "--token", TOKEN],
                 ["--listen", "0.0.0.0:8080"],
                 ["--listen", "0.0.0.0:8080", "--token", TOKEN, "--insecure-http"]):
        settings = _settings(*argv)
        assert settings.helper is not None
    assert _settings("--listen", "0.0.0.0:8443", "--tls-cert", pems.cert,
                     "--tls-key", pems.key).server_tls is not None


def test_the_command_serves_https(pems: Pems) -> None:
    # the real entry point, in its own process: it says https, answers over TLS, stops on SIGTERM
    code = "import sys, cli; sys.exit(cli.main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "helper", "serve", "--listen", "127.0.0.1:0",
         "--tls-cert", pems.cert, "--tls-key", pems.key, "--token", TOKEN],
        cwd=ROOT, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert proc.stderr is not None
        first = proc.stderr.readline()
        assert first.startswith("helper listening on 127.0.0.1:") and "(https," in first, first
        port = int(first.split()[3].rsplit(":", 1)[1])
        health = requests.get(f"https://127.0.0.1:{port}/v1/health", timeout=5,
                              verify=pems.bundle)
        assert health.json()["ok"] is True
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_systemd_unit_serves_tls_with_the_token_from_an_environment_file(
        pems: Pems) -> None:
    unit = (ROOT / "contrib" / "netvigil-helper.service").read_text()
    lines = dict(line.split("=", 1) for line in unit.splitlines()
                 if "=" in line and not line.startswith("#"))
    assert lines["EnvironmentFile"] == "/etc/netvigil/helper.env"
    argv = lines["ExecStart"].split()[1:]
    assert "--token" not in argv  # the token is in the EnvironmentFile, not in `ps`
    args = cli._parser().parse_args(argv)
    assert (args.tls_cert, args.tls_key) == ("/etc/netvigil/fullchain.pem",
                                             "/etc/netvigil/privkey.pem")
    # the same flags with loadable files and the EnvironmentFile's token: accepted
    argv[argv.index(args.tls_cert)], argv[argv.index(args.tls_key)] = pems.cert, pems.key
    settings = _settings(*argv[2:], environ={"NETVIGIL_HELPER_TOKEN": TOKEN})
    assert settings.helper is not None and settings.helper.token == TOKEN
    assert settings.server_tls is not None
