"""The records of event detection: what goes in (`Point`), its thresholds (`EventPolicy`) and
what comes out (`Event`), with the names of their kinds and patterns.

`analysis.event_detection.detect_events` groups Points into Events; the store gives Points
(`results.timeline.verdict_points`), the CLI prints Events and the plots draw both. Pure: no
I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from functools import cached_property
from typing import Any

from analysis import outages
from core.times import parse_utc

BLOCKING, OUTAGE = "blocking", "outage"
KINDS = (BLOCKING, OUTAGE)
PERSISTENT, INTERMITTENT, RECURRING = "persistent", "intermittent", "recurring"


@dataclass(frozen=True)
class Point:
    """One judged measurement, as `results.timeline.verdict_points` gives it."""

    measurement_id: int
    run_id: int
    target: str
    platform: str | None
    started: str  # ISO 8601 UTC
    verdict: str
    techniques: tuple[str, ...] = ()
    outcomes: tuple[str, ...] = ()
    confidence: float = 0.0
    confirmed: bool = False
    run_network: str | None = None  # None: the run has not finished (taken as ok)
    vantage: str = "local"
    asn: str | None = None
    country: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Point:
        return cls(
            measurement_id=int(data["measurement_id"]), run_id=int(data["run_id"]),
            target=str(data["target"]), platform=data.get("platform"),
            started=str(data["started"]), verdict=str(data["verdict"]),
            techniques=tuple(data.get("techniques") or ()),
            outcomes=tuple(data.get("outcomes") or ()),
            confidence=float(data.get("confidence") or 0.0),
            confirmed=bool(data.get("confirmed")), run_network=data.get("run_network"),
            vantage=str(data.get("vantage") or "local"),
            asn=data.get("asn") or None, country=data.get("country") or None,
        )

    @cached_property
    def time(self) -> datetime:
        return parse_utc(self.started)

    @property
    def network(self) -> str:
        return outages.network_label(self.asn, self.country, self.vantage)


@dataclass(frozen=True)
class EventPolicy:
    """The thresholds of `detect_events` (see the module docstring)."""

    min_measurements: int = 2  # a blocking event needs >= 2 blocked measurements ...
    or_confirmed: bool = True  # ... or one confirmed one
    max_gap: timedelta = timedelta(hours=6)  # longest clean interruption inside one event
    outage_share: float = 0.9  # a run where >= 90% of targets fail while the link is up ...
    outage_min_targets: int = 3  # ... out of at least this many conclusive measurements


DEFAULT_POLICY = EventPolicy()


@dataclass(frozen=True)
class Event:
    """Blocking of some targets, or an outage of a network, over a span of time."""

    id: str  # sha256 of kind, network, targets and start: first 16 hex digits
    kind: str  # blocking | outage
    targets: tuple[str, ...]
    techniques: tuple[str, ...]
    outcomes: tuple[str, ...]
    asn: str | None
    country: str | None
    vantage_points: tuple[str, ...]
    start: str  # ISO 8601 UTC: the first blocked measurement (first outage run)
    end: str | None  # the last one; None while ongoing (no clean measurement after)
    first_clean: str | None  # the first clean measurement after the end
    measurements: int
    measurement_ids: tuple[int, ...]
    confidence: float
    pattern: str  # persistent | intermittent | recurring
    window: str | None  # recurring only: the daily UTC window, "01:00-09:00"

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `netvigil events --json`: these fields, tuples as lists."""
        return {f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
                for f in fields(self)}
