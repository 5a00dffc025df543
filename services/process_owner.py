"""Which process runs a run, and whether that process is still alive.

A campaign records its process's identity with the run (`identity`, kept in the runs row by
`Store.begin_run`); a later command asks `is_alive` before ending, on its behalf, a run left
`running`. A PID alone is not enough: PIDs are reused, and a database may come from another
machine or an earlier boot. So the identity is

    pid      the process id
    boot     the kernel's boot id (Linux: /proc/sys/kernel/random/boot_id), new at every boot
             and different on every machine
    start    the process's start time in clock ticks since boot (/proc/PID/stat, field 22):
             a reused PID belongs to a process that started later
    pid_ns   the PID namespace (/proc/self/ns/pid): a PID means something only inside its own

`is_alive` answers True (alive), False (gone) or None (cannot tell: no boot id on this system,
another PID namespace, a process whose start time cannot be read). The caller then falls back to
how long the run has been silent (services.recovery).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_PROC = Path("/proc")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii").strip() or None
    except (OSError, UnicodeDecodeError):
        return None


def boot_id(proc: Path = _PROC) -> str | None:
    """This boot's id, or None where the kernel gives none (not Linux, /proc not mounted)."""
    return _read(proc / "sys" / "kernel" / "random" / "boot_id")


def start_time(pid: int, proc: Path = _PROC) -> int | None:
    """The start time of process `pid` (clock ticks since boot); None if it cannot be read
    (no such process, another user's process hidden by hidepid or ProtectProc, not Linux)."""
    text = _read(proc / str(pid) / "stat")
    if text is None:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or ')': split after
    # the last ')'. What follows starts at field 3, so field 22 is index 19.
    fields = text.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_namespace(proc: Path = _PROC) -> str | None:
    """This process's PID namespace ("pid:[4026531836]"), or None where it cannot be read."""
    try:
        return os.readlink(proc / "self" / "ns" / "pid")
    except OSError:
        return None


def identity(proc: Path = _PROC) -> dict[str, Any]:
    """This process, as `is_alive` will later recognise it."""
    pid = os.getpid()
    return {"pid": pid, "boot": boot_id(proc), "start": start_time(pid, proc),
            "pid_ns": pid_namespace(proc)}


def _exists(pid: int) -> bool:
    """Whether a process with this PID exists here (it may belong to another user)."""
    try:
        os.kill(pid, 0)  # signal 0: only the existence and permission checks
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def is_alive(owner: Mapping[str, Any], proc: Path = _PROC) -> bool | None:
    """Whether the process `owner` (an `identity`) still runs: True, False, or None when this
    process cannot tell (see the module docstring)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return None
    boot, here = owner.get("boot"), boot_id(proc)
    if boot is not None and boot != here:
        return False  # an earlier boot, or another machine: its processes are all gone
    if boot is None or here is None or owner.get("pid_ns") != pid_namespace(proc):
        return None  # the PID cannot be checked from here
    if not _exists(pid):
        return False
    start = start_time(pid, proc)
    if start is None or owner.get("start") is None:
        return None  # a process with that PID runs, but it may not be the run's
    return bool(start == owner["start"])
