"""The campaign job: check the network, measure every target, store, analyse, summarise.

This is the library function behind `netvigil run` (and, repeated, behind monitoring). It wires
the layers together: probes measure, the store keeps every raw record the moment it exists, the
analysis turns observations into verdicts, and the run ends with a network verdict that tells a
dead local link from a shutdown.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from analysis.classify import classify
from analysis.context import Context, reference_goodput
from analysis.run_network import decide
from core.netstate import NetState
from core.observations import Measurement
from core.target import Target
from core.times import utc_now
from core.verdicts import LOCAL_FAILURE, NETWORK_OK, UPSTREAM_UNREACHABLE, Verdict
from probes import network_check
from probes.clock_state import clock_state
from probes.config import ProbeConfig
from probes.helper_client import fetch_controls
from probes.runner import Limits, run_campaign
from results.store import Store
from services import process_owner
from services.vantage import NetworkOptions, vantage_async

Progress = Callable[[Measurement], None]


@dataclass
class CampaignOptions:
    """What a campaign measures, how, and how its results are read."""

    config: ProbeConfig = field(default_factory=ProbeConfig)
    limits: Limits = field(default_factory=Limits)
    public_ranges: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    fingerprints: Any = None
    # Look at the probe's own network before and after; off only in tests on loopback.
    check_network: bool = True
    helper_url: str | None = None
    helper_token: str | None = None
    # How the run names its network (ISP, ASN, country); None records none of it.
    network: NetworkOptions | None = None


@dataclass
class MeasuredTarget:
    """One row of a campaign's result: the stored id, the measurement and its verdict."""

    id: int
    measurement: Measurement
    verdict: Verdict


@dataclass
class CampaignResult:
    """What a finished (or interrupted) campaign produced."""

    run_id: int
    started: str
    finished: str
    network: str
    network_detail: str
    status: str
    results: list[MeasuredTarget]
    errors: list[str]
    control: str = "none"  # "helper", "none", or what went wrong ("helper unreachable: ...")

    def to_dict(self) -> dict[str, Any]:
        """The `--json` shape of DESIGN.md / the CLI contract."""
        return {
            "run": {
                "id": self.run_id,
                "started": self.started,
                "finished": self.finished,
                "network": self.network,
                "network_detail": self.network_detail,
                "status": self.status,
                "measurements": len(self.results),
                "control": self.control,
                "errors": self.errors,
            },
            "measurements": [
                {
                    "id": r.id,
                    "target": r.measurement.target.url,
                    "platform": r.measurement.target.platform,
                    "started": r.measurement.started,
                    **r.verdict.to_dict(),
                }
                for r in self.results
            ],
        }


def _config_record(options: CampaignOptions) -> dict[str, Any]:
    data = asdict(options.config)
    data["limits"] = asdict(options.limits)
    data["public_ranges"] = [str(n) for n in options.public_ranges]
    return data


async def _network(options: CampaignOptions) -> NetState | None:
    if not options.check_network:
        return None
    return await network_check.check_network()


def analyse(
    measurements: Sequence[Measurement],
    controls: dict[str, Measurement],
    network: str,
    options: CampaignOptions,
) -> list[Verdict]:
    """Verdicts for a run's measurements, with the run-wide context (goodput reference)."""
    ctx = Context(
        network=network,
        public_ranges=options.public_ranges,
        fingerprints=options.fingerprints,
        reference_goodput=reference_goodput(measurements),
    )
    return [classify(m, controls.get(m.target.url), ctx) for m in measurements]


async def run(
    targets: Sequence[Target],
    store: Store,
    options: CampaignOptions | None = None,
    on_progress: Progress | None = None,
) -> CampaignResult:
    """Run one campaign over `targets`, storing everything in `store`.

    Raw measurements are stored as they finish. On cancellation (Ctrl-C) the run is marked
    `interrupted`, what finished is analysed and kept, and CancelledError propagates.
    """
    options = options or CampaignOptions()
    before = await _network(options)
    # The helper is asked for our address like any connect: a shutdown must not stall here.
    where = await vantage_async(options.network, options.helper_url, options.config.timeouts.tcp)
    # Who runs it: a later command ends the run on our behalf only once this process is gone.
    run_id = store.begin_run(where, _config_record(options), owner=process_owner.identity())
    # Timestamps are the heart of a case: how this machine's clock was kept goes in the chain.
    store.record_clock(run_id, await asyncio.to_thread(clock_state))
    started = utc_now()
    done: list[tuple[int, Measurement]] = []
    errors: list[str] = []

    def keep(m: Measurement) -> None:
        done.append((store.add_measurement(run_id, m), m))
        if on_progress is not None:
            on_progress(m)

    def failed(target: Target, exc: Exception) -> None:
        errors.append(f"{target.url}: internal error {type(exc).__name__}: {exc}")

    status = "finished"
    try:
        await run_campaign(targets, options.config, keep, options.limits, on_error=failed)
    except (asyncio.CancelledError, KeyboardInterrupt):
        status = "interrupted"
        raise
    finally:
        result = await _conclude(store, run_id, started, done, errors, before, options, status)
    return result


async def _conclude(
    store: Store,
    run_id: int,
    started: str,
    done: list[tuple[int, Measurement]],
    errors: list[str],
    before: NetState | None,
    options: CampaignOptions,
    status: str,
) -> CampaignResult:
    measurements = [m for _, m in done]
    controls, control_note, control_ok = await _controls(measurements, options, status)
    network = decide(before, None, measurements, control_ok)
    after = None
    if network != NETWORK_OK and options.check_network and status == "finished":
        # Everything failed: look again, the link may have gone down during the run.
        after = await network_check.check_network()
        network = decide(before, after, measurements, control_ok)
    if not options.check_network and not measurements:
        network = LOCAL_FAILURE
    latest = after or before
    detail = latest.describe() if latest else "network checks were off"
    verdicts = analyse(measurements, controls, network, options)
    results = []
    for (mid, m), verdict in zip(done, verdicts, strict=True):
        control = controls.get(m.target.url)
        if control is not None:
            store.add_control(run_id, mid, control)
        store.set_verdict(mid, verdict.to_dict())
        results.append(MeasuredTarget(mid, m, verdict))
    finished = utc_now()
    summary = {
        "network_detail": detail,
        "netstate_before": before.public_summary() if before else None,
        "netstate_after": after.public_summary() if after else None,
        "counts": verdict_counts(verdicts),
        "errors": errors,
        "control": control_note,
    }
    store.finish_run(run_id, network, summary, status=status)
    return CampaignResult(
        run_id, started, finished, network, detail, status, results, errors, control_note
    )


async def _controls(
    measurements: list[Measurement], options: CampaignOptions, status: str
) -> tuple[dict[str, Measurement], str, bool | None]:
    """Ask the test helper for its view of every target: (controls, a note, reachable?)."""
    if not options.helper_url or not measurements or status != "finished":
        return {}, "none", None
    result = await asyncio.to_thread(
        fetch_controls, options.helper_url, measurements, token=options.helper_token,
        # Reaching the helper is a TCP connect like any other: in a shutdown it must not cost
        # more than the probe's own connects did.
        connect_timeout=options.config.timeouts.tcp,
    )
    if result.error:
        return result.controls, result.error, bool(result.controls)
    return result.controls, "helper", True


def verdict_counts(verdicts: Sequence[Verdict]) -> dict[str, int]:
    """How many verdicts of each kind (the run summary's `counts`)."""
    counts: dict[str, int] = {}
    for v in verdicts:
        counts[v.verdict] = counts.get(v.verdict, 0) + 1
    return counts


def explain_network(network: str) -> str:
    """The run's network state in plain words, for the volunteer."""
    return {
        NETWORK_OK: "your network worked during this run",
        LOCAL_FAILURE: (
            "your own connection was down (no link or no route): these results say nothing "
            "about blocking, and they are kept as a gap, not as an outage"
        ),
        UPSTREAM_UNREACHABLE: (
            "your link and router were up but nothing beyond them answered: this looks like an "
            "upstream outage or shutdown, not blocking of particular sites"
        ),
    }.get(network, network)

