"""Test certificates (trustme): a trusted test CA, and server contexts good and bad.

    pki = FakePKI()
    bundle = pki.write_ca_bundle(tmp_path)        # the client trusts this CA only (ca_bundle=)
    pki.good("example.test")                      # verifies for example.test
    pki.expired("example.test")                   # ssl_invalid_certificate
    pki.wrong_host()                              # for other.test: ssl_invalid_hostname
    pki.unknown_ca("example.test")                # issued by a CA the client does not trust

Each method returns a server-side `ssl.SSLContext` for `HTTPServer(tls=...)` that offers ALPN
http/1.1. Issued contexts are cached per (kind, names), so a benchmark with hundreds of servers
pays for each certificate once.
"""

from __future__ import annotations

import datetime
import ssl
from pathlib import Path

import trustme

DEFAULT_NAMES = ("example.test", "127.0.0.1")


class FakePKI:
    """A trusted test CA and a second, untrusted one."""

    def __init__(self) -> None:
        self.ca = trustme.CA(organization_name="netvigil test CA")
        self.other_ca = trustme.CA(organization_name="netvigil untrusted CA")
        self._contexts: dict[tuple[str, tuple[str, ...]], ssl.SSLContext] = {}

    @property
    def ca_pem(self) -> bytes:
        return self.ca.cert_pem.bytes()

    def write_ca_bundle(self, directory: str | Path) -> str:
        """Write the trusted CA's PEM into `directory`; returns the path for `ca_bundle=`."""
        path = Path(directory) / "netvigil-test-ca.pem"
        self.ca.cert_pem.write_to_path(str(path))
        return str(path)

    def _context(
        self,
        kind: str,
        names: tuple[str, ...],
        ca: trustme.CA,
        not_before: datetime.datetime | None = None,
        not_after: datetime.datetime | None = None,
    ) -> ssl.SSLContext:
        key = (kind, names or DEFAULT_NAMES)
        context = self._contexts.get(key)
        if context is None:
            leaf = ca.issue_cert(*key[1], not_before=not_before, not_after=not_after)
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.set_alpn_protocols(["http/1.1"])
            leaf.configure_cert(context)
            self._contexts[key] = context
        return context

    def good(self, *names: str) -> ssl.SSLContext:
        """A certificate from the trusted CA for `names` (default: example.test, 127.0.0.1)."""
        return self._context("good", names, self.ca)

    def expired(self, *names: str) -> ssl.SSLContext:
        """A certificate from the trusted CA for `names` that expired yesterday."""
        now = datetime.datetime.now(datetime.UTC)
        return self._context(
            "expired",
            names,
            self.ca,
            not_before=now - datetime.timedelta(days=30),
            not_after=now - datetime.timedelta(days=1),
        )

    def wrong_host(self, *names: str) -> ssl.SSLContext:
        """A valid certificate from the trusted CA, for another name (default: other.test)."""
        return self._context("good", names or ("other.test",), self.ca)

    def unknown_ca(self, *names: str) -> ssl.SSLContext:
        """A certificate for `names` issued by the CA the client does not trust."""
        return self._context("unknown_ca", names, self.other_ca)
