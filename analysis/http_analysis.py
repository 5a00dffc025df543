"""HTTP interference: blockpages, pages that differ from the control, failures after the request.

For each hop of the fetch (redirects included):

* Fingerprints, on cleartext responses (a response over TLS with a valid certificate cannot have
  been replaced on the path), except a final page that matches the control's (it is the site's
  own; this also keeps the scan off the common case). A match of a blocking scope is
  `http.blockpage:<name>` (proof). A match of a known false positive (`fp`, e.g. a CDN CAPTCHA)
  counts against blocking: the response is not judged further, and its blockpage matches are
  discarded. Vague blocking words (`vbw`) only strengthen an `http.diff`.
* Failures after the connection was made (reset, EOF, timeout): `http.reset`, `http.eof`,
  `http.timeout`, when the control fetched the page. A hop whose TCP connect or TLS handshake
  failed belongs to that stage, not here. A body that stalled on a large download is throttling
  (`analysis.throttle`). A redirect the client cannot follow (`http_invalid_redirect_location`,
  `http_too_many_redirects`) is the site's answer, not interference: it is returned as
  `site_failure`.
* `http.diff`: the final cleartext page differs from the control's. As in OONI's web
  connectivity: the status codes differ; or, with equal status, all three of these differ:
  the body length (the smaller under BODY_PROPORTION = 0.7 of the larger; not judged when the
  probe's body was cut at the cap), the title (fewer than half of the control's title words of
  five letters or more appear in the probe's), and the uncommon headers (header names outside
  COMMON_HEADERS; they differ when the control has some and the probe shares none).

A hop served by an address from a bogus DNS answer is DNS's consequence; a known blockpage there
is returned as proof of the DNS finding instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from analysis.findings import DIFF, Finding, timed
from analysis.fingerprints import Fingerprint, Fingerprints
from analysis.throttle import is_stall
from analysis.views import SITE_FAILURES, ControlView, ProbeView
from core import failures
from core.observations import HTTPRequest

HTTP_FAILURE = 0.7
BODY_PROPORTION = 0.7
VAGUE_BONUS = 0.15
COMMON_HEADERS = frozenset({
    "accept-ranges", "age", "cache-control", "cf-ray", "connection", "content-encoding",
    "content-language", "content-length", "content-type", "date", "etag", "expires",
    "keep-alive", "last-modified", "link", "location", "p3p", "pragma", "server", "set-cookie",
    "strict-transport-security", "transfer-encoding", "vary", "via", "x-cache",
    "x-content-type-options", "x-frame-options", "x-powered-by", "x-varnish", "x-xss-protection",
})
_HTTP = {
    failures.CONNECTION_RESET: "reset",
    failures.EOF_ERROR: "eof",
    failures.GENERIC_TIMEOUT: "timeout",
}
_WORD = re.compile(r"\w{5,}")


@dataclass
class HTTPResult:
    """HTTP findings, plus what argues against blocking."""

    findings: list[Finding] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)  # fp fingerprints matched
    site_failure: str | None = None  # the client could not follow the server's redirect


def _uncommon(headers: tuple[tuple[str, str], ...]) -> set[str]:
    return {k.lower() for k, _ in headers} - COMMON_HEADERS


def _title_words(title: str | None) -> set[str]:
    return set(_WORD.findall((title or "").casefold()))


def _titles_match(probe: str | None, control: str | None) -> bool:
    wanted = _title_words(control)
    if not wanted:
        return (probe or "").strip().casefold() == (control or "").strip().casefold()
    return len(wanted & _title_words(probe)) * 2 >= len(wanted)


def page_differences(hop: HTTPRequest, control: HTTPRequest) -> list[str]:
    """How the probe's page differs from the control's, beyond the thresholds; [] if it does not."""
    if control.status is None or hop.status is None:
        return []
    if hop.status != control.status:
        return [f"status {hop.status} where the control got {control.status}"]
    if hop.body_truncated or control.body_length <= 0:
        return []
    small, large = sorted((hop.body_length, control.body_length))
    if large and small / large >= BODY_PROPORTION:
        return []
    if _titles_match(hop.title, control.title):
        return []
    control_headers = _uncommon(control.headers)
    if control_headers and control_headers & _uncommon(hop.headers):
        return []
    return [
        f"{hop.body_length} bytes where the control got {control.body_length}",
        "a different title",
        "different uncommon headers",
    ]


class _HTTPAnalysis:
    def __init__(self, pv: ProbeView, cv: ControlView | None, tampered: dict[str, str]) -> None:
        self.pv = pv
        self.cv = cv
        self.tampered = tampered
        self.out = HTTPResult()
        self.vague: list[Fingerprint] = []

    def fingerprint(self, hop: HTTPRequest, matches: list[Fingerprint]) -> bool:
        """Record the hop's fingerprint matches; True when a known false positive matched."""
        fps = [f.name for f in matches if f.false_positive]
        if fps:
            self.out.false_positives.extend(fps)
            return True
        where = self.tampered.get(hop.address)
        for f in matches:
            if not f.proof:
                self.vague.append(f)
            elif where is not None:
                self.out.findings.append(Finding(
                    where, f.strength, f"{hop.address}, from the bogus DNS answer, served "
                    f"blockpage {f.name} for {hop.url}", confirmed=True))
            else:
                self.out.findings.append(Finding(
                    f"http.blockpage:{f.name}", f.strength,
                    f"{hop.url} answered with a known blockpage ({f.name}, scope {f.scope}, "
                    f"matched in {f.location})", confirmed=True))
        return False

    def failure(self, hop: HTTPRequest) -> None:
        failure = hop.failure or ""
        if failure in SITE_FAILURES:
            self.out.site_failure = failure
            return
        kind = _HTTP.get(failure)
        cv = self.cv
        if (kind is None or cv is None or not cv.reached or hop.address in self.tampered
                or self.pv.connection_failed(hop) or is_stall(hop, cv)):
            return
        when = "after the response began" if hop.status is not None else (
            "after the request was sent")
        self.out.findings.append(Finding(
            f"http.{kind}", timed(HTTP_FAILURE, kind),
            f"HTTP GET {hop.url} failed {when} ({failure}); the control fetched the page"))

    def differences(self, hop: HTTPRequest) -> list[str] | None:
        """How the final page differs from the control's; None when it cannot be judged
        (no control page, a redirect, an address from a bogus answer, verified TLS)."""
        cv = self.cv
        if cv is None or not cv.reached or hop.address in self.tampered:
            return None
        if hop.status is None or 300 <= hop.status < 400 or self.pv.hop_verified(hop):
            return None
        control = cv.hop_for(hop.url)
        return page_differences(hop, control) if control is not None else None

    def diff(self, hop: HTTPRequest, differences: list[str]) -> None:
        strength = DIFF
        text = f"{hop.url} differs from the control: " + ", ".join(differences)
        if self.vague:
            strength += VAGUE_BONUS
            text += f"; it contains blocking words ({self.vague[0].name})"
        self.out.findings.append(Finding("http.diff", strength, text))


def analyse_http(
    pv: ProbeView, cv: ControlView | None, fps: Fingerprints | None, tampered: dict[str, str]
) -> HTTPResult:
    """HTTP findings (see the module docstring)."""
    run = _HTTPAnalysis(pv, cv, tampered)
    for hop in pv.hops:
        final_page = hop is pv.final and hop.failure is None
        differences = run.differences(hop) if final_page else None
        # A final page that matches the control's is the site's own: no blockpage to look for.
        scan = fps is not None and hop.status is not None and not pv.hop_verified(hop) and (
            differences is None or bool(differences))
        false_positive = scan and fps is not None and run.fingerprint(
            hop, fps.match_response(hop.body, hop.headers))
        if hop.failure is not None:
            run.failure(hop)
        elif differences and not false_positive:
            run.diff(hop, differences)
    return run.out
