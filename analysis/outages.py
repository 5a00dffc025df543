"""Outages over time: which runs saw a network go dark, daily windows, IODA-style reachability.

- `run_state`: what one run tells about its network (the run-level rule of
  `analysis.event_detection`).
- `daily_windows`: spans that repeat in the same daily UTC window - a curfew shutdown every
  night from 01:00 to 09:00 - found from the data, to the hour.
- `reachability`: the long view. The share of reachable targets per time bin and network,
  against the network's own recent normal, so that a gradual or partial shutdown - a throttled
  region, an ISP cutting one service after another - shows even when no single run looks like
  an outage.

Pure: no I/O, no clock.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict, deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.times import SECONDS_FORMAT, format_utc
from core.verdicts import BLOCKED, DOWN, LOCAL_FAILURE, OK, UPSTREAM_UNREACHABLE

if TYPE_CHECKING:
    from analysis.event_records import Point

# What a run says about its network.
GAP = "gap"  # local_failure: the probe's own link was down; no data, never an outage
WORKING = "working"
UPSTREAM = "upstream_unreachable"  # link and route up, nothing beyond answered
MASS_FAILURE = "most_targets_failed"  # link up, nearly every target failed

NORMAL, WARNING, CRITICAL = "normal", "warning", "critical"
_HOUR = timedelta(hours=1)


def network_label(asn: str | None, country: str | None, vantage: str) -> str:
    """'AS12345 (DE)', 'AS12345', 'DE', or 'vantage local' when neither is known."""
    if asn and country:
        return f"{asn} ({country})"
    return asn or country or f"vantage {vantage}"


def run_state(run: Sequence[Point], outage_share: float = 0.9, min_targets: int = 3) -> str:
    """GAP, WORKING, UPSTREAM or MASS_FAILURE for the points of one run.

    MASS_FAILURE: the link was up, yet at least `outage_share` of the run's conclusive
    measurements (ok, blocked, down; at least `min_targets` of them) failed without proof of
    censorship - `down` (the control failed too) or an unconfirmed block. A confirmed block (a
    blockpage, an injected answer) proves the network carried traffic, so it counts against an
    outage; `insufficient` says nothing either way. With fewer than `min_targets` conclusive
    measurements a run of one or two blocked targets would look like a shutdown.
    """
    network = run[0].run_network if run else None
    if network == LOCAL_FAILURE:
        return GAP
    if network == UPSTREAM_UNREACHABLE:
        return UPSTREAM
    conclusive = [p for p in run if p.verdict in (OK, BLOCKED, DOWN)]
    failed = [p for p in conclusive
              if p.verdict == DOWN or (p.verdict == BLOCKED and not p.confirmed)]
    if len(conclusive) >= min_targets and len(failed) / len(conclusive) >= outage_share - 1e-9:
        return MASS_FAILURE
    return WORKING


def daily_windows(
    spans: Sequence[tuple[datetime, datetime]],
    days: int = 3,
    skip: timedelta = timedelta(days=2),
) -> list[tuple[str, list[int]]]:
    """Groups of (start, end) UTC spans that recur in one daily window: ("01:00-09:00", indices).

    A span's window runs from its start hour (rounded down) to the hour after its end: a curfew
    seen from 01:05 until 08:00 or 08:30 ended by 09:00. Spans of 23 hours or more have no daily
    window. The most common window is tried first; spans within an hour of it (at both ends)
    match, and matching spans whose starts are at most `skip` apart (a night the probe was off
    keeps the chain) form a group when they cover at least `days` distinct days. A span joins
    one group at most.
    """
    windows = {i: w for i, (start, end) in enumerate(spans)
               if (w := _hour_window(start, end)) is not None}
    used: set[int] = set()
    found: list[tuple[str, list[int]]] = []
    for window, _ in Counter(windows.values()).most_common():
        matching = sorted((i for i, w in windows.items() if i not in used and _near(w, window)),
                          key=lambda i: spans[i][0])
        chains: list[list[int]] = []
        for i in matching:
            if chains and spans[i][0] - spans[chains[-1][-1]][0] <= skip:
                chains[-1].append(i)
            else:
                chains.append([i])
        for chain in chains:
            if len({spans[i][0].date() for i in chain}) >= days:
                used.update(chain)
                found.append((f"{window[0]:02d}:00-{window[1]:02d}:00", chain))
    return found


def _hour_window(start: datetime, end: datetime) -> tuple[int, int] | None:
    if end - start >= timedelta(hours=23):
        return None
    return start.hour, (end.replace(minute=0, second=0, microsecond=0) + _HOUR).hour


def _near(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Within an hour at both ends, on the 24-hour clock (23:00 is near 00:00)."""
    return all(min((x - y) % 24, (y - x) % 24) <= 1 for x, y in zip(a, b, strict=True))


@dataclass(frozen=True)
class Bin:
    """One time bin of one network: its reachable share, the baseline, and the alarm level."""

    start: str  # ISO 8601 UTC, the bin's first instant
    network: str  # network_label: 'AS12345 (DE)', or 'vantage local'
    reachable_share: float  # 0..1
    baseline: float | None  # None: no earlier bin in the trailing window yet
    level: str  # normal | warning | critical

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reachability(
    points: Sequence[Point],
    bin_minutes: int = 60,
    window_bins: int = 24,
    warning: float = 0.8,
    critical: float = 0.5,
) -> list[Bin]:
    """The reachable share of targets per time bin and network, flagged against a baseline.

    Share: among the targets judged in a bin (`ok`, `blocked`, `down`), the share that were
    `ok`; a target measured several times in a bin counts once, by the mean of its results.
    Every measurement of an `upstream_unreachable` run counts as unreachable (its verdicts are
    usually `insufficient`, but the run proves the network was dark); `local_failure` runs are
    gaps and `insufficient` verdicts are left out. A bin with nothing judged is not reported.

    Baseline: the median share of the network's bins in the trailing window - the `window_bins`
    bins before this one (by default 24 one-hour bins: the last day), leaving out bins that
    were themselves flagged, so that a slow decline is measured against the normal before it
    and not against itself. When every bin in the window was flagged, the anomaly has lasted
    the whole window and becomes the new normal: all of them count.

    Level: `critical` when share < critical x baseline (default 0.5: half of what is usually
    reachable is gone), `warning` when share < warning x baseline (default 0.8: a fifth is
    gone), else `normal` (also while there is no baseline yet). A partial shutdown (1.0 -> 0.6)
    warns and a deeper one (-> 0.2) is critical, sudden or gradual.
    """
    if bin_minutes <= 0 or window_bins <= 0:
        raise ConfigError("bin_minutes and window_bins must be positive")
    if not 0.0 < critical <= warning <= 1.0:
        raise ConfigError(f"thresholds must satisfy 0 < critical <= warning <= 1, got "
                          f"critical={critical}, warning={warning}")
    width = timedelta(minutes=bin_minutes)
    cells: dict[str, dict[datetime, dict[str, list[float]]]] = defaultdict(
        lambda: defaultdict(lambda: defaultdict(list)))
    for point in points:
        value = _reachable(point)
        if value is not None:
            cells[point.network][_floor(point.time, width)][point.target].append(value)
    found: list[Bin] = []
    for network, by_bin in cells.items():
        found += _flag(network, by_bin, width * window_bins, warning, critical)
    return sorted(found, key=lambda b: (b.start, b.network))


def _reachable(point: Point) -> float | None:
    """1.0 reachable, 0.0 not, None: no evidence (a gap, or no conclusion)."""
    if point.run_network == LOCAL_FAILURE:
        return None
    if point.run_network == UPSTREAM_UNREACHABLE:
        return 0.0
    if point.verdict == OK:
        return 1.0
    if point.verdict in (BLOCKED, DOWN):
        return 0.0
    return None


def _floor(moment: datetime, width: timedelta) -> datetime:
    """The start of the bin holding `moment`; bins are aligned on the Unix epoch (UTC)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    return epoch + (moment - epoch) // width * width


def _flag(
    network: str,
    by_bin: dict[datetime, dict[str, list[float]]],
    window: timedelta,
    warning: float,
    critical: float,
) -> list[Bin]:
    """The bins of one network, oldest first, each judged against its trailing window."""
    recent: deque[tuple[datetime, float, str]] = deque()  # (start, share, level), in the window
    found: list[Bin] = []
    for start in sorted(by_bin):
        targets = by_bin[start]
        share = sum(sum(v) / len(v) for v in targets.values()) / len(targets)
        while recent and recent[0][0] < start - window:
            recent.popleft()
        calm = [s for _, s, lvl in recent if lvl == NORMAL] or [s for _, s, _ in recent]
        baseline = statistics.median(calm) if calm else None
        level = NORMAL
        if baseline is not None and share < critical * baseline:
            level = CRITICAL
        elif baseline is not None and share < warning * baseline:
            level = WARNING
        recent.append((start, share, level))
        found.append(Bin(format_utc(start, SECONDS_FORMAT), network, round(share, 4),
                         None if baseline is None else round(baseline, 4), level))
    return found
