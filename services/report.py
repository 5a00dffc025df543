"""Write the lawyer-ready report: gather from a Store, build the content, render HTML or PDF.

This is the library function behind `netvigil report`:

    with Store(path) as store:
        write_report(store, Path("case.pdf"), ReportOptions(since="2025-01-01", lang="en"))

What is gathered: the measurement rows in scope (a time window, or one event's span), the runs
(their vantage JSON says where and in which time zone), the events (`services.events`, when that
module is installed), the observations and controls of the measurements the report quotes, the
record hash of every measurement it cites, the state of the record chain, and the timeline plot
(`presentation.plots`, when matplotlib is installed). `presentation.report_build` turns that
into the content;
`presentation.report_html` / `presentation.report_pdf` draw it. User errors raise `ReportError`.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ReportError, UnknownLanguage
from core.times import format_utc, parse_utc, utc_now
from presentation.i18n import LOCALEDIR, translator
from presentation.report_build import build_report, plan_findings, timeline_points
from presentation.report_html import render_html
from presentation.report_model import EventLike, Evidence, Integrity, Report, ReportData
from presentation.report_plan import FindingPlan
from results import custody
from results.canonical import sha256_hex
from results.store import Store
from services.vantage import VERSION

FORMATS = {".html": "html", ".htm": "html", ".pdf": "pdf"}


@dataclass
class ReportOptions:
    """What the report covers and how it is written."""

    event: str | None = None  # one event's id; or a window:
    since: str | None = None  # ISO 8601; a time without offset is UTC
    until: str | None = None
    redact_vantage: bool = False
    lang: str = "en"
    localedir: Path = LOCALEDIR
    verify_chain: bool = True  # check the whole record chain (slow on very large databases)
    plot: bool = True
    generated: str | None = None  # ISO UTC; default now (tests pin it)


def _time(value: str | None, flag: str) -> str | None:
    if value is None:
        return None
    try:
        return format_utc(parse_utc(value))
    except ValueError:
        raise ReportError(f"{flag} {value!r}: not an ISO 8601 time (e.g. 2025-01-31T18:00Z)") \
            from None


def _find_events(store: Store, since: str | None, until: str | None) -> list[EventLike] | None:
    """The stored events (None when `services.events` is not installed)."""
    if importlib.util.find_spec("services.events") is None:
        return None
    from services.events import events

    found: list[EventLike] = list(events(store, since, until, None, None))
    return found


def _scope(rows: Sequence[Mapping[str, Any]], since: str | None, until: str | None,
           event: EventLike | None) -> list[int]:
    if event is not None:
        # The event's own measurements, and every other measurement of its targets meanwhile.
        start, end = parse_utc(event.start), parse_utc(event.end) if event.end else None
        ids = set(event.measurement_ids)
        return [int(r["id"]) for r in rows if r["id"] in ids or (
            r["target_url"] in event.targets and start <= parse_utc(r["started"])
            and (end is None or parse_utc(r["started"]) <= end))]
    low = parse_utc(since) if since else None
    high = parse_utc(until) if until else None
    return [int(r["id"]) for r in rows
            if (low is None or parse_utc(r["started"]) >= low)
            and (high is None or parse_utc(r["started"]) <= high)]


def _evidence(store: Store, plans: Sequence[FindingPlan]) -> dict[int, Evidence]:
    out = {}
    for mid in dict.fromkeys(i for p in plans for i in p.quoted):
        out[mid] = Evidence(store.load_measurement(mid), store.load_control(mid),
                            store.control_sha256(mid))
    return out


def _hashes(store: Store, plans: Sequence[FindingPlan]) -> dict[int, str]:
    out = {}
    for mid in dict.fromkeys(i for p in plans for i in p.cited()):
        row = store.measurement(mid)
        if row is not None:
            out[mid] = str(row["record_sha256"])
    return out


def _plot(rows: Sequence[Mapping[str, Any]], runs: Mapping[int, Mapping[str, Any]],
          scope: Sequence[int], events: Sequence[EventLike],
          redact: bool) -> tuple[bytes | None, str | None]:
    """The timeline as PNG bytes, or (None, why it failed); (None, None) without matplotlib."""
    if importlib.util.find_spec("matplotlib") is None:
        return None, None
    from presentation.plots import plot_timeline

    points = timeline_points(rows, runs, scope, redact)
    if redact:  # the plot's title names the networks of events too
        events = [dataclasses.replace(e, asn=None, vantage_points=("withheld",))  # type: ignore[type-var]
                  for e in events if dataclasses.is_dataclass(e)]
    try:
        return plot_timeline(points, events, "png"), None
    except (ValueError, RuntimeError, OSError) as exc:
        return None, f"{type(exc).__name__}: {exc}"


def build(store: Store, options: ReportOptions) -> Report:
    """The report's content for `options`, from `store`."""
    try:
        tr = translator(options.lang, options.localedir)
    except UnknownLanguage as exc:
        raise ReportError(str(exc)) from None
    since, until = _time(options.since, "--since"), _time(options.until, "--until")
    if options.event is not None and (since or until):
        raise ReportError("--event and --since/--until exclude each other")
    rows = list(store.iter_rows())
    runs = {int(r["id"]): r for r in store.runs()}
    found = _find_events(store, None if options.event else since,
                         None if options.event else until)
    events: list[EventLike] = found or []
    event = None
    if options.event is not None:
        if found is None:
            raise ReportError("--event needs the events analysis (services.events), which is "
                              "not installed")
        event = next((e for e in events if str(e.id) == options.event), None)
        if event is None:
            raise ReportError(f"--event {options.event}: no such event")
        events = [event]
    scope = _scope(rows, since, until, event)
    plans = plan_findings(rows, runs, scope, events)
    plot, plot_error = (_plot(rows, runs, scope, events, options.redact_vantage)
                        if options.plot else (None, None))
    data = ReportData(
        runs=runs, rows=rows, scope=scope, generated=options.generated or utc_now(),
        software=f"netvigil {VERSION}", since=since, until=until, event_id=options.event,
        events=events, events_available=found is not None, evidence=_evidence(store, plans),
        hashes=_hashes(store, plans), plot=plot, plot_error=plot_error,
        integrity=Integrity(store.head(), tuple(store.verify_chain())
                            if options.verify_chain else None),
        redact_vantage=options.redact_vantage)
    return build_report(data, plans, tr)


def render(report: Report, fmt: str) -> bytes:
    """The report as `fmt` ("html" or "pdf") bytes."""
    if fmt == "html":
        return render_html(report).encode("utf-8")
    if importlib.util.find_spec("fpdf") is None:
        raise ReportError("a PDF report needs fpdf2: pip install 'netvigil[report]'")
    from presentation.report_pdf import render_pdf

    return render_pdf(report)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_report(store: Store, out: Path, options: ReportOptions | None = None) -> Path:
    """Build the report and write it to `out` (.html or .pdf, by its suffix); returns `out`."""
    fmt = FORMATS.get(out.suffix.lower())
    if fmt is None:
        raise ReportError(f"--out {out}: the file must end in .html or .pdf")
    data = render(build(store, options or ReportOptions()), fmt)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed: a reader never sees half a report.
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a report is to be shared
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    custody.log_if_writable(store, "report", {"file": out.name, "format": fmt},
                {"report": sha256_hex(data), "chain_head": store.head()})
    return out
