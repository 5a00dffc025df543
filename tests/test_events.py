"""Events: blocking and outage events from synthetic series with controlled timestamps, and the
same through a real Store (services.events). No network at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from analysis.event_detection import detect_events
from analysis.event_records import Event, EventPolicy, Point
from core.observations import Measurement
from core.target import Target
from results.store import Store
from results.timeline import verdict_points
from services import events as service

T0 = datetime(2026, 11, 1, tzinfo=UTC)
A = "https://a.example/"
OTHERS = ("https://b.example/", "https://c.example/", "https://d.example/", "https://e.example/")
STEP = timedelta(seconds=10)  # between the targets of one run

# verdict shorthand -> the Point fields it sets
VERDICTS: dict[str, dict[str, object]] = {
    "ok": {"verdict": "ok", "confidence": 0.9},
    "blocked": {"verdict": "blocked", "techniques": ("tcp",), "outcomes": ("tcp.timeout",),
                "confidence": 0.6},
    "confirmed": {"verdict": "blocked", "techniques": ("http",),
                  "outcomes": ("http.blockpage:ooni.zz_1",), "confidence": 0.95,
                  "confirmed": True},
    "down": {"verdict": "down", "confidence": 0.8},
    "insufficient": {"verdict": "insufficient"},
}


def at(hours: float, day: int = 0) -> datetime:
    return T0 + timedelta(days=day, hours=hours)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Series:
    """Builds Points: one run at a time, each target STEP after the previous one."""

    def __init__(self) -> None:
        self.points: list[Point] = []
        self._run = 0

    def run(self, start: datetime, results: dict[str, str], network: str | None = "ok",
            vantage: str = "v1", asn: str | None = "AS64500",
            country: str | None = "DE") -> list[Point]:
        self._run += 1
        made: list[Point] = []
        for i, (target, verdict) in enumerate(results.items()):
            fields = {"verdict": "ok", "techniques": (), "outcomes": (), "confidence": 0.0,
                      "confirmed": False, **VERDICTS[verdict]}
            made.append(Point(
                measurement_id=len(self.points) + len(made) + 1, run_id=self._run,
                target=target, platform=None, started=iso(start + i * STEP),
                run_network=network, vantage=vantage, asn=asn, country=country,
                **fields,  # type: ignore[arg-type]
            ))
        self.points += made
        return made

    def hourly(self, states: Iterable[str], start: datetime = T0, every: timedelta = timedelta(
            hours=1), others: str = "ok", **kwargs: object) -> list[list[Point]]:
        """One run per hour: A in the given state, the other targets in `others`."""
        return [self.run(start + n * every, {A: state, **dict.fromkeys(OTHERS, others)},
                         **kwargs)  # type: ignore[arg-type]
                for n, state in enumerate(states)]


def blocking(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind == "blocking"]


# --- one block ------------------------------------------------------------------------------


def test_block_with_start_end_and_first_clean() -> None:
    s = Series()
    runs = s.hourly(["ok", "ok", "blocked", "blocked", "blocked", "blocked", "ok", "ok"])
    events = detect_events(s.points)
    assert len(events) == 1
    event = events[0]
    blocked = [run[0] for run in runs[2:6]]
    assert (event.kind, event.targets, event.pattern, event.window) == (
        "blocking", (A,), "persistent", None)
    assert event.start == iso(at(2)) and event.end == iso(at(5))
    assert event.first_clean == iso(at(6))
    assert event.measurement_ids == tuple(p.measurement_id for p in blocked)
    assert event.measurements == 4
    assert (event.techniques, event.outcomes) == (("tcp",), ("tcp.timeout",))
    assert (event.asn, event.country, event.vantage_points) == ("AS64500", "DE", ("v1",))
    assert event.confidence == pytest.approx(0.6)


def test_block_without_clean_data_after_is_ongoing() -> None:
    s = Series()
    s.hourly(["ok", "blocked", "blocked", "insufficient", "down"])
    [event] = detect_events(s.points)
    assert event.start == iso(at(1))
    assert event.end is None and event.first_clean is None


def test_intermittent_block_is_one_event() -> None:
    s = Series()
    s.hourly(["ok", "blocked", "ok", "blocked", "blocked", "ok", "blocked", "ok", "ok"])
    [event] = detect_events(s.points)
    assert event.pattern == "intermittent"
    assert (event.start, event.end, event.first_clean) == (iso(at(1)), iso(at(6)), iso(at(7)))
    assert event.measurements == 4


def test_clean_stretch_longer_than_max_gap_splits_events() -> None:
    s = Series()
    s.hourly(["blocked", "blocked"] + ["ok"] * 8 + ["blocked", "blocked", "ok"])
    first, second = detect_events(s.points)
    assert (first.start, first.end, first.first_clean) == (iso(at(0)), iso(at(1)), iso(at(2)))
    assert (second.start, second.end) == (iso(at(10)), iso(at(11)))
    assert first.pattern == second.pattern == "persistent"
    assert first.id != second.id
    # A longer max_gap joins them.
    [joined] = detect_events(s.points, EventPolicy(max_gap=timedelta(hours=12)))
    assert joined.pattern == "intermittent" and joined.measurements == 4


def test_silence_and_insufficient_data_do_not_end_a_block() -> None:
    s = Series()
    s.hourly(["blocked", "insufficient", "insufficient"])
    s.hourly(["blocked", "ok"], start=at(20))  # 19 hours later, nothing clean in between
    [event] = detect_events(s.points)
    assert (event.start, event.end, event.first_clean) == (iso(at(0)), iso(at(20)), iso(at(21)))
    assert event.pattern == "persistent"


# --- evidence -------------------------------------------------------------------------------


def test_a_single_unconfirmed_timeout_is_no_event() -> None:
    s = Series()
    s.hourly(["ok", "blocked", "ok", "ok"])
    assert detect_events(s.points) == []


def test_a_single_confirmed_blockpage_is_an_event() -> None:
    s = Series()
    runs = s.hourly(["ok", "confirmed", "ok"])
    [event] = detect_events(s.points)
    assert event.measurement_ids == (runs[1][0].measurement_id,)
    assert event.start == event.end == iso(at(1))
    assert event.first_clean == iso(at(2))
    assert event.outcomes == ("http.blockpage:ooni.zz_1",)
    assert event.confidence == pytest.approx(0.95)
    assert detect_events(s.points, EventPolicy(or_confirmed=False)) == []


# --- local outages are gaps -----------------------------------------------------------------


def test_local_outage_inside_a_block_is_a_gap() -> None:
    s = Series()
    s.hourly(["ok", "blocked", "blocked"])
    s.hourly(["insufficient"] * 3, start=at(3), others="insufficient", network="local_failure")
    s.hourly(["blocked", "blocked", "ok"], start=at(6))
    events = detect_events(s.points)
    assert [e.kind for e in events] == ["blocking"]
    [event] = events
    assert (event.start, event.end, event.first_clean) == (iso(at(1)), iso(at(7)), iso(at(8)))
    assert event.pattern == "persistent" and event.measurements == 4


def test_ok_verdicts_in_a_local_failure_run_do_not_end_a_block() -> None:
    s = Series()
    s.hourly(["blocked", "blocked"])
    s.hourly(["ok"], start=at(2), network="local_failure")
    s.hourly(["blocked", "ok"], start=at(3))
    [event] = detect_events(s.points)
    assert (event.end, event.first_clean) == (iso(at(3)), iso(at(4)))


# --- outages --------------------------------------------------------------------------------


def test_upstream_unreachable_runs_are_one_outage_and_no_blocking() -> None:
    s = Series()
    s.hourly(["ok"] * 3)
    dark = s.hourly(["blocked"] * 4, start=at(3), others="blocked",
                    network="upstream_unreachable")
    s.hourly(["ok"] * 2, start=at(7))
    [event] = detect_events(s.points)
    assert event.kind == "outage"
    assert event.targets == tuple(sorted((A, *OTHERS)))
    assert event.outcomes == ("network.upstream_unreachable",)
    assert event.techniques == ()
    assert event.start == iso(at(3))
    assert event.end == dark[-1][-1].started == iso(at(6) + 4 * STEP)
    assert event.first_clean == iso(at(7))
    assert event.measurement_ids == tuple(p.measurement_id for run in dark for p in run)
    assert event.confidence == pytest.approx(0.9)
    assert event.pattern == "persistent"


def test_a_block_continues_through_an_outage() -> None:
    s = Series()
    s.hourly(["blocked", "blocked"])
    s.hourly(["insufficient"] * 3, start=at(2), others="insufficient",
             network="upstream_unreachable")
    s.hourly(["blocked", "ok"], start=at(5))
    kinds = sorted((e.kind, e.start, e.end) for e in detect_events(s.points))
    assert kinds == [("blocking", iso(at(0)), iso(at(5))),
                     ("outage", iso(at(2)), iso(at(4) + 4 * STEP))]


def test_nearly_every_target_failing_with_the_link_up_is_an_outage() -> None:
    s = Series()
    s.hourly(["ok"] * 2)
    s.hourly(["confirmed"] * 3, start=at(2), others="down")
    s.hourly(["ok"], start=at(5))
    events = detect_events(s.points)
    # 4 of 5 targets down and A confirmed blocked: 80% < 90%, no outage.
    assert [e.kind for e in events] == ["blocking"]

    s = Series()
    s.hourly(["ok"] * 2)
    s.hourly(["blocked"] * 3, start=at(2), others="down")
    s.hourly(["ok"], start=at(5))
    [event] = detect_events(s.points)
    # A's unconfirmed failures inside the outage are not reported again as blocking.
    assert (event.kind, event.outcomes) == ("outage", ("network.most_targets_failed",))
    assert event.confidence == pytest.approx(0.7)


def test_a_confirmed_block_inside_an_outage_is_still_reported() -> None:
    s = Series()
    s.hourly(["ok"])
    s.hourly(["confirmed"] * 3, start=at(1), others="insufficient",
             network="upstream_unreachable")
    s.hourly(["ok"], start=at(4))
    assert sorted(e.kind for e in detect_events(s.points)) == ["blocking", "outage"]


def test_nightly_curfew_is_one_recurring_outage() -> None:
    s = Series()
    for day in range(7):
        for hour in range(24):
            dark = 1 <= hour < 9
            s.run(at(hour, day), {A: "insufficient" if dark else "ok",
                                  **dict.fromkeys(OTHERS, "insufficient" if dark else "ok")},
                  network="upstream_unreachable" if dark else "ok")
    [event] = detect_events(s.points)
    assert (event.kind, event.pattern, event.window) == ("outage", "recurring", "01:00-09:00")
    assert event.start == iso(at(1, day=0))
    assert event.end == iso(at(8, day=6) + 4 * STEP)
    assert event.first_clean == iso(at(9, day=6))
    assert event.measurements == 7 * 8 * 5


@pytest.mark.parametrize("minute", [0, 35])
def test_nightly_blocking_window_is_read_from_the_data(minute: int) -> None:
    s = Series()
    states = ["blocked" if 1 <= hour < 9 else "ok" for hour in range(24)]
    for day in range(5):
        s.hourly(states, start=at(0, day) + timedelta(minutes=minute))
    [event] = detect_events(s.points)
    assert (event.kind, event.pattern, event.window) == ("blocking", "recurring", "01:00-09:00")
    assert event.start == iso(at(1, 0) + timedelta(minutes=minute))
    assert event.first_clean == iso(at(9, 4) + timedelta(minutes=minute))
    assert event.measurements == 5 * 8


def test_two_nights_are_not_recurring() -> None:
    s = Series()
    states = ["blocked" if 1 <= hour < 9 else "ok" for hour in range(24)]
    for day in range(2):
        s.hourly(states, start=at(0, day))
    events = detect_events(s.points)
    assert [(e.pattern, e.window) for e in events] == [("persistent", None)] * 2


# --- several vantage points -----------------------------------------------------------------


def _two_vantages(second: str) -> list[Event]:
    s = Series()
    s.hourly(["ok", "blocked", "blocked", "blocked", "ok"], vantage="v1")
    s.hourly(["ok", second, second, second, "ok"], start=at(0) + timedelta(minutes=5),
             vantage="v2")
    return detect_events(s.points)


def test_vantage_points_that_agree_corroborate() -> None:
    [event] = _two_vantages("blocked")
    assert event.vantage_points == ("v1", "v2")
    assert event.measurements == 6
    assert event.confidence == pytest.approx(1 - 0.4 * 0.4)
    assert (event.end, event.first_clean) == (iso(at(3) + timedelta(minutes=5)), iso(at(4)))


def test_vantage_points_that_disagree_lower_the_confidence() -> None:
    [agree] = _two_vantages("blocked")
    [disagree] = _two_vantages("ok")
    s = Series()
    s.hourly(["ok", "blocked", "blocked", "blocked", "ok"], vantage="v1")
    [alone] = detect_events(s.points)
    assert disagree.vantage_points == ("v1",)
    # One blocked and one ok vantage point: half of what one vantage point alone would say.
    assert disagree.confidence == pytest.approx(alone.confidence / 2)
    assert disagree.confidence < alone.confidence < agree.confidence


def test_outage_seen_by_every_vantage_point_scores_higher() -> None:
    def outage(second: str) -> Event:
        s = Series()
        for vantage, network in (("v1", "upstream_unreachable"), ("v2", second)):
            s.hourly(["ok"], vantage=vantage)
            s.hourly(["insufficient"] * 3, start=at(1), others="insufficient", network=network,
                     vantage=vantage)
            s.hourly(["ok"], start=at(4), vantage=vantage)
        [event] = [e for e in detect_events(s.points) if e.kind == "outage"]
        return event

    both, one = outage("upstream_unreachable"), outage("ok")
    assert both.vantage_points == ("v1", "v2") and one.vantage_points == ("v1",)
    assert both.confidence > one.confidence
    assert one.confidence == pytest.approx(0.45)


def test_networks_are_kept_apart() -> None:
    s = Series()
    s.hourly(["blocked", "blocked", "ok"], vantage="v1", asn="AS1", country="DE")
    s.hourly(["blocked", "blocked", "ok"], vantage="v2", asn="AS2", country="DE")
    s.hourly(["blocked", "blocked", "ok"], vantage="v3", asn=None, country=None)
    events = detect_events(s.points)
    assert sorted(((e.asn, e.country, e.vantage_points) for e in events), key=str) == [
        ("AS1", "DE", ("v1",)), ("AS2", "DE", ("v2",)), (None, None, ("v3",))]
    assert len({e.id for e in events}) == 3


# --- the JSON shape -------------------------------------------------------------------------

FIELDS = ["id", "kind", "targets", "techniques", "outcomes", "asn", "country", "vantage_points",
          "start", "end", "first_clean", "measurements", "measurement_ids", "confidence",
          "pattern", "window"]


def test_to_dict_has_exactly_the_listed_fields() -> None:
    s = Series()
    s.hourly(["blocked", "blocked", "ok"])
    [event] = detect_events(s.points)
    data = event.to_dict()
    assert list(data) == FIELDS
    assert data["targets"] == [A] and data["measurement_ids"] == list(event.measurement_ids)
    assert len(data["id"]) == 16 and int(data["id"], 16) >= 0
    # Stable: the same data gives the same id, in any order.
    assert detect_events(list(reversed(s.points)))[0].id == event.id


def test_point_from_dict_round_trip() -> None:
    s = Series()
    [point, *_] = s.run(T0, {A: "confirmed"})
    data = {**point.__dict__, "techniques": list(point.techniques),
            "outcomes": list(point.outcomes)}
    data.pop("time", None)
    assert Point.from_dict(data) == point


# --- through a real store -------------------------------------------------------------------


def _store_run(store: Store, start: datetime, verdicts: dict[str, str], network: str = "ok",
               vantage: Mapping[str, object] | None = None) -> list[int]:
    run_id = store.begin_run(dict(vantage or {"tool": "netvigil"}), {})
    ids = []
    for i, (url, verdict) in enumerate(verdicts.items()):
        m = Measurement(Target(url, platform="test"), iso(start + i * STEP), 0.5)
        fields = {**VERDICTS[verdict], "reason": "synthetic"}
        fields = {k: list(v) if isinstance(v, tuple) else v for k, v in fields.items()}
        ids.append(store.add_measurement(run_id, m, fields))
    store.finish_run(run_id, network, {})
    return ids


@pytest.fixture
def store(tmp_path: Path) -> Iterable[Store]:
    with Store(tmp_path / "events.db", keys=tmp_path / "keys") as s:
        yield s


def test_events_from_a_store(store: Store) -> None:
    urls = [A, *OTHERS]
    for hour in range(3):
        _store_run(store, at(hour), dict.fromkeys(urls, "ok"))
    blocked = [_store_run(store, at(hour), {A: "confirmed", **dict.fromkeys(OTHERS, "ok")})[0]
               for hour in (3, 4)]
    _store_run(store, at(5), dict.fromkeys(urls, "ok"))
    dark = [i for hour in (6, 7) for i in _store_run(
        store, at(hour), dict.fromkeys(urls, "insufficient"), network="upstream_unreachable")]
    _store_run(store, at(8), dict.fromkeys(urls, "ok"))

    found = service.events(store)
    assert [(e.kind, e.start, e.end, e.first_clean) for e in found] == [
        ("blocking", iso(at(3)), iso(at(4)), iso(at(5))),
        ("outage", iso(at(6)), iso(at(7) + 4 * STEP), iso(at(8))),
    ]
    block, outage = found
    assert block.measurement_ids == tuple(blocked) and block.techniques == ("http",)
    assert outage.measurement_ids == tuple(dark)
    assert block.vantage_points == ("local",) and block.asn is None
    assert [list(e.to_dict()) for e in found] == [FIELDS, FIELDS]

    assert [e.kind for e in service.events(store, kind="outage")] == ["outage"]
    assert [e.kind for e in service.events(store, target="b.example")] == ["outage"]
    assert [e.kind for e in service.events(store, target=A.rstrip("/"))] == ["blocking",
                                                                               "outage"]
    assert [e.kind for e in service.events(store, since=iso(at(5)))] == ["outage"]
    with pytest.raises(ValueError):
        service.events(store, kind="weather")


def test_verdict_points_read_the_run(store: Store) -> None:
    ooni = {"tool": "ooni", "asn": "AS0", "country": "ZZ", "network_name": None}
    probe = {"tool": "netvigil", "vantage_id": "pi-7", "asn": 64500, "country": "de"}
    late = _store_run(store, at(2), {A: "ok"}, network="upstream_unreachable", vantage=probe)
    early = _store_run(store, at(1), {A: "blocked"}, vantage=ooni)
    run_id = store.begin_run({"tool": "netvigil"}, {})
    store.add_measurement(run_id, Measurement(Target(A), iso(at(0)), 0.1))  # not judged

    points = verdict_points(store)
    assert [p["measurement_id"] for p in points] == early + late  # oldest first
    first, second = points
    assert set(first) == {"measurement_id", "run_id", "target", "platform", "started",
                          "verdict", "techniques", "outcomes", "confidence", "confirmed",
                          "run_network", "vantage", "asn", "country"}
    assert (first["vantage"], first["asn"], first["country"]) == ("local", None, None)
    assert (second["vantage"], second["asn"], second["country"]) == ("pi-7", "AS64500", "DE")
    assert first["techniques"] == ["tcp"] and first["outcomes"] == ["tcp.timeout"]
    assert (first["verdict"], first["confirmed"], first["run_network"]) == ("blocked", False,
                                                                            "ok")
    assert second["run_network"] == "upstream_unreachable"
    assert [p["measurement_id"] for p in verdict_points(store, since="2026-11-01T01:30:00")] \
        == late
    assert [p["measurement_id"] for p in verdict_points(store, until=iso(at(1)))] == early
    assert verdict_points(store, target="https://nothing.example/") == []
    assert [Point.from_dict(p).started for p in points] == [iso(at(1)), iso(at(2))]
    with pytest.raises(ValueError):
        verdict_points(store, since="yesterday")


def test_reachability_bins_from_a_store(store: Store) -> None:
    urls = [A, *OTHERS]
    for hour in range(4):
        _store_run(store, at(hour), dict.fromkeys(urls, "ok"))
    _store_run(store, at(4), {A: "ok", **dict.fromkeys(OTHERS, "blocked")})
    bins = service.reachability_bins(store)
    assert [b.reachable_share for b in bins] == [1.0, 1.0, 1.0, 1.0, 0.2]
    assert [b.level for b in bins] == ["normal"] * 4 + ["critical"]
    assert {b.network for b in bins} == {"vantage local"}
