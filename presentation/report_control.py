"""The control's side of a finding: what the test helper saw of the same target, quoted.

    ControlSide(control, tr).dns(host) / .tcp(address, port) / .tls(handshake) / .page(url)
        -> (clause, quotes)        the clause completes "..., while {clause}."
    describe_control(measurement, control, tr) -> (sentences, quotes)

`presentation.report_evidence` sets each clause beside the probe's failure it answers; the
findings' "what rules out a local fault" paragraph is `describe_control`. Each quotes the
control's step that decides: for DNS the answers that carry addresses (an empty AAAA answer
says nothing about whether the name resolves), for an HTTPS target the control's own TLS
handshake, completed or failed, and then its page. Control observations are never redacted:
they are the test helper's, not the vantage point's.
"""

from __future__ import annotations

from analysis.views import handshake_completed
from core.addresses import join_endpoint
from core.observations import DNSQuery, HTTPRequest, Measurement, TCPConnect, TLSHandshake
from presentation.i18n import Translator
from presentation.report_model import Quote
from presentation.report_quotes import MAX_QUOTES, Quoting, lookups, plain_host
from presentation.report_text import listing, visible

Clause = tuple[str, list[Quote]]


def deciding_lookups(queries: list[DNSQuery]) -> list[DNSQuery]:
    """The queries that say how a name resolves: those with addresses first, then the rest."""
    return [q for q in queries if q.all_addresses] + [q for q in queries if not q.all_addresses]


class ControlSide:
    """The control's observations, as clauses and quotes beside the probe's."""

    def __init__(self, control: Measurement | None, tr: Translator) -> None:
        self.control = control
        self.tr = tr
        self.q = Quoting(tr, redact=False)

    def reached(self) -> bool:
        return self.control is not None and any(
            h.status is not None for h in self.control.of(HTTPRequest))

    def dns(self, host: str) -> Clause:
        _ = self.tr._
        if self.control is None:
            return _("no control lookup was recorded"), []
        queries = deciding_lookups(lookups(self.control, host))
        addresses = [a for q in queries for a in q.all_addresses]
        answered = [q for q in queries if q.all_addresses]
        quotes = [self.q.dns(q, control=True) for q in (answered or queries)[:2]]
        if addresses:
            return _("the control (the test helper, on an uncensored network) resolved it to "
                     "{addresses}").format(addresses=visible(listing(addresses))), quotes
        if queries:
            return _("the control could not resolve it either"), quotes
        return _("the control did not look this name up"), quotes

    def tcp(self, address: str, port: int) -> Clause:
        _ = self.tr._
        if self.control is not None:
            same = [c for c in self.control.of(TCPConnect)
                    if (c.address, c.port) == (address, port)]
            if same and same[0].failure is None:
                return (_("the control connected to the same address and port"),
                        [self.q.tcp(same[0], control=True)])
        if self.reached():
            return _("the control reached the site"), []
        return _("no control connection was recorded"), []

    def tls(self, h: TLSHandshake, verified: bool = False) -> Clause:
        _ = self.tr._
        if self.control is not None:
            same = [c for c in self.control.of(TLSHandshake) if c.purpose == "target"
                    and c.failure is None and (not verified or c.cert_verified)
                    and plain_host(c.sni) == plain_host(h.sni)]
            exact = [c for c in same if (c.address, c.port) == (h.address, h.port)] or same
            if exact:
                text = (_("the control received a valid certificate for the same name")
                        if verified else _("the control's handshake naming the same site "
                                           "completed"))
                return text, [self.q.tls(exact[0], control=True)]
        if self.reached():
            return _("the control reached the site"), []
        return _("no control handshake was recorded"), []

    def page(self, url: str) -> Clause:
        _ = self.tr._
        hops = [h for h in (self.control.of(HTTPRequest) if self.control else [])
                if h.status is not None]
        same = [h for h in hops if h.url == url] or hops
        if not same:
            return _("no control fetch was recorded"), []
        return _("the control fetched the page"), self.q.http(same[-1], control=True)[:2]


# --- the control paragraph -----------------------------------------------------------------


def _handshake(control: Measurement, host: str) -> TLSHandshake | None:
    """The control's handshake with the target's name that decides: a verified one, else one
    the server answered, else the first that failed."""
    shakes = [h for h in control.of(TLSHandshake) if h.purpose == "target"]
    named = [h for h in shakes if plain_host(h.sni) == host] or shakes
    for wanted in (lambda h: h.failure is None and h.cert_verified, handshake_completed,
                   lambda h: True):
        found = [h for h in named if wanted(h)]
        if found:
            return found[0]
    return None


def _tls_sentence(h: TLSHandshake, tr: Translator) -> str:
    _ = tr._
    sni = visible(h.sni)
    if h.failure is None and h.cert_verified:
        return _("Its TLS handshake naming {sni} completed with a valid certificate.").format(
            sni=sni)
    if handshake_completed(h):
        return _("Its TLS handshake naming {sni} completed, but the certificate was not "
                 "accepted ({failure}).").format(sni=sni, failure=visible(h.failure or ""))
    return _("Its TLS handshake naming {sni} failed ({failure}).").format(
        sni=sni, failure=visible(h.failure or ""))


def _tcp_failure(control: Measurement) -> TCPConnect | None:
    """A failed connect of a control that never got further (no handshake, no response)."""
    connects = control.of(TCPConnect)
    if control.of(TLSHandshake) or control.of(HTTPRequest) or any(
            c.failure is None for c in connects):
        return None
    return next((c for c in connects if c.failure), None)


def describe_control(m: Measurement, control: Measurement | None,
                     tr: Translator) -> tuple[str, tuple[Quote, ...]]:
    """What the test helper saw of the same target, from an uncensored network: its answer,
    its handshake (HTTPS) or failed connection, and its page, each quoted."""
    _ = tr._
    if control is None:
        return _("No control (a measurement of the same target by the test helper, from an "
                 "uncensored network) was recorded for this measurement."), ()
    host = plain_host(m.target.hostname)
    quoting = Quoting(tr, redact=False)
    queries = deciding_lookups(lookups(control, host))
    addresses = [a for q in queries for a in q.all_addresses]
    if addresses:
        sentences = [_("The test helper, measuring the same target from an uncensored network, "
                       "resolved {host} to {addresses}.").format(
            host=visible(host), addresses=visible(listing(addresses)))]
    else:
        sentences = [_("The test helper measured the same target from an uncensored network.")]
    quotes = [quoting.dns(q, control=True) for q in queries[:1]]
    handshake = _handshake(control, host)
    if handshake is not None:
        sentences.append(_tls_sentence(handshake, tr))
        quotes.append(quoting.tls(handshake, control=True))
    refused = _tcp_failure(control)
    if refused is not None:
        sentences.append(_("Its TCP connection to {endpoint} failed ({failure}).").format(
            endpoint=join_endpoint(refused.address, refused.port),
            failure=visible(refused.failure or "")))
        quotes.append(quoting.tcp(refused, control=True))
    hops = control.of(HTTPRequest)
    if hops:
        final = hops[-1]
        if final.status is not None:
            sentences.append(_("It fetched {url}: status {status}, titled “{title}”.").format(
                url=visible(final.url), status=final.status,
                title=visible(final.title) if final.title else _("no title")))
        else:
            sentences.append(_("Its request for {url} failed too ({failure}).").format(
                url=visible(final.url), failure=visible(final.failure or "")))
        quotes += quoting.http(final, control=True)[:2]
    return " ".join(sentences), tuple(quotes[:MAX_QUOTES])
