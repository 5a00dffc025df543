"""The verdict on one measurement: the stage analyses combined into ok, blocked, down, insufficient.

    classify(measurement, control, context) -> Verdict

Order of judgement:

1. `insufficient` when the run's own network was not ok (a dead link is not censorship).
2. The stage analyses (`dns_analysis`, `tcp_tls_analysis`, `http_analysis`, `throttle`) collect
   findings. Without a usable control (none, or one that failed before DNS/TCP) only findings
   that need no comparison count: proof (a second DNS answer, a fingerprint, SNI filtering shown
   by the harmless SNI) and throttling against the run's reference goodput.
3. Any finding: `blocked`, with the techniques of the findings, one outcome per kind, the
   combined confidence (`analysis.findings.combine`) and `confirmed` if any finding is proof.
4. No finding: `ok` when the probe got the target (a response without failure; a redirect the
   client cannot follow is the site's answer too). Without a control that needs TLS with a valid
   certificate: nothing on the path could have altered the page. `down` when the probe failed
   and the control failed too. Otherwise `insufficient`: the probe failed in a way that is no
   evidence either way, or there was no control to compare with.

Confidence of the other verdicts: `ok` 0.9 over verified TLS, 0.75 for a cleartext page that
matched the control; `down` 0.8 when the control failed at the same stage, else 0.6.
"""

from __future__ import annotations

from typing import Any

from analysis.context import Context
from analysis.dns_analysis import analyse_dns
from analysis.findings import Finding, combine, strongest
from analysis.http_analysis import HTTPResult, analyse_http
from analysis.tcp_tls_analysis import analyse_tcp, analyse_tls
from analysis.throttle import analyse_throttle
from analysis.views import ControlView, ProbeView
from core.addresses import is_bogon, norm_host
from core.observations import Measurement
from core.verdicts import (
    BLOCKED,
    DOWN,
    LOCAL_FAILURE,
    NETWORK_OK,
    OK,
    TECHNIQUES,
    UPSTREAM_UNREACHABLE,
    Verdict,
    insufficient,
)

MAX_REASON = 500
_REASONS = 2  # findings named in the reason; all are in details["evidence"]


DEFAULT_CONTEXT = Context()


_NETWORK_REASONS = {
    LOCAL_FAILURE: "the probe's own link or route was down during this run: no conclusion",
    UPSTREAM_UNREACHABLE: (
        "nothing beyond the probe's router answered during this run (an outage, not blocking "
        "of this target)"
    ),
}


def classify(
    m: Measurement, control: Measurement | None, ctx: Context = DEFAULT_CONTEXT
) -> Verdict:
    """The verdict on `m`, compared with `control` (the test helper's measurement, or None)."""
    if ctx.network != NETWORK_OK:
        return insufficient(_NETWORK_REASONS.get(ctx.network, f"run network {ctx.network}"))
    pv = ProbeView(m)
    cv = ControlView(control) if control is not None else None
    unusable = cv is not None and not cv.usable
    if unusable:
        cv = None
    dns = analyse_dns(pv, cv, ctx)
    findings = list(dns.findings)
    if cv is not None:
        findings += analyse_tcp(pv, cv, dns.tampered)
    findings += analyse_tls(pv, cv, dns.tampered)
    http = analyse_http(pv, cv, ctx.fingerprints, dns.tampered)
    findings += http.findings
    findings += analyse_throttle(pv, cv, ctx.reference_goodput, dns.tampered)
    if cv is None:
        findings = [f for f in findings if f.confirmed or f.stage == "throttle"]
    if findings:
        return _blocked(findings, http)
    no_control = "the control failed before DNS/TCP" if unusable else "there is no control"
    return _without_findings(pv, cv, http, no_control)


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def _details(findings: list[Finding], http: HTTPResult) -> dict[str, Any]:
    details: dict[str, Any] = {
        "evidence": [
            {"outcome": f.outcome, "strength": f.strength, "confirmed": f.confirmed,
             "text": f.text}
            for f in findings
        ]
    }
    if http.false_positives:
        details["false_positives"] = sorted(set(http.false_positives))
    if http.site_failure:
        details["site_failure"] = http.site_failure
    return details


def _blocked(findings: list[Finding], http: HTTPResult) -> Verdict:
    best = strongest(findings)
    order = {t: i for i, t in enumerate(TECHNIQUES)}
    ordered = sorted(best, key=lambda f: (order.get(f.stage, 99), -f.strength, f.outcome))
    return Verdict(
        BLOCKED,
        techniques=tuple(t for t in TECHNIQUES if any(f.stage == t for f in best)),
        outcomes=tuple(f.outcome for f in ordered),
        confidence=combine(f.strength for f in best),
        confirmed=any(f.confirmed for f in best),
        reason=_bounded("; ".join(f.text for f in best[:_REASONS])),
        details=_details(best, http),
    )


def _without_findings(
    pv: ProbeView, cv: ControlView | None, http: HTTPResult, no_control: str
) -> Verdict:
    details = _details([], http)
    url = pv.final.url if pv.final is not None else pv.target.url
    if pv.verified_success:
        return Verdict(OK, confidence=0.9, details=details,
                       reason=f"fetched {url} over TLS with a valid certificate")
    answered = pv.reached or http.site_failure is not None
    if cv is None:
        failed = "" if answered else f"; the probe failed: {failure_of(pv)[1]}"
        return insufficient(f"{no_control} to compare with{failed}")
    if answered and not pv.reached and not cv.reached:
        return Verdict(DOWN, confidence=0.6, details=details, reason=_bounded(
            f"the site's answer cannot be followed ({http.site_failure}); "
            f"the control failed too: {failure_of(cv.view)[1]}"))
    if answered:
        return Verdict(OK, confidence=0.75, details=details, reason=_ok_reason(pv, http))
    probe_stage, probe_failure = failure_of(pv)
    if not cv.reached:
        control_stage, control_failure = failure_of(cv.view)
        return Verdict(DOWN, confidence=0.8 if probe_stage == control_stage else 0.6,
                       details=details, reason=_bounded(
                           f"{probe_failure}; the control failed too: {control_failure}"))
    return insufficient(_bounded(
        f"{probe_failure}, where the control succeeded; that failure is no evidence of "
        "interference either way"))


def _ok_reason(pv: ProbeView, http: HTTPResult) -> str:
    final = pv.final
    if http.site_failure is not None and final is not None:
        return (f"the server answered {final.url} with a redirect the client cannot follow "
                f"({http.site_failure}): the site's own fault, not interference")
    if http.false_positives:
        return (f"the page differs from the control, but it matches a known false positive "
                f"({sorted(set(http.false_positives))[0]}), not a blockpage")
    if final is not None:
        return (f"fetched {final.url} (status {final.status}, {final.body_length} bytes); "
                "it matches the control")
    return "the endpoint was reached; no sign of interference"


def failure_of(view: ProbeView) -> tuple[str, str]:
    """Where and how a measurement failed to get the target, earliest stage first, judged on
    the last hop it reached: (stage, sentence)."""
    last = view.path[-1] if view.path else None
    host = last.host if last is not None else norm_host(view.target.hostname)
    group = view.dns.get(host, [])
    addresses = {a for res in group for a in res.addresses}
    if group and not addresses:
        reasons = sorted({res.failure or "no address" for res in group})
        return "dns", f"{host} did not resolve ({', '.join(reasons)})"
    if addresses and all(is_bogon(a) for a in addresses):
        return "dns", f"{host} resolved only to {', '.join(sorted(addresses)[:3])} (bogon)"
    port = last.port if last is not None else 0
    tcp = [c for c in view.tcp if not port or c.port == port]
    if tcp and all(c.failure for c in tcp):
        return "tcp", f"TCP connect to {tcp[0].address}:{tcp[0].port} failed ({tcp[0].failure})"
    tls = [h for h in view.tls if norm_host(h.sni) == host and (not port or h.port == port)]
    if tls and all(h.failure for h in tls):
        return "tls", f"TLS handshake with {host} failed ({tls[0].failure})"
    final = view.final
    if final is not None and final.failure is not None:
        return "http", f"HTTP GET {final.url} failed ({final.failure})"
    return "none", "the fetch did not complete"
