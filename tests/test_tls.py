"""The TLS handshake probe against loopback fakes with trustme certificates."""

from __future__ import annotations

import asyncio
import ssl
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from core import failures
from core.observations import TLSHandshake, observation_from_dict, observation_to_dict
from core.times import Clock
from probes import tcp, tls
from tests.fakes.certs import FakePKI
from tests.fakes.servers import HTTPServer, TCPServer

SNI = "example.test"


@pytest.fixture(scope="module")
def pki() -> FakePKI:
    return FakePKI()


@pytest.fixture
def bundle(pki: FakePKI, tmp_path: Path) -> str:
    return pki.write_ca_bundle(tmp_path)


def _handshake(
    port: int,
    sni: str = SNI,
    bundle: str | None = None,
    timeout: float = 2.0,
    alpn: tuple[str, ...] = ("http/1.1",),
) -> TLSHandshake:
    """Connect and handshake; close whatever was opened; return the observation."""

    async def main() -> TLSHandshake:
        clock = Clock()
        connect, stream = await tcp.connect("127.0.0.1", port, clock, 2.0)
        assert connect.failure is None and stream is not None
        try:
            obs, tls_stream = await tls.handshake(
                stream, "127.0.0.1", port, sni, clock, timeout, ca_bundle=bundle, alpn=alpn
            )
            assert (tls_stream is None) == (obs.failure is not None)
            if tls_stream is not None:
                await tls_stream.close()
                await tls_stream.close()  # idempotent
            return obs
        finally:
            await stream.close()

    return asyncio.run(main())


def _org(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value)


def test_good_handshake(pki: FakePKI, bundle: str) -> None:
    with HTTPServer(tls=pki.good()) as server:
        obs = _handshake(server.port, bundle=bundle)
    assert obs.failure is None
    assert obs.cert_verified is True
    assert obs.version in ("TLSv1.2", "TLSv1.3")
    assert obs.cipher
    assert obs.alpn == "http/1.1"
    assert (obs.sni, obs.address, obs.port, obs.purpose) == (
        SNI,
        "127.0.0.1",
        server.port,
        "target",
    )
    assert obs.peer_certificates
    leaf = x509.load_der_x509_certificate(obs.peer_certificates[0])
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert SNI in names.get_values_for_type(x509.DNSName)
    assert 0 <= obs.t0 <= obs.t


def test_ip_address_sni_and_no_alpn(pki: FakePKI, bundle: str) -> None:
    with HTTPServer(tls=pki.good()) as server:
        obs = _handshake(server.port, sni="127.0.0.1", bundle=bundle, alpn=())
    assert obs.failure is None and obs.cert_verified
    assert obs.alpn is None


def test_expired_certificate(pki: FakePKI, bundle: str) -> None:
    with HTTPServer(tls=pki.expired()) as server:
        obs = _handshake(server.port, bundle=bundle)
    assert obs.failure == failures.SSL_INVALID_CERTIFICATE
    assert obs.cert_verified is False
    assert obs.peer_certificates  # the evidence is kept


def test_wrong_host(pki: FakePKI, bundle: str) -> None:
    with HTTPServer(tls=pki.wrong_host()) as server:
        obs = _handshake(server.port, bundle=bundle)
    assert obs.failure == failures.SSL_INVALID_HOSTNAME
    assert obs.cert_verified is False
    assert obs.peer_certificates


def test_unknown_authority_keeps_the_chain(pki: FakePKI, bundle: str) -> None:
    with HTTPServer(tls=pki.unknown_ca()) as server:
        obs = _handshake(server.port, bundle=bundle)
    assert obs.failure == failures.SSL_UNKNOWN_AUTHORITY
    assert obs.cert_verified is False
    assert obs.version is None and obs.cipher is None
    leaf = x509.load_der_x509_certificate(obs.peer_certificates[0])
    assert _org(leaf.issuer) == "netvigil untrusted CA"


def test_system_store_does_not_trust_the_test_ca(pki: FakePKI) -> None:
    with HTTPServer(tls=pki.good()) as server:
        obs = _handshake(server.port, bundle=None)
    assert obs.failure == failures.SSL_UNKNOWN_AUTHORITY
    assert obs.peer_certificates


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("reset", failures.CONNECTION_RESET),
        ("close", failures.EOF_ERROR),
        ("garbage", failures.SSL_FAILED_HANDSHAKE),
    ],
)
def test_broken_peers(behaviour: str, expected: str) -> None:
    with TCPServer(behaviour) as server:
        obs = _handshake(server.port)
    assert obs.failure == expected
    assert obs.peer_certificates == ()
    assert obs.cert_verified is False


@pytest.mark.parametrize("behaviour", ["stall", "accept"])
def test_silent_peer_times_out(behaviour: str) -> None:
    with TCPServer(behaviour) as server:
        started = time.monotonic()
        obs = _handshake(server.port, timeout=0.3)
        elapsed = time.monotonic() - started
    assert obs.failure == failures.GENERIC_TIMEOUT
    assert 0.25 <= elapsed < 2.0


def test_tls_stream_carries_application_data(pki: FakePKI, bundle: str) -> None:
    async def main() -> bytes:
        with HTTPServer(tls=pki.good()) as server:
            clock = Clock()
            _, stream = await tcp.connect("127.0.0.1", server.port, clock, 2.0)
            assert stream is not None
            obs, tls_stream = await tls.handshake(
                stream, "127.0.0.1", server.port, SNI, clock, 2.0, ca_bundle=bundle
            )
            assert tls_stream is not None, obs.failure
            await tls_stream.write(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
            received = b""
            while chunk := await tls_stream.read(1 << 16):
                received += chunk
            await tls_stream.close()
            return received

    received = asyncio.run(main())
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"<title>netvigil test page</title>" in received


def test_chain_helper_falls_back_to_the_leaf() -> None:
    class OnlyLeaf:
        def getpeercert(self, binary_form: bool = False) -> bytes:
            return b"leaf-der"

    assert tls.peer_chain(OnlyLeaf()) == (b"leaf-der",)  # type: ignore[arg-type]


def test_handshake_round_trips_through_dicts(pki: FakePKI, bundle: str) -> None:
    with HTTPServer(tls=pki.unknown_ca()) as server:
        obs = _handshake(server.port, bundle=bundle)
    assert obs.peer_certificates
    again = observation_from_dict(observation_to_dict(obs))
    assert again == obs
    assert isinstance(again, TLSHandshake)
    assert again.peer_certificates[0] == obs.peer_certificates[0]


def test_client_context_is_verifying_and_cached(bundle: str) -> None:
    context = tls.client_context(bundle, ("http/1.1",))
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    assert tls.client_context(bundle, ("http/1.1",)) is context
