"""The run-wide facts a verdict depends on, besides the measurement and its control.

`Context` is passed to `classify`: the run's network state, address ranges the operator declared
public (a lab), the fingerprint lists, the run's reference goodput and an optional address-to-ASN
lookup. `reference_goodput` computes the goodput reference from a run's measurements.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from analysis.fingerprints import Fingerprints
from analysis.throttle import MIN_REFERENCE_SAMPLES, measurable
from core.addresses import Network
from core.observations import HTTPRequest, Measurement
from core.verdicts import NETWORK_OK


@dataclass(frozen=True)
class Context:
    """What the analysis knows about the run as a whole."""

    network: str = NETWORK_OK  # ok | local_failure | upstream_unreachable
    public_ranges: tuple[Network, ...] = ()  # count as public even if special-purpose (labs)
    fingerprints: Fingerprints | None = None
    reference_goodput: float | None = None  # median goodput (bytes/s) of comparable transfers
    asn_of: Callable[[str], int | None] | None = None  # optional address -> ASN lookup


def reference_goodput(measurements: Iterable[Measurement]) -> float | None:
    """The median goodput (bytes/s) of the run's comparable transfers, or None.

    Comparable: an HTTP hop that completed (or stopped at the body cap) and moved enough data, or
    lasted long enough, to measure a rate (`analysis.throttle.measurable`). Fewer than
    MIN_REFERENCE_SAMPLES such transfers give no reference: a median of one or two targets
    (perhaps themselves throttled) says nothing about the network.
    """
    rates = [
        hop.goodput
        for m in measurements
        for hop in m.observations
        if isinstance(hop, HTTPRequest) and hop.failure is None and measurable(hop)
        and hop.goodput is not None
    ]
    if len(rates) < MIN_REFERENCE_SAMPLES:
        return None
    return float(statistics.median(rates))
