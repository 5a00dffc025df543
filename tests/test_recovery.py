"""Runs that never ended (issue 12): SIGTERM ends `netvigil run` as Ctrl-C does, and a run a
SIGKILLed process left `running` is ended, judged and signed by the next command that writes;
a run whose process is alive is left alone.

Through the real entry point: `netvigil` subprocesses measure loopback fakes only (a resolver
that answers 127.0.0.1 for every name, a web server, and a server that stalls so that a run is
mid-flight when the signal comes). The unit tests below cover services.process_owner and
services.recovery in this process.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from results.store import Store
from services import process_owner, recovery
from tests.fakes.dns_server import FakeDNSServer, Rule
from tests.fakes.servers import HTTPServer, TCPServer, page
from tests.test_store import make_measurement

ROOT = Path(__file__).resolve().parents[1]
FAST, STALLED = 3, 3
#: The fakes answer from loopback: counted as public, as in a lab.
LAB = ("--public-range", "127.0.0.0/8")


def netvigil() -> list[str]:
    """The installed console script beside this Python, else cli.py run as a script."""
    script = Path(sys.executable).parent / "netvigil"
    return [str(script)] if script.exists() else [sys.executable, str(ROOT / "cli.py")]


@pytest.fixture(scope="module")
def fakes() -> Iterator[dict[str, object]]:
    with FakeDNSServer({}, default=Rule(addresses=["127.0.0.1"])) as dns, \
            HTTPServer({"/": page("Plain")}) as web, TCPServer("stall") as stall:
        yield {"dns": dns, "web": web, "stall": stall}


@pytest.fixture()
def env(tmp_path: Path) -> dict[str, str]:
    """The children's environment: keys and user files in the test's folder, and no NETVIGIL_
    setting (a helper or collector URL) from the caller's environment."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("NETVIGIL_")}
    return {**base, "PYTHONPATH": str(ROOT), "NETVIGIL_KEYS": str(tmp_path / "keys"),
            "XDG_DATA_HOME": str(tmp_path / "data"), "XDG_CONFIG_HOME": str(tmp_path / "config"),
            "HOME": str(tmp_path)}


def start_run(db: Path, fakes: dict[str, object], env: dict[str, str],
              command: tuple[str, ...] = ("run",)) -> subprocess.Popen[str]:
    """`netvigil run` (or `monitor`) over FAST targets that answer and STALLED ones that hang
    for half a minute: it is mid-flight once the FAST ones are stored."""
    dns, web, stall = fakes["dns"], fakes["web"], fakes["stall"]
    targets = [f"http://ok{i}.test:{web.port}/" for i in range(FAST)]  # type: ignore[attr-defined]
    targets += [f"http://stall{i}.test:{stall.port}/"  # type: ignore[attr-defined]
                for i in range(STALLED)]
    return subprocess.Popen(
        [*netvigil(), "--db", str(db), *command, "--targets", *targets,
         "--resolver", dns.address, "--no-system-resolver", "--no-ipv6",  # type: ignore[attr-defined]
         "--no-netcheck", "--timeout", "20", "--accept-risks", *LAB],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def stored(db: Path, run_id: int | None = None) -> int:
    """Measurements in `db` (of one run), read without taking any lock a writer needs."""
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            where, args = ("WHERE run_id = ?", (run_id,)) if run_id else ("", ())
            return int(conn.execute(f"SELECT count(*) FROM measurements {where}",
                                    args).fetchone()[0])
    except sqlite3.OperationalError:  # not created yet
        return 0


def mid_flight(db: Path, child: subprocess.Popen[str], run_id: int | None = None) -> None:
    """Wait until the FAST targets of the child's run are stored (the STALLED ones hang)."""
    deadline = time.monotonic() + 30
    while stored(db, run_id) < FAST:
        assert child.poll() is None, child.communicate()
        assert time.monotonic() < deadline, "the run stored nothing in time"
        time.sleep(0.05)
    time.sleep(0.3)  # the stalled targets are connected and waiting by now
    assert child.poll() is None


def finish(child: subprocess.Popen[str], sig: signal.Signals) -> tuple[str, str]:
    child.send_signal(sig)
    try:
        return child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()


def signatures(db: Path, run_id: int) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT count(*) FROM signatures WHERE run_id = ?",
                                (run_id,)).fetchone()[0])


def verify(db: Path, env: dict[str, str]) -> dict[str, object]:
    done = subprocess.run([*netvigil(), "--db", str(db), "verify", "--json", *LAB], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def assert_ended_judged_signed(db: Path, env: dict[str, str], run_id: int) -> None:
    with Store(db) as store:
        run = store.run(run_id)
        assert run is not None and run["status"] == "interrupted"
        rows = store.measurements(run_id=run_id)
        # What was measured is all there, and judged: the stalled targets never finished.
        assert len(rows) == FAST
        # Judged as the campaign judges: the pages loaded, and without a control (no helper)
        # that is what the analysis says it is.
        assert all(r["verdict"] == "insufficient" and "no control" in r["reason"] for r in rows)
        assert run["network"] == "ok" and run["summary"]["counts"] == {"insufficient": FAST}
    assert signatures(db, run_id) == 1
    checked = verify(db, env)
    assert checked["ok"] is True
    assert not any(f"run {run_id} has not ended" in n for n in checked["notices"])  # type: ignore[attr-defined]


# --- through the real entry point -------------------------------------------------------------


def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path, fakes, env):
    db = tmp_path / "term.db"
    child = start_run(db, fakes, env)
    mid_flight(db, child)
    _, err = finish(child, signal.SIGTERM)
    assert child.returncode == 143, err  # 128 + SIGTERM; Ctrl-C is 130
    assert "interrupted: every finished measurement is stored" in err
    assert "Traceback" not in err
    assert_ended_judged_signed(db, env, 1)


def test_sigterm_stops_monitor_with_the_run_judged_and_signed(tmp_path, fakes, env):
    db = tmp_path / "monitor.db"
    child = start_run(db, fakes, env, ("monitor", "--every", "1h"))
    mid_flight(db, child)
    _, err = finish(child, signal.SIGTERM)
    assert child.returncode == 0, err  # a service's normal stop, as Ctrl-C stops it
    assert "run interrupted by stop" in err
    assert_ended_judged_signed(db, env, 1)


def test_a_killed_run_is_ended_by_the_next_writing_command_and_a_live_one_is_not(
    tmp_path, fakes, env
):
    db = tmp_path / "kill.db"
    killed = start_run(db, fakes, env)
    mid_flight(db, killed)
    finish(killed, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    with Store(db) as store:
        assert store.run(1)["status"] == "running"  # before: left running for good
        assert all(r["verdict"] is None for r in store.measurements(run_id=1))
        assert store.run(1)["owner"]["pid"] == killed.pid
    assert signatures(db, 1) == 0

    # The next command that writes: another run (run 2), which ends run 1 before it starts.
    live = start_run(db, fakes, env)
    try:
        mid_flight(db, live, run_id=2)
        with Store(db) as store:
            assert store.run(1)["status"] == "interrupted"
        # Another command that writes, while run 2 is in progress in its own process.
        done = subprocess.run([*netvigil(), "--db", str(db), "analyze", "--json", *LAB],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        with Store(db) as store:
            assert store.run(2)["status"] == "running"  # its process is alive: left alone
            assert store.run(2)["owner"]["pid"] == live.pid
    finally:
        _, err = finish(live, signal.SIGTERM)
    assert live.returncode == 143, err
    assert_ended_judged_signed(db, env, 1)
    with Store(db) as store:
        summary = store.run(1)["summary"]
        assert "power cut" in summary["interrupted"] and summary["recovered"]
        # Ended when its last record was written, not when it was found.
        last = max(r["started"] for r in store.measurements(run_id=1))
        assert last <= store.run(1)["finished"] < summary["recovered"]
    assert_ended_judged_signed(db, env, 2)


# --- services.process_owner -------------------------------------------------------------------


def gone_pid() -> int:
    """The PID of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.skipif(process_owner.boot_id() is None, reason="needs Linux /proc")
def test_is_alive_tells_this_process_from_gone_and_reused_ones():
    me = process_owner.identity()
    assert me["pid"] == os.getpid() and me["boot"] and me["start"] is not None
    assert process_owner.is_alive(me) is True
    assert process_owner.is_alive({**me, "pid": gone_pid()}) is False
    assert process_owner.is_alive({**me, "start": me["start"] - 1}) is False  # PID reused
    assert process_owner.is_alive({**me, "boot": "another-boot-or-machine"}) is False
    # What cannot be checked from here is not called dead.
    assert process_owner.is_alive({**me, "pid_ns": "pid:[1]"}) is None
    assert process_owner.is_alive({**me, "start": None}) is None
    assert process_owner.is_alive({"pid": "x"}) is None


def test_without_a_boot_id_only_silence_can_tell(tmp_path):
    nowhere = tmp_path / "no-proc"  # a system without /proc
    owner = process_owner.identity(nowhere)
    assert owner["boot"] is None and owner["start"] is None
    assert process_owner.is_alive(owner, nowhere) is None
    if process_owner.boot_id() is not None:  # recorded here, read on a system without boot ids
        assert process_owner.is_alive(process_owner.identity(), nowhere) is False


# --- services.recovery ------------------------------------------------------------------------


def test_recover_ends_dead_runs_only(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    me = process_owner.identity()
    with Store(tmp_path / "r.db") as store:
        dead = store.begin_run({"tool": "test"}, {}, owner={**me, "pid": gone_pid()})
        mine = store.begin_run({"tool": "test"}, {}, owner=me)
        rebooted = store.begin_run({"tool": "test"}, {}, owner={**me, "boot": "earlier"})
        empty = store.begin_run({"tool": "test"}, {}, owner={**me, "boot": "earlier"})
        for run_id in (dead, mine, rebooted):
            store.add_measurement(run_id, make_measurement())
        expected = [dead, rebooted, empty] if me["boot"] else [rebooted, empty]
        assert recovery.recover(store) == expected
        assert store.run(mine)["status"] == "running"  # this process is alive
        for run_id in expected:
            run = store.run(run_id)
            assert run["status"] == "interrupted"
            assert all(r["verdict"] for r in store.measurements(run_id=run_id))
        # Nothing answered in a run with nothing stored: a gap, never an outage.
        assert store.run(empty)["network"] == "local_failure"
        assert recovery.recover(store) == []  # once only
        assert store.verify_chain() == []


def test_open_for_writing_tells_what_it_ended(tmp_path, monkeypatch):
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    with Store(tmp_path / "w.db") as store:
        run_id = store.begin_run({"tool": "test"}, {}, owner={"pid": 1, "boot": "earlier"})
    told: list[list[int]] = []
    with recovery.open_for_writing(tmp_path / "w.db", on_recovered=told.append) as store:
        assert store.run(run_id)["status"] == "interrupted"
    assert told == [[run_id]]


def test_a_dead_run_is_judged_with_the_public_ranges_of_its_own_configuration():
    # The campaign judged with the ranges it was started with; they are in its config record.
    options = recovery.judging_options({"public_ranges": ["127.0.0.0/8", "fd00::/8"]}, "fp")
    assert options.public_ranges == (ipaddress.ip_network("127.0.0.0/8"),
                                     ipaddress.ip_network("fd00::/8"))
    assert options.fingerprints == "fp"  # the caller's, as `analyze` would use
    assert recovery.judging_options({"public_ranges": ["not a range"]}, None).public_ranges == ()
    assert recovery.judging_options(None, None).public_ranges == ()
