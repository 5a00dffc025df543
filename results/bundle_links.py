"""What a bundle's verdicts must link to, and what a check of its derived files is given.

A verdict line of `data/verdicts.jsonl` is a claim about one measurement record: it must name a
measurement record of the bundle by id and hash, for that record's target, once; and its
measurement id must follow the records, since a probe numbers its measurements in the order it
records them (so a forger cannot move one record's verdict, or its control, to another). Whether
the claim itself holds is for the derived check (`services.bundle_claims` classifies the records
again); this module only makes sure each claim is about a record the bundle holds.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from results.coverage import Coverage
from results.verify import Problem, Verification

VERDICTS = "data/verdicts.jsonl"


@dataclass(frozen=True)
class Loaded:
    """What a check of the derived files is given, once the raw data have been checked."""

    files: dict[str, bytes]  # every file of the bag, by its path inside the bag
    conn: sqlite3.Connection  # the raw data, in a database with netvigil's schema
    verdicts: list[tuple[int, dict[str, Any]]]  # (line, verdict) naming a record of the bundle
    numbering: dict[int, int]  # measurement record id -> the probe's measurement id
    coverage: Coverage  # which signature covers which record


#: A check of derived files that needs more than the results layer knows (the verdicts
#: classified again from the records, the events found again: services); what it returns is
#: its caller's (the collector keeps what it derived).
DerivedCheck = Callable[[Loaded, Verification], object]


def check_verdict_links(conn: sqlite3.Connection,
                        lines: Iterable[tuple[int, dict[str, Any] | str]],
                        report: Verification
                        ) -> tuple[list[tuple[int, dict[str, Any]]], dict[int, int]]:
    """Each verdict (`lines`: line number and the parsed verdict, or why it is not one) names
    a measurement record by id and hash, for its target, once, with a measurement id that
    follows the records. Returns the (line, verdict) that do (each other is a problem), and
    the measurement id of every measurement record as they number them ({} without any)."""
    # The n-th measurement record of the bundle: a probe's measurement ids go up by one with
    # each measurement record, so (id - n) is the same for every verdict of one bundle.
    order = {rid: n for n, (rid,) in enumerate(conn.execute(
        "SELECT id FROM records WHERE kind = 'measurement' ORDER BY id"))}
    linked: list[tuple[int, dict[str, Any]]] = []
    offset: tuple[int, int] | None = None  # (id - n, the line that set it)
    seen: dict[tuple[str, int], int] = {}
    for n, item in lines:
        if isinstance(item, str):
            report.problems.append(Problem(f"line {n}", item, VERDICTS))
            continue
        subject = f"measurement {item['measurement_id']} (line {n})"
        row = conn.execute("SELECT run_id, kind, sha256, canonical FROM records WHERE id = ?",
                           (item["record_id"],)).fetchone()
        if (row is None or row[1] != "measurement"
                or (row[0], row[2]) != (item["run_id"], item["record_sha256"])
                or _target_url(row[3]) != item["target"]):
            report.problems.append(Problem(subject, f"it does not name record "
                                           f"{item['record_id']} of the bundle by its hash",
                                           VERDICTS))
            continue
        keys = [("record", item["record_id"]), ("measurement", item["measurement_id"])]
        again = next((seen[k] for k in keys if k in seen), None)
        if again is not None:
            report.problems.append(Problem(subject, f"line {again} has a verdict for the same "
                                           "measurement or record: one verdict each", VERDICTS))
            continue
        seen.update(dict.fromkeys(keys, n))
        shift = item["measurement_id"] - order[item["record_id"]]
        if offset is None:
            offset = (shift, n)
        elif shift != offset[0]:
            report.problems.append(Problem(subject, "its id does not follow the order of the "
                                           f"measurement records (line {offset[1]} numbers "
                                           "them otherwise)", VERDICTS))
            continue
        linked.append((n, item))
    shift = offset[0] if offset is not None else None
    return linked, ({} if shift is None else {rid: n + shift for rid, n in order.items()})


def _target_url(text: str) -> Any:
    try:
        return json.loads(text)["measurement"]["target"]["url"]
    except (ValueError, KeyError, TypeError):
        return None
