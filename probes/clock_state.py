"""Where this computer's time comes from and how far off it may be, recorded with each run.

Timestamps are the heart of a case, so each run records its clock's state: read from the local
time daemon (chrony, then systemd's timedatectl) or, failing those, the kernel's read-only
adjtimex state. Nothing here sends a packet: no NTP query, no time server's address stored.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from core.times import utc_now

UNKNOWN_SOURCE = "system, unsynchronised?"
Runner = Callable[[Sequence[str]], str | None]


def clock_state(run: Runner | None = None, kernel: Callable[[], dict[str, Any] | None] | None
                = None) -> dict[str, Any]:
    """Where this computer's time comes from and how far off it may be, for `Store.record_clock`.

    Asks, in order, chrony (`chronyc tracking`, over its local socket), systemd
    (`timedatectl show`) and the kernel (adjtimex, read only); the first that answers gives
    `source`, `synchronised` (True, False or None: unknown) and, where known, `offset_s` (the
    system clock minus the reference time) and `max_error_s`. Without any of them the source
    is "system, unsynchronised?". Never the time server's name or address: it could point at
    the probe. `run` and `kernel` replace the command runner and the kernel read in tests.
    """
    run = run or _run
    kernel_state = (kernel or kernel_clock)()
    state = (parse_chrony(run(["chronyc", "-n", "-c", "tracking"]))
             or parse_timedatectl(run(["timedatectl", "show"]), kernel_state)
             or _from_kernel(kernel_state)
             or {"source": UNKNOWN_SOURCE, "synchronised": None, "offset_s": None,
                 "max_error_s": None})
    return {**state, "checked": utc_now()}


def parse_chrony(csv: str | None) -> dict[str, Any] | None:
    """`chronyc -c tracking` output: reference, stratum, ..., system time, ..., leap status."""
    fields = (csv or "").strip().split(",")
    if len(fields) < 14:
        return None
    try:
        correction = float(fields[4])  # > 0: the system clock is slow of NTP time
        root_delay, root_dispersion = float(fields[10]), float(fields[11])
        stratum = int(fields[2])
    except ValueError:
        return None
    synced = fields[13].strip() != "Not synchronised" and stratum > 0
    return {
        "source": "chrony", "synchronised": synced, "stratum": stratum,
        "offset_s": -correction if synced else None,
        # chrony's documented bound on the clock's error.
        "max_error_s": abs(correction) + root_dispersion + root_delay / 2 if synced else None,
    }


def parse_timedatectl(text: str | None, kernel_state: Mapping[str, Any] | None
                      ) -> dict[str, Any] | None:
    """`timedatectl show` output (NTP=yes, NTPSynchronized=yes, ...), with the kernel's error."""
    values = dict(line.split("=", 1) for line in (text or "").splitlines() if "=" in line)
    if "NTPSynchronized" not in values:
        return None
    synced = values["NTPSynchronized"] == "yes"
    return {
        "source": "systemd-timesyncd" if values.get("NTP") == "yes" else "system",
        "synchronised": synced, "offset_s": None,
        "max_error_s": (kernel_state or {}).get("max_error_s") if synced else None,
    }


def _from_kernel(kernel_state: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if kernel_state is None:
        return None
    return {"source": "kernel", "offset_s": None, **kernel_state}


class _Timex(ctypes.Structure):
    # The head of Linux's struct timex; the padding covers the rest on every architecture.
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("rest", ctypes.c_char * 512),
    ]


_TIME_ERROR, _STA_UNSYNC = 5, 0x0040


def kernel_clock() -> dict[str, Any] | None:
    """The kernel's NTP state (adjtimex with modes 0 only reads it); None where unavailable."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        timex = _Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    synced = state != _TIME_ERROR and not timex.status & _STA_UNSYNC
    return {"synchronised": bool(synced),
            "max_error_s": timex.maxerror / 1e6 if synced else None}


def _run(argv: Sequence[str]) -> str | None:
    """A local command's output; None if it is missing, fails or takes over two seconds."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(list(argv), capture_output=True, text=True, timeout=2.0,
                              check=False, env={**os.environ, "LC_ALL": "C"})
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None
