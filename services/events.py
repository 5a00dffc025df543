"""Events and reachability from a store: the library functions behind `netvigil events` and
`netvigil reachability`.

Store -> points (`results.timeline.verdict_points`) -> events (`analysis.event_detection`) or
time bins
(`analysis.outages.reachability`). Nothing is written: events are recomputed from the verdicts
every time, so new fingerprints or a re-analysis show at once.
"""

from __future__ import annotations

from analysis.event_detection import detect_events
from analysis.event_records import DEFAULT_POLICY, KINDS, Event, EventPolicy, Point
from analysis.outages import Bin, reachability
from core.errors import ConfigError
from results.store import Store
from results.timeline import verdict_points


def points(
    store: Store, since: str | None = None, until: str | None = None, target: str | None = None
) -> list[Point]:
    """The judged measurements of `store` as analysis points, oldest first."""
    return [Point.from_dict(p) for p in verdict_points(store, since, until, target)]


def events(
    store: Store,
    since: str | None = None,
    until: str | None = None,
    target: str | None = None,
    kind: str | None = None,
    policy: EventPolicy = DEFAULT_POLICY,
) -> list[Event]:
    """Blocking and outage events among the measurements started between `since` and `until`.

    Events are found over every target, so that an outage (nearly every target failing at
    once) is recognised as one; `target` (a URL or hostname) then keeps the events that
    involve it, `kind` (`blocking` or `outage`) those of one kind. An event that began before
    `since` starts, as far as this window can tell, at its first measurement inside it.
    """
    if kind is not None and kind not in KINDS:
        raise ConfigError(f"kind must be one of {KINDS}, not {kind!r}", "--kind")
    found = [e for e in detect_events(points(store, since, until), policy)
             if kind is None or e.kind == kind]
    if target is None:
        return found
    wanted = {p["target"] for p in verdict_points(store, since, until, target)}
    return [e for e in found if wanted.intersection(e.targets)]


def reachability_bins(
    store: Store,
    since: str | None = None,
    until: str | None = None,
    bin_minutes: int = 60,
    window_bins: int = 24,
    warning: float = 0.8,
    critical: float = 0.5,
) -> list[Bin]:
    """The reachable share per network and time bin, flagged against each network's baseline
    (`analysis.outages.reachability` explains the rule and the defaults)."""
    return reachability(points(store, since, until), bin_minutes, window_bins, warning, critical)
