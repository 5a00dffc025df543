"""How a measurement was blocked, in plain words, with the decisive observations quoted.

    explain(outcome, measurement, control, tr, redact) -> (sentence, quotes)

`explain` turns one verdict outcome (`dns.nxdomain`, `tls.sni_filtered`,
`http.blockpage:<name>`, ...) into a sentence a court can read ("When asked for example.com,
the system resolver answered NXDOMAIN (the name does not exist), while the control resolved it
to 93.184.216.34.") and quotes the observations it rests on: the DNS answers, the connect or
handshake that was reset, the blockpage's status, title, server header and first words. Every
value taken from a record passes through `visible`; the renderers escape it.

With `redact`, the vantage point's own network is left out: resolver addresses become
"[withheld]" (the system resolver is named only as such). Addresses of the target and of the
test helper are not the vantage point's and stay: they are the evidence.
"""

from __future__ import annotations

from analysis.views import Resolution, handshake_completed, resolutions
from core import failures
from core.addresses import is_bogon, join_endpoint
from core.observations import DNSQuery, HTTPRequest, Measurement, TCPConnect, TLSHandshake
from presentation.i18n import Translator
from presentation.report_control import ControlSide
from presentation.report_model import Quote
from presentation.report_quotes import MAX_QUOTES, Quoting, lookups, plain_host
from presentation.report_text import listing, visible

_ENCRYPTED = frozenset({"doh", "dot"})
_DNS = {"nxdomain": failures.DNS_NXDOMAIN, "no_answer": failures.DNS_NO_ANSWER,
        "servfail": failures.DNS_SERVFAIL, "refused": failures.DNS_REFUSED,
        "timeout": failures.GENERIC_TIMEOUT}
_CONN = {"reset": failures.CONNECTION_RESET, "timeout": failures.GENERIC_TIMEOUT,
         "refused": failures.CONNECTION_REFUSED, "eof": failures.EOF_ERROR}

Explained = tuple[str, tuple[Quote, ...]]


class _Explainer:
    def __init__(self, m: Measurement, control: Measurement | None, tr: Translator,
                 redact: bool) -> None:
        self.m = m
        self.control = control
        self.tr = tr
        self.q = Quoting(tr, redact)
        self.side = ControlSide(control, tr)

    # --- per outcome ---------------------------------------------------------------------

    def explain(self, outcome: str) -> tuple[str, list[Quote]]:
        stage, _sep, kind = outcome.partition(".")
        handler = {"dns": self.dns, "tcp": self.tcp, "tls": self.tls, "http": self.http,
                   "throttle": self.throttle}.get(stage)
        found = handler(kind) if handler is not None else None
        if found is None:
            return self.tr._("The analysis recorded the outcome {outcome}.").format(
                outcome=visible(outcome)), []
        return found

    def _plain(self) -> list[DNSQuery]:
        return [q for q in self.m.of(DNSQuery) if q.engine not in _ENCRYPTED]

    def dns(self, kind: str) -> tuple[str, list[Quote]] | None:
        _ = self.tr._
        plain = self._plain()
        if kind == "injected":
            hits = [q for q in plain if q.injected]
        elif kind in _DNS:
            # As the analysis judges a refusal: per resolver, over all its queries (A, AAAA,
            # ANY). A resolver that gave an address did not refuse the name, whatever one of
            # its query types answered; the refusing resolver's queries are quoted together.
            hits = [q for res in self._refusing(_DNS[kind]) for q in res.queries]
        else:
            # The answers the control does not share; for a bogon, the special-purpose ones.
            hits = [q for q in plain if self._unshared(q)]
            bogus = [q for q in hits if any(is_bogon(a) for a in self._unshared(q))]
            hits = (bogus if kind == "bogon" and bogus else hits) or [
                q for q in plain if q.all_addresses]
        if not hits:
            return None
        q = hits[0]
        host = plain_host(q.hostname)
        said, control_quotes = self.side.dns(host)
        values = {"host": visible(host), "resolver": self.q.resolver_name(q), "control": said}
        if kind == "injected":
            first, second = q.responses[0], q.responses[1]
            text = _("Two different answers arrived for one query about {host} to {resolver}: "
                     "first {first}, then {second}. A resolver sends one answer; a second, "
                     "different one is the signature of a device on the path that forges "
                     "answers.").format(
                first=visible(" ".join((first.rcode, *first.addresses))),
                second=visible(" ".join((second.rcode, *second.addresses))), **values)
        elif kind in _DNS:
            text = {
                "nxdomain": _("When asked for {host}, {resolver} answered NXDOMAIN (the name "
                              "does not exist), while {control}."),
                "no_answer": _("When asked for {host}, {resolver} answered that the name has "
                               "no address, while {control}."),
                "servfail": _("When asked for {host}, {resolver} answered SERVFAIL (the lookup "
                              "failed), while {control}."),
                "refused": _("When asked for {host}, {resolver} refused to answer (REFUSED), "
                             "while {control}."),
                "timeout": _("When asked for {host}, {resolver} did not answer within the time "
                             "limit, while {control}."),
            }[kind].format(**values)
        else:
            values["addresses"] = visible(listing(self._unshared(q) or q.all_addresses))
            text = (_("When asked for {host}, {resolver} answered {addresses}: addresses "
                      "reserved for private or special use, which no public website has, "
                      "while {control}.") if kind == "bogon" else
                    _("When asked for {host}, {resolver} answered {addresses}, while "
                      "{control}: the two answers have no address in common, and no valid "
                      "certificate for {host} was seen on the probe's addresses.")
                    ).format(**values)
        quotes = [self.q.dns(h) for h in hits[:2]] + control_quotes
        if kind in _DNS:  # the name resolved elsewhere from the same vantage point: say so
            quotes += [self.q.dns(h) for h in self._resolved_elsewhere(host)[:1]]
        return text, quotes

    def _refusing(self, failure: str) -> list[Resolution]:
        """The plain resolvers that gave no address for a name, failing with `failure`."""
        return [res for group in resolutions(self._plain()).values() for res in group
                if not res.addresses and res.failure == failure]

    def _resolved_elsewhere(self, host: str) -> list[DNSQuery]:
        """The probe's plain queries for `host` that did get an address."""
        return [q for q in self._plain() if plain_host(q.hostname) == host and q.all_addresses]

    def _unshared(self, q: DNSQuery) -> list[str]:
        """The query's addresses that the control did not get for the same name."""
        host = plain_host(q.hostname)
        control = {a for cq in lookups(self.control, host) for a in cq.all_addresses}
        return [a for a in q.all_addresses if a not in control]

    def _host_of(self, address: str) -> str:
        for q in self.m.of(DNSQuery):
            if address in q.all_addresses:
                return plain_host(q.hostname)
        return self.m.target.hostname

    def tcp(self, kind: str) -> tuple[str, list[Quote]] | None:
        _ = self.tr._
        hits = [c for c in self.m.of(TCPConnect) if c.failure == _CONN.get(kind)]
        if not hits:
            return None
        c = hits[0]
        said, control_quotes = self.side.tcp(c.address, c.port)
        template = {
            "reset": _("The TCP connection to {endpoint} ({host}) was reset ({failure}) before "
                       "it was established, while {control}."),
            "timeout": _("The TCP connection to {endpoint} ({host}) got no answer within the "
                         "time limit ({failure}): the packets were dropped, while {control}."),
        }.get(kind, _("The TCP connection to {endpoint} ({host}) was refused ({failure}), "
                      "while {control}."))
        text = template.format(endpoint=join_endpoint(c.address, c.port), failure=c.failure,
                               host=visible(self._host_of(c.address)), control=said)
        return text, [self.q.tcp(h) for h in hits[:2]] + control_quotes

    def tls(self, kind: str) -> tuple[str, list[Quote]] | None:
        _ = self.tr._
        target = [h for h in self.m.of(TLSHandshake) if h.purpose == "target" and h.failure]
        if kind == "mitm":
            hits = [h for h in target if h.failure in failures.CERTIFICATE_FAILURES]
        elif kind == "sni_filtered":
            hits = [h for h in target if h.failure in _CONN.values()]
        else:
            hits = [h for h in target if h.failure == _CONN.get(kind)]
        if not hits:
            return None
        h = hits[0]
        values = {"endpoint": join_endpoint(h.address, h.port), "sni": visible(h.sni),
                  "failure": h.failure}
        quotes = [self.q.tls(x) for x in hits[:2]]
        if kind == "sni_filtered":
            # The proof is a pair: the target's name failed where a harmless name, to the same
            # endpoint, got the server's answer (`analysis.views.handshake_completed`: the
            # analysis's own test, so the report quotes the handshake the verdict rests on).
            pairs = [(x, y) for x in hits for y in self.m.of(TLSHandshake)
                     if y.purpose == "harmless_sni" and handshake_completed(y)
                     and (y.address, y.port) == (x.address, x.port)]
            if pairs:
                return self._sni(*pairs[0])
            kind = next((k for k, v in _CONN.items() if v == h.failure), kind)
        said, control_quotes = self.side.tls(h, verified=kind == "mitm")
        template = {
            "mitm": _("The server at {endpoint} presented a certificate for {sni} that does "
                      "not verify ({failure}), while {control}: the connection was intercepted "
                      "on the path."),
            "reset": _("The TLS handshake with {endpoint} naming {sni} was reset after the "
                       "ClientHello ({failure}), while {control}."),
            "timeout": _("The TLS handshake with {endpoint} naming {sni} got no answer after "
                         "the ClientHello ({failure}), while {control}."),
        }.get(kind, _("The TLS handshake with {endpoint} naming {sni} was cut off after the "
                      "ClientHello: the connection was closed ({failure}), while {control}."))
        return template.format(control=said, **values), quotes + control_quotes

    def _sni(self, h: TLSHandshake, harmless: TLSHandshake) -> tuple[str, list[Quote]]:
        text = self.tr._("The TLS handshake with {endpoint} naming {sni} failed after the "
                         "ClientHello ({failure}), while the same handshake with the same "
                         "address naming a harmless site ({harmless}) completed: the network "
                         "blocks connections by the site's name, which the ClientHello carries "
                         "in clear (SNI).").format(
            endpoint=join_endpoint(h.address, h.port), sni=visible(h.sni), failure=h.failure,
            harmless=visible(harmless.sni))
        return text, [self.q.tls(h), self.q.tls(harmless)]

    def http(self, kind: str) -> tuple[str, list[Quote]] | None:
        _ = self.tr._
        hops = self.m.of(HTTPRequest)
        answered = [h for h in hops if h.status is not None]
        if kind.startswith("blockpage:") and answered:
            hop = answered[-1]
            values = {"url": visible(hop.url), "status": hop.status,
                      "fingerprint": visible(kind.partition(":")[2])}
            text = (_("The request for {url} was answered with a known blockpage "
                      "({fingerprint}): status {status}, titled “{title}”.").format(
                          title=visible(hop.title), **values) if hop.title else
                    _("The request for {url} was answered with a known blockpage "
                      "({fingerprint}): status {status}.").format(**values))
            _said, control_quotes = self.side.page(hop.url)
            return text, self.q.http(hop) + control_quotes
        if kind == "diff" and answered:
            hop = answered[-1]
            _said, control_quotes = self.side.page(hop.url)
            text = _("The page received for {url} (status {status}, titled “{title}”) differs "
                     "from the control's page beyond what chance explains.").format(
                url=visible(hop.url), status=hop.status,
                title=visible(hop.title) if hop.title else _("no title"))
            return text, self.q.http(hop) + control_quotes
        failed = [h for h in hops if h.failure == _CONN.get(kind)]
        if not failed:
            return None
        hop = failed[0]
        said, control_quotes = self.side.page(hop.url)
        template = {
            "reset": _("The HTTP request for {url} was reset after it was sent ({failure}), "
                       "while {control}."),
            "timeout": _("The HTTP request for {url} got no complete answer within the time "
                         "limit ({failure}), while {control}."),
        }.get(kind, _("The connection carrying the HTTP request for {url} was closed before "
                      "the answer was complete ({failure}), while {control}."))
        text = template.format(url=visible(hop.url), failure=hop.failure, control=said)
        return text, self.q.http(hop)[:1] + control_quotes

    def throttle(self, kind: str) -> tuple[str, list[Quote]] | None:
        hops = [h for h in self.m.of(HTTPRequest) if h.goodput]
        if not hops:
            return None
        hop = min(hops, key=lambda h: h.goodput or 0.0)
        text = self.tr._("The download of {url} ran at {rate} kB/s, far slower than the "
                         "network's other downloads in the same run or than the control's."
                         ).format(url=visible(hop.url), rate=f"{(hop.goodput or 0) / 1000:.1f}")
        _said, control_quotes = self.side.page(hop.url)
        return text, self.q.http(hop)[:1] + control_quotes


def explain(outcome: str, m: Measurement, control: Measurement | None, tr: Translator,
            redact: bool = False) -> tuple[str, tuple[Quote, ...]]:
    """One outcome in plain words, with the quoted observations (at most MAX_QUOTES)."""
    text, quotes = _Explainer(m, control, tr, redact).explain(outcome)
    return text, tuple(quotes[:MAX_QUOTES])
