"""Unattended monitoring (services.monitor): the schedule, the loop's survival, stale runs, and
what a killed or stopped monitor leaves in the database. Loopback only."""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from core.observations import Measurement
from core.target import Target
from core.times import utc_now
from core.verdicts import Verdict
from probes.config import ProbeConfig, Timeouts
from results.store import Store
from services.campaign import CampaignOptions, CampaignResult, MeasuredTarget
from services.monitor import (
    BACKOFF_FIRST,
    Schedule,
    backoff,
    format_duration,
    monitor,
    parse_duration,
    stop_on_signals,
)
from services.recovery import recover
from tests.fakes.dns_server import FakeDNSServer, Rule
from tests.fakes.servers import HTTPServer, TCPServer

ROOT = Path(__file__).resolve().parents[1]
LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ run (\d+): (\d+) targets?, network (\w+), (\d+) blocked, "
    r"(\d+) down, (\d+) insufficient, \d+\.\d s( \(.*\))?$"
)
FAST = Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=1, http=1, http_body=1)


@pytest.fixture(autouse=True)
def _private_dirs(tmp_path, monkeypatch):
    """Finished runs are signed: keep the signing key (and any user file) in the test's folder,
    for this process and the monitor processes it starts."""
    monkeypatch.setenv("NETVIGIL_KEYS", str(tmp_path / "keys"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


# --- durations and the schedule ----------------------------------------------------------------


@pytest.mark.parametrize(("text", "seconds"), [
    ("15m", 900), ("2m", 120), ("1h", 3600), ("90s", 90), ("1h30m", 5400), ("1.5h", 5400),
    ("2d", 172800), (" 10S ", 10), ("1d2h3m4s", 93784), ("0s", 0),
])
def test_parse_duration_reads_units(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "m", "15x", "30m1h", "-5m", "1h 30m", "1..5s",
                                  "1m1m", "inf", "nan", "15 minutes"])
def test_parse_duration_refuses_with_one_line(text):
    with pytest.raises(ValueError) as info:
        parse_duration(text)
    message = str(info.value)
    assert "\n" not in message and repr(text) in message and "15m" in message


def test_format_duration_round_trips():
    for seconds in (900, 5400, 90, 3600, 2.5, 86400 + 60):
        assert parse_duration(format_duration(seconds)) == seconds
    assert format_duration(900) == "15m" and format_duration(5400) == "1h30m"


@pytest.mark.parametrize("kwargs", [{"every": 0}, {"every": -1}, {"every": float("inf")},
                                    {"every": 60, "jitter": -1}, {"every": 60, "max_runs": 0}])
def test_schedule_refuses_nonsense(kwargs):
    with pytest.raises(ValueError):
        Schedule(**kwargs)


class FakeTime:
    """A clock that only moves when the loop sleeps (runs take `run_time` each) and a sleep that
    records every wait and sets `stop` after `stop_after` waits."""

    def __init__(self, stop: threading.Event | None = None, stop_after: int | None = None,
                 run_time: float = 0.0) -> None:
        self.now = 1000.0
        self.waits: list[float] = []
        self.stop, self.stop_after, self.run_time = stop, stop_after, run_time

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.waits.append(seconds)
        self.now += seconds
        if self.stop is not None and len(self.waits) == self.stop_after:
            self.stop.set()


def fake_job(time_: FakeTime, results: list[object] | None = None):
    """A campaign stand-in: no network; returns a result (or raises) per call, in order."""
    calls: list[int] = []

    async def job(targets, store, options, on_progress=None):
        calls.append(len(calls))
        time_.now += time_.run_time
        outcome = results[len(calls) - 1] if results else None
        if isinstance(outcome, BaseException):
            raise outcome
        run_id = store.begin_run({"tool": "test"}, {})
        store.finish_run(run_id, "ok", {})
        return outcome or CampaignResult(run_id, utc_now(), utc_now(), "ok", "", "finished",
                                         [], [])

    job.calls = calls  # type: ignore[attr-defined]
    return job


def test_jitter_stays_in_bounds_and_comes_from_the_rng(tmp_path):
    t = FakeTime(run_time=3.0)
    lines: list[str] = []
    schedule = Schedule(every=60, jitter=10, max_runs=40)
    done = monitor([Target("http://a.test/")], tmp_path / "m.db", CampaignOptions(), schedule,
                   log=lines.append, sleep=t.sleep, clock=t.clock, rng=random.Random(7),
                   job=fake_job(t))
    assert done == 40
    assert len(t.waits) == 39  # no wait after the last run
    expected_rng = random.Random(7)
    expected = [60 - 3.0 + expected_rng.uniform(-10, 10) for _ in t.waits]
    assert t.waits == pytest.approx(expected)
    assert all(47 <= w <= 67 for w in t.waits)
    assert max(t.waits) - min(t.waits) > 5  # it really moves


def test_waits_are_never_negative(tmp_path):
    t = FakeTime(run_time=50.0)
    schedule = Schedule(every=30, jitter=25, max_runs=10)
    monitor([Target("http://a.test/")], tmp_path / "m.db", CampaignOptions(), schedule,
            log=lambda _: None, sleep=t.sleep, clock=t.clock, rng=random.Random(1),
            job=fake_job(t))
    assert t.waits == [0.0] * 9  # runs longer than the interval follow each other at once


def test_n_runs_then_stop(tmp_path):
    stop = threading.Event()
    t = FakeTime(stop=stop, stop_after=3)
    lines: list[str] = []
    job = fake_job(t)
    done = monitor([Target("http://a.test/")], tmp_path / "m.db", CampaignOptions(),
                   Schedule(every=900), log=lines.append, stop=stop, sleep=t.sleep,
                   clock=t.clock, job=job)
    # the stop came during the third wait: no fourth run
    assert done == 3 and len(job.calls) == 3 and t.waits == [900.0] * 3
    assert "monitoring 1 target every 15m into" in lines[0]
    assert [int(LINE.match(line).group(1)) for line in lines[1:-1]] == [1, 2, 3]
    assert lines[-1].endswith("monitor stopped after 3 runs")
    with Store(tmp_path / "m.db") as store:
        assert [r["status"] for r in store.runs()] == ["finished"] * 3


def test_a_run_that_raises_is_logged_and_the_loop_goes_on(tmp_path):
    t = FakeTime()
    lines: list[str] = []
    boom = RuntimeError("disk on fire\nsecond line")
    job = fake_job(t, [boom, boom, None])
    done = monitor([Target("http://a.test/")], tmp_path / "m.db", CampaignOptions(),
                   Schedule(every=5, max_runs=3), log=lines.append, sleep=t.sleep,
                   clock=t.clock, job=job)
    assert done == 1 and len(job.calls) == 3
    failed = [line for line in lines if "run failed" in line]
    assert len(failed) == 2
    assert "(1 in a row): RuntimeError: disk on fire second line" in failed[0]
    assert "(2 in a row)" in failed[1]
    # back-off: at least BACKOFF_FIRST, doubling, although the interval is 5 s
    assert t.waits == [BACKOFF_FIRST, 2 * BACKOFF_FIRST]
    assert LINE.match(lines[-2])  # the third run worked and was logged


def test_backoff_doubles_up_to_a_cap():
    assert [backoff(n) for n in (1, 2, 3)] == [BACKOFF_FIRST, 2 * BACKOFF_FIRST,
                                                4 * BACKOFF_FIRST]
    assert backoff(50) == backoff(51) == 3600


def test_a_database_that_cannot_open_is_a_failed_run_not_a_crash(tmp_path):
    t = FakeTime()
    lines: list[str] = []
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    done = monitor([Target("http://a.test/")], blocker / "m.db", CampaignOptions(),
                   Schedule(every=60, max_runs=2), log=lines.append, sleep=t.sleep,
                   clock=t.clock, job=fake_job(t))
    assert done == 0
    assert sum("run failed" in line for line in lines) == 2


def test_stop_cancels_a_run_in_progress(tmp_path):
    stop = threading.Event()
    lines: list[str] = []
    cancelled = []

    async def slow(targets, store, options, on_progress=None):
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        raise AssertionError("not cancelled")

    timer = threading.Timer(0.3, stop.set)
    timer.start()
    began = time.monotonic()
    done = monitor([Target("http://a.test/")], tmp_path / "m.db", CampaignOptions(),
                   Schedule(every=60), log=lines.append, stop=stop, job=slow)
    assert time.monotonic() - began < 3
    assert done == 0 and cancelled == [True]
    assert any("run interrupted by stop" in line for line in lines)


def test_stop_on_signals_sets_the_event_and_restores(tmp_path):
    stop = threading.Event()
    before = signal.getsignal(signal.SIGTERM)
    restore = stop_on_signals(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop.wait(2)
        with pytest.raises(KeyboardInterrupt):  # a second signal ends things at once
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(1)
    finally:
        restore()
    assert signal.getsignal(signal.SIGTERM) == before


# --- real campaigns on loopback -------------------------------------------------------------------


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_run_without_network_is_logged_and_the_loop_goes_on(tmp_path):
    options = CampaignOptions(
        config=ProbeConfig(timeouts=FAST, resolvers=(f"127.0.0.1:{closed_udp_port()}",),
                           system_resolver=False, ipv6=False),
        check_network=False,
    )
    t = FakeTime()
    lines: list[str] = []
    targets = [Target("http://one.test/"), Target("https://two.test/")]
    done = monitor(targets, tmp_path / "m.db", options, Schedule(every=60, max_runs=2),
                   log=lines.append, sleep=t.sleep, clock=lambda: time.monotonic())
    assert done == 2
    runs = [LINE.match(line) for line in lines if " run " in line]
    assert len(runs) == 2 and all(runs)
    for m in runs:
        assert m.group(2, 3, 4, 5, 6) == ("2", "local_failure", "0", "0", "2")
    with Store(tmp_path / "m.db") as store:
        assert [r["network"] for r in store.runs()] == ["local_failure"] * 2


def test_the_log_line_counts_verdicts(tmp_path):
    rules = {"ok.test": Rule(addresses=["127.0.0.1"]), "gone.test": Rule(rcode="NXDOMAIN")}
    with FakeDNSServer(rules) as dns, HTTPServer({}) as web, TCPServer("reset") as reset:
        options = CampaignOptions(
            config=ProbeConfig(timeouts=FAST, resolvers=(dns.address,), system_resolver=False,
                               ipv6=False),
            check_network=False,
        )
        targets = [Target(f"http://ok.test:{web.port}/"), Target(f"http://ok.test:{reset.port}/"),
                   Target("http://gone.test/")]
        lines: list[str] = []
        monitor(targets, tmp_path / "m.db", options, Schedule(every=60, max_runs=1),
                log=lines.append)
    with Store(tmp_path / "m.db") as store:
        verdicts = [m["verdict"] for m in store.measurements()]
    match = LINE.match(lines[1])
    assert match, lines[1]
    assert match.group(1) == "1" and match.group(2) == "3" and match.group(3) == "ok"
    assert [int(match.group(i)) for i in (4, 5, 6)] == [
        verdicts.count(v) for v in ("blocked", "down", "insufficient")]


def test_the_log_line_notes_errors_and_interruptions(tmp_path):
    t = FakeTime()
    target = Target("http://a.test/")
    m = Measurement(target, utc_now(), 0.1)
    result = CampaignResult(7, utc_now(), utc_now(), "ok", "", "interrupted",
                            [MeasuredTarget(1, m, Verdict("blocked", ("dns",)))],
                            ["http://b.test/: internal error KeyError: 'x'"],
                            control="helper unreachable: connection_refused")
    lines: list[str] = []
    monitor([target], tmp_path / "m.db", CampaignOptions(), Schedule(every=1, max_runs=1),
            log=lines.append, sleep=t.sleep, clock=t.clock, job=fake_job(t, [result]))
    match = LINE.match(lines[1])
    assert match and match.group(1, 2, 4) == ("7", "1", "1")
    assert match.group(7) == (" (interrupted; 1 internal error, first: http://b.test/: internal "
                              "error KeyError: 'x'; control: helper unreachable: "
                              "connection_refused)")


# --- runs left behind by a dead process --------------------------------------------------------


def test_recover_closes_only_stale_running_runs_that_name_no_process(tmp_path):
    # Runs of older versions name no process: they are dead once silent for `idle_for`.
    with Store(tmp_path / "m.db") as store:
        stale = store.begin_run({"tool": "test"}, {})
        done = store.begin_run({"tool": "test"}, {})
        store.finish_run(done, "ok", {})
        live = store.begin_run({"tool": "test"}, {})
        later = datetime.now(UTC) + timedelta(minutes=20)
        # the live run wrote a record "just now", as seen from 20 minutes later: not stale yet
        assert recover(store, idle_for=30 * 60, now=later) == []
        assert recover(store, idle_for=10 * 60, now=later) == [stale, live]
        assert [store.run(i)["status"] for i in (stale, done, live)] == [
            "interrupted", "finished", "interrupted"]
        row = store.run(stale)
        assert row["finished"] and "power cut" in row["summary"]["interrupted"]
        assert recover(store, idle_for=0) == []  # nothing left to mark
        assert store.verify_chain() == []  # the chain holds, now with each run's run_end


def test_the_monitor_marks_runs_a_dead_process_left_running(tmp_path, monkeypatch):
    with Store(tmp_path / "m.db") as store:
        left = store.begin_run({"tool": "test"}, {})
    monkeypatch.setattr("services.recovery.STALE_AFTER", 0.0)
    t = FakeTime()
    lines: list[str] = []
    monitor([Target("http://a.test/")], tmp_path / "m.db", CampaignOptions(),
            Schedule(every=60, max_runs=1), log=lines.append, sleep=t.sleep, clock=t.clock,
            job=fake_job(t))
    assert f"marked run {left} interrupted" in lines[1]
    with Store(tmp_path / "m.db") as store:
        assert store.run(left)["status"] == "interrupted"


# --- a killed or stopped monitor process -------------------------------------------------

CHILD = """
import sys, threading
from pathlib import Path
from probes.config import ProbeConfig, Timeouts
from probes.runner import Limits
from services.campaign import CampaignOptions
from services.monitor import Schedule, monitor, stop_on_signals
from core.target import Target

db, resolver, port, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
options = CampaignOptions(
    config=ProbeConfig(timeouts=Timeouts(dns=1, dns_listen=0.05, tcp=1, tls=1, http=1,
                                         http_body=1),
                       resolvers=(resolver,), system_resolver=False, ipv6=False),
    limits=Limits(concurrency=2, rate=8, per_host_rate=8),
    check_network=False,
)
stop = threading.Event()
stop_on_signals(stop)
targets = [Target(f"http://t{i}.monitor.test:{port}/") for i in range(n)]
monitor(targets, Path(db), options, Schedule(every=3600), stop=stop)
"""


@pytest.fixture(scope="module")
def fakes():
    with FakeDNSServer({}, default=Rule(addresses=["127.0.0.1"])) as dns, HTTPServer({}) as web:
        yield dns, web


def start_child(db: Path, fakes, n: int = 60) -> subprocess.Popen[str]:
    dns, web = fakes
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(db), dns.address, str(web.port), str(n)],
        cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True,
    )


def wait_for_measurements(db: Path, child: subprocess.Popen[str], at_least: int) -> int:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        assert child.poll() is None, child.stderr.read() if child.stderr else ""
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
                count = conn.execute("SELECT count(*) FROM measurements").fetchone()[0]
        except sqlite3.OperationalError:  # not created yet
            count = 0
        if count >= at_least:
            return int(count)
        time.sleep(0.05)
    raise AssertionError("the monitor stored nothing in time")


def test_power_cut_loses_no_finished_measurement(tmp_path, fakes):
    db = tmp_path / "cut.db"
    child = start_child(db, fakes)
    try:
        seen = wait_for_measurements(db, child, 8)
        child.send_signal(signal.SIGKILL)  # a power cut, as far as the database can tell
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stderr:
            child.stderr.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    with Store(db) as store:
        rows = store.measurements()
        assert seen <= len(rows) < 60  # everything seen before the kill, and it was mid-run
        for row in rows:
            assert store.load_measurement(row["id"]).target.url == row["target_url"]
        assert store.verify_chain() == []
        (run_row,) = store.runs()
        assert run_row["status"] == "running"  # the process died with it
        # Its process is gone, which the run's recorded owner shows at once: no waiting.
        assert recover(store) == [run_row["id"]]
        assert store.run(run_row["id"])["status"] == "interrupted"
        assert all(r["verdict"] for r in store.measurements())  # judged
        assert store.verify_chain() == []


def test_sigterm_stops_cleanly_and_marks_the_run_interrupted(tmp_path, fakes):
    db = tmp_path / "term.db"
    child = start_child(db, fakes)
    try:
        wait_for_measurements(db, child, 4)
        child.send_signal(signal.SIGTERM)
        _, err = child.communicate(timeout=15)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == 0, err
    assert "run interrupted by stop" in err and "monitor stopped after 0 runs" in err
    with Store(db) as store:
        (run_row,) = store.runs()
        assert run_row["status"] == "interrupted"
        rows = store.measurements()
        assert 4 <= len(rows) < 60
        assert all(r["verdict"] for r in rows)  # what finished was judged and kept
        assert store.verify_chain() == []


def test_after_run_sees_each_finished_run_and_its_failure_costs_nothing(tmp_path):
    t = FakeTime()
    lines: list[str] = []
    seen: list[int] = []

    def after_run(store: Store) -> str | None:
        seen.append(max(r["id"] for r in store.runs()))
        if len(seen) == 2:
            raise OSError("authority\nunreachable")
        return f"after {seen[-1]}" if len(seen) == 1 else None

    done = monitor([Target("http://a.test/")], tmp_path / "m.db", CampaignOptions(),
                   Schedule(every=5, max_runs=3), log=lines.append, sleep=t.sleep,
                   clock=t.clock, job=fake_job(t), after_run=after_run)
    assert done == 3 and seen == [1, 2, 3]
    assert any(line.endswith(" after 1") for line in lines)
    assert any(line.endswith("after the run: OSError: authority unreachable") for line in lines)
    assert len([line for line in lines if LINE.match(line)]) == 3
