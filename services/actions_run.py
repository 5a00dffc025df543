"""The measuring commands, as one call each: `netvigil run` and `netvigil monitor`.

Both take their `Settings` (targets, campaign options, schedule), ask for the risk notice to be
accepted (`services.consent`) before any traffic, and measure. The caller supplies the seams to
people: how to ask (`consent.Ask`) and how to show progress.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from contextlib import AbstractContextManager

from core.errors import ConfigError, Terminated
from core.observations import Measurement
from services import after_run, campaign, consent, monitor, recovery, stopping
from services.settings import Settings

#: A progress display for `total` targets: entered around the campaign, it yields a function
#: called with each finished target's host name.
ProgressBar = Callable[[int], AbstractContextManager[Callable[[str], None]]]


def _accept(settings: Settings, ask: consent.Ask) -> None:
    consent.ensure(settings.accept_risks, settings.env.accept_risks, ask)


def run(settings: Settings, ask: consent.Ask, progress: ProgressBar) -> campaign.CampaignResult:
    """One campaign over `settings.targets` into `settings.db`. Ctrl-C (KeyboardInterrupt) and
    SIGTERM (`Terminated`) stop it the same way: the run is marked interrupted, every finished
    measurement is judged and kept, and the run is signed."""
    options = settings.campaign or campaign.CampaignOptions()
    _accept(settings, ask)
    term = threading.Event()
    # SIGTERM only: Ctrl-C is asyncio.run's own (it cancels the campaign, then raises
    # KeyboardInterrupt), and it stays so.
    restore = stopping.stop_on_signals(term, (signal.SIGTERM,))
    try:
        with recovery.open_for_writing(settings.db, options.fingerprints) as store, \
                progress(len(settings.targets)) as advance:

            def done(m: Measurement) -> None:
                advance(m.target.hostname)

            work = campaign.run(list(settings.targets), store, options, done)
            result = asyncio.run(stopping.until_stopped(work, term))
    finally:
        restore()
    if result is None:
        raise Terminated
    return result


def watch(settings: Settings, ask: consent.Ask, log: monitor.Log = monitor.print_to_stderr
          ) -> int:
    """Campaigns on `settings.schedule` until SIGTERM/SIGINT or the last run; after each run,
    the steps of `services.after_run`. Returns the number of completed runs."""
    if settings.schedule is None:
        raise ConfigError("monitor: give --every DURATION", "--every")
    options = settings.campaign or campaign.CampaignOptions()
    _accept(settings, ask)
    stop = threading.Event()
    restore = stopping.stop_on_signals(stop)
    try:
        return monitor.monitor(list(settings.targets), settings.db, options, settings.schedule,
                               log=log, stop=stop, after_run=after_run.pipeline(settings))
    finally:
        restore()
