"""Suite-wide rules: in CI (CI=true) a skipped censorship-lab test fails the run.

The lab needs root and network namespaces. Elsewhere it skips with that reason; CI runs as root
and must really run it, so a skip there means the lab silently stopped working.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from results.store import Store

SHARED = Path(__file__).resolve().parents[2] / "shared"
CORPUS = SHARED / "corpus"
WC05 = CORPUS / "ooni" / "wc05_qa"


def import_wc05(store: Store) -> None:
    """Import OONI's 50 labelled measurements into `store`, judged with OONI's fingerprints
    (`wc05_fingerprints`): real blocking, runs and events to test with (skips the test without
    the corpus)."""
    from services.ooni_tools import import_files

    if not WC05.is_dir():
        pytest.skip(f"OONI corpus not present at {WC05}")
    import_files([WC05], store, wc05_fingerprints())


def wc05_fingerprints() -> Any:
    """OONI's fingerprints, which `import_wc05` judges with (so bundles must carry them)."""
    from ooni.fingerprints import load_fingerprints

    return load_fingerprints(CORPUS / "fingerprints" / "fingerprints_http.csv",
                             CORPUS / "fingerprints" / "fingerprints_dns.csv")

_skipped_lab: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "lab" in report.keywords:
        _skipped_lab.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() == "true" and _skipped_lab:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"CI: {len(_skipped_lab)} censorship-lab tests were skipped; they must run in CI:"
            )
            for nodeid in _skipped_lab[:10]:
                reporter.write_line(f"  {nodeid}")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


# --- no traffic beyond loopback ------------------------------------------------------------------
# A guard, not a convenience: every in-process test may only reach loopback. A connect, sendto or
# name lookup aimed elsewhere is refused and fails the test, so a mistake (a real resolver in a
# default, a system lookup of a fake name) is caught here instead of leaking onto the network.
# Lab tests reach their namespaces through subprocesses, which this guard does not touch.

import ipaddress  # noqa: E402
import socket  # noqa: E402

_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def _is_local(host: object) -> bool:
    if host is None or host == "":
        return True
    text = host.decode() if isinstance(host, bytes) else str(host)
    if text.lower() in _LOCAL_NAMES:
        return True
    try:
        address = ipaddress.ip_address(text.split("%")[0])
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


@pytest.fixture(autouse=True)
def _loopback_only(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    if request.node.get_closest_marker("lab"):
        yield
        return
    violations: list[str] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_sendto, real_gai = socket.socket.sendto, socket.getaddrinfo

    def check(address: object, what: str) -> None:
        host = address[0] if isinstance(address, tuple) else None
        if isinstance(address, tuple) and not _is_local(host):
            violations.append(f"{what} {address!r}")
            raise PermissionError(f"test guard: {what} to {host} is beyond loopback")

    def connect(self, address):  # type: ignore[no-untyped-def]
        check(address, "connect")
        return real_connect(self, address)

    def connect_ex(self, address):  # type: ignore[no-untyped-def]
        check(address, "connect")
        return real_connect_ex(self, address)

    def sendto(self, data, *args):  # type: ignore[no-untyped-def]
        check(args[-1], "sendto")
        return real_sendto(self, data, *args)

    def getaddrinfo(host, *args, **kwargs):  # type: ignore[no-untyped-def]
        if not _is_local(host):
            violations.append(f"getaddrinfo {host!r}")
            raise socket.gaierror(socket.EAI_NONAME, f"test guard: lookup of {host} refused")
        return real_gai(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket.socket, "sendto", sendto)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    yield
    if violations:
        pytest.fail(f"test tried to reach beyond loopback: {violations[:5]}")


@pytest.fixture(autouse=True)
def _private_user_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Signing keys, accepted notices and default databases go to a temporary folder, never to
    the home directory of whoever runs the tests."""
    home = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("NETVIGIL_KEYS", str(home / "keys"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "config"))
    yield
