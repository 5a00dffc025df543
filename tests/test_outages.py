"""Outages: the run-level rule and IODA-style reachability bins over synthetic series."""

from __future__ import annotations

from datetime import timedelta

import pytest

from analysis.outages import (
    GAP,
    MASS_FAILURE,
    UPSTREAM,
    WORKING,
    daily_windows,
    reachability,
    run_state,
)
from core.errors import ConfigError
from tests.test_events import T0, Series, at, iso

TEN = [f"https://t{i}.example/" for i in range(10)]


def hour(s: Series, n: int, reachable: int, network: str = "ok", **kwargs: object) -> None:
    """A run at hour n where the first `reachable` of ten targets are ok, the rest blocked."""
    s.run(at(n), {url: "ok" if i < reachable else "blocked" for i, url in enumerate(TEN)},
          network=network, **kwargs)  # type: ignore[arg-type]


def levels(bins: list) -> list[tuple[float, str]]:
    return [(b.reachable_share, b.level) for b in bins]


# --- run_state ------------------------------------------------------------------------------


def test_run_state() -> None:
    s = Series()
    assert run_state(s.run(T0, {TEN[0]: "insufficient"}, network="local_failure")) == GAP
    assert run_state(s.run(T0, {TEN[0]: "ok"}, network="upstream_unreachable")) == UPSTREAM
    nine_down = dict.fromkeys(TEN[:9], "down") | {TEN[9]: "ok"}
    assert run_state(s.run(T0, nine_down)) == MASS_FAILURE
    assert run_state(s.run(T0, nine_down), outage_share=0.95) == WORKING
    # A confirmed block proves the network carried traffic: it counts against an outage.
    eight = dict.fromkeys(TEN[:9], "blocked") | {TEN[9]: "confirmed"}
    assert run_state(s.run(T0, eight)) == MASS_FAILURE
    assert run_state(s.run(T0, dict.fromkeys(TEN[:8], "blocked") | dict.fromkeys(
        TEN[8:], "confirmed"))) == WORKING
    # insufficient says nothing; too few conclusive measurements say nothing either.
    assert run_state(s.run(T0, dict.fromkeys(TEN, "insufficient"))) == WORKING
    assert run_state(s.run(T0, dict.fromkeys(TEN[:2], "blocked"))) == WORKING
    assert run_state(s.run(T0, dict.fromkeys(TEN[:2], "blocked")), min_targets=2) == MASS_FAILURE
    assert run_state(s.run(T0, {TEN[0]: "ok"}, network=None)) == WORKING  # still running


# --- reachability ---------------------------------------------------------------------------


def test_partial_shutdown_warns_then_turns_critical() -> None:
    s = Series()
    for n in range(24):
        hour(s, n, 10)
    hour(s, 24, 6)
    hour(s, 25, 2)
    bins = reachability(s.points)
    assert [b.start for b in bins[:2]] == [iso(at(0)), iso(at(1))]
    assert bins[0].baseline is None and bins[0].level == "normal"
    assert levels(bins[-2:]) == [(0.6, "warning"), (0.2, "critical")]
    assert [b.baseline for b in bins[-2:]] == [1.0, 1.0]
    assert {b.level for b in bins[:24]} == {"normal"}
    assert {b.network for b in bins} == {"AS64500 (DE)"}


def test_gradual_shutdown_shows() -> None:
    s = Series()
    for n in range(24):
        hour(s, n, 10)
    for n, reachable in enumerate(range(9, -1, -1), start=24):
        hour(s, n, reachable)
    bins = reachability(s.points)[24:]
    assert levels(bins) == [
        (0.9, "normal"), (0.8, "normal"), (0.7, "warning"), (0.6, "warning"),
        (0.5, "warning"), (0.4, "critical"), (0.3, "critical"), (0.2, "critical"),
        (0.1, "critical"), (0.0, "critical")]
    # The flagged bins stay out of the baseline, so it does not sink with the decline.
    assert bins[-1].baseline == 1.0


def test_a_lasting_change_becomes_the_new_normal() -> None:
    s = Series()
    for n in range(6):
        hour(s, n, 10)
    for n in range(6, 20):
        hour(s, n, 5)
    bins = reachability(s.points, window_bins=4)
    assert [b.level for b in bins[6:10]] == ["warning"] * 4
    assert bins[10].baseline == 0.5 and {b.level for b in bins[10:]} == {"normal"}


def test_upstream_runs_count_as_dark_and_local_failures_are_gaps() -> None:
    s = Series()
    for n in range(3):
        hour(s, n, 10)
    s.run(at(3), dict.fromkeys(TEN, "insufficient"), network="upstream_unreachable")
    s.run(at(4), dict.fromkeys(TEN, "insufficient"), network="local_failure")
    s.run(at(5), dict.fromkeys(TEN, "insufficient"))
    bins = reachability(s.points)
    assert [b.start for b in bins] == [iso(at(n)) for n in range(4)]
    assert levels(bins)[-1] == (0.0, "critical")


def test_a_target_counts_once_per_bin_and_networks_are_apart() -> None:
    s = Series()
    # Target 0 measured twice in one bin (ok, then blocked): it counts as half reachable.
    s.run(at(0), {TEN[0]: "ok", TEN[1]: "ok"})
    s.run(at(0.5), {TEN[0]: "blocked"})
    s.run(at(0), {TEN[0]: "blocked", TEN[1]: "down"}, vantage="v2", asn="AS1", country=None)
    bins = reachability(s.points)
    assert [(b.network, b.reachable_share) for b in bins] == [("AS1", 0.0),
                                                              ("AS64500 (DE)", 0.75)]


def test_bins_are_aligned_and_sized() -> None:
    s = Series()
    for minutes in (0, 10, 20, 35, 50, 65):
        s.run(T0 + timedelta(minutes=minutes), {TEN[0]: "ok"})
    bins = reachability(s.points, bin_minutes=30)
    assert [b.start for b in bins] == [iso(T0 + timedelta(minutes=m)) for m in (0, 30, 60)]
    assert bins[0].to_dict() == {"start": iso(T0), "network": "AS64500 (DE)",
                                 "reachable_share": 1.0, "baseline": None, "level": "normal"}


@pytest.mark.parametrize("kwargs", [{"bin_minutes": 0}, {"window_bins": 0},
                                    {"warning": 0.4, "critical": 0.5}, {"critical": 0.0},
                                    {"warning": 1.5}])
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        reachability([], **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):  # the CLI's options: exit 2 with the message
        reachability([], **kwargs)  # type: ignore[arg-type]


def test_no_points_no_bins() -> None:
    assert reachability([]) == []


# --- daily windows --------------------------------------------------------------------------


def nights(first_hour: int, hours: float, days: range, minute: int = 0) -> list:
    return [(at(first_hour, day) + timedelta(minutes=minute),
             at(first_hour, day) + timedelta(minutes=minute, hours=hours)) for day in days]


def test_daily_windows_read_the_window_from_the_data() -> None:
    assert daily_windows(nights(1, 7.5, range(3))) == [("01:00-09:00", [0, 1, 2])]
    assert daily_windows(nights(1, 7, range(3), minute=5)) == [("01:00-09:00", [0, 1, 2])]
    # Across midnight.
    assert daily_windows(nights(22, 5.5, range(4))) == [("22:00-04:00", [0, 1, 2, 3])]
    # Two nights are not a pattern; a day-long span has no daily window.
    assert daily_windows(nights(1, 7.5, range(2))) == []
    assert daily_windows(nights(1, 23, range(5))) == []


def test_daily_windows_tolerate_an_hour_and_a_missed_night() -> None:
    # Night 3 starts half an hour early, night 4 ends an hour early, night 2 is missing.
    spans = (nights(1, 7.5, range(2)) + nights(0, 8, range(3, 4), minute=30)
             + nights(1, 6, range(4, 5)))
    assert daily_windows(spans) == [("01:00-09:00", [0, 1, 2, 3])]
    # A week without the curfew breaks the chain: two groups of three nights.
    spans = nights(1, 7.5, range(3)) + nights(1, 7.5, range(10, 13))
    assert daily_windows(spans) == [("01:00-09:00", [0, 1, 2]), ("01:00-09:00", [3, 4, 5])]
    # A span far from the window stays out.
    spans = nights(1, 7.5, range(3)) + nights(13, 2, range(3, 4))
    assert daily_windows(spans) == [("01:00-09:00", [0, 1, 2])]
