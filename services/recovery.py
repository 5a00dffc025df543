"""Runs a dead process left `running`: end them as the campaign would have, judged and signed.

A run whose process was killed (SIGKILL, a crash, a power cut, a shutdown) has its finished
measurements stored, one transaction each, but no verdicts, no `run_end` record and no
signature: it would be left out of evidence and never submitted. Every command that opens the
database for writing does so through `open_for_writing`, which first ends such runs:

- the run is marked `interrupted`, with `finished` set to the time of its last record;
- its stored measurements are judged with what is stored, as the campaign judges an interrupted
  run: the stored controls (usually none: no control means what the analysis says it means),
  the network state decided from the measurements alone (no network check was stored, so a run
  where nothing answered reads as a local failure: a gap, never an outage), the public ranges
  of the run's own configuration and the caller's fingerprints;
- `Store.finish_run` appends its `run_end` record, signs the chain head and logs custody, as
  a normal end does. The summary says the process ended before the run did, and when the run
  was ended on its behalf.

A run is dead only when its process is gone (`services.process_owner`): its boot id is not this
boot's (an earlier boot, another machine), or no process has its PID, or the process with its
PID started at another time (the PID was reused). A run of a live process, in this process or
another, is never touched. When the process cannot be checked from here (a run recorded before
owners were kept, another PID namespace, no boot id on this system, a process whose start time
is hidden), the run is dead once it has stored nothing for STALE_AFTER: a live campaign stores a
record every time a target finishes, and every step is bounded by a timeout far shorter.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from analysis.run_network import decide
from core.errors import NetvigilError
from core.times import format_utc
from results.store import Store
from services import process_owner
from services.campaign import CampaignOptions, verdict_counts
from services.reanalyse import judge

#: A `running` run that cannot be checked by its process and has stored nothing for this long
#: is dead: far beyond any step's timeout (at most 20 s), with a margin for a slow disk.
STALE_AFTER = 900.0
INTERRUPTED = "the process ended before the run did (killed, crashed or power cut)"

#: Told the ids of the runs just ended.
OnRecovered = Callable[[list[int]], None]


def is_dead(run: dict[str, Any], stale_before: str) -> bool:
    """Whether a `running` run (a `Store.running_runs` row) was left by a dead process;
    `stale_before` is the store time before which a run that cannot be checked is dead."""
    owner = run.get("owner")
    alive = process_owner.is_alive(owner) if isinstance(owner, dict) else None
    if alive is not None:
        return not alive
    return bool(run["last"] < stale_before)  # the store's fixed-width times sort in order


def judging_options(config: Any, fingerprints: Any) -> CampaignOptions:
    """The campaign options the run was judged with, as far as they are stored."""
    ranges = config.get("public_ranges") if isinstance(config, dict) else None
    try:
        public = tuple(ipaddress.ip_network(str(r), strict=False) for r in ranges or ())
    except ValueError:
        public = ()
    return CampaignOptions(public_ranges=public, fingerprints=fingerprints)


def end_run(store: Store, run: dict[str, Any], fingerprints: Any = None,
            now: datetime | None = None) -> None:
    """Judge what a dead run stored and end it `interrupted`, signed (see the module
    docstring). A RecordError when another process ended it first."""
    run_id = int(run["id"])
    stored = [(mid, m) for mid, m, _ in store.iter_measurements(run_id)]
    controls = {mid: c for mid, _ in stored if (c := store.load_control(mid)) is not None}
    # A stored control means the helper answered, as the campaign's `control_ok` did.
    network = decide(None, None, [m for _, m in stored], True if controls else None)
    verdicts = judge(stored, controls.get, network, judging_options(run.get("config"),
                                                                   fingerprints))
    for (mid, _), verdict in zip(stored, verdicts, strict=True):
        store.set_verdict(mid, verdict.to_dict())
    store.finish_run(run_id, network, {
        "network_detail": "no network check was stored: judged from the stored measurements",
        "netstate_before": None,
        "netstate_after": None,
        "counts": verdict_counts(verdicts),
        "errors": [],
        "control": "stored" if controls else "none",
        "interrupted": INTERRUPTED,
        "recovered": format_utc(now or datetime.now(UTC)),
    }, status="interrupted", finished=run["last"])


def recover(store: Store, fingerprints: Any = None, idle_for: float | None = None,
            now: datetime | None = None) -> list[int]:
    """End every run a dead process left `running`; returns their ids, oldest first.

    `idle_for` (default STALE_AFTER) is how long a run that cannot be checked by its process
    must have been silent. A run that cannot be ended (a damaged record, another process
    ending it at the same moment) is left as it is: `netvigil verify` names the damage, and
    the command goes on.
    """
    moment = now or datetime.now(UTC)
    idle = STALE_AFTER if idle_for is None else idle_for
    stale_before = format_utc(moment - timedelta(seconds=idle))
    ended = []
    for run in store.running_runs():
        if not is_dead(run, stale_before):
            continue
        try:
            end_run(store, run, fingerprints, moment)
        except (NetvigilError, KeyError):
            continue
        ended.append(int(run["id"]))
    return ended


@contextmanager
def open_for_writing(path: str | Path, fingerprints: Any = None,
                     on_recovered: OnRecovered | None = None) -> Iterator[Store]:
    """The Store of a command that writes, with the runs dead processes left ended first."""
    with Store(path) as store:
        ended = recover(store, fingerprints)
        if ended and on_recovered is not None:
            on_recovered(ended)
        yield store
