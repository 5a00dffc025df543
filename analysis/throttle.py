"""Throttling: a transfer far slower than the network's others and than the control's.

Two rules, both reported as `throttle.goodput`:

1. Goodput (our own measurements). A hop's goodput (body bytes per second, first response byte
   to last) is judged only on a transfer long enough to measure: at least MIN_TRANSFER_BYTES
   (64 KiB, past TCP slow start) or MIN_TRANSFER_SECONDS (2 s; a transfer throttled to a
   trickle moves few bytes in a long time). It is throttled when it is below
   FAR_BELOW_REFERENCE (1/5) of the run's reference goodput (the median of the run's comparable
   transfers, `analysis.context.reference_goodput`) AND below BELOW_CONTROL (1/2) of the
   control's goodput for the same URL, each where known; with only the control's rate known it
   must be below 1/5 of it (the control sits on another network, so only a large gap counts).

2. Stall (OONI data, and ours when the rate is unknown). OONI records no goodput and, in the
   censorship simulator's files, no timing at all. What it does record: the response headers
   arrived (a status), then reading the body timed out, while the control fetched a body of at
   least MIN_TRANSFER_BYTES. A server that started answering and a control that got the whole
   large body mean the bytes were slowed (or frozen) on the probe's path. A small page that
   stalls is an `http.timeout` instead.

Strength: 0.6 for one comparison (reference, control or stall), 0.75 when both the reference and
the control's goodput agree.
"""

from __future__ import annotations

from analysis.findings import Finding
from analysis.views import ControlView, ProbeView
from core import failures
from core.observations import HTTPRequest

MIN_TRANSFER_BYTES = 64 * 1024
MIN_TRANSFER_SECONDS = 2.0
FAR_BELOW_REFERENCE = 0.2
BELOW_CONTROL = 0.5
MIN_REFERENCE_SAMPLES = 3
CONTROL_ONLY_CEILING = 250_000.0  # bytes/s


def measurable(hop: HTTPRequest) -> bool:
    """The hop moved enough data, or lasted long enough, for its goodput to mean something."""
    rate = hop.goodput
    if rate is None or rate <= 0 or hop.body_length <= 0:
        return False
    return hop.body_length >= MIN_TRANSFER_BYTES or hop.body_length / rate >= MIN_TRANSFER_SECONDS


def is_stall(hop: HTTPRequest, cv: ControlView | None) -> bool:
    """Rule 2: the body read timed out after the response began, on a large control body."""
    if hop.status is None or hop.failure != failures.GENERIC_TIMEOUT or cv is None:
        return False
    control = cv.hop_for(hop.url)
    return (
        control is not None
        and control.failure is None
        and control.body_length >= MIN_TRANSFER_BYTES
        and hop.body_length < control.body_length
    )


def _rate(value: float) -> str:
    return f"{value / 1000:.1f} kB/s"


def _goodput_finding(
    hop: HTTPRequest, reference: float | None, cv: ControlView | None
) -> Finding | None:
    rate = hop.goodput
    if rate is None or not measurable(hop):
        return None
    control_hop = cv.hop_for(hop.url) if cv is not None else None
    control = control_hop.goodput if control_hop is not None else None
    if reference is None and control is None:
        return None
    if reference is not None and rate >= FAR_BELOW_REFERENCE * reference:
        return None
    if control is not None:
        limit = BELOW_CONTROL if reference is not None else FAR_BELOW_REFERENCE
        if rate >= limit * control:
            return None
        if reference is None and rate >= CONTROL_ONLY_CEILING:
            return None
    compared = []
    if reference is not None:
        compared.append(f"the run's median is {_rate(reference)}")
    if control is not None:
        compared.append(f"the control's is {_rate(control)}")
    strength = 0.75 if reference is not None and control is not None else 0.6
    return Finding("throttle.goodput", strength,
                   f"{hop.url} downloaded at {_rate(rate)} ({hop.body_length} bytes); "
                   + " and ".join(compared))


def analyse_throttle(
    pv: ProbeView, cv: ControlView | None, reference: float | None, tampered: dict[str, str]
) -> list[Finding]:
    """Throttling findings (see the module docstring). `cv` may be None: the run's reference
    goodput is itself a comparison (other targets on the same network were fast)."""
    found: list[Finding] = []
    for hop in pv.hops:
        if hop.address in tampered:
            continue
        finding = _goodput_finding(hop, reference, cv)
        if finding is None and is_stall(hop, cv):
            control = cv.hop_for(hop.url) if cv is not None else None
            size = control.body_length if control is not None else 0
            finding = Finding("throttle.goodput", 0.6,
                              f"{hop.url}: the response began (status {hop.status}) but the body "
                              f"stalled ({hop.failure}) after {hop.body_length} bytes; the control "
                              f"downloaded all {size} bytes")
        if finding is not None:
            found.append(finding)
    return found
