"""Small pieces of the report's wording: times, untrusted text, the vantage point, plain names.

- Times: `utc_minute` ("2025-01-02 03:04 UTC") and `local_minute` (the vantage point's wall
  clock, from an IANA time zone name in the run's vantage JSON). Minutes are truncated, never
  rounded, so a cited minute always contains the instant; the exhibits give the exact time.
- `visible`: text from the network (titles, headers, bodies, DNS names) made safe to show: control
  and invisible formatting characters (bidi overrides that could reorder what a reader sees,
  zero-width characters) are written as `\\uXXXX`, and the length is bounded. Escaping for HTML
  is the renderer's job; this makes the characters themselves honest.
- `VantageInfo`: what a run's vantage JSON says about where the probe was.
- Plain names of verdicts and techniques, translated.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.times import MINUTE_FORMAT, WALL_MINUTE_FORMAT, format_utc, parse_utc
from presentation.i18n import Translator

QUOTE_CHARS = 300  # the longest quoted string; a longer one ends with "…(+N)"


# --- times -----------------------------------------------------------------------------------


def utc_minute(value: str | datetime) -> str:
    return format_utc(parse_utc(value), MINUTE_FORMAT)


def zone(name: object) -> ZoneInfo | None:
    """The time zone of an IANA name ("Africa/Cairo"), or None when it is not one."""
    if not isinstance(name, str) or not name.strip():
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def local_minute(value: str | datetime, tz: ZoneInfo) -> str:
    """"2025-01-02 05:04 (Africa/Cairo, UTC+02:00)"."""
    moment = parse_utc(value).astimezone(tz)
    offset = moment.strftime("%z")  # "+0200"
    return f"{moment.strftime(WALL_MINUTE_FORMAT)} ({tz.key}, UTC{offset[:3]}:{offset[3:]})"


# --- untrusted text --------------------------------------------------------------------------


def _shown(ch: str) -> str:
    if ch == " ":
        return ch
    category = unicodedata.category(ch)
    # Cc: controls; Cf: format characters (bidi overrides, zero-width joiners...); Zl/Zp: line
    # and paragraph separators; Co/Cs/Cn: private, surrogate, unassigned.
    if category in ("Cc", "Cf", "Zl", "Zp", "Co", "Cs", "Cn") or category.startswith("Z"):
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return ch


def visible(text: str, limit: int = QUOTE_CHARS) -> str:
    """Untrusted text with hidden characters made visible and the length bounded."""
    shown = "".join(_shown(ch) for ch in text[: limit + 1])
    if len(text) > limit:
        return shown[:limit] + f"…(+{len(text) - limit})"
    return shown


def excerpt(data: bytes, limit: int = 200) -> str:
    """The start of a body as text: decoded leniently, whitespace runs made one space."""
    text = data[: limit * 4].decode("utf-8", errors="replace")
    return visible(" ".join(text.split()), limit)


def listing(values: Iterable[str], limit: int = 3) -> str:
    """"a, b, c (+2)": a bounded list of data values (addresses, URLs)."""
    items = list(dict.fromkeys(values))
    shown = ", ".join(items[:limit])
    return shown + (f" (+{len(items) - limit})" if len(items) > limit else "")


# --- the vantage point -----------------------------------------------------------------------


def _text(vantage: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = vantage.get(key)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()
    return None


@dataclass(frozen=True)
class VantageInfo:
    """Where a run measured from, as its vantage JSON records it (None: not recorded)."""

    asn: str | None = None  # "AS64500"
    network_name: str | None = None  # the ISP
    country: str | None = None
    timezone: str | None = None  # an IANA name
    software: str | None = None  # "netvigil 0.1.0"
    vantage_id: str | None = None  # a stable id the probe may be given
    declared: tuple[str, ...] = ()  # which of asn, network_name, country the operator declared
    looked_up: tuple[str, ...] = ()  # which were looked up in an ip2asn table
    table_sha256: str | None = None  # that table

    @classmethod
    def of(cls, run: Mapping[str, Any] | None) -> VantageInfo:
        vantage = (run or {}).get("vantage")
        if not isinstance(vantage, Mapping):
            return cls()
        asn = _text(vantage, "asn", "probe_asn")
        if asn is not None:
            digits = asn.upper().removeprefix("AS")
            asn = f"AS{int(digits)}" if digits.isdigit() and int(digits) > 0 else None
        country = _text(vantage, "country", "probe_cc", "country_code")
        if country is not None:
            country = None if country.upper() == "ZZ" else country.upper()  # OONI's unknown
        tool, version = _text(vantage, "tool"), _text(vantage, "version")
        return cls(
            asn=asn,
            network_name=_text(vantage, "network_name", "isp", "probe_network_name", "as_name"),
            country=country,
            timezone=_text(vantage, "timezone", "tz"),
            software=" ".join(p for p in (tool, version) if p) or None,
            vantage_id=_text(vantage, "vantage_id"),
            **_network_source(vantage.get("network_source")),
        )


def _network_source(source: Any) -> dict[str, Any]:
    """How the run's network was named (services.vantage), from untrusted JSON."""
    if not isinstance(source, Mapping):
        return {}
    keys = ("asn", "network_name", "country")

    def names(value: Any) -> tuple[str, ...]:
        return tuple(k for k in keys if isinstance(value, list) and k in value)

    digest = source.get("table_sha256")
    valid = isinstance(digest, str) and len(digest) == 64 and all(
        c in "0123456789abcdef" for c in digest)
    return {"declared": names(source.get("declared")), "looked_up": names(source.get("looked_up")),
            "table_sha256": digest if valid else None}


# Vantage keys whose values free text might repeat (the analysis names the resolver it judged).
# The ASN is not among them: no sentence of the analysis names the vantage point's ASN, and a
# short number would match inside unrelated ones.
_NETWORK_KEYS = ("resolvers", "resolver", "local_addresses", "local_address", "gateway",
                 "network_name", "isp", "probe_network_name", "as_name")


def vantage_secrets(run: Mapping[str, Any] | None) -> list[str]:
    """The values of a run's vantage JSON that `--redact-vantage` leaves out."""
    vantage = (run or {}).get("vantage")
    if not isinstance(vantage, Mapping):
        return []
    found: list[str] = []
    for key in _NETWORK_KEYS:
        value = vantage.get(key)
        values = value if isinstance(value, list | tuple) else [value]
        found += [v.strip() for v in values if isinstance(v, str) and v.strip()]
    return found


def redact(text: str, secrets: Iterable[str], mark: str) -> str:
    """`text` with every secret (and an "IP:port" secret's bare IP) replaced by `mark`."""
    words: set[str] = set()
    for secret in secrets:
        words.add(secret)
        if secret.startswith("[") or secret.count(":") == 1:  # "[::1]:53", "10.0.0.1:53"
            words.add(secret.rsplit(":", 1)[0].strip("[]"))
    # Longest first, so "192.168.1.1:53" goes whole before "192.168.1.1" is looked for.
    for word in sorted((w for w in words if len(w) > 2), key=len, reverse=True):
        text = text.replace(word, mark)
    return text


# --- plain names -----------------------------------------------------------------------------


def verdict_word(tr: Translator, verdict: str | None) -> str:
    """What a verdict means, in a few words."""
    _ = tr._
    return {
        "ok": _("reachable"),
        "blocked": _("blocked"),
        "down": _("unreachable for everyone (the control failed too)"),
        "insufficient": _("inconclusive"),
    }.get(verdict or "", _("not judged"))


def technique_name(tr: Translator, technique: str) -> str:
    _ = tr._
    return {
        "dns": _("DNS tampering"),
        "tcp": _("TCP/IP blocking (connections reset, refused or dropped)"),
        "tls": _("TLS interference (blocking by the site's name in the handshake)"),
        "http": _("HTTP interference (a blockpage or an altered page)"),
        "throttle": _("throttling (the connection slowed down)"),
    }.get(technique, technique)


def techniques_phrase(tr: Translator, techniques: Iterable[str]) -> str:
    names = [technique_name(tr, t) for t in techniques]
    return tr._("; ").join(names) if names else tr._("an unidentified technique")
