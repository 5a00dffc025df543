"""Observations quoted in a report: one line each, every value from the network made visible.

    Quoting(tr, redact).dns(query) / .tcp(connect) / .tls(handshake) / .http(hop) -> Quote(s)

`presentation.report_evidence` explains a verdict in words and cites these quotes beside its
sentences; the control's observations are quoted the same way, labelled as the control's. With
`redact`, the vantage point's own resolver address is "[withheld]" (see report_evidence).
"""

from __future__ import annotations

from core import failures
from core.addresses import join_endpoint
from core.observations import DNSQuery, HTTPRequest, Measurement, TCPConnect, TLSHandshake
from presentation.i18n import Translator
from presentation.report_model import Quote
from presentation.report_text import excerpt, visible

MAX_QUOTES = 4  # quotes beside one paragraph: the decisive observations, not all of them
_SHOWN_HEADERS = ("server", "location", "via")


def plain_host(name: str) -> str:
    """A DNS name as the report compares it: lower case, no trailing dot."""
    return name.rstrip(".").lower()


def lookups(m: Measurement | None, host: str) -> list[DNSQuery]:
    """The DNS queries of `m` for `host` (a `plain_host`); none without a measurement."""
    return [] if m is None else [q for q in m.of(DNSQuery) if plain_host(q.hostname) == host]


class Quoting:
    """Observations as one-line quotes, and the resolver named in prose."""

    def __init__(self, tr: Translator, redact: bool) -> None:
        self.tr = tr
        self.redact = redact

    def resolver_name(self, q: DNSQuery) -> str:
        _ = self.tr._
        if q.engine == "system" or not q.resolver:
            return _("the system resolver (normally the one the ISP provides)")
        if self.redact:
            return _("a resolver the probe queried directly (address withheld)")
        return _("the resolver at {address}").format(address=visible(q.resolver))

    def dns(self, q: DNSQuery, control: bool = False) -> Quote:
        _ = self.tr._
        address = _("[withheld]") if self.redact and not control else q.resolver
        resolver = q.engine if q.engine == "system" or not q.resolver else (
            f"{q.engine} {address}")
        answers = "; ".join(
            f"{r.rcode} {' '.join(r.addresses)}".strip() + f" (t={r.t:.3f} s)" for r in q.responses
        ) or (q.failure or "")
        label = _("control DNS query") if control else _("DNS query")
        return Quote(label, visible(f"{resolver} {q.query_type} {q.hostname} → {answers}"))

    def tcp(self, c: TCPConnect, control: bool = False) -> Quote:
        _ = self.tr._
        label = _("control TCP connect") if control else _("TCP connect")
        status = c.failure or _("connected")
        where = join_endpoint(c.address, c.port)
        return Quote(label, visible(f"{where} → {status} (t={c.t:.3f} s)"))

    def tls(self, h: TLSHandshake, control: bool = False) -> Quote:
        _ = self.tr._
        label = _("control TLS handshake") if control else _("TLS handshake")
        if h.failure in failures.CERTIFICATE_FAILURES:
            # The server answered the ClientHello: not a failure like a reset (the SNI test
            # rests on exactly this difference), only the certificate was not accepted.
            answered = _("server answered, certificate not accepted")
            status = f"{answered} ({h.failure})"
        elif h.failure is not None:
            status = h.failure
        else:
            valid = _("certificate valid") if h.cert_verified else _("certificate not verified")
            completed = _("completed")
            status = f"{completed} ({h.version or '?'}, {valid})"
        return Quote(label, visible(f"SNI {h.sni} → {join_endpoint(h.address, h.port)}: {status} "
                                    f"(t={h.t:.3f} s)"))

    def http(self, hop: HTTPRequest, control: bool = False) -> list[Quote]:
        _ = self.tr._
        status = str(hop.status) if hop.status is not None else ""
        outcome = " ".join(p for p in (status, hop.failure or "") if p)
        size = self.tr.n_("{n} byte", "{n} bytes", hop.body_length).format(n=hop.body_length)
        digest = f", sha256 {hop.body_sha256}" if hop.body_sha256 else ""
        quotes = [Quote(_("control HTTP response") if control else _("HTTP response"),
                        visible(f"{hop.method} {hop.url} → {outcome}, {size}{digest}"))]
        if hop.title is not None:
            quotes.append(Quote(_("control page title") if control else _("page title"),
                                visible(hop.title)))
        if not control:
            for key, value in hop.headers:
                if key.lower() in _SHOWN_HEADERS:
                    quotes.append(Quote(_("response header"), visible(f"{key}: {value}")))
            if hop.body:
                quotes.append(Quote(_("page text (excerpt)"), excerpt(hop.body)))
        return quotes
