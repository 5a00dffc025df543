"""Which findings a report has, and which measurements each one rests on.

    plan_findings(rows, runs, scope, events) -> [FindingPlan]

A finding is an event from `analysis.event_detection` (blocking or outage) when events are given;
otherwise each blocked measurement is a finding of its own, and each run whose network state
is `upstream_unreachable` (the link and router up, nothing beyond: a shutdown) is an outage
finding. Blocked measurements that no event covers still become findings: nothing blocked in
the report's scope is left unsaid.

Planning comes before writing so that `services.report` loads from the store only what the
report will quote (observations and controls of `quoted`) and cite (record hashes of `cited`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.times import parse_utc
from presentation.report_model import EventLike

Row = Mapping[str, Any]
MAX_QUOTED = 3  # measurements whose observations a finding quotes
MAX_PEERS = 5  # other reachable targets cited by name
MAX_NEIGHBOURS = 3  # targets whose previous and next measurements are cited


@dataclass(frozen=True)
class FindingPlan:
    """One finding and the measurements it rests on."""

    kind: str  # "blocking" | "outage"
    targets: tuple[str, ...]
    ids: tuple[int, ...]  # the measurements that show it
    quoted: tuple[int, ...]  # those whose observations are quoted
    related: tuple[int, ...] = ()  # other measurements of the same targets in the scope
    peers: tuple[int, ...] = ()  # other targets reachable in the same runs (cited)
    peer_count: int = 0
    before: tuple[int, ...] = ()  # the measurement before it, per target (or run)
    after: tuple[int, ...] = ()
    start: str = ""
    end: str | None = None
    event: EventLike | None = None

    def cited(self) -> list[int]:
        return list(dict.fromkeys(
            (*self.ids, *self.related, *self.peers, *self.before, *self.after)))


class _Index:
    """The measurement rows, looked up by id, target and run."""

    def __init__(self, rows: Sequence[Row], scope: Sequence[int]) -> None:
        self.rows = sorted(rows, key=lambda r: (r["started"], r["id"]))
        self.by_id = {r["id"]: r for r in self.rows}
        self.scope = [self.by_id[i] for i in scope if i in self.by_id]
        self.scope.sort(key=lambda r: (r["started"], r["id"]))

    def nearest(self, target: str | None, moment: str, later: bool, skip_run: int | None = None,
                verdict: str | None = None, inclusive: bool = False) -> int | None:
        """The measurement of `target` (any, if None) just before or after `moment`."""
        for r in self.rows if later else reversed(self.rows):
            started = r["started"]
            if not ((started > moment or (inclusive and started == moment)) if later
                    else started < moment):
                continue
            if ((target is None or r["target_url"] == target)
                    and (skip_run is None or r["run_id"] != skip_run)
                    and (verdict is None or r.get("verdict") == verdict)):
                return int(r["id"])
        return None

    def peers(self, run_ids: set[int], exclude: set[str]) -> list[int]:
        return [r["id"] for r in self.rows if r["run_id"] in run_ids and r.get("verdict") == "ok"
                and r["target_url"] not in exclude]

    def related(self, targets: set[str], ids: set[int]) -> tuple[int, ...]:
        return tuple(r["id"] for r in self.scope if r["target_url"] in targets
                     and r["id"] not in ids)


def _blocking(index: _Index, ids: list[int], quoted: list[int], targets: tuple[str, ...],
              start: str, end: str | None, event: EventLike | None = None) -> FindingPlan:
    runs = {index.by_id[i]["run_id"] for i in quoted}
    peers = index.peers(runs, set(targets))
    last = max((index.by_id[i]["started"] for i in ids), default=start)
    shown = targets[:MAX_NEIGHBOURS]
    before = [index.nearest(t, start, later=False) for t in shown]
    # After an event: its first clean measurement (included); else the next one after it.
    clean = event.first_clean if event is not None else None
    after = [index.nearest(t, clean or end or last, later=True, inclusive=bool(clean))
             for t in shown]
    return FindingPlan(
        "blocking", targets, tuple(ids), tuple(quoted), index.related(set(targets), set(ids)),
        tuple(peers[:MAX_PEERS]), len(peers), tuple(i for i in before if i is not None),
        tuple(i for i in after if i is not None), start, end, event)


def _from_event(index: _Index, event: EventLike) -> FindingPlan:
    ids = [i for i in event.measurement_ids if i in index.by_id]
    if event.kind == "outage":
        return _outage(index, ids, event.start, event.end, event)
    quoted: list[int] = []
    for target in event.targets:
        first = next((i for i in ids if index.by_id[i]["target_url"] == target
                      and index.by_id[i].get("verdict") == "blocked"), None)
        if first is not None and len(quoted) < MAX_QUOTED:
            quoted.append(first)
    return _blocking(index, ids, quoted, tuple(event.targets), event.start, event.end, event)


def _outage(index: _Index, ids: list[int], start: str, end: str | None,
            event: EventLike | None = None) -> FindingPlan:
    rows = [index.by_id[i] for i in ids]
    runs = {r["run_id"] for r in rows}
    skip = next(iter(runs)) if len(runs) == 1 else None
    last = max((r["started"] for r in rows), default=end or start)
    before = index.nearest(None, start, later=False, skip_run=skip, verdict="ok")
    after = index.nearest(None, end or last, later=True, skip_run=skip, verdict="ok")
    targets = tuple(dict.fromkeys(r["target_url"] for r in rows))
    return FindingPlan("outage", targets, tuple(ids), (), (), (), 0,
                       (before,) if before else (), (after,) if after else (), start, end, event)


def plan_findings(rows: Sequence[Row], runs: Mapping[int, Row], scope: Sequence[int],
                  events: Sequence[EventLike] = ()) -> list[FindingPlan]:
    """The report's findings, oldest first (see the module docstring)."""
    index = _Index(rows, scope)
    plans = [_from_event(index, e) for e in events]
    covered = {i for e in events for i in e.measurement_ids}
    for r in index.scope:
        if r.get("verdict") == "blocked" and r["id"] not in covered:
            plans.append(_blocking(index, [r["id"]], [r["id"]], (r["target_url"],),
                                   r["started"], None))
    outage_runs: dict[int, list[int]] = {}
    for r in index.scope:
        run = runs.get(r["run_id"]) or {}
        if run.get("network") == "upstream_unreachable" and r["id"] not in covered:
            outage_runs.setdefault(r["run_id"], []).append(r["id"])
    for run_id, ids in outage_runs.items():
        run = runs.get(run_id) or {}
        start = run.get("started") or index.by_id[ids[0]]["started"]
        plans.append(_outage(index, ids, start, run.get("finished")))
    return sorted(plans, key=lambda p: (parse_utc(p.start), p.kind, p.targets))
