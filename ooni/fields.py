"""Decoders for the field types of OONI's data format, shared by the measurement reader.

ooni/spec `data-formats`: failures (df-007, with the legacy strings of ooniprobe-legacy and
Measurement Kit mapped onto our vocabulary), MaybeBinaryData (a string, or
`{"format": "base64", "data": ...}`), headers (`headers_list` pairs or the legacy `headers`
map, values possibly binary or lists), endpoints (`"1.2.3.4:443"`, `"[::1]:443"`), and
`measurement_start_time` (`"2024-02-12 20:33:47"`, UTC: read by `iso_utc`, written by
`ooni_time`), and the `x_netvigil_*` keys in which our own exports carry what OONI's format has
no field for (read by `ooni.read`, written by `ooni.write`).

Every decoder raises OONIFormatError (a ValueError with a one-line message) on a value of the
wrong shape, never TypeError or KeyError: the reader turns it into a per-item error.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from core import failures
from core.addresses import split_endpoint
from core.errors import OONIFormatError, TimeFormatError
from core.times import STORE_FORMAT, format_utc, parse_utc

#: How OONI writes a time: UTC, whole seconds, a space between date and time.
OONI_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: What the reader accepts of it: OONI's form, with a `T`, fractions of a second or a `Z`.
_OONI_TIME = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d{1,6})?Z?")

#: Our own keys in OONI's format, for what it has no field for.
PURPOSE_KEY = "x_netvigil_purpose"  # a handshake's purpose (harmless_sni)
GOODPUT_KEY = "x_netvigil_goodput"
BODY_LENGTH_KEY = "x_netvigil_body_length"  # the full length of a capped body
VERDICT_KEY = "x_netvigil_verdict"

#: DNS response codes behind the DNS failures that are answers (not timeouts).
RCODES = {
    failures.DNS_NXDOMAIN: "NXDOMAIN",
    failures.DNS_NO_ANSWER: "NOERROR",
    failures.DNS_SERVFAIL: "SERVFAIL",
    failures.DNS_REFUSED: "REFUSED",
}


#: Legacy failure strings (ooniprobe-legacy, Measurement Kit, old test helpers) and the probe
#: engine's extra ones, mapped to `core.failures`. df-007 spells "autority" once; both count.
LEGACY_FAILURES = {
    "connection_refused_error": failures.CONNECTION_REFUSED,
    "connection_lost_error": failures.CONNECTION_RESET,  # lost "in a non-clean fashion"
    "connection_done": failures.EOF_ERROR,  # closed cleanly, early
    "response_never_received": failures.EOF_ERROR,
    "deferred_timeout_error": failures.GENERIC_TIMEOUT,
    "tcp_timed_out_error": failures.GENERIC_TIMEOUT,
    "task_timed_out": failures.GENERIC_TIMEOUT,
    "dns_name_error": failures.DNS_NXDOMAIN,
    "dns_name_failure": failures.DNS_SERVFAIL,
    "android_dns_cache_no_data": failures.DNS_NXDOMAIN,  # Android getaddrinfo's NXDOMAIN
    "ssl_unknown_autority": failures.SSL_UNKNOWN_AUTHORITY,
    "ssl_error": failures.SSL_FAILED_HANDSHAKE,
    "stopped after too many redirects": failures.HTTP_TOO_MANY_REDIRECTS,
    "unknown_failure: stopped after too many redirects": failures.HTTP_TOO_MANY_REDIRECTS,
    "http_invalid_redirect_location_host": failures.HTTP_INVALID_REDIRECT,
    "http_invalid_redirect_url": failures.HTTP_INVALID_REDIRECT,
    "connection_already_closed": failures.EOF_ERROR,
}


def failure(value: Any) -> str | None:
    """An OONI failure string in our vocabulary; None for success.

    Strings we do not know (`connect_error`, `dns_lookup_error`, `unknown_error`, ...) keep their
    text as `unknown_failure: <text>`, with IP addresses scrubbed.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise OONIFormatError(f"failure is a {type(value).__name__}, not a string")
    text = value.strip()
    if not text:
        return None
    mapped = LEGACY_FAILURES.get(text)
    if mapped is not None:
        return mapped
    if text in failures.ALL:
        return text
    if text.startswith(failures.UNKNOWN):
        return failures.scrub(text)[:300]
    return f"{failures.UNKNOWN}: {failures.scrub(text)[:280]}"


def binary(value: Any) -> bytes:
    """MaybeBinaryData as bytes: a string is UTF-8, a BinaryData object is base64."""
    if value is None:
        return b""
    if isinstance(value, str):
        return value.encode("utf-8", errors="surrogatepass")
    if isinstance(value, dict):
        if value.get("format") != "base64" or not isinstance(value.get("data"), str):
            raise OONIFormatError("binary data is not {'format': 'base64', 'data': str}")
        try:
            return base64.b64decode(value["data"], validate=False)
        except (binascii.Error, ValueError) as exc:
            raise OONIFormatError(f"bad base64 data: {exc}") from None
    raise OONIFormatError(f"expected a string or binary data, got a {type(value).__name__}")


def text(value: Any) -> str:
    """MaybeBinaryData as text (binary decoded as UTF-8, invalid bytes replaced)."""
    if isinstance(value, str):
        return value
    return binary(value).decode("utf-8", errors="replace")


def headers(holder: Any) -> tuple[tuple[str, str], ...]:
    """The headers of a request or response: `headers_list` when present, else `headers`."""
    if not isinstance(holder, dict):
        return ()
    pairs = holder.get("headers_list")
    if isinstance(pairs, list):
        out = []
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise OONIFormatError("headers_list holds something other than pairs")
            out.append((text(pair[0]), text(pair[1])))
        return tuple(out)
    mapping = holder.get("headers")
    if mapping is None:
        return ()
    if not isinstance(mapping, dict):
        raise OONIFormatError(f"headers is a {type(mapping).__name__}, not a map")
    result: list[tuple[str, str]] = []
    for name, value in mapping.items():
        values = value if isinstance(value, list) else [value]
        result.extend((str(name), text(v)) for v in values)
    return tuple(result)


def endpoint(value: Any) -> tuple[str, int] | None:
    """("1.2.3.4", 443) from "1.2.3.4:443"; None when absent or not an IP endpoint."""
    if not isinstance(value, str) or not value:
        return None
    return split_endpoint(value)


def number(value: Any, default: float = 0.0) -> float:
    """A time or duration: a number, or the default when absent."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise OONIFormatError(f"expected a number, got {value!r}"[:80])
    return float(value)


def iso_utc(value: Any) -> str:
    """`measurement_start_time` ("2024-02-12 20:33:47", UTC) in the store's format."""
    if not isinstance(value, str) or not value:
        raise OONIFormatError("measurement_start_time is missing")
    raw = value.strip()
    if _OONI_TIME.fullmatch(raw):  # no offset and no bare date: OONI's times are UTC
        try:
            return format_utc(parse_utc(raw), STORE_FORMAT)
        except TimeFormatError:
            pass  # the right shape, but no such day or hour
    raise OONIFormatError(f"measurement_start_time {value[:40]!r} is not a UTC time")


def ooni_time(iso: str) -> str:
    """"2024-02-12 20:33:47" (UTC, whole seconds, as OONI writes times) from ISO 8601."""
    return format_utc(parse_utc(iso), OONI_TIME_FORMAT)


def items(value: Any, what: str) -> list[dict[str, Any]]:
    """A list of objects (None is an empty list)."""
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise OONIFormatError(f"{what} is not a list of objects")
    return value


def mapping(value: Any, what: str) -> dict[str, Any]:
    """An object (None is an empty one)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OONIFormatError(f"{what} is not an object")
    return value
