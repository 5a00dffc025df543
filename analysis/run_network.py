"""The run-level network verdict: was the probe's own network working?

`local_failure` when the probe's own link or route is gone (every measurement is then
`insufficient`, and the run is a gap in the data, never an outage); `upstream_unreachable` when
the link and route are up but nothing beyond them answered, not even the control; `ok` otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable

from core.netstate import NetState
from core.observations import DNSQuery, HTTPRequest, Measurement, TCPConnect, TLSHandshake
from core.verdicts import LOCAL_FAILURE, NETWORK_OK, UPSTREAM_UNREACHABLE


def reached_anything(m: Measurement) -> bool:
    """True when any step got an answer from beyond the probe's link.

    A DNS response of any kind, a TCP connection that completed or was refused or reset (a
    refusal or reset is an answer from somewhere), a TLS or HTTP exchange that got bytes back.
    """
    for obs in m.observations:
        if isinstance(obs, DNSQuery) and obs.engine != "system" and obs.responses:
            return True
        if isinstance(obs, TCPConnect) and obs.failure in (None, "connection_refused"):
            return True
        if isinstance(obs, TLSHandshake) and obs.failure is None:
            return True
        if isinstance(obs, HTTPRequest) and obs.status is not None:
            return True
    return False


def decide(
    before: NetState | None,
    after: NetState | None,
    measurements: Iterable[Measurement],
    control_reachable: bool | None = None,
) -> str:
    """The run's `network` field from the network checks and what the measurements reached.

    `before` is the check made before the campaign, `after` the one made when everything failed
    (None when it was not needed). `control_reachable` is False when the test helper could not
    be reached either.
    """
    latest = after or before
    if latest is not None and not latest.link_ok:
        return LOCAL_FAILURE
    if any(reached_anything(m) for m in measurements):
        return NETWORK_OK
    if control_reachable:
        return NETWORK_OK
    if latest is None:
        # Nothing answered and we could not look at the link: the safe reading is a local fault.
        return LOCAL_FAILURE
    return UPSTREAM_UNREACHABLE
