"""TCP and TLS interference: resets, drops and refusals, SNI filtering, certificate tampering.

TCP: a connect that was reset, timed out or refused (`tcp.reset`, `tcp.timeout`, `tcp.refused`)
where the control connected to the same address and port (exact strength), or, when the control
did not try that endpoint, where it reached the site end to end and the endpoint is on the fetch
path with no other connect to that host and port getting through (host strength).

TLS, for handshakes with the target's own name:

* reset, timeout or EOF during the handshake: `tls.sni_filtered` (proof) when a handshake with a
  harmless SNI to the same address completed (the server answers; only the name is refused);
  otherwise `tls.reset` / `tls.timeout` / `tls.eof` against the control, as for TCP.
* an invalid certificate where the control's handshake verified: `tls.mitm`.

Endpoints whose address came from a bogus DNS answer are skipped: what happens there is the
consequence of the DNS technique, already reported. A failure that the control shares is no
evidence (it is how a `down` site looks).
"""

from __future__ import annotations

from analysis.findings import EXACT, HOST, PROOF, Finding, timed
from analysis.views import ControlView, ProbeView
from core import failures
from core.addresses import join_endpoint, norm_host
from core.observations import TLSHandshake

_TCP = {
    failures.CONNECTION_RESET: "reset",
    failures.GENERIC_TIMEOUT: "timeout",
    failures.CONNECTION_REFUSED: "refused",
}
_TLS = {
    failures.CONNECTION_RESET: "reset",
    failures.GENERIC_TIMEOUT: "timeout",
    failures.EOF_ERROR: "eof",
}


def analyse_tcp(pv: ProbeView, cv: ControlView, tampered: dict[str, str]) -> list[Finding]:
    """TCP findings (see the module docstring)."""
    found: list[Finding] = []
    seen: set[tuple[str, int]] = set()
    for c in pv.tcp:
        kind = _TCP.get(c.failure or "")
        if kind is None or c.address in tampered or (c.address, c.port) in seen:
            continue
        seen.add((c.address, c.port))
        where = join_endpoint(c.address, c.port)
        control = cv.tcp.get((c.address, c.port), "missing")
        if control is None:
            found.append(Finding(f"tcp.{kind}", timed(EXACT, kind),
                                 f"TCP connect to {where} failed ({c.failure}); "
                                 f"the control connected to it"))
        elif control == "missing" and cv.reached:
            hosts = [h for h in pv.on_path(c.address, c.port) if not pv.tcp_reached(h, c.port)]
            if hosts:
                found.append(Finding(f"tcp.{kind}", timed(HOST, kind),
                                     f"TCP connect to {where} ({hosts[0]}) failed ({c.failure}); "
                                     f"the control reached the site"))
    return found


def _control_tls_ok(cv: ControlView, h: TLSHandshake, host: str) -> str | None:
    """How the control shows that this handshake should work: exact, host, or None."""
    control = cv.tls.get((h.address, h.port))
    if control is not None:
        return "exact" if control.failure is None else None
    if cv.verified.get(host):
        return "host"
    return "host" if cv.reached else None


def analyse_tls(pv: ProbeView, cv: ControlView | None, tampered: dict[str, str]) -> list[Finding]:
    """TLS findings. `cv` may be None: SNI filtering shown by the harmless SNI needs no control."""
    found: list[Finding] = []
    for h in pv.tls:
        if h.failure is None or h.address in tampered:
            continue
        where = join_endpoint(h.address, h.port) if h.address else f"port {h.port}"
        host = norm_host(h.sni)
        kind = _TLS.get(h.failure)
        if kind is not None and h.address and pv.harmless_completed(h.address, h.port):
            found.append(Finding("tls.sni_filtered", PROOF,
                                 f"TLS handshake with SNI {h.sni} to {where} failed ({h.failure}); "
                                 f"the same handshake with a harmless SNI completed", True))
            continue
        if cv is None:
            continue
        if kind is None and h.failure not in failures.CERTIFICATE_FAILURES:
            continue
        how = _control_tls_ok(cv, h, host)
        if how is None:
            continue
        if how == "host":
            # Without the control's own handshake, judge only the fetch path, and only when no
            # other handshake for the name got through (one bad address among many is noise).
            got_through = pv.tls_reached(host, h.port) if kind else bool(pv.verified.get(host))
            if h.port not in pv.tls_ports.get(host, ()) or got_through:
                continue
        base = EXACT if how == "exact" else HOST
        control = ("the control's handshake to it succeeded" if how == "exact"
                   else "the control reached the site")
        if kind is not None:
            found.append(Finding(f"tls.{kind}", timed(base, kind),
                                 f"TLS handshake with SNI {h.sni} to {where} failed ({h.failure}); "
                                 f"{control}"))
        else:
            found.append(Finding("tls.mitm", base,
                                 f"TLS handshake with SNI {h.sni} to {where} got an invalid "
                                 f"certificate ({h.failure}); {control} with a valid one"))
    return found
