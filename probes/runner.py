"""The campaign runner: measure many targets concurrently, politely, and stop cleanly.

Concurrency is bounded by a semaphore (`concurrency`), the start rate by a global
`asyncio-throttle` limiter, and the rate per host by one limiter per hostname (a platform's
endpoints often share a host; hammering it would look like an attack and skew timings).

Each finished measurement is handed to `on_result` at once, so a caller that stores it keeps
every finished measurement when the campaign is interrupted (Ctrl-C cancels what is in flight;
what finished is already out of our hands).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from asyncio_throttle import Throttler

from core.errors import ConfigError
from core.observations import Measurement
from core.target import Target
from probes.config import ProbeConfig
from probes.measure import measure

Measure = Callable[[Target, ProbeConfig], Awaitable[Measurement]]


@dataclass(frozen=True)
class Limits:
    """How hard a campaign may push: parallel targets, target starts per second overall and
    per host."""

    concurrency: int = 16
    rate: float = 50.0
    per_host_rate: float = 4.0

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ConfigError("concurrency must be at least 1", "--concurrency")
        if self.rate <= 0 or self.per_host_rate <= 0:
            raise ConfigError("rates must be positive", "--rate")


def _throttler(rate: float) -> Throttler:
    # asyncio-throttle counts whole tasks per period: express fractional rates over a longer one.
    if rate >= 1:
        return Throttler(rate_limit=int(rate), period=1.0)
    return Throttler(rate_limit=1, period=1.0 / rate)


async def run_campaign(
    targets: Sequence[Target],
    config: ProbeConfig,
    on_result: Callable[[Measurement], None],
    limits: Limits | None = None,
    measure_fn: Measure = measure,
    on_error: Callable[[Target, Exception], None] | None = None,
) -> int:
    """Measure every target; call `on_result` for each as it finishes. Returns how many finished.

    An unexpected exception from one target (a bug, not a network failure: those are data) goes
    to `on_error` when given, and the campaign goes on. Cancellation (Ctrl-C) propagates after
    in-flight work is cancelled; `on_result` has already seen every measurement that finished.
    """
    limits = limits or Limits()
    # getaddrinfo runs in the default executor; asyncio's default pool (cores + 4 threads) would
    # make lookups queue behind each other and time out while waiting for a thread.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=min(64, 2 * limits.concurrency + 4),
                           thread_name_prefix="netvigil")
    )
    semaphore = asyncio.Semaphore(limits.concurrency)
    overall = _throttler(limits.rate)
    per_host: dict[str, Throttler] = {}
    finished = 0

    async def one(target: Target) -> None:
        nonlocal finished
        host = per_host.setdefault(target.hostname, _throttler(limits.per_host_rate))
        async with semaphore:
            async with overall, host:
                pass  # the limiters gate the start; the measurement runs unthrottled
            try:
                result = await measure_fn(target, config)
            except Exception as exc:  # a bug in one probe must not end the whole campaign
                if on_error is None:
                    raise
                on_error(target, exc)
                return
        on_result(result)
        finished += 1

    tasks = [asyncio.create_task(one(t)) for t in targets]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return finished
