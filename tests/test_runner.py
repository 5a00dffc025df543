"""The campaign runner: concurrency bound, rate limits, errors and cancellation."""

import asyncio
import time

import pytest

from core.errors import ConfigError
from core.observations import Measurement
from core.target import Target
from probes.config import ProbeConfig
from probes.runner import Limits, run_campaign

TARGETS = [Target(f"https://host{i % 5}.example/{i}") for i in range(40)]


def test_concurrency_is_bounded_and_all_finish():
    active = peak = 0
    seen: list[str] = []

    async def fake_measure(target: Target, config: ProbeConfig) -> Measurement:
        nonlocal active, peak
        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return Measurement(target, "t", 0.01)

    n = asyncio.run(run_campaign(TARGETS, ProbeConfig(), lambda m: seen.append(m.target.url),
                                 Limits(concurrency=4, rate=1000, per_host_rate=1000),
                                 measure_fn=fake_measure))
    assert n == 40 and len(seen) == 40 and len(set(seen)) == 40
    assert peak == 4


def test_per_host_rate_limits_starts():
    starts: list[float] = []

    async def fake_measure(target: Target, config: ProbeConfig) -> Measurement:
        starts.append(time.monotonic())
        return Measurement(target, "t", 0)

    same_host = [Target(f"https://one.example/{i}") for i in range(6)]
    t0 = time.monotonic()
    asyncio.run(run_campaign(same_host, ProbeConfig(), lambda m: None,
                             Limits(concurrency=6, rate=1000, per_host_rate=3),
                             measure_fn=fake_measure))
    # 3 starts per second: the 4th..6th start wait for the next period.
    assert max(starts) - t0 >= 0.9


def test_a_crashing_probe_does_not_end_the_campaign():
    errors: list[str] = []
    seen: list[str] = []

    async def fake_measure(target: Target, config: ProbeConfig) -> Measurement:
        if target.url.endswith("/3"):
            raise RuntimeError("bug")
        return Measurement(target, "t", 0)

    n = asyncio.run(run_campaign(TARGETS[:10], ProbeConfig(), lambda m: seen.append(m.target.url),
                                 Limits(rate=1000, per_host_rate=1000), measure_fn=fake_measure,
                                 on_error=lambda t, e: errors.append(t.url)))
    assert n == 9 and errors == [TARGETS[3].url]


def test_cancellation_keeps_finished_results():
    seen: list[str] = []

    async def fake_measure(target: Target, config: ProbeConfig) -> Measurement:
        if target.url.endswith(("/0", "/1")):
            return Measurement(target, "t", 0)
        await asyncio.sleep(30)
        raise AssertionError("not reached")

    async def main() -> None:
        task = asyncio.create_task(run_campaign(
            TARGETS[:8], ProbeConfig(), lambda m: seen.append(m.target.url),
            Limits(rate=1000, per_host_rate=1000), measure_fn=fake_measure))
        await asyncio.sleep(0.2)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert sorted(seen) == sorted([TARGETS[0].url, TARGETS[1].url])


def test_limits_validate():
    with pytest.raises(ValueError):
        Limits(concurrency=0)
    with pytest.raises(ValueError):
        Limits(rate=0)
    with pytest.raises(ConfigError) as info:
        Limits(concurrency=0)
    assert info.value.option == "--concurrency" and info.value.exit_code == 2
    with pytest.raises(ConfigError, match="positive") as info:
        Limits(per_host_rate=-1)
    assert info.value.option == "--rate"
