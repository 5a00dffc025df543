"""The paragraphs that set out one finding: what, where, when, how, how sure, controls.

    finding_blocks(n, plan, data, exhibits, tr) -> [Block]

Each finding (`report_plan.FindingPlan`) is set out in the order a court asks: what was blocked,
where (the run's vantage JSON: ISP, ASN, country, or "not recorded"; withheld on request), when
(UTC to the minute, and the vantage point's local time when the run recorded its time zone), how
(the technique in plain words with the decisive observations quoted, `report_evidence`), how sure
(counts, confidence, proof), and what rules out a local fault or an outage of the site: the test
helper's control (`report_control`), other targets that worked from the same network in the same
run, and the measurements before and after (for an outage, these bound it in time).
"""

from __future__ import annotations

from core.observations import DNSQuery
from core.verdicts import split_list
from presentation.i18n import Translator
from presentation.report_control import describe_control
from presentation.report_evidence import explain
from presentation.report_model import Block, Exhibits, Heading, Paragraph, Quote, ReportData
from presentation.report_plan import FindingPlan
from presentation.report_text import (
    VantageInfo,
    listing,
    local_minute,
    redact,
    techniques_phrase,
    utc_minute,
    vantage_secrets,
    verdict_word,
    visible,
    zone,
)

# --- writing -------------------------------------------------------------------------------


class _Writer:
    def __init__(self, plan: FindingPlan, data: ReportData, ex: Exhibits, tr: Translator):
        self.plan = plan
        self.data = data
        self.ex = ex
        self.tr = tr
        self.rows = {r["id"]: r for r in data.rows}
        first = self.rows.get(plan.ids[0]) if plan.ids else None
        self.run = data.runs.get(first["run_id"]) if first else None
        self.vantage = VantageInfo.of(self.run)

    def ref(self, mid: int) -> str:
        return self.tr._("measurement {id} (exhibit {exhibit})").format(
            id=mid, exhibit=self.ex.cite(mid))

    def targets(self) -> str:
        return visible(listing(self.plan.targets, 5))

    def what(self) -> Paragraph:
        _ = self.tr._
        if self.plan.kind == "outage":
            return Paragraph(_("Every target measured from this network was unreachable, "
                               "including {targets}: the probe's link and router worked, but "
                               "nothing beyond them answered. This is an outage or shutdown of "
                               "the network, not the blocking of particular sites.").format(
                targets=self.targets()), lead=_("What happened."))
        platforms = sorted({str(r["platform"]) for i in self.plan.ids
                            if (r := self.rows.get(i)) and r.get("platform")})
        text = _("Access to {targets} was blocked.").format(targets=self.targets())
        if platforms:
            text += " " + _("Platform: {platforms}.").format(platforms=visible(listing(platforms)))
        return Paragraph(text, lead=_("What was blocked."))

    def where(self) -> Paragraph:
        _ = self.tr._
        v, event = self.vantage, self.plan.event
        country = (event.country if event else None) or v.country
        unknown = _("not recorded")
        if self.data.redact_vantage:
            text = _("The vantage point's network (its ISP, ASN, resolver and local addresses) "
                     "is withheld from this report at the request of the person who made it.")
            text += " " + _("Country: {country}.").format(country=visible(country or unknown))
            return Paragraph(text, lead=_("Where."))
        asn = (event.asn if event else None) or v.asn
        text = _("ISP: {isp}; network (ASN): {asn}; country: {country}.").format(
            isp=visible(v.network_name or unknown), asn=visible(str(asn or unknown)),
            country=visible(country or unknown))
        return Paragraph(text + " " + self.network_source(), lead=_("Where."))

    def network_source(self) -> str:
        """How the run named its network: declared by the operator, looked up, or neither."""
        _ = self.tr._
        v = self.vantage
        label = {"asn": _("ASN"), "network_name": _("ISP"), "country": _("country")}

        def fields(keys: tuple[str, ...]) -> str:
            words = [label[k] for k in keys]
            if len(words) == 1:
                return words[0]
            return _("{first} and {last}").format(first=", ".join(words[:-1]), last=words[-1])

        parts = []
        if v.declared:
            parts.append(_("The probe's operator declared the {fields} when starting the run.")
                         .format(fields=fields(v.declared)))
        if v.looked_up:
            parts.append(_("The {fields} were looked up from the address the test helper saw the "
                           "probe's traffic come from, in an IP-to-ASN table with SHA-256 "
                           "{digest}; the address itself was not stored.").format(
                fields=fields(v.looked_up),
                digest=v.table_sha256 or _("not recorded")))
        if not parts:
            parts.append(_("These are taken from what the run recorded about its vantage point."))
        return " ".join(parts)

    def local(self, moment: str) -> str:
        _ = self.tr._
        tz = zone(self.vantage.timezone)
        if tz is None:
            return _("Local time not recorded (the run recorded no time zone for the vantage "
                     "point).")
        return _("Local time at the vantage point: {local}.").format(
            local=local_minute(moment, tz))

    def when(self) -> Paragraph:
        _ = self.tr._
        plan = self.plan
        if plan.event is not None or plan.kind == "outage":
            end = plan.end
            text = (_("From {start} to {end}.").format(start=utc_minute(plan.start),
                                                       end=utc_minute(end)) if end else
                    _("From {start}; it had not ended at the last measurement.").format(
                        start=utc_minute(plan.start)))
            if plan.event is not None and plan.event.first_clean:
                text += " " + _("The first measurement without it afterwards was made at "
                                "{time}.").format(time=utc_minute(plan.event.first_clean))
            text += self.pattern()
        else:
            text = _("At {time}.").format(time=utc_minute(plan.start))
        text += " " + self.local(plan.start)
        return Paragraph(text, lead=_("When."))

    def pattern(self) -> str:
        """The event's pattern over time (`analysis.event_detection`), as a sentence; "" if none."""
        _ = self.tr._
        pattern = getattr(self.plan.event, "pattern", None)
        window = getattr(self.plan.event, "window", None)
        if pattern == "recurring" and window:
            return " " + _("It recurred every day between {window} UTC.").format(
                window=visible(str(window)))
        return {"persistent": " " + _("It lasted without interruption."),
                "intermittent": " " + _("It was interrupted by short periods without it."),
                }.get(str(pattern), "")

    def how(self) -> list[Paragraph]:
        _ = self.tr._
        if self.plan.kind == "outage":
            return [Paragraph(self.network_state(), lead=_("How."))]
        out: list[Paragraph] = []
        for mid in self.plan.quoted:
            row = self.rows[mid]
            evidence = self.data.evidence.get(mid)
            techniques = techniques_phrase(self.tr, split_list(row.get("techniques")))
            intro = _("In {measurement}, of {target}, the technique was {techniques}.").format(
                measurement=self.ref(mid), target=visible(row["target_url"]),
                techniques=techniques)
            out.append(Paragraph(intro, lead=_("How.") if not out else ""))
            if evidence is None:
                continue
            for outcome in split_list(row.get("outcomes")):
                text, quotes = explain(outcome, evidence.measurement, evidence.control, self.tr,
                                       self.data.redact_vantage)
                out.append(Paragraph(text, quotes=quotes))
        return out

    def sure(self) -> Paragraph:
        _ = self.tr._
        plan = self.plan
        measured = [self.rows[i] for i in (*plan.ids, *plan.related) if i in self.rows]
        total = len(measured)
        if plan.kind == "outage":
            failed = sum(1 for r in measured if r.get("verdict") != "ok")
            return Paragraph(self.tr.n_(
                "{failed} of {n} measurement made from this network during it did not reach "
                "its target.", "{failed} of {n} measurements made from this network during it "
                "did not reach their targets.", total).format(failed=failed, n=total),
                lead=_("How sure."))
        blocked = sum(1 for r in measured if r.get("verdict") == "blocked")
        counted = (self.tr.n_("{blocked} of {n} measurement of this target in the period "
                              "covered found it blocked.", "{blocked} of {n} measurements of "
                              "this target in the period covered found it blocked.", total)
                   if len(plan.targets) == 1 else
                   self.tr.n_("{blocked} of {n} measurement of these targets in the period "
                              "covered found them blocked.", "{blocked} of {n} measurements of "
                              "these targets in the period covered found them blocked.", total))
        parts = [counted.format(blocked=blocked, n=total)]
        rows = [self.rows[i] for i in plan.quoted]
        confidence = plan.event.confidence if plan.event is not None else max(
            (float(r.get("confidence") or 0) for r in rows), default=0.0)
        parts.append(_("The analysis's confidence is {confidence} on a scale from 0 to 1.")
                     .format(confidence=f"{confidence:.2f}"))
        if any(r.get("confirmed") for r in rows):
            parts.append(_("It is confirmed by positive proof (a known blockpage, a forged DNS "
                           "answer, or a handshake that works with another name), which does "
                           "not depend on any comparison."))
        else:
            parts.append(_("It is not confirmed by positive proof: it rests on the comparison "
                           "with the control and with other measurements."))
        quotes = tuple(Quote(_("reason recorded by the analysis"),
                             visible(self.withheld(str(r["reason"]))))
                       for r in rows if r.get("reason"))
        return Paragraph(" ".join(parts), lead=_("How sure."), quotes=quotes)

    def withheld(self, text: str) -> str:
        """`text` without the vantage point's resolver and local addresses, when redacting
        (the analysis names the resolver it judged: "resolver 192.168.1.1:53 answered ...")."""
        if not self.data.redact_vantage:
            return text
        secrets = set(vantage_secrets(self.run))
        for mid in self.plan.quoted:
            evidence = self.data.evidence.get(mid)
            if evidence is not None:
                secrets |= {q.resolver for q in evidence.measurement.of(DNSQuery)
                            if q.engine != "system" and q.resolver}
        return redact(text, secrets, self.tr._("[withheld]"))

    def network_state(self) -> str:
        _ = self.tr._
        network = (self.run or {}).get("network")
        return {
            "ok": _("The probe found its own network working during this run."),
            "upstream_unreachable": _("The probe's own link and router were up during this "
                                      "run, but nothing beyond them answered."),
            "local_failure": _("The probe's own link or route was down during this run."),
        }.get(str(network), _("The run did not record the state of the probe's own network."))

    def controls(self) -> list[Paragraph]:
        _ = self.tr._
        parts: list[tuple[str, tuple[Quote, ...]]] = []
        for mid in self.plan.quoted:
            evidence = self.data.evidence.get(mid)
            if evidence is None:
                continue
            text, quotes = describe_control(evidence.measurement, evidence.control, self.tr)
            if evidence.control_sha256:
                text += " " + _("The control is stored as a record of its own, SHA-256 "
                                "{sha256}.").format(sha256=evidence.control_sha256)
            parts.append((text, quotes))
        if self.plan.kind == "blocking":
            parts.append((self.network_state() + " " + self.peer_text(), ()))
        parts += [(text, ()) for text in self.neighbours()]
        # An outage has no site to rule out: what sets it apart are the measurements that
        # worked from the same network before and after it.
        lead = (_("What bounds it in time: the measurements before and after.")
                if self.plan.kind == "outage" else
                _("What rules out a local fault or an outage of the site."))
        return [Paragraph(text, lead=lead if i == 0 else "", quotes=quotes)
                for i, (text, quotes) in enumerate(parts)]

    def peer_text(self) -> str:
        _ = self.tr._
        n = self.plan.peer_count
        if n == 0:
            return _("No other target was found reachable in the same run.")
        examples = ", ".join(f"{visible(self.rows[i]['target_url'])} ({self.ex.cite(i)})"
                             for i in self.plan.peers)
        return self.tr.n_("In the same run, from the same network, {n} other target was "
                          "reachable: {examples}.", "In the same run, from the same network, "
                          "{n} other targets were reachable, among them {examples}.", n
                          ).format(n=n, examples=examples)

    def neighbours(self) -> list[str]:
        _ = self.tr._
        out = []
        for mid, later in [(i, False) for i in self.plan.before] + [
                (i, True) for i in self.plan.after]:
            row = self.rows[mid]
            values = {"target": visible(row["target_url"]), "time": utc_minute(row["started"]),
                      "verdict": verdict_word(self.tr, row.get("verdict")),
                      "measurement": self.ref(mid)}
            out.append((_("Afterwards, {measurement} of {target}, at {time}, found it "
                          "{verdict}.") if later else
                        _("Before, {measurement} of {target}, at {time}, found it {verdict}."))
                       .format(**values))
        if not self.plan.before:
            out.append(_("No earlier measurement is stored to compare with."))
        if not self.plan.after:
            out.append(_("No later measurement is stored to compare with."))
        return out


def finding_title(n: int, plan: FindingPlan, tr: Translator) -> str:
    if plan.kind == "outage":
        return tr._("Finding {n}: a network outage").format(n=n)
    return tr._("Finding {n}: blocking of {targets}").format(
        n=n, targets=visible(listing(plan.targets, 2)))


def finding_blocks(n: int, plan: FindingPlan, data: ReportData, ex: Exhibits,
                   tr: Translator) -> list[Block]:
    """The heading and paragraphs of finding `n`: what, where, when, how, how sure, controls."""
    w = _Writer(plan, data, ex, tr)
    return [Heading(finding_title(n, plan, tr)), w.what(), w.where(), w.when(), *w.how(),
            w.sure(), *w.controls()]
