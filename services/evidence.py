"""Evidence for lawyers: what the `netvigil evidence ...` commands call, and the clock's state.

- `verify_database`: every hash, link, signature and derived row of a database, verdicts
  included (classified again exactly as `netvigil analyze` would); logged in the custody log.
- `export_evidence` / `check_bundle`: a BagIt zip of some runs, and its standalone check.
- `current_key`, `rotate_key`, `custody_log`: the probe's signing key and the custody log.
- `clock_state`: where this computer's time comes from and how far off it may be, read from the
  local time daemon or the kernel; it never sends a packet (no NTP query).
"""

from __future__ import annotations

import ctypes
import ipaddress
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from probes.observations import utc_now
from results import custody, signing
from results.canonical import sha256_hex
from results.evidence import Report, export_bundle, verify, verify_bundle
from results.store import Store
from results.verify import Reclassify
from services.campaign import CampaignOptions, analyse

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Runner = Callable[[Sequence[str]], str | None]

UNKNOWN_SOURCE = "system, unsynchronised?"


def verify_database(
    store: Store,
    reclassify: bool = True,
    public_ranges: Sequence[Network] = (),
    fingerprints: Any = None,
) -> Report:
    """Check the whole database (`results.verify.verify`) and log the check in the custody log.

    With `reclassify`, verdicts are judged again with these ranges and fingerprints: give the
    ones the runs were judged with, or correct verdicts will show as differences.
    """
    judge = reclassifier(store, public_ranges, fingerprints) if reclassify else None
    report = verify(store, judge)
    custody.log(store, "verify", {
        "scope": "database", "ok": report.ok, "problems": len(report.problems),
        "reclassified": reclassify,
    }, {"chain_head": store.head()})
    return report


def reclassifier(
    store: Store, public_ranges: Sequence[Network] = (), fingerprints: Any = None
) -> Reclassify:
    """Fresh verdicts for one run, as `services.reanalyse` computes them (run context and the
    stored controls included), without storing anything."""
    options = CampaignOptions(public_ranges=tuple(public_ranges), fingerprints=fingerprints)

    def fresh(run_id: int) -> dict[int, dict[str, Any]]:
        run = store.run(run_id) or {}
        rows = list(store.iter_measurements(run_id))
        controls = {}
        for mid, m, _ in rows:
            control = store.load_control(mid)
            if control is not None:
                controls[m.target.url] = control
        verdicts = analyse([m for _, m, _ in rows], controls, run.get("network") or "ok", options)
        return {mid: v.to_dict() for (mid, _, _), v in zip(rows, verdicts, strict=True)}

    return fresh


def export_evidence(
    store: Store,
    out_zip: str | Path,
    run_ids: Sequence[int] | None = None,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    measurement_ids: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Write an evidence bundle (see `results.evidence.export_bundle`); returns its summary."""
    return export_bundle(store, out_zip, run_ids=run_ids, since=since, until=until,
                         measurement_ids=measurement_ids)


def check_bundle(path: str | Path, store: Store | None = None) -> Report:
    """Check a bundle without its database; with `store`, log the check in its custody log."""
    report = verify_bundle(path)
    if store is not None:
        custody.log(store, "verify", {
            "scope": "bundle", "file": Path(path).name, "ok": report.ok,
            "problems": len(report.problems),
        }, {"bundle": sha256_hex(Path(path).read_bytes())})
    return report


def current_key(store: Store) -> dict[str, str]:
    """The key this probe signs with (made now if there is none yet): its id, to publish so
    that others can tell the probe's signatures from a forger's, and its public key."""
    signer = store.keys.current()
    return {"key_id": signer.key_id, "public_key": signer.public_b64, "created": signer.created,
            "algorithm": signing.ALGORITHM}


def rotate_key(store: Store) -> dict[str, str | None]:
    """A new signing key; the old one is retired and stays in the database to verify with."""
    return signing.rotate_key(store)


def custody_log(store: Store) -> list[dict[str, Any]]:
    """The custody log, oldest first, with details and hashes as dicts."""
    entries = custody.entries(store.db.conn)
    for entry in entries:
        for name in ("details", "hashes"):
            entry[name] = json.loads(entry[name])
    return entries


# --- the clock -----------------------------------------------------------------------------------


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
