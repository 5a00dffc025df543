"""DNS interference: NXDOMAIN and other refusals, bogons, inconsistent and injected answers.

Judged per name and per resolver the probe asked (the system resolver, each direct resolver).
Encrypted resolvers (DoH, DoT) are not judged: an on-path censor cannot forge their answers, so
they serve as a second, weaker control (a DoH answer that agrees with the test helper makes an
inconsistent plain answer more telling, and a plain answer that agrees with DoH is consistent).

Rules (each yields a `Finding`, see `analysis.findings` for the strengths):

* `dns.injected`: two different answers to one UDP query. Proof, no control needed.
* DNS fingerprint: an answer that is a known censor's address (OONI's DNS list). Proof, reported
  as `dns.bogon` or `dns.inconsistent` with the fingerprint named.
* `dns.nxdomain`, `dns.no_answer`: the resolver denied the name while the control resolved it.
  `dns.servfail`, `dns.refused`, `dns.timeout`: likewise, but only when the system resolver
  failed or every plain resolver did (one unreachable public resolver is not the target's block).
* `dns.bogon`: a private/reserved answer (outside `Context.public_ranges`) where the control got
  a public one, or none at all. When the control got only bogons too, the site's own DNS is
  broken: no finding (the verdict becomes `down`).
* `dns.inconsistent`: no address in common with the control, no shared ASN (when an ASN lookup
  is given), no agreement with the probe's encrypted resolver, and no valid certificate for the
  name on those addresses (a verified handshake by the probe or the control clears them: a
  transparent proxy that presents the real site's certificate is a route, not a block).

Without the control's answer for a name (a redirect target the test helper did not resolve),
the control reaching the site end to end still shows the name resolves: NXDOMAIN and bogons are
judged at host strength; inconsistency cannot be.

The addresses judged bogus are returned too: failures on them are consequences of the DNS
technique, so the TCP/TLS/HTTP analyses leave them out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from analysis.context import Context
from analysis.findings import BOGON, EXACT, HOST, INCONSISTENT, PROOF, Finding, timed
from analysis.views import ControlDNS, ControlView, ProbeView, Resolution
from core import failures
from core.addresses import is_bogon

_REFUSALS = {
    failures.DNS_NXDOMAIN: "nxdomain",
    failures.DNS_NO_ANSWER: "no_answer",
    failures.DNS_SERVFAIL: "servfail",
    failures.DNS_REFUSED: "refused",
    failures.GENERIC_TIMEOUT: "timeout",
}
#: Refusals that are an answer about the name; the others only say the resolver did not help.
_DENIALS = frozenset({"nxdomain", "no_answer"})
_SHOWN = 3  # addresses named in a sentence


@dataclass
class DNSResult:
    """The DNS findings, and the addresses judged bogus with the outcome that judged them."""

    findings: list[Finding] = field(default_factory=list)
    tampered: dict[str, str] = field(default_factory=dict)

    def mark(self, addresses: Iterable[str], outcome: str) -> None:
        for address in addresses:
            self.tampered.setdefault(address, outcome)


def _show(addresses: Iterable[str]) -> str:
    items = sorted(addresses) if isinstance(addresses, set | frozenset) else list(addresses)
    shown = ", ".join(items[:_SHOWN])
    return shown + (f" (+{len(items) - _SHOWN} more)" if len(items) > _SHOWN else "")


def _control_said(cd: ControlDNS | None, host_level: bool) -> str:
    if cd is None:
        return "the control reached the site" if host_level else "no control"
    if cd.status == "resolved":
        return f"the control resolved {_show(cd.addresses)}"
    return {"nxdomain": "the control got NXDOMAIN", "no_answer": "the control got no address"}.get(
        cd.status, "the control's lookup failed"
    )


class _HostAnalysis:
    """The DNS analysis of one name."""

    def __init__(
        self, host: str, group: list[Resolution], pv: ProbeView, cv: ControlView | None,
        ctx: Context, out: DNSResult,
    ) -> None:
        self.host = host
        self.group = group
        self.pv = pv
        self.cv = cv
        self.ctx = ctx
        self.out = out
        self.cd = cv.dns.get(host) if cv is not None else None
        # The name was not resolved by the control, but the control fetched the site through it.
        self.host_level = (
            self.cd is None and cv is not None and cv.reached and host in pv.path_ports
        )
        self.plain = [r for r in group if not r.encrypted]
        self.encrypted_addresses = {a for r in group if r.encrypted for a in r.addresses}
        self.encrypted_denied = any(
            r.encrypted and r.failure in (failures.DNS_NXDOMAIN, failures.DNS_NO_ANSWER)
            for r in group
        )

    def run(self) -> None:
        for res in self.plain:
            if res.injected:
                self._injected(res)
            if res.addresses:
                self._answers(res)
            else:
                self._refusal(res)

    def _add(self, outcome: str, strength: float, text: str, confirmed: bool = False) -> None:
        self.out.findings.append(Finding(outcome, strength, text, confirmed))

    def _injected(self, res: Resolution) -> None:
        for q in res.queries:
            if not q.injected:
                continue
            first, later = q.responses[0], q.responses[1:]
            later_addresses = {a for r in later for a in r.addresses}
            self.out.mark((a for a in first.addresses if a not in later_addresses), "dns.injected")
            answers = "; then ".join(
                f"{r.rcode} {_show(r.addresses)}".strip() for r in q.responses[:3]
            )
            self._add("dns.injected", PROOF,
                      f"{res.who} sent two different answers to one query for {self.host} "
                      f"({answers})", confirmed=True)
            return

    def _refusal(self, res: Resolution) -> None:
        kind = _REFUSALS.get(res.failure or "")
        if kind is None:
            return
        if kind not in _DENIALS and res.engine != "system" and any(r.addresses for r in self.plain):
            return  # one direct resolver failing while others answer says nothing of the target
        cd = self.cd
        if cd is not None and cd.status == "resolved":
            strength = EXACT
        elif self.host_level:
            strength = HOST
        else:
            return  # the control could not resolve it either: down, or no evidence
        if self.encrypted_addresses:
            strength = min(0.95, strength + 0.1)
        self._add(f"dns.{kind}", timed(strength, kind),
                  f"{res.who} answered {res.failure} for {self.host}; "
                  f"{_control_said(cd, self.host_level)}")

    def _answers(self, res: Resolution) -> None:
        fingerprints = self.ctx.fingerprints
        cd = self.cd
        control_addresses = cd.addresses if cd is not None else frozenset()
        left: list[str] = []
        for address in res.addresses:
            fp = fingerprints.match_dns(address) if fingerprints is not None else None
            if fp is not None and fp.proof and address not in control_addresses:
                outcome = "dns.bogon" if is_bogon(address, self.ctx.public_ranges) else (
                    "dns.inconsistent")
                self.out.mark([address], outcome)
                said = _control_said(cd, self.host_level)
                self._add(outcome, fp.strength,
                          f"{res.who} answered {address} for {self.host}, a known censor's "
                          f"address (DNS fingerprint {fp.name}); {said}", confirmed=True)
            else:
                left.append(address)
        bogons = [a for a in left if is_bogon(a, self.ctx.public_ranges)]
        if bogons:
            self._bogons(res, bogons)
        public = [a for a in left if a not in bogons]
        if public:
            self._consistency(res, public)

    def _bogons(self, res: Resolution, bogons: list[str]) -> None:
        cd = self.cd
        ranges = self.ctx.public_ranges
        if cd is not None and cd.status == "resolved":
            if all(is_bogon(a, ranges) for a in cd.addresses):
                return  # the name is private for everyone: the site's DNS, not interference
            strength = BOGON
        elif cd is not None and cd.status in ("nxdomain", "no_answer"):
            strength = BOGON - 0.1  # an address for a name that has none
        elif self.host_level:
            strength = HOST
        else:
            return
        self.out.mark(bogons, "dns.bogon")
        self._add("dns.bogon", strength,
                  f"{res.who} answered {_show(bogons)} (bogon) for {self.host}; "
                  f"{_control_said(cd, self.host_level)}")

    def _vouched(self, addresses: list[str]) -> bool:
        """A valid certificate for the name was seen on one of these addresses."""
        seen = set(self.pv.verified.get(self.host, ()))
        if self.cv is not None:
            seen |= self.cv.verified.get(self.host, set())
        return any(a in seen for a in addresses)

    def _shares_asn(self, addresses: list[str], control: frozenset[str]) -> bool | None:
        asn_of = self.ctx.asn_of
        if asn_of is None:
            return None
        probe_asns = {asn_of(a) for a in addresses} - {None}
        control_asns = {asn_of(a) for a in control} - {None}
        return bool(probe_asns & control_asns)

    def _consistency(self, res: Resolution, public: list[str]) -> None:
        cd = self.cd
        if cd is None or cd.status == "failed":
            return
        if set(public) & cd.addresses or set(public) & self.encrypted_addresses:
            return
        if self._vouched(public):
            return
        shared = self._shares_asn(public, cd.addresses)
        if shared:
            return
        strength = INCONSISTENT
        if self.encrypted_addresses & cd.addresses or (
            self.encrypted_denied and cd.status != "resolved"
        ):
            strength += 0.15  # the probe's own encrypted resolver agrees with the control
        if shared is False:
            strength += 0.1
        self.out.mark(public, "dns.inconsistent")
        self._add("dns.inconsistent", round(strength, 2),
                  f"{res.who} answered {_show(public)} for {self.host}; "
                  f"{_control_said(cd, False)}, and no valid certificate for the name was seen "
                  f"on the probe's addresses")


def analyse_dns(pv: ProbeView, cv: ControlView | None, ctx: Context) -> DNSResult:
    """The DNS findings of a measurement (see the module docstring for the rules)."""
    out = DNSResult()
    for host, group in pv.dns.items():
        _HostAnalysis(host, group, pv, cv, ctx, out).run()
    return out
