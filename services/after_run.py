"""What the monitor does with the store after each completed run, as its settings ask.

1. Stamp: send the run heads not yet stamped to the RFC 3161 authority (`--tsa`). First, so
   that the bundle sent next carries the tokens.
2. Submit: send ended runs to the collector (`--collector` or $NETVIGIL_COLLECTOR, with
   $NETVIGIL_COLLECTOR_TOKEN).

Each step returns the line the monitor logs (`presentation.views`); `services.monitor` keeps a
failing step from costing the run.
"""

from __future__ import annotations

from collections.abc import Callable

from presentation.views import stamp_line, submit_line
from results.store import Store
from services.monitor import AfterRun
from services.settings import Settings

Step = Callable[[Store], str]


def steps(settings: Settings) -> list[Step]:
    """The steps `settings` asks for, in the order they run."""
    found: list[Step] = []
    tsa = settings.tsa
    if tsa is not None:
        from services.timestamps import stamp_pending

        found.append(lambda store: stamp_line(
            stamp_pending(store, tsa.url, timeout=tsa.timeout, roots_pem=tsa.roots_pem)))
    collector = settings.collector
    if collector:
        from services.submit import submit

        token = settings.env.collector_token
        found.append(lambda store: submit_line(submit(
            store, collector, token=token, public_ranges=settings.public_ranges,
            fingerprints=settings.fingerprints)))
    return found


def pipeline(settings: Settings) -> AfterRun | None:
    """One `after_run` for `services.monitor.monitor` doing every step; None when there is none."""
    chosen = steps(settings)
    if not chosen:
        return None
    return lambda store: "; ".join(step(store) for step in chosen) or None
