"""Stopping a campaign from a signal: SIGTERM (systemd, `kill`, a shutdown) as Ctrl-C.

`stop_on_signals` turns the signals into a `threading.Event`; `until_stopped` runs a campaign
and cancels it when the event is set. The campaign then does what it does on Ctrl-C: it marks
its run `interrupted`, judges and keeps every finished measurement, and signs the run. Both
`netvigil run` (SIGTERM) and `netvigil monitor` (SIGTERM and SIGINT) stop this way.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable, Sequence
from types import FrameType
from typing import TypeVar

T = TypeVar("T")

#: How often a running campaign looks at `stop` (cheap: a flag read).
_POLL = 0.25


def stop_on_signals(
    stop: threading.Event, signals: Sequence[signal.Signals] = (signal.SIGTERM, signal.SIGINT)
) -> Callable[[], None]:
    """Make SIGTERM and SIGINT set `stop`; a second signal raises KeyboardInterrupt at once.
    Returns a function that puts the previous handlers back. Call from the main thread."""
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        # Event.set takes a lock that the interrupted main thread may be holding (inside
        # stop.wait): set it from another thread, so the handler never waits for that lock.
        threading.Thread(target=stop.set, name="netvigil-stop", daemon=True).start()

    for sig in signals:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore


async def until_stopped(work: Awaitable[T], stop: threading.Event) -> T | None:
    """Run `work`; when `stop` is set, cancel it (a campaign then marks its run interrupted)
    and return None."""
    task = asyncio.ensure_future(work)
    while not stop.is_set():
        done, _ = await asyncio.wait({task}, timeout=_POLL)
        if done:
            return task.result()
    task.cancel()
    try:
        return await task  # it may have finished before the cancellation landed
    except asyncio.CancelledError:
        return None
