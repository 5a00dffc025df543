"""Exceptions to failure strings: the one place each step's exceptions are classified.

By exception type and errno first, by message text only as a last resort; anything else becomes
`core.failures.unknown(exc)` (type and scrubbed text).

The exception families we meet, by step:

    DNS    dns.resolver.NXDOMAIN / dns.message.* (dnspython), socket.gaierror (getaddrinfo)
    TCP    OSError with errno (ECONNREFUSED, ECONNRESET, ENETUNREACH, EHOSTUNREACH, ...),
           TimeoutError
    TLS    ssl.SSLCertVerificationError (verify_code), ssl.SSLError, OSError, EOF
    HTTP   h11.ProtocolError, OSError, EOF, TimeoutError
    DoH    requests.exceptions.* wrapping urllib3 errors wrapping the ssl/socket error
"""

from __future__ import annotations

import errno
import socket
import ssl

from core.failures import (
    ADDRESS_FAMILY_NOT_SUPPORTED,
    CONNECTION_ABORTED,
    CONNECTION_REFUSED,
    CONNECTION_RESET,
    DNS_MALFORMED,
    DNS_NO_ANSWER,
    DNS_NON_RECOVERABLE,
    DNS_NXDOMAIN,
    DNS_TEMPORARY,
    EOF_ERROR,
    GENERIC_TIMEOUT,
    HOST_UNREACHABLE,
    HTTP_PROTOCOL_ERROR,
    NETWORK_DOWN,
    NETWORK_UNREACHABLE,
    SSL_FAILED_HANDSHAKE,
    SSL_INVALID_CERTIFICATE,
    SSL_INVALID_HOSTNAME,
    SSL_UNKNOWN_AUTHORITY,
    UNKNOWN,
    unknown,
)

_ERRNO = {
    errno.ECONNREFUSED: CONNECTION_REFUSED,
    errno.ECONNRESET: CONNECTION_RESET,
    errno.EPIPE: CONNECTION_RESET,
    errno.ECONNABORTED: CONNECTION_ABORTED,
    errno.EHOSTUNREACH: HOST_UNREACHABLE,
    errno.ENETUNREACH: NETWORK_UNREACHABLE,
    errno.ENETDOWN: NETWORK_DOWN,
    errno.EAFNOSUPPORT: ADDRESS_FAMILY_NOT_SUPPORTED,
    errno.EADDRNOTAVAIL: NETWORK_UNREACHABLE,
    errno.ETIMEDOUT: GENERIC_TIMEOUT,
    errno.EHOSTDOWN: HOST_UNREACHABLE,
}

# getaddrinfo's error codes, as Python exposes them.
_GAI = {
    socket.EAI_NONAME: DNS_NXDOMAIN,
    socket.EAI_AGAIN: DNS_TEMPORARY,
    socket.EAI_FAIL: DNS_NON_RECOVERABLE,
    socket.EAI_FAMILY: ADDRESS_FAMILY_NOT_SUPPORTED,
}
_GAI.update({
    getattr(socket, name): DNS_NO_ANSWER
    for name in ("EAI_NODATA", "EAI_ADDRFAMILY") if hasattr(socket, name)
})

# OpenSSL X509_V_ERR_* codes that SSLCertVerificationError.verify_code carries.
_X509_UNKNOWN_AUTHORITY = {2, 18, 19, 20, 21, 24, 27, 28}
_X509_HOSTNAME_MISMATCH = {62, 63, 64}

def classify_os_error(exc: BaseException) -> str:
    """Classify a socket-level exception: timeouts, errno values, EOF; the shared base."""
    if isinstance(exc, TimeoutError):
        return GENERIC_TIMEOUT
    if isinstance(exc, ConnectionRefusedError):
        return CONNECTION_REFUSED
    if isinstance(exc, ConnectionResetError | BrokenPipeError):
        return CONNECTION_RESET
    if isinstance(exc, ConnectionAbortedError):
        return CONNECTION_ABORTED
    if isinstance(exc, EOFError | ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return EOF_ERROR
    if isinstance(exc, OSError) and exc.errno in _ERRNO:
        return _ERRNO[exc.errno]
    return unknown(exc)


def classify_tcp(exc: BaseException) -> str:
    """Classify an exception raised while opening a TCP connection."""
    return classify_os_error(exc)


def classify_getaddrinfo(exc: BaseException) -> str:
    """Classify an exception raised by the system resolver (getaddrinfo)."""
    if isinstance(exc, socket.gaierror):
        return _GAI.get(exc.errno or 0, unknown(exc))
    return classify_os_error(exc)


def classify_dns(exc: BaseException) -> str:
    """Classify an exception raised by a dnspython query (UDP, TCP or DoH transport)."""
    import dns.exception
    import dns.message
    import dns.resolver

    if isinstance(exc, dns.resolver.NXDOMAIN):
        return DNS_NXDOMAIN
    if isinstance(exc, dns.resolver.NoAnswer):
        return DNS_NO_ANSWER
    if isinstance(exc, dns.exception.Timeout):
        return GENERIC_TIMEOUT
    if isinstance(exc, dns.exception.DNSException):  # ShortHeader, TrailingJunk, FormError...
        return DNS_MALFORMED
    return classify_os_error(exc)


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps, outermost first: `__cause__`, `__context__`, urllib3's `.reason`
    and exception arguments (requests nests the socket error three or four levels deep)."""
    seen: list[BaseException] = []
    pending = [exc]
    while pending and len(seen) < 32:
        current = pending.pop(0)
        if any(current is s for s in seen):
            continue
        seen.append(current)
        nested = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        nested += list(current.args)
        pending += [n for n in nested if isinstance(n, BaseException)]
    return seen


def classify_requests(exc: BaseException) -> str:
    """Classify an exception raised by `requests` (DNS over HTTPS).

    Timeouts by type; otherwise the first wrapped exception that says something precise (the
    certificate verify code, the socket errno) decides, so a refused DoH port reads
    `connection_refused` like a refused TCP connect does.
    """
    import http.client

    import requests

    if isinstance(exc, requests.exceptions.Timeout):
        return GENERIC_TIMEOUT
    for cause in _causes(exc):
        if isinstance(cause, ssl.SSLError):
            return classify_tls(cause)
        if isinstance(cause, socket.gaierror):
            return classify_getaddrinfo(cause)
        if isinstance(cause, http.client.RemoteDisconnected):
            return EOF_ERROR  # closed before any response byte (it subclasses ConnectionReset)
        if isinstance(cause, OSError | EOFError):
            failure = classify_os_error(cause)
            if not failure.startswith(UNKNOWN):
                return failure
    if isinstance(exc, requests.exceptions.SSLError):
        return SSL_FAILED_HANDSHAKE
    return unknown(exc)


def classify_tls(exc: BaseException) -> str:
    """Classify an exception raised during a TLS handshake.

    Certificate problems are told apart by OpenSSL's verify code, not by the message.
    """
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        if code in _X509_HOSTNAME_MISMATCH:
            return SSL_INVALID_HOSTNAME
        if code in _X509_UNKNOWN_AUTHORITY:
            return SSL_UNKNOWN_AUTHORITY
        return SSL_INVALID_CERTIFICATE
    if isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError | EOFError):
        return EOF_ERROR
    if isinstance(exc, ssl.SSLError):
        # A peer that speaks something other than TLS, or a broken handshake.
        return SSL_FAILED_HANDSHAKE
    return classify_os_error(exc)


def classify_http(exc: BaseException) -> str:
    """Classify an exception raised during an HTTP round trip (after the connection)."""
    try:
        import h11
    except ImportError:  # pragma: no cover - h11 is a hard dependency
        h11 = None  # type: ignore[assignment]
    if h11 is not None and isinstance(exc, h11.ProtocolError):
        return HTTP_PROTOCOL_ERROR
    if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError):
        return SSL_FAILED_HANDSHAKE
    return classify_os_error(exc)
