"""What the probe knows about its own network at one moment: the record the checks return.

`probes.network_check` fills it in (it reads /sys and /proc and asks the gateway and resolver);
`analysis.run_network` judges it; the store keeps only `public_summary()` (no addresses).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class NetState:
    """What the probe knows about its own network at one moment.

    `gateway_reachable` and `resolver_reachable` are None when not checked (no gateway, no
    resolver configured, or checks turned off). The gateway's and resolver's addresses are kept
    for the plain-words message only; the store keeps the booleans.
    """

    checked: str
    interfaces: tuple[str, ...]
    default_route: bool
    gateway: str | None
    gateway_reachable: bool | None
    resolvers: tuple[str, ...]
    resolver_reachable: bool | None

    @property
    def link_ok(self) -> bool:
        """An interface is up and there is a default route (the probe's own side works)."""
        return bool(self.interfaces) and self.default_route

    def public_summary(self) -> dict[str, object]:
        """The facts safe to store: no addresses, only what was up and what answered."""
        return {
            "checked": self.checked,
            "interfaces_up": len(self.interfaces),
            "default_route": self.default_route,
            "gateway_reachable": self.gateway_reachable,
            "resolver_reachable": self.resolver_reachable,
        }

    def describe(self) -> str:
        """One plain sentence for the volunteer."""
        if not self.interfaces:
            return "no network interface is up (is Wi-Fi or the cable connected?)"
        if not self.default_route:
            return f"interface {', '.join(self.interfaces)} is up but there is no default route"
        parts = [f"link up ({', '.join(self.interfaces)}), default route present"]
        if self.gateway_reachable is not None:
            parts.append("gateway answers" if self.gateway_reachable else "gateway does not answer")
        if self.resolver_reachable is not None:
            parts.append(
                "resolver answers" if self.resolver_reachable else "resolver does not answer"
            )
        return "; ".join(parts)
