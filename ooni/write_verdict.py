"""Our verdict written into an OONI web_connectivity measurement's `test_keys`.

    verdict_keys(verdict) -> {x_netvigil_verdict, blocking, accessible, x_blocking_flags,
                              dns_consistency}

Our own verdict travels whole in `x_netvigil_verdict`; OONI's fields are derived from it the way
probe-cli's webconnectivitylte derives them from its flags (ts-017 0.5), so OONI's tools read an
export as they read their own measurements. A measurement not judged has them all null.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ooni.fields import VERDICT_KEY

#: ts-017 0.5 `x_blocking_flags` bits (probe-cli webconnectivitylte).
FLAG_DNS, FLAG_TCP_IP, FLAG_TLS, FLAG_HTTP_FAILURE, FLAG_HTTP_DIFF, FLAG_SUCCESS = (
    1, 2, 4, 8, 16, 32)
_VERDICT_FIELDS = ("verdict", "techniques", "outcomes", "confidence", "confirmed", "reason")


def verdict_keys(verdict: Mapping[str, Any] | None) -> dict[str, Any]:
    """x_netvigil_verdict and OONI's blocking / accessible / x_blocking_flags / dns_consistency
    derived from our verdict (all null when the measurement was not judged)."""
    if not verdict or verdict.get("verdict") is None:
        return {VERDICT_KEY: None, "blocking": None, "accessible": None, "x_blocking_flags": 0,
                "dns_consistency": None}
    kind = verdict["verdict"]
    techniques = list(verdict.get("techniques") or ())
    outcomes = list(verdict.get("outcomes") or ())
    ours = {name: verdict.get(name) for name in _VERDICT_FIELDS}
    ours.update(techniques=techniques, outcomes=outcomes)
    flags = _flags(techniques, outcomes) if kind == "blocked" else (
        FLAG_SUCCESS if kind == "ok" else 0)
    blocking: str | bool | None = {"ok": False, "down": False}.get(kind)
    if kind == "blocked":
        blocking = _blocking(flags)
    judged = kind in ("ok", "blocked", "down")
    return {
        VERDICT_KEY: ours, "blocking": blocking,
        "accessible": True if kind == "ok" else False if judged else None,
        "x_blocking_flags": flags,
        "dns_consistency": "inconsistent" if "dns" in techniques else (
            "consistent" if judged else None),
    }


def _flags(techniques: list[str], outcomes: list[str]) -> int:
    differs = any(o == "http.diff" or o.startswith("http.blockpage") for o in outcomes)
    bits = {"dns": FLAG_DNS, "tcp": FLAG_TCP_IP, "tls": FLAG_TLS,
            "http": FLAG_HTTP_DIFF if differs else FLAG_HTTP_FAILURE,
            "throttle": FLAG_HTTP_FAILURE}  # OONI reports a stalled download as an HTTP failure
    flags = 0
    for technique in techniques:
        flags |= bits.get(technique, 0)
    return flags


def _blocking(flags: int) -> str:
    """OONI's one-word reason, the earliest stage first, as probe-cli picks it."""
    if flags & FLAG_DNS:
        return "dns"
    if flags & FLAG_TCP_IP:
        return "tcp_ip"
    if flags & FLAG_HTTP_DIFF and not flags & (FLAG_TLS | FLAG_HTTP_FAILURE):
        return "http-diff"
    return "http-failure"
