"""The one failure vocabulary: OONI's canonical failure strings.

Every probe step reports `failure: str | None`. The strings follow ooni/spec `df-007-errors`
and the names ooni/probe-engine uses, so our records read like OONI's and OONI's read like ours.
`probes.failure_mapping` turns exceptions into these strings (the one place that does);
anything it does not recognise becomes `unknown_failure: <text>` with IP addresses scrubbed
(`unknown`), so a stray message never leaks the probe's own address into a stored record.
"""

from __future__ import annotations

import re

# --- generic ---------------------------------------------------------------------------------
GENERIC_TIMEOUT = "generic_timeout_error"
EOF_ERROR = "eof_error"
CONNECTION_REFUSED = "connection_refused"
CONNECTION_RESET = "connection_reset"
CONNECTION_ABORTED = "connection_aborted"
HOST_UNREACHABLE = "host_unreachable"
NETWORK_UNREACHABLE = "network_unreachable"
NETWORK_DOWN = "network_down"
ADDRESS_FAMILY_NOT_SUPPORTED = "address_family_not_supported_error"
INTERRUPTED = "interrupted"
UNKNOWN = "unknown_failure"

# --- DNS -------------------------------------------------------------------------------------
DNS_NXDOMAIN = "dns_nxdomain_error"
DNS_NO_ANSWER = "dns_no_answer"
DNS_REFUSED = "dns_refused_error"
DNS_SERVFAIL = "dns_server_failure"
DNS_TEMPORARY = "dns_temporary_failure"
DNS_NON_RECOVERABLE = "dns_non_recoverable_failure"
DNS_MALFORMED = "dns_server_misbehaving"
DNS_BOGON = "dns_bogon_error"  # OONI's; the analysis, not a probe, decides what is a bogon

# --- TLS -------------------------------------------------------------------------------------
SSL_INVALID_HOSTNAME = "ssl_invalid_hostname"
SSL_UNKNOWN_AUTHORITY = "ssl_unknown_authority"
SSL_INVALID_CERTIFICATE = "ssl_invalid_certificate"
SSL_FAILED_HANDSHAKE = "ssl_failed_handshake"

# --- HTTP ------------------------------------------------------------------------------------
HTTP_PROTOCOL_ERROR = "http_protocol_error"
HTTP_TOO_MANY_REDIRECTS = "http_too_many_redirects"
HTTP_INVALID_REDIRECT = "http_invalid_redirect_location"

CERTIFICATE_FAILURES = frozenset(
    {SSL_INVALID_HOSTNAME, SSL_UNKNOWN_AUTHORITY, SSL_INVALID_CERTIFICATE}
)

#: Every string a probe may emit, besides `unknown_failure: ...`. Tests check each is reachable.
ALL = frozenset(
    {
        GENERIC_TIMEOUT, EOF_ERROR, CONNECTION_REFUSED, CONNECTION_RESET, CONNECTION_ABORTED,
        HOST_UNREACHABLE, NETWORK_UNREACHABLE, NETWORK_DOWN, ADDRESS_FAMILY_NOT_SUPPORTED,
        INTERRUPTED, DNS_NXDOMAIN, DNS_NO_ANSWER, DNS_REFUSED, DNS_SERVFAIL, DNS_TEMPORARY,
        DNS_NON_RECOVERABLE, DNS_MALFORMED, SSL_INVALID_HOSTNAME,
        SSL_UNKNOWN_AUTHORITY, SSL_INVALID_CERTIFICATE, SSL_FAILED_HANDSHAKE,
        HTTP_PROTOCOL_ERROR, HTTP_TOO_MANY_REDIRECTS, HTTP_INVALID_REDIRECT,
    }
)

_IPV4 = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b")
_IPV6 = re.compile(r"\b(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4}\b")


def scrub(text: str) -> str:
    """Remove IP addresses from free text (the probe's own address must never be stored)."""
    return _IPV6.sub("[scrubbed]", _IPV4.sub("[scrubbed]", text))


def unknown(exc: BaseException) -> str:
    """The catch-all failure: the exception's type and scrubbed text, bounded in length."""
    text = scrub(f"{type(exc).__name__}: {exc}")
    return f"{UNKNOWN}: {text[:200]}"


def dns_rcode_failure(rcode: str) -> str | None:
    """Map a DNS response code name (as dnspython prints it) to a failure, None for NOERROR."""
    return {
        "NOERROR": None,
        "NXDOMAIN": DNS_NXDOMAIN,
        "SERVFAIL": DNS_SERVFAIL,
        "REFUSED": DNS_REFUSED,
    }.get(rcode, DNS_MALFORMED)


# --- in plain words ----------------------------------------------------------------------------

#: What each failure string means, for people reading a reason (`in_words`). The reports write
#: their own sentences around the quoted observation; tables and lines use these words.
DESCRIPTIONS: dict[str, str] = {
    GENERIC_TIMEOUT: "no answer in time (timeout)",
    EOF_ERROR: "the connection was closed without a word (EOF)",
    CONNECTION_REFUSED: "the connection was refused",
    CONNECTION_RESET: "the connection was reset",
    CONNECTION_ABORTED: "the connection was aborted",
    HOST_UNREACHABLE: "the host was unreachable",
    NETWORK_UNREACHABLE: "the network was unreachable",
    NETWORK_DOWN: "the network was down",
    ADDRESS_FAMILY_NOT_SUPPORTED: "this address family (IPv4/IPv6) is not available here",
    INTERRUPTED: "the measurement was interrupted",
    DNS_NXDOMAIN: "NXDOMAIN (the name does not exist)",
    DNS_NO_ANSWER: "no address for the name",
    DNS_REFUSED: "a refusal (REFUSED)",
    DNS_SERVFAIL: "a server failure (SERVFAIL)",
    DNS_TEMPORARY: "a temporary DNS failure",
    DNS_NON_RECOVERABLE: "a permanent DNS failure",
    DNS_MALFORMED: "a malformed DNS answer",
    DNS_BOGON: "a reserved, non-public address (bogon)",
    SSL_INVALID_HOSTNAME: "a certificate for another name",
    SSL_UNKNOWN_AUTHORITY: "a certificate from an unknown authority",
    SSL_INVALID_CERTIFICATE: "an invalid certificate",
    SSL_FAILED_HANDSHAKE: "a failed TLS handshake",
    HTTP_PROTOCOL_ERROR: "a broken HTTP answer",
    HTTP_TOO_MANY_REDIRECTS: "too many redirects",
    HTTP_INVALID_REDIRECT: "a redirect to an invalid location",
}

# Longest first, on word boundaries: "dns_nxdomain_error" never matches inside another code.
_CODE = re.compile(r"\b(" + "|".join(sorted(map(re.escape, DESCRIPTIONS), key=len, reverse=True))
                   + r")\b")


def in_words(text: str) -> str:
    """`text` (a verdict's reason) with every failure string in it put in plain words:
    "answered dns_nxdomain_error" -> "answered NXDOMAIN (the name does not exist)"."""
    return _CODE.sub(lambda m: DESCRIPTIONS[m.group(1)], text)
