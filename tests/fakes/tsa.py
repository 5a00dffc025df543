"""A tiny RFC 3161 time-stamping authority on loopback, with a CA it makes itself.

    with FakeTSA() as tsa:
        tsa.url                   # http://127.0.0.1:<port>/ answering application/timestamp-query
        tsa.ca_pem                # the test root (PEM), to trust or to compare with
        tsa.requests              # how many queries it answered

The answer is a DER TimeStampResp whose token is a CMS SignedData over a TSTInfo (built with
`asn1crypto`), signed with an ECDSA P-256 key (`cryptography`) whose certificate the test root
issued with the critical id-kp-timeStamping EKU that RFC 3161 requires. The leaf is included in
the token when the query asks for certificates (certReq); the root never is (as with real
authorities), so verifiers need it separately. `refuse = True` makes it answer "rejection".
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Self

from asn1crypto import algos, cms, core, tsp
from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.99999.1"  # a private-arc OID: the test authority's policy


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


class FakeTSA:
    """An HTTP time-stamping authority on 127.0.0.1 (see the module docstring)."""

    def __init__(self, name: str = "netvigil test TSA") -> None:
        now = datetime.datetime.now(datetime.UTC)
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        self.ca_key = ec.generate_private_key(ec.SECP256R1())
        self.ca_cert = (
            x509.CertificateBuilder().subject_name(_name(f"{name} root"))
            .issuer_name(_name(f"{name} root")).public_key(self.ca_key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.cert = (
            x509.CertificateBuilder().subject_name(_name(name)).issuer_name(self.ca_cert.subject)
            .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(start).not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]),
                           critical=True)
            .sign(self.ca_key, hashes.SHA256())
        )
        self.refuse = False
        self.requests = 0
        self._serial = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def ca_pem(self) -> bytes:
        return self.ca_cert.public_bytes(serialization.Encoding.PEM)

    @property
    def url(self) -> str:
        assert self._server is not None, "the TSA is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}/tsa"

    # --- the authority ---------------------------------------------------------------------------

    def respond(self, query_der: bytes) -> bytes:
        """The DER TimeStampResp to a DER TimeStampReq."""
        query = tsp.TimeStampReq.load(query_der)
        if self.refuse:
            # asn1crypto insists on the token, which a refusal has not: the SEQUENCE by hand.
            status = tsp.PKIStatusInfo({"status": "rejection",
                                        "status_string": ["refused by the test"]}).dump()
            return b"\x30" + bytes([len(status)]) + status
        info = tsp.TSTInfo({
            "version": "v1",
            "policy": POLICY,
            "message_imprint": query["message_imprint"],
            "serial_number": next(self._serial),
            "gen_time": datetime.datetime.now(datetime.UTC).replace(microsecond=0),
            "accuracy": {"seconds": 1},
            "nonce": query["nonce"].native,
        })
        content = info.dump()
        leaf_der = self.cert.public_bytes(serialization.Encoding.DER)
        leaf = a_x509.Certificate.load(leaf_der)
        signed_attrs = cms.CMSAttributes([
            cms.CMSAttribute({"type": "content_type", "values": ["tst_info"]}),
            cms.CMSAttribute({"type": "message_digest",
                              "values": [hashlib.sha256(content).digest()]}),
            cms.CMSAttribute({"type": "signing_certificate_v2", "values": [{
                "certs": [{"cert_hash": hashlib.sha256(leaf_der).digest()}],
            }]}),
        ])
        # The signature is over the DER of the attributes as a SET (RFC 5652, 5.4).
        signature = self.key.sign(signed_attrs.dump(), ec.ECDSA(hashes.SHA256()))
        signer = cms.SignerInfo({
            "version": "v1",
            "sid": cms.SignerIdentifier({"issuer_and_serial_number": {
                "issuer": leaf.issuer, "serial_number": leaf.serial_number}}),
            "digest_algorithm": algos.DigestAlgorithm({"algorithm": "sha256"}),
            "signed_attrs": signed_attrs,
            "signature_algorithm": algos.SignedDigestAlgorithm({"algorithm": "sha256_ecdsa"}),
            "signature": signature,
        })
        signed = cms.SignedData({
            "version": "v3",
            "digest_algorithms": [algos.DigestAlgorithm({"algorithm": "sha256"})],
            "encap_content_info": {"content_type": "tst_info",
                                   "content": core.ParsableOctetString(content)},
            "certificates": [leaf] if query["cert_req"].native else [],
            "signer_infos": [signer],
        })
        if not query["cert_req"].native:
            del signed["certificates"]
        token = cms.ContentInfo({"content_type": "signed_data", "content": signed})
        return tsp.TimeStampResp({"status": {"status": "granted"},
                                  "time_stamp_token": token}).dump()

    # --- the HTTP server -------------------------------------------------------------------------

    def start(self) -> None:
        tsa = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Type") != "application/timestamp-query":
                    self.send_error(415)
                    return
                tsa.requests += 1
                answer = tsa.respond(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/timestamp-reply")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
