"""The lawyer-ready report's content, built from stored data: pure, no I/O.

    plans = plan_findings(rows, runs, scope, events)     # report_findings: what to load
    report = build_report(data, plans, tr)               # a Report (report_model)

The layout is an expert report's, in numbered paragraphs:

1. Summary of findings.
2. Findings: for each event (or, without events, each blocked measurement and each run that
   lost the network beyond its router), what was blocked, where, when (UTC to the minute and the
   vantage point's local time), how (the technique in plain words, with the decisive evidence
   quoted from the records), how sure, and the controls that rule out a local fault or an outage
   of the site (`report_findings`).
3. Methodology and software version. 4. Limitations.
5. Exhibits: every measurement cited, with the SHA-256 of its raw record (and of its control's).
6. The timeline plot, when there is one.

Every sentence goes through the translator (`report_i18n`); every value from the network
through `report_text.visible`. The renderers (`report_html`, `report_pdf`) only lay it out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from core.verdicts import split_list
from presentation.i18n import Translator
from presentation.report_findings import finding_blocks, finding_title
from presentation.report_model import (
    Block,
    Exhibits,
    Figure,
    Paragraph,
    Report,
    ReportData,
    Section,
    Table,
    numbered,
)
from presentation.report_pdf import text_support
from presentation.report_plan import FindingPlan, plan_findings
from presentation.report_text import (
    VantageInfo,
    listing,
    techniques_phrase,
    utc_minute,
    verdict_word,
    visible,
    zone,
)

__all__ = ["TimelinePoint", "build_report", "plan_findings", "timeline_points"]


def build_report(data: ReportData, plans: Sequence[FindingPlan], tr: Translator) -> Report:
    """The report of `data`, with the findings `plans` (from `plan_findings` on the same data)."""
    _ = tr._
    exhibits = Exhibits()
    findings: list[Block] = []
    for n, plan in enumerate(plans, 1):
        findings += finding_blocks(n, plan, data, exhibits, tr)
    for plan in plans:  # measurements a finding counts but does not name are exhibits too
        for mid in plan.cited():
            exhibits.cite(mid)
    if not plans:
        findings.append(Paragraph(_("No blocking and no outage was found in the measurements "
                                    "this report covers.")))
    sections = [
        Section(1, _("Summary of findings"), tuple(_summary(data, plans, tr))),
        Section(2, _("Findings"), tuple(findings)),
        Section(3, _("Methodology and software"), tuple(_methodology(data, tr))),
        Section(4, _("Limitations"), tuple(_limitations(data, tr))),
        Section(5, _("Exhibits"), tuple(_exhibits(data, exhibits, tr))),
        Section(6, _("Timeline"), (_timeline(data, tr),)),
    ]
    return Report(
        lang=tr.lang, direction=tr.direction,
        title=_("Evidence of network interference: netvigil measurement report"),
        front=tuple(_front(data, tr)), sections=numbered(sections),
        page_label=_("Page {page} of {pages}"), generated=data.generated,
    )


def _front(data: ReportData, tr: Translator) -> list[str]:
    _ = tr._
    if data.event_id is not None:
        scope = _("Scope: event {event}.").format(event=visible(data.event_id))
    elif data.since or data.until:
        scope = _("Scope: measurements from {since} to {until}.").format(
            since=utc_minute(data.since) if data.since else _("the first stored"),
            until=utc_minute(data.until) if data.until else _("the last stored"))
    else:
        scope = _("Scope: every stored measurement.")
    made = _("Generated on {time} by {software}.").format(
        time=utc_minute(data.generated), software=visible(data.software))
    return [scope, made]


def _scope_rows(data: ReportData) -> list[Mapping[str, Any]]:
    wanted = set(data.scope)
    return [r for r in data.rows if r["id"] in wanted]


def _summary(data: ReportData, plans: Sequence[FindingPlan], tr: Translator) -> list[Block]:
    _ = tr._
    rows = _scope_rows(data)
    if not rows:
        return [Paragraph(_("No measurement is stored in the period this report covers."))]
    starts = sorted(r["started"] for r in rows)
    n = len(rows)
    out: list[Block] = [Paragraph(tr.n_(
        "This report covers {n} measurement of {targets} target(s) in {runs} run(s), made "
        "between {first} and {last}.",
        "This report covers {n} measurements of {targets} target(s) in {runs} run(s), made "
        "between {first} and {last}.", n).format(
        n=n, targets=len({r["target_url"] for r in rows}), runs=len({r["run_id"] for r in rows}),
        first=utc_minute(starts[0]), last=utc_minute(starts[-1])))]
    counts = {v: sum(1 for r in rows if r.get("verdict") == v)
              for v in ("ok", "blocked", "down", "insufficient")}
    out.append(Paragraph(_("Of these, {ok} found the target reachable, {blocked} found it "
                           "blocked, {down} found it unreachable for everyone (the site's own "
                           "fault, not interference) and {insufficient} were inconclusive.")
                         .format(**counts)))
    if data.redact_vantage:
        out.append(Paragraph(_("At the request of the person who made this report, the vantage "
                               "point's exact network is left out: its ISP name, ASN, resolver "
                               "addresses and local addresses.")))
    if plans:
        out.append(Paragraph(tr.n_("There is {n} finding:", "There are {n} findings:",
                                   len(plans)).format(n=len(plans))))
        out += [Paragraph(_summary_line(n, plan, data, tr)) for n, plan in enumerate(plans, 1)]
    else:
        out.append(Paragraph(_("No blocking and no outage was found.")))
    return out


def _summary_line(n: int, plan: FindingPlan, data: ReportData, tr: Translator) -> str:
    _ = tr._
    title = finding_title(n, plan, tr)
    when = utc_minute(plan.start)
    if plan.kind == "outage":
        return _("{title}, from {time}.").format(title=title, time=when)
    rows = {r["id"]: r for r in data.rows}
    quoted = [rows[i] for i in plan.quoted if i in rows]
    techniques = plan.event.techniques if plan.event is not None else tuple(
        dict.fromkeys(t for r in quoted for t in split_list(r.get("techniques"))))
    sure = (_("confirmed by positive proof") if any(r.get("confirmed") for r in quoted)
            else _("not confirmed by positive proof"))
    line = (_("{title}, by {techniques}, from {time}; {sure}.") if plan.event is not None else
            _("{title}, by {techniques}, at {time}; {sure}."))
    return line.format(title=title, techniques=techniques_phrase(tr, techniques), time=when,
                       sure=sure)


def _methodology(data: ReportData, tr: Translator) -> list[Block]:
    _ = tr._
    out: list[Block] = [Paragraph(text) for text in (
        _("netvigil measures, from a vantage point (a volunteer's computer on the network under "
          "study), whether Internet services can be reached. For each target it resolves the "
          "name (through the system resolver and through resolvers queried directly), connects "
          "to every address it gets, performs the TLS handshake naming the site, and fetches "
          "the page. Every step is recorded as an observation with its timing and, when it "
          "fails, a standard failure name (OONI's vocabulary, such as connection_reset)."),
        _("A test helper on an uncensored network measures the same targets at the same time: "
          "that is the control. A failure the control does not share is evidence of "
          "interference (the verdict is blocked); one the control shares means the site itself "
          "is down. Without a control only positive proof counts: a known blockpage, a forged "
          "second DNS answer, or a TLS handshake that fails with the site's name but completes "
          "with a harmless one."),
        _("Confidence combines the independent pieces of evidence on a scale from 0 to 1. "
          "Times are given in UTC to the minute (truncated, never rounded); the exhibits give "
          "each measurement's exact start time, taken from the vantage point's clock."),
        _("Every observation is stored as a record in canonical JSON (RFC 8785). Each record's "
          "SHA-256 hash is computed over the previous record's hash, a line feed and the record "
          "itself, so a changed, removed or inserted record breaks the chain. The exhibits give "
          "the hash of every record this report cites: anyone can recompute them from the "
          "database with standard tools."),
    )]
    out.append(Paragraph(_integrity(data, tr)))
    versions = sorted({v.software for r in data.runs.values()
                       if (v := VantageInfo.of(r)).software})
    out.append(Paragraph(_("The measurements were made with {versions}; this report was "
                           "generated by {software}.").format(
        versions=visible(listing(versions, 5)) if versions else _("software not recorded"),
        software=visible(data.software))))
    return out


def _integrity(data: ReportData, tr: Translator) -> str:
    _ = tr._
    state = data.integrity
    if state is None or state.damaged is None:
        head = visible(state.head) if state else _("not recorded")
        return _("The record chain was not checked when this report was made; its newest "
                 "record's hash was {head}.").format(head=head)
    if not state.damaged:
        return _("When this report was made, the database's record chain verified intact; its "
                 "newest record's hash was {head}.").format(head=state.head)
    return tr.n_("When this report was made, {n} record failed the integrity check (record "
                 "{ids}); findings resting on it should not be relied on.",
                 "When this report was made, {n} records failed the integrity check (records "
                 "{ids}); findings resting on them should not be relied on.",
                 len(state.damaged)).format(n=len(state.damaged),
                                            ids=listing([str(i) for i in state.damaged], 10))


def _limitations(data: ReportData, tr: Translator) -> list[Block]:
    _ = tr._
    texts = [
        _("A vantage point sees one network at a time: a finding shows what happened on that "
          "network, not elsewhere in the country. It shows that access was interfered with and "
          "how, not who ordered it."),
        _("The control is a test helper on another network. Had that network been filtered "
          "too, or had the site treated it differently, a comparison could mislead; findings "
          "confirmed by positive proof do not depend on the control."),
        _("Times come from the vantage point's clock, which is not independently attested."),
    ]
    runs = [data.runs[i] for i in {r["run_id"] for r in _scope_rows(data)} if i in data.runs]
    if any(zone(VantageInfo.of(r).timezone) is None for r in runs):
        texts.append(_("Some runs recorded no time zone: for them the local time is not given."))
    if not data.redact_vantage and any(VantageInfo.of(r).asn is None for r in runs):
        texts.append(_("Some runs recorded no network (ISP, ASN): for them it is given as not "
                       "recorded."))
    if data.redact_vantage:
        texts.append(_("The vantage point's exact network is withheld from this report; the "
                       "database holds it where it was recorded."))
    if not data.events_available:
        texts.append(_("Measurements were not grouped into events over time: each blocked "
                       "measurement is reported as a finding of its own."))
    support = text_support()  # how `render_pdf` draws text here, with the fonts it finds
    if support == "shaped":
        texts.append(_("The PDF version leaves out characters its font lacks; the HTML version "
                       "shows all text as recorded."))
    elif support == "unshaped":
        texts.append(_("The PDF version draws right-to-left scripts, such as Arabic and Hebrew, "
                       "from left to right and without joining Arabic letters, and leaves out "
                       "characters its font lacks; the HTML version shows all text as recorded."))
    else:
        texts.append(_("No Unicode font was found for the PDF version: it writes every "
                       "character outside Latin-1, such as Arabic, Greek or Cyrillic letters, as "
                       "its Unicode number; the HTML version shows all text as recorded."))
    return [Paragraph(t) for t in texts]


def _exhibits(data: ReportData, exhibits: Exhibits, tr: Translator) -> list[Block]:
    _ = tr._
    rows = {r["id"]: r for r in data.rows}
    table: list[tuple[str, ...]] = []
    missing = "—"
    for label, mid in exhibits.cited():
        row = rows.get(mid, {})
        table.append((label, str(mid), str(row.get("run_id", missing)),
                      visible(str(row.get("target_url", missing))),
                      str(row.get("started", missing)), verdict_word(tr, row.get("verdict")),
                      data.hashes.get(mid, missing)))
        evidence = data.evidence.get(mid)
        if evidence is not None and evidence.control_sha256:
            table.append((label + "c", _("control of {id}").format(id=mid), table[-1][2],
                          table[-1][3], "", "", evidence.control_sha256))
    intro = Paragraph(_("Each exhibit is one measurement stored in the database: its "
                        "identifier, its run, its exact start time and the SHA-256 hash of its "
                        "raw record, with which the record can be found and verified. An "
                        "exhibit ending in c is the control of the measurement above it."))
    if not table:
        return [Paragraph(_("This report cites no measurement."))]
    return [intro, Table(
        _("Measurements cited in this report"),
        (_("Exhibit"), _("Measurement"), _("Run"), _("Target"), _("Started (UTC, exact)"),
         _("Verdict"), _("Record SHA-256")), tuple(table), mono=(4, 6))]


def _timeline(data: ReportData, tr: Translator) -> Block:
    _ = tr._
    if data.plot is not None:
        caption = _("Measurements over time (UTC), one row per target; blocked measurements "
                    "are marked by technique, events outlined or shaded.")
        if tr.lang != "en":
            caption += " " + _("The labels inside the image are in English.")
        return Figure("image/png", data.plot, caption, _("Timeline of the measurements"))
    if data.plot_error:
        return Paragraph(_("The timeline could not be drawn: {error}").format(
            error=visible(data.plot_error)))
    return Paragraph(_("The timeline is not included: the plotting extra (matplotlib) is not "
                       "installed, or plotting was turned off."))


# --- the timeline's points ---------------------------------------------------------------------


@dataclass(frozen=True)
class TimelinePoint:
    """One measurement as `presentation.plots.plot_timeline` reads it."""

    target: str
    platform: str | None
    started: str
    verdict: str
    techniques: tuple[str, ...]
    confirmed: bool
    vantage: str
    asn: str | None
    country: str | None


def timeline_points(rows: Sequence[Mapping[str, Any]], runs: Mapping[int, Mapping[str, Any]],
                    scope: Sequence[int], redact: bool = False) -> list[TimelinePoint]:
    """The points of the measurements in `scope`; with `redact`, no ASN and no network name."""
    wanted = set(scope)
    points = []
    for r in rows:
        if r["id"] not in wanted:
            continue
        v = VantageInfo.of(runs.get(r["run_id"]))
        points.append(TimelinePoint(
            target=str(r["target_url"]), platform=r.get("platform"), started=str(r["started"]),
            verdict=str(r.get("verdict") or "insufficient"),
            techniques=tuple(split_list(r.get("techniques"))), confirmed=bool(r.get("confirmed")),
            # As `results.timeline` names vantage points, so the events' names match.
            vantage="withheld" if redact else (v.vantage_id or "local"),
            asn=None if redact else v.asn, country=v.country))
    return points
