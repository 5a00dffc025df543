"""Timeline and reachability plots (PNG or SVG) for researchers and reports.

- `plot_timeline(points, events, fmt)`: one row per target, time in UTC across; each measurement
  a mark coloured (and shaped) by its verdict and, when blocked, its technique; outage events
  shaded across every row, blocking events outlined on their targets' rows.
- `plot_reachability(bins, fmt)`: the share of reachable targets per network and time bin, with the
  warning and critical thresholds drawn as fractions of each network's baseline.

Each returns the image as PNG or SVG bytes (`fmt`); the caller writes them where it wants.
Pure functions of their inputs: no clock, no randomness, no file, identical data gives identical
bytes (see `plot_style.save`). matplotlib is the optional `[plot]` extra: it is imported when a plot
is drawn, never when this module is imported. The inputs are typed by the attributes read
(`presentation.inputs`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from core.times import parse_utc
from presentation.inputs import BinLike, EventLike, PointLike
from presentation.plot_style import (
    BLACK,
    CRITICAL_COLOUR,
    MARKS,
    NETWORK_COLOURS,
    OUTAGE_COLOUR,
    OUTAGE_TAIL_COLOUR,
    WARNING_COLOUR,
    WIDTH_IN,
    X_PAD,
    asn_label,
    check_format,
    clean_text,
    ellipsize,
    listing,
    mark_key,
    new_figure,
    period,
    place_axes,
    save,
    short_label,
    style,
    summarise,
    technique_colour,
    tick_fontsize,
    timeline_height,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


# A span as short as one measurement would be invisible: it is drawn at least this wide.
MIN_SPAN = 0.006  # fraction of the time axis
MIN_RANGE = timedelta(minutes=2)  # the shortest time axis (before padding)
TITLE_CHARS = 120
REACHABILITY_HEIGHT_IN = 4.6
REACHABILITY_LEFT_IN = 0.9


def plot_timeline(
    points: Sequence[PointLike],
    events: Sequence[EventLike],
    fmt: str = "png",
    title: str | None = None,
) -> bytes:
    """The measurements and events over time, one row per target, as `fmt` ('png'/'svg') bytes."""
    check_format(fmt)  # a wrong format fails before any drawing
    with style():
        figure = _timeline_figure(points, events, title)
        return save(figure, fmt)


def plot_reachability(
    bins: Sequence[BinLike], fmt: str = "png", warning: float = 0.8, critical: float = 0.5
) -> bytes:
    """The reachable share per network and bin with its thresholds, as `fmt` bytes."""
    check_format(fmt)
    if not 0.0 < critical <= warning <= 1.0:
        raise ConfigError(f"thresholds must satisfy 0 < critical <= warning <= 1, got "
                          f"critical={critical}, warning={warning}")
    with style():
        figure = _reachability_figure(bins, warning, critical)
        return save(figure, fmt)


# --- timeline ------------------------------------------------------------------------------------
def _rows(points: Sequence[PointLike], events: Sequence[EventLike]) -> list[tuple[str, str | None]]:
    """(target, platform) per row, sorted by platform (unknown last) then URL."""
    platforms: dict[str, str | None] = {}
    for point in points:
        if platforms.get(point.target) is None:
            platforms[point.target] = point.platform
    for event in events:
        if event.kind == "blocking":
            for target in event.targets:
                platforms.setdefault(target, None)
    return sorted(platforms.items(), key=lambda item: (item[1] is None, item[1] or "", item[0]))


def _num(moment: datetime) -> float:
    from matplotlib.dates import date2num

    return float(date2num(moment))


def _event_times(event: EventLike) -> list[datetime]:
    return [parse_utc(t) for t in (event.start, event.end, event.first_clean) if t]


def x_limits(times: Sequence[datetime]) -> tuple[float, float]:
    """The time axis (matplotlib date numbers): the data's own range, padded by X_PAD on each
    side. A range shorter than MIN_RANGE (one moment, a few runs a few seconds apart) is
    widened to MIN_RANGE around its middle: wide enough to read, narrow enough that runs
    seconds apart stay apart (an hour put 10 runs over 80 s in one column)."""
    values = [_num(t) for t in times]
    lo, hi = min(values), max(values)
    least = MIN_RANGE / timedelta(days=1)  # date numbers count days
    if hi - lo < least:
        middle = (lo + hi) / 2
        lo, hi = middle - least / 2, middle + least / 2
    pad = X_PAD * (hi - lo)
    return lo - pad, hi + pad


def _span(event: EventLike, limits: tuple[float, float]) -> tuple[float, float]:
    """The event's x extent: an open event runs to the right edge; a tiny one gets MIN_SPAN."""
    x0 = _num(parse_utc(event.start))
    x1 = _num(parse_utc(event.end)) if event.end else limits[1]
    return x0, max(x1, x0 + MIN_SPAN * (limits[1] - limits[0]))


def _describe(points: Sequence[PointLike], events: Sequence[EventLike],
              times: Sequence[datetime]) -> str:
    """'vantage local, AS12345 (DE) — 2026-11-01 to 2026-11-07 UTC', from the data."""
    vantages = [p.vantage for p in points] + [v for e in events for v in e.vantage_points]
    asns = [asn_label(a) for a in [p.asn for p in points] + [e.asn for e in events] if a]
    countries = [c for c in [p.country for p in points] + [e.country for e in events] if c]
    where = ", ".join(part for part in (summarise(vantages, "vantage", "vantages"), listing(asns))
                      if part)
    if countries:
        where = f"{where} ({listing(countries)})" if where else listing(countries)
    return " — ".join(part for part in (where, period(times)) if part) or "no data"


def _timeline_figure(points: Sequence[PointLike], events: Sequence[EventLike],
                     title: str | None) -> Figure:
    rows = _rows(points, events)
    row_of = {target: index for index, (target, _) in enumerate(rows)}
    times = [parse_utc(p.started) for p in points] + [t for e in events for t in _event_times(e)]
    height = timeline_height(max(len(rows), 1))
    figure = new_figure(WIDTH_IN, height)
    ax = place_axes(figure, height)

    heading = [ellipsize(clean_text(title), TITLE_CHARS)] if title else []
    heading.append(ellipsize(_describe(points, events, times), TITLE_CHARS))
    ax.set_title("\n".join(heading))
    if not times:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no measurements", transform=ax.transAxes, ha="center", va="center")
        return figure

    limits = x_limits(times)
    ax.set_xlim(*limits)
    ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)  # first row at the top
    _time_axis(ax)
    _row_axis(ax, rows)
    legend: list[Any] = []
    legend += _draw_outages(ax, [e for e in events if e.kind == "outage"], limits)
    legend += _draw_blocking(ax, [e for e in events if e.kind == "blocking"], row_of, limits)
    legend = _draw_points(ax, points, row_of, len(rows)) + legend
    ax.legend(handles=legend, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              frameon=False)
    return figure


def _time_axis(ax: Axes) -> None:
    from datetime import UTC

    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator(tz=UTC, minticks=3, maxticks=9)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=UTC))
    ax.set_xlabel("time (UTC)")
    ax.grid(axis="x", color="#DDDDDD", linewidth=0.6)
    ax.set_axisbelow(True)


def _row_axis(ax: Axes, rows: Sequence[tuple[str, str | None]]) -> None:
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([short_label(target) for target, _ in rows],
                       fontsize=tick_fontsize(len(rows)))
    ax.tick_params(axis="y", length=0)
    # A faint line along each row guides the eye from label to marks; a darker one between
    # platforms groups their endpoints.
    for index in range(len(rows)):
        ax.axhline(index, color="#EEEEEE", linewidth=0.5, zorder=0.5)
    for index in range(1, len(rows)):
        if rows[index][1] != rows[index - 1][1]:
            ax.axhline(index - 0.5, color="#BBBBBB", linewidth=0.8, zorder=0.5)


def _draw_outages(ax: Axes, outages: Sequence[EventLike],
                  limits: tuple[float, float]) -> list[Any]:
    from matplotlib.patches import Patch

    tails = False
    for event in outages:
        x0, x1 = _span(event, limits)
        # zorder 0: beneath the grid and the marks, so the shade is exactly OUTAGE_COLOUR.
        ax.axvspan(x0, x1, color=OUTAGE_COLOUR, linewidth=0, zorder=0)
        if event.end and event.first_clean:
            clean = _num(parse_utc(event.first_clean))
            if clean > x1:
                ax.axvspan(x1, clean, color=OUTAGE_TAIL_COLOUR, linewidth=0, zorder=0)
                tails = True
    handles: list[Any] = []
    if outages:
        handles.append(Patch(facecolor=OUTAGE_COLOUR, label="outage"))
    if tails:
        handles.append(Patch(facecolor=OUTAGE_TAIL_COLOUR, label="outage end uncertain"))
    return handles


def _draw_blocking(ax: Axes, blocking: Sequence[EventLike], row_of: dict[str, int],
                   limits: tuple[float, float]) -> list[Any]:
    from matplotlib.patches import Patch, Rectangle

    for event in blocking:
        x0, x1 = _span(event, limits)
        colour = technique_colour(event.techniques)
        for target in event.targets:
            ax.add_patch(Rectangle((x0, row_of[target] - 0.42), x1 - x0, 0.84, fill=False,
                                   edgecolor=colour, linewidth=1.4, zorder=2))
    if not blocking:
        return []
    return [Patch(facecolor="none", edgecolor=BLACK, label="blocking event (outline)")]


def _draw_points(ax: Axes, points: Sequence[PointLike], row_of: dict[str, int],
                 rows: int) -> list[Any]:
    """One scatter per category, in the legend's order; confirmed blocking has a black edge."""
    from matplotlib.lines import Line2D

    groups: dict[str, list[PointLike]] = {}
    for point in points:
        groups.setdefault(mark_key(point.verdict, point.techniques), []).append(point)
    size = 30.0 if rows <= 30 else 18.0
    handles: list[Any] = []
    confirmed_any = False
    for key, mark in MARKS.items():
        group = groups.get(key)
        if not group:
            continue
        edges = []
        for point in group:
            confirmed = point.confirmed and point.verdict == "blocked"
            confirmed_any = confirmed_any or confirmed
            edges.append(BLACK if confirmed else mark.colour)
        ax.scatter([_num(parse_utc(p.started)) for p in group], [row_of[p.target] for p in group],
                   s=size, marker=mark.marker, facecolors="none" if mark.hollow else mark.colour,
                   edgecolors=edges, linewidths=0.9, zorder=3)
        handles.append(Line2D([], [], linestyle="none", marker=mark.marker, markersize=6,
                              markerfacecolor="none" if mark.hollow else mark.colour,
                              markeredgecolor=mark.colour, label=mark.label))
    if confirmed_any:
        handles.append(Line2D([], [], linestyle="none", marker="o", markersize=6,
                              markerfacecolor="white", markeredgecolor=BLACK,
                              label="confirmed (black edge)"))
    return handles


# --- reachability --------------------------------------------------------------------------------
def _reachability_figure(bins: Sequence[BinLike], warning: float, critical: float) -> Figure:
    from matplotlib.lines import Line2D
    from matplotlib.ticker import PercentFormatter

    figure = new_figure(WIDTH_IN, REACHABILITY_HEIGHT_IN)
    ax = place_axes(figure, REACHABILITY_HEIGHT_IN, left_in=REACHABILITY_LEFT_IN)
    networks = sorted({b.network for b in bins})
    times = [parse_utc(b.start) for b in bins]
    where = summarise(networks, "network", "networks")
    ax.set_title(ellipsize(" — ".join(
        part for part in ("Reachable share per network", where, period(times)) if part),
        TITLE_CHARS))
    if not bins:
        ax.set_xticks([])
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center")
        return figure

    ax.set_xlim(*x_limits(times))
    ax.set_ylim(0.0, 1.05)
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set_ylabel("reachable share")
    _time_axis(ax)
    handles: list[Any] = []
    for index, network in enumerate(networks):
        colour = NETWORK_COLOURS[index % len(NETWORK_COLOURS)]
        ordered = sorted((b for b in bins if b.network == network), key=lambda b: b.start)
        xs = [_num(parse_utc(b.start)) for b in ordered]
        ax.plot(xs, [b.reachable_share for b in ordered], color=colour, linewidth=1.6,
                marker=".", markersize=4, zorder=3)
        # NaN where the baseline is not known yet: the threshold lines break there.
        nan = float("nan")
        for fraction, dash in ((warning, "--"), (critical, ":")):
            ys = [b.baseline * fraction if b.baseline is not None else nan for b in ordered]
            ax.plot(xs, ys, color=colour, linestyle=dash, linewidth=1.0, zorder=2)
        handles.append(Line2D([], [], color=colour, linewidth=1.6,
                              label=ellipsize(clean_text(network), 40)))
    handles += [
        Line2D([], [], color=BLACK, linestyle="--", linewidth=1.0,
               label=f"baseline × {warning:g} (warning)"),
        Line2D([], [], color=BLACK, linestyle=":", linewidth=1.0,
               label=f"baseline × {critical:g} (critical)"),
    ]
    for level, colour, marker in (("warning", WARNING_COLOUR, "^"),
                                  ("critical", CRITICAL_COLOUR, "X")):
        flagged = [b for b in bins if b.level == level]
        if flagged:
            ax.scatter([_num(parse_utc(b.start)) for b in flagged],
                       [b.reachable_share for b in flagged], s=70, marker=marker, color=colour,
                       edgecolors=BLACK, linewidths=0.6, zorder=4)
            handles.append(Line2D([], [], linestyle="none", marker=marker, markersize=8,
                                  markerfacecolor=colour, markeredgecolor=BLACK,
                                  label=f"{level} bin"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
              frameon=False)
    return figure

