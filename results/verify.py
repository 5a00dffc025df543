"""Verify a database end to end: every hash, link, signature and derived row (`verify`).

The raw tables are the truth (records, blobs, signatures, clock, custody); the researcher-facing
tables are derived from them. `verify` checks both: the raw ones against their hashes and
signatures, the derived ones against a fresh derivation from the raw records, so a changed byte
anywhere in a stored measurement is reported, naming the record, run or measurement and saying
what does not hold. Evidence bundles (`results.bundle_verify`) get the same raw checks.

    report = verify(store)
    if not report.ok:
        for problem in report.problems:
            print(problem)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar

from results import custody, integrity, signing, tsa_tokens
from results import rows as R
from results.canonical import GENESIS, chain_hash
from results.coverage import NOTICE, Coverage, Unsigned
from results.problems import Problem, Verification
from results.store import Store
from results.verdict_checks import same_value

# Given a run id, a fresh verdict dict per measurement id (services builds it on analysis).
Reclassify = Callable[[int], Mapping[int, Mapping[str, Any]]]

STEP_TABLES = ("dns_queries", "tcp_connects", "tls_handshakes", "http_requests")


@dataclass
class Places:
    """Where checked items live, to name them: the database (no file) or a bundle's files."""

    bundle: bool = False
    record_lines: dict[int, int] = field(default_factory=dict)

    FILES: ClassVar[dict[str, str]] = {
        "key": "data/keys.json", "signature": "data/signatures.json",
        "run": "data/signatures.json", "custody": "data/custody.jsonl",
        "clock": "data/clock.json", "records": "data/records.jsonl",
        "timestamp": "data/timestamps.json",
    }

    def record(self, rid: int) -> tuple[str, str | None]:
        line = self.record_lines.get(rid)
        subject = f"record {rid}" + (f" (line {line})" if line else "")
        return subject, self.file("records")

    def file(self, kind: str) -> str | None:
        return self.FILES.get(kind) if self.bundle else None

    def blob(self, table: str, digest: str) -> Problem:
        if table == "bodies":
            return Problem(f"body {digest}", "its content does not match its SHA-256",
                           f"data/bodies/{digest}" if self.bundle else None)
        return Problem(f"certificate {digest}", "its content does not match its SHA-256",
                       f"data/certificates/{digest}.der" if self.bundle else None)


def verify(store: Store, reclassify: Reclassify | None = None) -> Verification:
    """Check everything the database holds (see the module docstring); never writes."""
    conn = store.db.conn
    report = Verification()
    with snapshot(conn):  # one consistent view, even while a campaign keeps writing
        check_raw(conn, GENESIS, Places(), report)
        _check_runs(conn, report)
        _check_measurements(store, report)
        _check_controls(conn, report)
        if reclassify is not None:
            check_verdicts(store, reclassify, report)
        report.counts.update({
            name: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
            for name in ("runs", "measurements")
        })
    return report


@contextmanager
def snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """A read transaction (unless one is open already): every read inside sees one state."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def check_raw(conn: sqlite3.Connection, anchor: str, places: Places, report: Verification,
              custody_anchor: str = GENESIS, unsigned: Unsigned = NOTICE) -> Coverage:
    """The checks that need only the raw tables (shared by `verify` and the bundle check);
    `anchor` and `custody_anchor` are the hashes before the first record and custody entry,
    `unsigned` how records no signature covers are reported (`results.coverage`). Returns
    which signature covers which record."""
    for rid in integrity.verify_chain(conn, anchor):
        subject, file = places.record(rid)
        report.problems.append(Problem(subject, explain_record(conn, rid, anchor), file))
    for table, digest in integrity.damaged_blobs(conn):
        report.problems.append(places.blob(table, digest))
    found, notices, coverage = signing.check_signatures(conn, unsigned)
    report.problems.extend(Problem(s, w, places.file(kind)) for kind, s, w in found)
    report.notices.extend(notices)
    found, notices = tsa_tokens.check_tokens(conn)
    report.problems.extend(Problem(s, w, places.file(kind)) for kind, s, w in found)
    report.notices.extend(notices)
    report.problems.extend(Problem(s, w, places.file("custody"))
                           for s, w in custody.check_custody(conn, custody_anchor))
    _check_clock(conn, places, report)
    report.counts.update({
        name: conn.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0]
        for name in ("records", "bodies", "certificates", "signatures", "keys", "custody",
                     "timestamps")
    })
    return coverage


def explain_record(conn: sqlite3.Connection, rid: int, anchor: str = GENESIS) -> str:
    """In words, why `integrity.verify_chain` rejected record `rid`."""
    run_id, kind, created, text, digest, prev = conn.execute(
        "SELECT run_id, kind, created, canonical, sha256, prev_sha256 FROM records WHERE id = ?",
        (rid,),
    ).fetchone()
    before = conn.execute(
        "SELECT sha256 FROM records WHERE id < ? ORDER BY id DESC LIMIT 1", (rid,)
    ).fetchone()
    reasons = []
    if prev != (before[0] if before else anchor):
        reasons.append("its prev_sha256 is not the previous record's hash "
                       "(a record before it was changed, removed or inserted)")
    if chain_hash(prev, text.encode("utf-8")) != digest:
        reasons.append("its sha256 does not match its canonical text and prev_sha256")
    content = _json(text)
    if not isinstance(content, dict):
        reasons.append("its canonical text is not a JSON object")
    elif (content.get("run_id"), content.get("kind"), content.get("created")) != (
        run_id, kind, created
    ):
        reasons.append("its run_id, kind or created column disagrees with the hashed text")
    else:
        reasons.extend(_blob_reasons(conn, content))
    return "; ".join(reasons) or "it does not hold"


def _blob_reasons(conn: sqlite3.Connection, content: dict[str, Any]) -> Iterator[str]:
    loaders = {"bodies": integrity.load_body, "certificates": integrity.load_certificate}
    try:
        refs = list(R.record_refs(content))
    except (ValueError, TypeError, KeyError, AttributeError):
        yield "its measurement does not have the stored shape"
        return
    for table, digest in refs:
        try:
            loaders[table](conn, digest)
        except integrity.IntegrityError as exc:
            yield f"it refers to a {'body' if table == 'bodies' else 'certificate'}: {exc}"


# --- derived data --------------------------------------------------------------------------------


def _check_clock(conn: sqlite3.Connection, places: Places, report: Verification) -> None:
    """Each clock row says what its chained `clock` record says, and every such record has one."""
    file = places.file("clock")
    seen: set[int] = set()
    for cid, run_id, record_id, source, synced, offset, checked in conn.execute(
        "SELECT id, run_id, record_id, source, synchronised, offset_s, checked FROM clock"
    ):
        seen.add(record_id)
        row = conn.execute("SELECT run_id, kind, canonical FROM records WHERE id = ?",
                           (record_id,)).fetchone()
        record = _json(row[2]) if row and row[1] == "clock" else None
        state = record.get("clock") if isinstance(record, dict) else None
        if not isinstance(state, dict) or row[0] != run_id:
            report.problems.append(Problem(f"clock {cid} (run {run_id})",
                                           f"record {record_id} is not this run's clock", file))
            continue
        want = (state.get("source"), _flag(state.get("synchronised")),
                _number(state.get("offset_s")), state.get("checked"))
        if (source, synced, offset, checked) != want:
            report.problems.append(Problem(f"clock {cid} (run {run_id})",
                                           f"the row differs from record {record_id}", file))
    for (rid,) in conn.execute("SELECT id FROM records WHERE kind = 'clock'"):
        if rid not in seen:
            subject, _ = places.record(rid)
            report.problems.append(Problem(subject, "a clock record with no clock row", file))


def _check_runs(conn: sqlite3.Connection, report: Verification) -> None:
    """The runs table says what each run's run_start and run_end records say."""
    records: dict[int, dict[str, dict[str, Any]]] = {}
    for run_id, kind, text in conn.execute(
        "SELECT run_id, kind, canonical FROM records WHERE kind IN ('run_start', 'run_end')"
    ):
        content = _json(text)
        records.setdefault(run_id, {})[kind] = content if isinstance(content, dict) else {}
    rows = conn.execute(
        "SELECT id, started, vantage, config, finished, network, summary, status FROM runs"
    ).fetchall()
    for run_id, started, vantage, config, finished, network, summary, status in rows:
        start, end = (records.get(run_id, {}).get(kind) for kind in ("run_start", "run_end"))
        if start is None:
            report.problems.append(Problem(f"run {run_id}", "it has no run_start record"))
            continue
        have = [started, _json(vantage), _json(config)]
        want = [start.get("started"), start.get("vantage"), start.get("config")]
        if end is not None:
            have += [finished, network, _json(summary), status]
            want += [end.get(k) for k in ("finished", "network", "summary", "status")]
        else:  # a run without its run_end record has not ended
            have.append(status)
            want.append("running")
        if have != want:
            report.problems.append(Problem(f"run {run_id}", "the runs row differs from its "
                                           "run_start/run_end records"))
    for run_id in sorted(set(records) - {row[0] for row in rows}):
        report.problems.append(Problem(f"run {run_id}", "records of a run with no runs row"))


def _check_measurements(store: Store, report: Verification) -> None:
    """Each measurement row and its step rows re-derived from the raw record; no record without
    a row (removing a row must not hide a measurement) and no step row without a measurement."""
    conn = store.db.conn
    rows = {mid: (run_id, record_id, cols) for mid, run_id, record_id, *cols in conn.execute(
        "SELECT id, run_id, record_id, target_url, platform, category, hostname, started, "
        "runtime FROM measurements ORDER BY id"
    )}
    recorded = {rid: run_id for rid, run_id in conn.execute(
        "SELECT id, run_id FROM records WHERE kind = 'measurement'")}
    for mid, (run_id, record_id, cols) in rows.items():
        subject = f"measurement {mid}"
        if recorded.pop(record_id, None) != run_id:
            report.problems.append(Problem(subject, f"record {record_id} is not a measurement "
                                           f"record of run {run_id}"))
            continue
        try:
            m = store.load_measurement(mid)
        except (integrity.IntegrityError, ValueError, TypeError, KeyError) as exc:
            report.problems.append(Problem(subject, f"cannot be rebuilt from its record: {exc}"))
            continue
        t = m.target
        if cols != [t.url, t.platform, t.category, t.hostname, m.started, m.runtime]:
            report.problems.append(Problem(subject, "its target or time columns differ from "
                                           f"record {record_id}"))
        for what in _step_differences(conn, mid, m):
            report.problems.append(Problem(subject, what))
    for rid in recorded:
        report.problems.append(Problem(f"record {rid}", "a measurement record with no "
                                       "measurements row (the row was removed)"))
    for table in STEP_TABLES:
        for (mid,) in conn.execute(f"SELECT DISTINCT measurement_id FROM {table} WHERE "
                                   "measurement_id NOT IN (SELECT id FROM measurements)"):
            report.problems.append(Problem(f"measurement {mid}", f"{table} rows of a "
                                           "measurement that does not exist"))
    for (qid,) in conn.execute("SELECT DISTINCT query_id FROM dns_answers WHERE query_id NOT IN "
                               "(SELECT id FROM dns_queries)"):
        report.problems.append(Problem(f"dns query {qid}", "dns_answers rows of a query that "
                                       "does not exist"))


def _step_differences(conn: sqlite3.Connection, mid: int, m: Any) -> Iterator[str]:
    expected: dict[str, list[R.StepRow]] = {table: [] for table in STEP_TABLES}
    for step in R.step_rows(mid, m):
        expected[step.table].append(step)
    for table, steps in expected.items():
        stored = _rows(conn, f"SELECT * FROM {table} WHERE measurement_id = ? "
                       "ORDER BY step_index, id", (mid,))
        if len(stored) != len(steps):
            yield f"{table} has {len(stored)} rows, its record gives {len(steps)}"
            continue
        for row, step in zip(stored, steps, strict=True):
            qid = row.pop("id")
            yield from _differ(f"{table} step {step.row['step_index']}", row, step.row)
            if table == "dns_queries":
                answers = _rows(conn, "SELECT * FROM dns_answers WHERE query_id = ? "
                                "ORDER BY response_index, id", (qid,))
                for answer in answers:
                    del answer["id"], answer["query_id"]
                if answers != step.answers:
                    yield f"dns_answers of {table} step {step.row['step_index']} differ from " \
                          "the record"


def _differ(where: str, have: Mapping[str, Any], want: Mapping[str, Any]) -> Iterator[str]:
    """The first column whose stored value is not the derived one (type included: SQLite would
    happily keep the text '443' in an INTEGER column)."""
    for name, value in want.items():
        if not same_value(have.get(name), value):
            yield f"{where}: {name} is {have.get(name)!r}, the record says {value!r}"
            return


def _check_controls(conn: sqlite3.Connection, report: Verification) -> None:
    """Each controls row points at the control record it claims; no control record is hidden."""
    claimed: set[int] = set()
    for cid, run_id, mid, record_id, source, rec_run, kind, text in conn.execute(
        "SELECT c.id, c.run_id, c.measurement_id, c.record_id, c.source, r.run_id, r.kind, "
        "r.canonical FROM controls c LEFT JOIN records r ON r.id = c.record_id"
    ):
        claimed.add(record_id)
        content = _json(text) if kind == "control" else None
        if not isinstance(content, dict) or (rec_run, content.get("measurement_id"),
                                             content.get("source")) != (run_id, mid, source):
            report.problems.append(Problem(f"measurement {mid}", f"its control row {cid} "
                                           f"differs from record {record_id}"))
    for (rid,) in conn.execute("SELECT id FROM records WHERE kind = 'control'"):
        if rid not in claimed:
            report.problems.append(Problem(f"record {rid}", "a control record with no "
                                           "controls row (the row was removed)"))


def check_verdicts(store: Store, reclassify: Reclassify, report: Verification,
                   run_ids: Iterable[int] | None = None) -> None:
    """The verdict columns (of every run, or of `run_ids`) equal what a fresh classification
    of the raw records gives."""
    conn = store.db.conn
    names = ", ".join(R.VERDICT_COLUMNS)
    if run_ids is None:
        run_ids = [run_id for (run_id,) in conn.execute("SELECT id FROM runs ORDER BY id")]
    for run_id in run_ids:
        fresh = reclassify(run_id)
        for mid, verdict in fresh.items():
            row = _rows(conn, f"SELECT {names} FROM measurements WHERE id = ?", (mid,))
            if not row or row[0]["verdict"] is None:
                report.notices.append(f"measurement {mid} has no verdict stored")
                continue
            for what in _differ("verdict", row[0], R.verdict_columns(verdict)):
                report.problems.append(Problem(f"measurement {mid}", what + " (classified again)"))


def _rows(conn: sqlite3.Connection, sql: str, args: tuple[Any, ...]) -> list[dict[str, Any]]:
    cursor = conn.execute(sql, args)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor]


def _json(text: Any) -> Any:
    if not isinstance(text, str):
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _flag(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _number(value: Any) -> float | None:
    return None if value is None else float(value)
