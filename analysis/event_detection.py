"""Events: blocked verdicts and failed runs grouped over time, networks and vantage points.

Researchers and lawyers think in events ("X was blocked on AS12345 from 14:05 to 18:30 UTC"),
not single measurements. `detect_events` turns one `Point` per judged measurement into `Event`s
(both records, and the `EventPolicy` thresholds, are in `analysis.event_records`). Pure: no I/O,
no clock.

The rules, in order:

1. Runs (`analysis.outages.run_state`). A `local_failure` run (the probe's own link was down)
   is a GAP: it neither ends nor extends anything and is never an outage. An `upstream_unreachable`
   run, or one where nearly every target failed while the link was up, is an OUTAGE run.
2. Series. The network is the ASN and country of the run's vantage when known, else the vantage
   point. Blocking: one series per target, network and vantage point; `blocked` is a hit, `ok`
   clean, anything else (`insufficient`, `down`) neutral. Inside a gap or an outage run only a
   confirmed block is a hit (it is proof); the other failures belong to the outage and are not
   reported again, and an `ok` there ends nothing. Outages: one series of runs per network and
   vantage point.
3. Episodes. A hit joins the current episode unless clean data came since its last hit AND it is
   more than `max_gap` after it: silence and neutral data never end an episode, a short clean
   interruption makes it `intermittent`. It starts at its first hit and ends at its last;
   `first_clean` is the first clean observation after that (outages: the first measurement of
   the next clean run). With none, it is ongoing and `end` is None.
4. Vantage points. Episodes of one series seen from several vantage points of one network merge
   when they overlap in time (an ongoing one reaches forever).
5. Evidence. A blocking event needs `min_measurements` blocked measurements or one confirmed one
   (`or_confirmed`): a single flaky timeout is no event. An outage needs `min_measurements` runs.
6. Recurring. Episodes that cover the same daily UTC window on >= RECURRING_DAYS days, at most
   RECURRING_SKIP apart (`analysis.outages.daily_windows`: the window is read from the data and
   rounded to the hour, "01:00-09:00"), become one `recurring` event from the first night's
   start to the last night's end.

Confidence. Each vantage point that saw the event gives c_v: the mean confidence of its blocked
measurements, at least that of its best confirmed one (outages: the mean over its outage runs of
UPSTREAM_CONFIDENCE or MASS_FAILURE_CONFIDENCE). Independent vantage points corroborate:
combined = 1 - prod(1 - c_v). A vantage point of the same network that saw the target ok (or its
network working) within the event's span widened by SAME_TIME, and never saw the event,
disagrees: confidence = combined * agreeing / (agreeing + disagreeing). One blocked and one ok
vantage point halve it; an outage seen by all vantage points of a network scores higher than
one seen by one of them while another worked.

`measurement_ids` are the evidence: the blocked measurements, or every measurement of the
outage runs. An outage's `targets` are every target those runs measured, its `outcomes` their
reasons (`network.upstream_unreachable`, `network.most_targets_failed`).
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property

from analysis import outages
from analysis.event_records import (
    BLOCKING,
    DEFAULT_POLICY,
    INTERMITTENT,
    OUTAGE,
    PERSISTENT,
    RECURRING,
    Event,
    EventPolicy,
    Point,
)
from core.times import parse_utc
from core.verdicts import BLOCKED, OK, TECHNIQUES

UPSTREAM_CONFIDENCE = 0.9  # the probe checked its link and route: nothing beyond answered
MASS_FAILURE_CONFIDENCE = 0.7  # weaker: the link was up and a few things still answered
SAME_TIME = timedelta(minutes=15)  # two vantage points' measurements this close are simultaneous
RECURRING_DAYS = 3
RECURRING_SKIP = timedelta(days=2)  # one missed night (the probe was off) keeps the chain
_FOREVER = datetime.max.replace(tzinfo=UTC)

HIT, CLEAN, NEUTRAL = "hit", "clean", "neutral"


# --- series and episodes ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Item:
    """One observation of a series: a measurement (blocking) or a whole run (outage)."""

    state: str  # HIT | CLEAN | NEUTRAL
    points: tuple[Point, ...]  # time-ordered
    confidence: float = 0.0
    confirmed: bool = False
    reason: str = ""  # outage runs: why the run is an outage

    @property
    def start(self) -> datetime:
        return self.points[0].time

    @property
    def end(self) -> datetime:
        return self.points[-1].time

    @property
    def vantage(self) -> str:
        return self.points[0].vantage


@dataclass
class _Episode:
    """Hits grouped into one (candidate) event."""

    hits: list[_Item]
    first_clean: _Item | None = None
    intermittent: bool = False
    spans: list[tuple[datetime, datetime]] = field(default_factory=list)
    window: str | None = None

    @property
    def start(self) -> datetime:
        return self.hits[0].start

    @property
    def last(self) -> datetime:
        return max(hit.end for hit in self.hits)

    @property
    def ongoing(self) -> bool:
        return self.first_clean is None

    @property
    def vantages(self) -> set[str]:
        return {hit.vantage for hit in self.hits}


@dataclass(frozen=True)
class _Series:
    """Every vantage point's items for one target in one network (or one network's runs)."""

    kind: str
    network: str
    asn: str | None
    country: str | None
    by_vantage: dict[str, list[_Item]]

    @cached_property
    def merged(self) -> list[_Item]:
        return sorted((i for items in self.by_vantage.values() for i in items),
                      key=lambda i: i.start)

    @cached_property
    def _starts(self) -> list[datetime]:
        return [item.start for item in self.merged]

    def between(self, low: datetime, high: datetime = _FOREVER) -> Iterator[_Item]:
        """The items of every vantage point that start in [low, high], oldest first."""
        first, last = bisect_left(self._starts, low), bisect_right(self._starts, high)
        return (self.merged[k] for k in range(first, last))


def _episodes(series: Sequence[_Item], max_gap: timedelta) -> list[_Episode]:
    """Split one vantage point's time-ordered series into episodes (rule 3)."""
    found: list[_Episode] = []
    current: _Episode | None = None
    last = _FOREVER  # the end of the current episode's last hit
    clean: _Item | None = None  # the first clean item since then
    for item in series:
        if item.state == HIT:
            if current is not None and (clean is None or item.start - last <= max_gap):
                current.intermittent = current.intermittent or clean is not None
                current.hits.append(item)
            else:
                if current is not None:
                    current.first_clean = clean
                    found.append(current)
                current = _Episode([item])
            last, clean = item.end, None
        elif item.state == CLEAN and current is not None and clean is None:
            clean = item
    if current is not None:
        current.first_clean = clean
        found.append(current)
    return found


def _merge_vantages(episodes: list[_Episode], series: _Series) -> list[_Episode]:
    """Merge overlapping episodes of different vantage points of one network (rule 4)."""
    merged: list[_Episode] = []
    reach = datetime.min.replace(tzinfo=UTC)  # how far the last merged episode reaches
    for episode in sorted(episodes, key=lambda e: e.start):
        if merged and episode.start <= reach:
            merged[-1].hits = sorted(merged[-1].hits + episode.hits, key=lambda h: h.start)
            merged[-1].intermittent = merged[-1].intermittent or episode.intermittent
        else:
            merged.append(episode)
        reach = max(reach, _FOREVER if episode.ongoing else episode.last)
    for episode in merged:
        # Only a vantage point that saw the event can see it end; a clean measurement from
        # one that never saw it is disagreement (see _confidence), not an end.
        end, vantages = episode.last, episode.vantages
        episode.first_clean = next((i for i in series.between(end) if i.start > end
                                    and i.state == CLEAN and i.vantage in vantages), None)
        episode.spans = [(episode.start, end)]
    return merged


def _recurring(episodes: list[_Episode]) -> list[_Episode]:
    """Fold episodes that repeat in one daily UTC window into recurring ones (rule 6)."""
    spans = [(e.start, e.last) for e in episodes]
    folded: list[_Episode] = []
    used: set[int] = set()
    for window, chain in outages.daily_windows(spans, RECURRING_DAYS, RECURRING_SKIP):
        nights = [episodes[i] for i in chain]
        used.update(chain)
        folded.append(_Episode(
            hits=[hit for e in nights for hit in e.hits], first_clean=nights[-1].first_clean,
            spans=[span for e in nights for span in e.spans], window=window))
    return folded + [e for i, e in enumerate(episodes) if i not in used]


# --- events ----------------------------------------------------------------------------------


def _confidence(episode: _Episode, series: _Series) -> float:
    """Corroborated across vantage points, reduced by the ones that disagree (module doc)."""
    by_vantage: dict[str, list[_Item]] = defaultdict(list)
    for hit in episode.hits:
        by_vantage[hit.vantage].append(hit)
    doubt = 1.0
    for hits in by_vantage.values():
        mean = sum(h.confidence for h in hits) / len(hits)
        proof = max((h.confidence for h in hits if h.confirmed), default=0.0)
        doubt *= 1.0 - min(max(mean, proof), 1.0)
    disagreeing = {
        item.vantage for start, end in episode.spans
        for item in series.between(start - SAME_TIME, end + SAME_TIME)
        if item.state == CLEAN and item.vantage not in by_vantage
    }
    share = len(by_vantage) / (len(by_vantage) + len(disagreeing))
    return round((1.0 - doubt) * share, 3)


def _event(episode: _Episode, series: _Series) -> Event:
    points = sorted((p for hit in episode.hits for p in hit.points),
                    key=lambda p: (p.time, p.measurement_id))
    last = max(points, key=lambda p: (p.time, p.measurement_id))
    targets = tuple(sorted({p.target for p in points}))
    if series.kind == BLOCKING:
        found = {t for p in points for t in p.techniques}
        techniques = tuple(t for t in TECHNIQUES if t in found)
        outcomes = tuple(sorted({o for p in points for o in p.outcomes}))
    else:
        techniques, outcomes = (), tuple(sorted({hit.reason for hit in episode.hits}))
    start = points[0].started
    digest = hashlib.sha256(
        "\n".join((series.kind, series.network, ",".join(targets), start)).encode()
    ).hexdigest()[:16]
    ids = tuple(sorted({p.measurement_id for p in points}))
    clean = episode.first_clean
    return Event(
        id=digest, kind=series.kind, targets=targets, techniques=techniques, outcomes=outcomes,
        asn=series.asn, country=series.country,
        vantage_points=tuple(sorted(episode.vantages)), start=start,
        end=None if clean is None else last.started,
        first_clean=None if clean is None else clean.points[0].started,
        measurements=len(ids), measurement_ids=ids,
        confidence=_confidence(episode, series),
        pattern=RECURRING if episode.window else INTERMITTENT if episode.intermittent
        else PERSISTENT,
        window=episode.window,
    )


def _enough(episode: _Episode, kind: str, policy: EventPolicy) -> bool:
    """Rule 5: enough evidence for an event."""
    if kind == OUTAGE:
        return len(episode.hits) >= policy.min_measurements
    return len(episode.hits) >= policy.min_measurements or (
        policy.or_confirmed and any(hit.confirmed for hit in episode.hits))


def _events(series: _Series, policy: EventPolicy) -> list[Event]:
    episodes = [e for items in series.by_vantage.values() for e in _episodes(items, policy.max_gap)]
    episodes = [e for e in _merge_vantages(episodes, series)
                if _enough(e, series.kind, policy)]
    return [_event(e, series) for e in _recurring(episodes)]


def _blocking_item(point: Point, dark: bool) -> _Item:
    """A measurement's place in its target's series. In a `dark` run (a gap or an outage) only a
    confirmed block is a hit: its other failures and successes say nothing about the target."""
    if point.verdict == BLOCKED and (point.confirmed or not dark):
        return _Item(HIT, (point,), point.confidence, point.confirmed)
    if point.verdict == OK and not dark:
        return _Item(CLEAN, (point,))
    return _Item(NEUTRAL, (point,))


def _outage_item(run: Sequence[Point], policy: EventPolicy) -> _Item:
    state = outages.run_state(run, policy.outage_share, policy.outage_min_targets)
    if state == outages.GAP:
        return _Item(NEUTRAL, tuple(run))
    if state == outages.WORKING:
        return _Item(CLEAN, tuple(run))
    upstream = state == outages.UPSTREAM
    return _Item(HIT, tuple(run),
                 UPSTREAM_CONFIDENCE if upstream else MASS_FAILURE_CONFIDENCE,
                 reason="network." + state)


def _group(items: Iterable[_Item], kind: str, by_target: bool) -> list[_Series]:
    grouped: dict[tuple[str, str], dict[str, list[_Item]]] = defaultdict(lambda: defaultdict(list))
    first: dict[tuple[str, str], Point] = {}
    for item in items:
        point = item.points[0]
        key = (point.network, point.target if by_target else "")
        grouped[key][point.vantage].append(item)
        first.setdefault(key, point)
    return [_Series(kind, key[0], first[key].asn, first[key].country, dict(by_vantage))
            for key, by_vantage in grouped.items()]


def detect_events(points: Sequence[Point], policy: EventPolicy = DEFAULT_POLICY) -> list[Event]:
    """Blocking and outage events in `points` (any order), oldest first (see the module doc)."""
    ordered = sorted(points, key=lambda p: (p.time, p.measurement_id))
    runs: dict[int, list[Point]] = defaultdict(list)
    for point in ordered:
        runs[point.run_id].append(point)
    run_items = sorted((_outage_item(run, policy) for run in runs.values()),
                       key=lambda i: i.start)
    dark = {i.points[0].run_id for i in run_items if i.state != CLEAN}
    blocking = [_blocking_item(p, p.run_id in dark) for p in ordered]
    found = [event
             for series in (_group(run_items, OUTAGE, by_target=False)
                            + _group(blocking, BLOCKING, by_target=True))
             for event in _events(series, policy)]
    return sorted(found, key=lambda e: (parse_utc(e.start), e.kind, e.targets, e.id))

