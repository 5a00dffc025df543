"""Unattended monitoring: repeat the campaign on a jittered schedule until stopped.

The library function behind `netvigil monitor`, the command a volunteer's Raspberry Pi runs for
months under systemd (contrib/netvigil-monitor.service). Each run is one `services.campaign.run`
in a fresh event loop with a Store opened for that run alone, so nothing long-lived holds the
database between runs. The loop survives:

- network loss: a run whose network is `local_failure` is data (a gap), logged like any other;
- a failing run (a bug, a full disk, a locked database): logged, and the loop goes on after a
  back-off that grows while the failures repeat;
- power cuts and SIGKILL: the store commits each measurement in its own transaction (WAL), so a
  killed process loses only what was in flight, and the database stays consistent. A run left
  `running` by a dead process is ended `interrupted`, judged and signed before the next run
  (`services.recovery`, as by every command that writes).

Stopping: the caller turns SIGTERM/SIGINT into `stop` (`services.stopping.stop_on_signals`). A
run in progress is then cancelled at once; the campaign marks it `interrupted`, judges and keeps
every finished measurement, and signs it.

Runs start `every` seconds apart (start to start, as a systemd timer does), each wait moved by
up to +-`jitter` so that many probes do not fire in step.

One line per run goes to the log (stderr by default, which journald keeps):

    2026-11-28T14:05:03Z run 12: 133 targets, network ok, 3 blocked, 0 down, 2 insufficient, 41.2 s
"""

from __future__ import annotations

import asyncio
import math
import random
import re
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from core.errors import ConfigError
from core.observations import Measurement
from core.target import Target
from core.times import SECONDS_FORMAT, format_utc
from core.verdicts import BLOCKED, DOWN, INSUFFICIENT
from core.words import counted
from results.store import Store
from services import campaign, recovery
from services.campaign import CampaignOptions, CampaignResult, Progress
from services.stopping import stop_on_signals, until_stopped

__all__ = ["Schedule", "backoff", "format_duration", "monitor", "parse_duration",
           "run_line", "stop_on_signals"]

Log = Callable[[str], None]
#: Work done with the run's store after each completed run (e.g. RFC 3161 stamping); returns a
#: line for the log, or None.
AfterRun = Callable[[Store], str | None]
#: One campaign: `services.campaign.run`, or a stand-in with the same signature (tests).
Job = Callable[
    [Sequence[Target], Store, CampaignOptions, Progress | None], Awaitable[CampaignResult]
]

#: After a run that raised, wait at least this long, doubling with each failure in a row up to
#: BACKOFF_MAX: a fault that repeats (a full disk) must not spin or flood the journal.
BACKOFF_FIRST = 60.0
BACKOFF_MAX = 3600.0
_MAX_MESSAGE = 300


def print_to_stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# --- schedule ----------------------------------------------------------------------------------

_NUMBER = r"(\d+(?:\.\d+)?)"
_DURATION = re.compile(rf"(?:{_NUMBER}d)?(?:{_NUMBER}h)?(?:{_NUMBER}m)?(?:{_NUMBER}s)?")
_UNITS = (("d", 86400), ("h", 3600), ("m", 60), ("s", 1))


def parse_duration(text: str) -> float:
    """Seconds in a duration such as "90s", "15m", "1h", "1h30m" or "1.5h" (units d, h, m, s,
    largest first). A bare number is refused: "15" could mean seconds or minutes."""
    spec = text.strip().lower()
    match = _DURATION.fullmatch(spec)
    if not spec or match is None:
        raise ConfigError(
            f"invalid duration {text!r}: write a number with a unit (s, m, h, d), "
            "e.g. 90s, 15m, 1h30m"
        )
    return sum(float(value) * size for value, (_, size) in zip(match.groups(), _UNITS,
                                                                strict=True) if value)


def format_duration(seconds: float) -> str:
    """The short form parse_duration reads: 900 -> "15m", 5400 -> "1h30m", 2.5 -> "2.5s"."""
    if seconds < 60 or seconds != int(seconds):
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in _UNITS:
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts)


@dataclass(frozen=True)
class Schedule:
    """When to run: every `every` seconds (start to start), each wait moved by a uniform
    random amount in [-jitter, +jitter], at most `max_runs` runs (None: until stopped)."""

    every: float
    jitter: float = 0.0
    max_runs: int | None = None

    def __post_init__(self) -> None:
        if not (math.isfinite(self.every) and self.every > 0):
            raise ConfigError("the interval must be a positive duration")
        if not (math.isfinite(self.jitter) and self.jitter >= 0):
            raise ConfigError("the jitter must be zero or a positive duration")
        if self.max_runs is not None and self.max_runs < 1:
            raise ConfigError("max runs must be at least 1")

    def wait(self, elapsed: float, rng: random.Random) -> float:
        """Seconds to wait after a run that took `elapsed`: never negative (a run longer than
        the interval is followed by the next one at once)."""
        shift = rng.uniform(-self.jitter, self.jitter) if self.jitter else 0.0
        return max(0.0, self.every - elapsed + shift)


def backoff(failures: int) -> float:
    """The least wait after `failures` runs in a row that raised."""
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** max(0, failures - 1))


# --- the loop -----------------------------------------------------------------------------------


def _stamp() -> str:
    return format_utc(datetime.now(UTC), SECONDS_FORMAT)


def _one_line(text: str) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= _MAX_MESSAGE else flat[: _MAX_MESSAGE - 3] + "..."


def run_line(result: CampaignResult, elapsed: float) -> str:
    """The log line of one finished run (see the module docstring)."""
    counts = {BLOCKED: 0, DOWN: 0, INSUFFICIENT: 0}
    for r in result.results:
        if r.verdict.verdict in counts:
            counts[r.verdict.verdict] += 1
    line = (
        f"{_stamp()} run {result.run_id}: {counted(len(result.results), 'target')}, "
        f"network {result.network}, {counts[BLOCKED]} blocked, {counts[DOWN]} down, "
        f"{counts[INSUFFICIENT]} insufficient, {elapsed:.1f} s"
    )
    notes = []
    if result.status != "finished":
        notes.append(result.status)
    if result.errors:
        notes.append(f"{counted(len(result.errors), 'internal error')}, first: {result.errors[0]}")
    if result.control not in ("helper", "none"):
        notes.append(f"control: {result.control}")
    return line + (f" ({_one_line('; '.join(notes))})" if notes else "")


def _run_once(
    targets: Sequence[Target],
    db_path: Path,
    options: CampaignOptions,
    job: Job,
    stop: threading.Event,
    log: Log,
    after_run: AfterRun | None = None,
) -> tuple[CampaignResult | None, int]:
    """One campaign with its own Store: (its result or None if stopped, measurements stored)."""
    stored = 0

    def count(_: Measurement) -> None:
        nonlocal stored
        stored += 1

    def ended(runs: list[int]) -> None:
        log(f"{_stamp()} marked run {', '.join(map(str, runs))} interrupted: left running by "
            "a process that ended; judged and signed")

    with recovery.open_for_writing(db_path, options.fingerprints, ended) as store:
        result = asyncio.run(until_stopped(job(targets, store, options, count), stop))
        if result is not None and after_run is not None:
            try:
                line = after_run(store)
            except Exception as exc:  # optional work must not cost the run
                line = f"after the run: {type(exc).__name__}: {_one_line(str(exc))}"
            if line:
                log(f"{_stamp()} {line}")
    return result, stored


def monitor(
    targets: Sequence[Target],
    db_path: Path,
    options: CampaignOptions,
    schedule: Schedule,
    log: Log = print_to_stderr,
    stop: threading.Event | None = None,
    sleep: Callable[[float], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
    rng: random.Random | None = None,
    job: Job = campaign.run,
    after_run: AfterRun | None = None,
) -> int:
    """Run campaigns over `targets` into `db_path` on `schedule` until `stop` is set or
    `schedule.max_runs` runs were tried. Returns the number of runs that completed.

    `sleep` waits between runs (default: `stop.wait`, which a stop cuts short), `clock` is
    monotonic seconds, `rng` draws the jitter, `job` runs one campaign: seams for tests.
    `after_run` is called with the store after each completed run.
    """
    stop = threading.Event() if stop is None else stop
    pause = sleep or stop.wait
    rng = rng or random.Random()
    jitter = f" +-{format_duration(schedule.jitter)}" if schedule.jitter else ""
    every = format_duration(schedule.every)
    log(f"{_stamp()} monitoring {counted(len(targets), 'target')} every {every}{jitter} into "
        f"{db_path}")
    done = tried = failures = 0
    try:
        while not stop.is_set():
            tried += 1
            started = clock()
            try:
                result, stored = _run_once(targets, db_path, options, job, stop, log,
                                           after_run)
            except Exception as exc:  # one bad run must not end months of monitoring
                failures += 1
                wait = max(schedule.wait(clock() - started, rng), backoff(failures))
                log(f"{_stamp()} run failed ({failures} in a row): {type(exc).__name__}: "
                    f"{_one_line(str(exc))}; next try in {wait:.0f} s")
            else:
                failures = 0
                elapsed = clock() - started
                if result is None:
                    log(f"{_stamp()} run interrupted by stop after {elapsed:.1f} s: "
                        f"{stored} finished measurements are stored")
                    break
                done += 1
                log(run_line(result, elapsed))
                wait = schedule.wait(elapsed, rng)
            if schedule.max_runs is not None and tried >= schedule.max_runs:
                break
            if not stop.is_set():
                pause(wait)
    except KeyboardInterrupt:  # no handler installed, or a second signal: stop now
        log(f"{_stamp()} interrupted: every finished measurement is stored")
    log(f"{_stamp()} monitor stopped after {done} run{'' if done == 1 else 's'}")
    return done
