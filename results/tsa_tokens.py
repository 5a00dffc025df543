"""RFC 3161 trusted timestamps of run chain heads: the requests, the stored tokens, their check.

A run's signature (results.signing) proves who vouches for its records, but its times come from
the probe's own clock. A time-stamping authority (TSA) adds a third party's word that the chain
head existed at a time: it signs the SHA-256 of the very message the probe signs,
`signing.message(head)` = "netvigil run head v1\\n" + head, with the time it saw it.

A probe is often offline (a shutdown is what it measures), so heads wait in the `timestamps`
table as `queued` rows and are sent when an authority is reachable (services.timestamps). A row
becomes `stamped` with:

    token       the authority's DER TimeStampResp (status + CMS token), base64
    tsa_chain   the authority's certificates as PEM, its signing certificate first, up to a
                self-signed root (the token's own certificates, plus a root given by the user)
    gen_time    the time in the token (ISO 8601 UTC)

Stamped rows never change (a trigger refuses it). `check` verifies each stored token against
its run's head and its chain, for `results.verify` and the bundle check alike. The chain is stored
with the data, like the keys, so its root's fingerprint is worth comparing with one obtained
independently (the authority publishes it): a forger could bring their own authority.

The CMS fields that the authority's signature does not cover (the SignedData and SignerInfo
version numbers are checked here; the signature algorithm identifier is not, as OpenSSL takes the
algorithm from the key) are the only bytes of a token whose change would not be reported.
"""

from __future__ import annotations

import base64
import hashlib
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from rfc3161_client import (
    HashAlgorithm,
    PKIStatus,
    TimeStampRequest,
    TimestampRequestBuilder,
    TimeStampResponse,
    VerificationError,
    VerifierBuilder,
    decode_timestamp_response,
)

from core.errors import TimestampError
from core.times import format_utc, utc_now
from core.words import counted
from results import custody
from results.signing import Finding, b64decode_strict, message, run_heads

if TYPE_CHECKING:
    from results.store import Store

CONTENT_TYPE = "application/timestamp-query"
REPLY_TYPE = "application/timestamp-reply"
STATUSES = ("queued", "stamped", "failed")


@dataclass(frozen=True)
class Stamp:
    """A verified timestamp, as it is stored."""

    token: str  # base64 DER TimeStampResp
    tsa_chain: str  # PEM, the signing certificate first
    gen_time: str  # ISO 8601 UTC, as the store writes times


def build_request(head_sha256: str) -> TimeStampRequest:
    """A query for the head's message: SHA-256, a random nonce, the authority's certificates."""
    return TimestampRequestBuilder(data=message(head_sha256), hash_algorithm=HashAlgorithm.SHA256,
                                   nonce=True, cert_req=True).build()


def accept(request: TimeStampRequest, head_sha256: str, answer: bytes,
           roots_pem: bytes | None = None) -> Stamp:
    """The stamp in an authority's DER answer to `request`, verified against the head, the
    request's nonce and a chain up to a root (from the answer, or from `roots_pem`)."""
    try:
        return _accept(request, head_sha256, answer, roots_pem)
    except TimestampError:
        raise
    except Exception as exc:  # the answer comes from the network: never crash on it
        raise TimestampError(f"the answer is unreadable ({type(exc).__name__}: {exc})") from None


def _accept(request: TimeStampRequest, head_sha256: str, answer: bytes,
            roots_pem: bytes | None) -> Stamp:
    response = decode_timestamp_response(answer)
    if PKIStatus(response.status) not in (PKIStatus.GRANTED, PKIStatus.GRANTED_WITH_MODS):
        text = "; ".join(response.status_string)
        raise TimestampError(f"the authority refused: status {response.status}"
                             + (f" ({text})" if text else ""))
    extra = x509.load_pem_x509_certificates(roots_pem) if roots_pem else []
    chain = order_chain(response, [x509.load_der_x509_certificate(c)
                                   for c in response.signed_data.certificates] + extra)
    chain_pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain).decode("ascii")
    why = _verify(response, head_sha256, chain, request.nonce)
    if why:
        raise TimestampError(why)
    return Stamp(base64.b64encode(answer).decode("ascii"), chain_pem,
                 _iso(response.tst_info.gen_time))


def order_chain(response: TimeStampResponse, certs: list[x509.Certificate]
                ) -> list[x509.Certificate]:
    """The signer's certificate, then each issuer up to a self-signed root; TimestampError if
    the certificates do not get there."""
    signers = list(response.signed_data.signer_infos)
    if len(signers) != 1:
        raise TimestampError(f"the token has {len(signers)} signers, not one")
    signer = signers[0]
    current = next((c for c in certs if (c.issuer, c.serial_number)
                    == (signer.issuer, signer.serial_number)), None)
    if current is None:
        raise TimestampError("the authority's certificate is neither in its answer nor given")
    chain = [current]
    while current.issuer != current.subject:
        parent = next((c for c in certs if c.subject == current.issuer and c not in chain), None)
        if parent is None:
            raise TimestampError(f"no root certificate for {current.issuer.rfc4514_string()}: "
                                 "give the authority's root certificate (PEM)")
        chain.append(parent)
        current = parent
    return chain


def verify_stamp(head_sha256: str, token: str, tsa_chain: str) -> tuple[str | None, str | None]:
    """(None, gen_time) if the stored token is the authority's stamp of this head, made with the
    first certificate of the chain, which leads to the chain's root; else (why not, None)."""
    try:
        response = decode_timestamp_response(b64decode_strict(token))
    except ValueError as exc:
        return f"the token is unreadable ({exc})", None
    except Exception as exc:  # a verifier never crashes on what it is given
        return f"the token is unreadable ({type(exc).__name__}: {exc})", None
    try:
        chain = x509.load_pem_x509_certificates(tsa_chain.encode("ascii"))
    except ValueError as exc:
        return f"the authority's chain is unreadable ({exc})", None
    why = _verify(response, head_sha256, chain, None)
    return (why, None) if why else (None, _iso(response.tst_info.gen_time))


def _verify(response: TimeStampResponse, head_sha256: str, chain: list[x509.Certificate],
            nonce: int | None) -> str | None:
    if not chain or chain[-1].issuer != chain[-1].subject:
        return "the authority's chain does not end in a self-signed root"
    builder = VerifierBuilder(tsa_certificate=chain[0], intermediates=chain[1:-1],
                              roots=chain[-1:], nonce=nonce)
    try:
        # RFC 5652: SignedData v3 for a TSTInfo; SignerInfo v1 for an issuer-and-serial
        # signer. They are not under the signature, so they are held to these values.
        versions = (response.signed_data.version,
                    [si.version for si in response.signed_data.signer_infos])
        if versions != (3, [1]):
            return f"the token's CMS versions are {versions}, not (3, [1])"
        builder.build().verify_message(response, message(head_sha256))
    except VerificationError as exc:
        return f"the token does not verify: {exc}"
    except Exception as exc:  # the rust parser and x509 raise types of their own
        return f"the token cannot be verified ({type(exc).__name__}: {exc})"
    return None


def _iso(when: datetime) -> str:
    # A naive time from the token is UTC already (format_utc leaves naive times as they are).
    return format_utc(when)


def fingerprint(tsa_chain: str) -> str:
    """The SHA-256 of the chain's root certificate (DER), to compare with the authority's."""
    root = x509.load_pem_x509_certificates(tsa_chain.encode("ascii"))[-1]
    return hashlib.sha256(root.public_bytes(Encoding.DER)).hexdigest()


# --- the table -----------------------------------------------------------------------------------


def queue_finished(store: Store, tsa_url: str) -> int:
    """Queue the head of every ended run that has no stamped, queued or failed row for it, in
    one transaction; returns how many were queued."""
    with store.transaction() as conn:
        have = {(run_id, head) for run_id, head in conn.execute(
            "SELECT run_id, head_sha256 FROM timestamps")}
        added = 0
        for run_id, (kind, head, _) in sorted(run_heads(conn).items()):
            if kind == "run_end" and (run_id, head) not in have:
                conn.execute(
                    "INSERT INTO timestamps (run_id, head_sha256, tsa_url, status, attempts, "
                    "created) VALUES (?, ?, ?, 'queued', 0, ?)", (run_id, head, tsa_url, utc_now()))
                added += 1
    return added


def pending(store: Store) -> list[tuple[int, int, str]]:
    """(row id, run id, head) of every head still to stamp (queued, or refused before)."""
    return store.db.conn.execute("SELECT id, run_id, head_sha256 FROM timestamps WHERE status "
                                 "!= 'stamped' ORDER BY id").fetchall()


def record_stamp(store: Store, row_id: int, run_id: int, head: str, tsa_url: str,
                 stamp: Stamp) -> None:
    """Keep a verified stamp in its row and log it in the custody log, in one transaction."""
    with store.transaction() as conn:
        conn.execute(
            "UPDATE timestamps SET status = 'stamped', tsa_url = ?, token = ?, tsa_chain = ?, "
            "gen_time = ?, attempts = attempts + 1, last_error = NULL WHERE id = ?",
            (tsa_url, stamp.token, stamp.tsa_chain, stamp.gen_time, row_id))
        custody.append(conn, "timestamp", {"run": run_id, "gen_time": stamp.gen_time,
                                           "root_sha256": fingerprint(stamp.tsa_chain)},
                       {"head": head})


def record_failures(store: Store, row_ids: Sequence[int], tsa_url: str, status: str,
                    error: str) -> None:
    """Attempts that did not give a stamp, in one transaction: `queued` (unreachable) or
    `failed` (refused or a bad answer); either is tried again next time."""
    with store.transaction() as conn:
        for row_id in row_ids:
            conn.execute("UPDATE timestamps SET status = ?, tsa_url = ?, attempts = attempts + 1, "
                         "last_error = ? WHERE id = ?", (status, tsa_url, error[:500], row_id))


def check_tokens(conn: sqlite3.Connection) -> tuple[list[Finding], list[str]]:
    """Every stamped row against its run's head and its chain: (problems, notices)."""
    problems: list[Finding] = []
    heads = run_heads(conn)
    roots: dict[str, int] = {}
    waiting = 0
    for tid, run_id, head, status, token, chain, gen_time in conn.execute(
        "SELECT id, run_id, head_sha256, status, token, tsa_chain, gen_time FROM timestamps "
        "ORDER BY id"
    ):
        if status != "stamped":
            waiting += 1
            continue
        subject = f"run {run_id} (timestamp {tid})"
        have = heads.get(run_id)
        if have is None or have[0] != "run_end" or have[1] != head:
            last = f"{have[1]} ({have[0]})" if have else "none"
            problems.append(("timestamp", subject, f"it stamps {head}, but the run's last "
                             f"record has hash {last}"))
            continue
        if not isinstance(token, str) or not isinstance(chain, str):
            problems.append(("timestamp", subject, "a stamped row without token or chain"))
            continue
        why, when = verify_stamp(head, token, chain)
        if why is None and when != gen_time:
            why = f"its gen_time is {gen_time}, the token says {when}"
        if why:
            problems.append(("timestamp", subject, why))
        else:
            fp = fingerprint(chain)
            roots[fp] = roots.get(fp, 0) + 1
    notices = [f"{counted(n, 'run head')} {'carries' if n == 1 else 'carry'} an RFC 3161 "
               f"timestamp from an authority whose root certificate has SHA-256 {fp}"
               for fp, n in sorted(roots.items())]
    if waiting:
        verb = "waits" if waiting == 1 else "wait"
        notices.append(f"{counted(waiting, 'run head')} {verb} for a timestamp (the authority "
                       "was not reachable or refused)")
    return problems, notices
