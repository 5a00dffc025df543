"""Which records a signature vouches for, and what to say about those none does.

A run's signature is over its chain head, the hash of its `run_end` record; that hash covers
every record before it in the chain. So a record is covered when some valid signature's head
is that record or a later one: the nearest such head names the key that vouches for it. A run
that has not ended (no `run_end`), or that ended before the probe had a key, is not signed
itself; its records are covered only if a later run's signed head follows them.

`check_coverage` says so for every run that is not signed itself. What an uncovered record
means depends on who asks: in a probe's own database it is a run in progress (`NOTICE`); in an
evidence bundle it is a claim nobody vouches for (`PROBLEM`), unless the user accepts unsigned
records explicitly (`ALLOWED`, `--allow-unsigned`), which is then said in the output.
"""

from __future__ import annotations

import bisect
import sqlite3
from collections.abc import Sequence
from typing import Literal, NamedTuple

#: How uncovered records are reported: a notice (a database: runs in progress are normal), a
#: problem (a bundle), or a notice saying they were accepted on request (a bundle checked with
#: --allow-unsigned).
Unsigned = Literal["notice", "problem", "allowed"]
NOTICE: Unsigned = "notice"
PROBLEM: Unsigned = "problem"
ALLOWED: Unsigned = "allowed"

# (subject, what) of a problem, as `results.verify.Problem` takes them.
Finding = tuple[str, str]


class SignedHead(NamedTuple):
    """A valid signature: the run it signs, the id of its head record, the key that made it."""

    run_id: int
    record_id: int
    key_id: str


class Coverage:
    """The valid signatures of a chain, to ask which one covers a record."""

    def __init__(self, heads: Sequence[SignedHead]) -> None:
        self.heads = sorted(heads, key=lambda h: h.record_id)
        self._ids = [h.record_id for h in self.heads]

    def of(self, record_id: int) -> SignedHead | None:
        """The nearest signed head at or after `record_id` (its key vouches for the record), or
        None when no signature covers it."""
        i = bisect.bisect_left(self._ids, record_id)
        return self.heads[i] if i < len(self.heads) else None

    @property
    def last(self) -> int | None:
        """The id of the last record any signature covers."""
        return self._ids[-1] if self._ids else None


def check_coverage(conn: sqlite3.Connection, coverage: Coverage, signed_runs: set[int],
                   ended_unsigned: dict[int, str], unsigned: Unsigned = NOTICE
                   ) -> tuple[list[Finding], list[str]]:
    """(problems, notices) about every run not signed itself (`signed_runs` are), and about
    records of no run beyond the last signed head. `ended_unsigned` says, for runs that ended
    without a signature that is not a problem (they ended before the probe had a key), why."""
    problems: list[Finding] = []
    notices: list[str] = []
    spans = conn.execute("SELECT run_id, MIN(id), MAX(id), SUM(kind = 'run_end') FROM records "
                         "GROUP BY run_id ORDER BY MIN(id)").fetchall()
    for run_id, first, last, ended in spans:
        if run_id is not None and run_id in signed_runs:
            continue
        if run_id is not None and ended and run_id not in ended_unsigned:
            continue  # an ended run with a missing or bad signature: a problem already
        head = coverage.of(last)
        if run_id is None:
            if head is None:
                span = f"records {first}-{last}"
                _uncovered(span, f"{span} belong to no run and no signed run head follows them",
                           unsigned, problems, notices)
            continue
        state = ended_unsigned.get(run_id) or "has not ended (no run_end record), so it is " \
                                               "not signed itself"
        if head is not None:
            notices.append(f"run {run_id} {state}; the signature of run {head.run_id}'s head "
                           f"(record {head.record_id}, key {head.key_id}) covers its records")
        else:
            _uncovered(f"run {run_id}", f"run {run_id} {state}, and no signed run head follows "
                       f"its records ({first}-{last})", unsigned, problems, notices)
    return problems, notices


def _uncovered(subject: str, why: str, unsigned: Unsigned, problems: list[Finding],
               notices: list[str]) -> None:
    if unsigned == PROBLEM:
        problems.append((subject, f"covered by no signature: {why} (nothing proves who made "
                                  "these records; --allow-unsigned accepts them as such)"))
    elif unsigned == ALLOWED:
        notices.append(f"UNSIGNED, accepted because --allow-unsigned was given: {why}; "
                       "nothing proves who made these records")
    else:
        notices.append(f"{why}; no signature covers these records yet")
