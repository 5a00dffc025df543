"""The failure vocabulary: every string a probe may emit comes from one classifier per step."""

import errno
import socket
import ssl

import dns.exception
import dns.resolver
import pytest

from core import failures as f
from probes import failure_mapping as m


@pytest.mark.parametrize(("exc", "expected"), [
    (TimeoutError(), f.GENERIC_TIMEOUT),
    (ConnectionRefusedError(), f.CONNECTION_REFUSED),
    (ConnectionResetError(), f.CONNECTION_RESET),
    (BrokenPipeError(), f.CONNECTION_RESET),
    (ConnectionAbortedError(), f.CONNECTION_ABORTED),
    (OSError(errno.ECONNABORTED, "aborted"), f.CONNECTION_ABORTED),
    (OSError(errno.EHOSTUNREACH, "no route"), f.HOST_UNREACHABLE),
    (OSError(errno.ENETUNREACH, "unreachable"), f.NETWORK_UNREACHABLE),
    (OSError(errno.ENETDOWN, "down"), f.NETWORK_DOWN),
    (OSError(errno.EAFNOSUPPORT, "no IPv6 here"), f.ADDRESS_FAMILY_NOT_SUPPORTED),
    (EOFError(), f.EOF_ERROR),
])
def test_socket_errors(exc, expected):
    assert m.classify_tcp(exc) == expected


@pytest.mark.parametrize(("code", "expected"), [
    (socket.EAI_NONAME, f.DNS_NXDOMAIN),
    (socket.EAI_AGAIN, f.DNS_TEMPORARY),
    (socket.EAI_FAIL, f.DNS_NON_RECOVERABLE),
    (socket.EAI_FAMILY, f.ADDRESS_FAMILY_NOT_SUPPORTED),
])
def test_getaddrinfo_errors(code, expected):
    assert m.classify_getaddrinfo(socket.gaierror(code, "x")) == expected


def test_dns_errors():
    assert m.classify_dns(dns.resolver.NXDOMAIN()) == f.DNS_NXDOMAIN
    assert m.classify_dns(dns.resolver.NoAnswer()) == f.DNS_NO_ANSWER
    assert m.classify_dns(dns.exception.Timeout()) == f.GENERIC_TIMEOUT
    assert m.classify_dns(dns.exception.FormError()) == f.DNS_MALFORMED
    assert [f.dns_rcode_failure(r) for r in ("NOERROR", "NXDOMAIN", "SERVFAIL", "REFUSED",
                                             "NOTIMP")] == [None, f.DNS_NXDOMAIN, f.DNS_SERVFAIL,
                                                            f.DNS_REFUSED, f.DNS_MALFORMED]


def test_tls_errors_by_verify_code_not_text():
    def cert_error(code: int) -> ssl.SSLCertVerificationError:
        exc = ssl.SSLCertVerificationError("misleading text: hostname mismatch")
        exc.verify_code = code
        return exc

    assert m.classify_tls(cert_error(10)) == f.SSL_INVALID_CERTIFICATE  # expired
    assert m.classify_tls(cert_error(20)) == f.SSL_UNKNOWN_AUTHORITY
    assert m.classify_tls(cert_error(62)) == f.SSL_INVALID_HOSTNAME
    assert m.classify_tls(ssl.SSLEOFError()) == f.EOF_ERROR
    assert m.classify_tls(ssl.SSLError("wrong version")) == f.SSL_FAILED_HANDSHAKE


def test_unknown_failures_scrub_addresses():
    failure = m.classify_tcp(RuntimeError("from 203.0.113.9 and 2001:db8::7 to us"))
    assert failure.startswith(f.UNKNOWN + ": RuntimeError")
    assert "203.0.113.9" not in failure and "2001:db8::7" not in failure
    assert len(f.unknown(RuntimeError("x" * 1000))) < 250


def test_bogon_is_not_a_probe_failure():
    # The probe reports answers; deciding that an answer is a bogon is the analysis's job.
    assert f.DNS_BOGON not in f.ALL
