"""Ed25519 signatures over each run's chain head, and the probe's key store.

When a run finishes, the store appends its `run_end` record and signs that record's `sha256` (the
run's chain head) with the probe's key, in the same transaction. The head hashes every record
before it in the database, so one signature vouches for the whole chain up to the end of the run.

The signed message is the ASCII text `MESSAGE_PREFIX + head_sha256`; anyone can check it with
the public key alone (the evidence bundle's README shows how, with the `cryptography` package).

Keys carry no identity: a key is 32 random bytes, its id the first 32 hex digits of the SHA-256
of the raw public key. They live in a directory of their own (`default_key_dir`: $NETVIGIL_KEYS,
else the user's data directory), private keys as PKCS#8 PEM files readable by the owner only:

    keys/current.json       {"key_id", "public_key", "created"} of the key in use
    keys/<key_id>.pem       its private key (0600; the directory is 0700)
    keys/retired.json       {key_id: {"public_key", "created", "retired"}} of keys rotated out

`rotate_key` makes a new key, retires the old one and deletes its private half. Public keys,
retired ones too, stay in the database's `keys` table, so old signatures keep verifying.
"""

from __future__ import annotations

import base64
import binascii
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import platformdirs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from core.errors import FileLineError, RecordError
from core.times import utc_now
from results.canonical import sha256_hex
from results.coverage import NOTICE, Coverage, SignedHead, Unsigned, check_coverage

if TYPE_CHECKING:
    from results.store import Store

ENV_VAR = "NETVIGIL_KEYS"
MESSAGE_PREFIX = b"netvigil run head v1\n"
CUSTODY_PREFIX = b"netvigil custody head v1\n"  # an evidence bundle's custody log (at export)


def custody_prefix(anchor_sha256: str) -> bytes:
    """What is signed before a bundle's custody head: the prefix and the slice's anchor, so that
    neither end of the slice can be cut off unnoticed."""
    return CUSTODY_PREFIX + anchor_sha256.encode("ascii") + b"\n"
ALGORITHM = "Ed25519"

# (kind, subject, what failed): kind says which table or bundle file holds the subject.
Finding = tuple[str, str, str]


def default_key_dir() -> Path:
    """$NETVIGIL_KEYS if set (and not empty), else <user data dir>/netvigil/keys."""
    override = os.environ.get(ENV_VAR, "").strip()
    if override:
        return Path(override).expanduser()
    return platformdirs.user_data_path("netvigil") / "keys"


def key_id(public_raw: bytes) -> str:
    """A key's id: the first 32 hex digits of the SHA-256 of its raw 32-byte public key."""
    return sha256_hex(public_raw)[:32]


def message(head_sha256: str, prefix: bytes = MESSAGE_PREFIX) -> bytes:
    """The bytes signed for a run whose last record has hash `head_sha256` (with
    CUSTODY_PREFIX: for a custody log whose last entry has that hash)."""
    return prefix + head_sha256.encode("ascii")


def b64decode_strict(text: str) -> bytes:
    """Base64 that must be written exactly as `b64encode` writes it (so no two texts decode to
    the same bytes: a changed character is always a changed value). RecordError otherwise."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise RecordError(f"not base64: {exc}") from None
    if base64.b64encode(data).decode("ascii") != text:
        raise RecordError("not in canonical base64 form")
    return data


@dataclass(frozen=True)
class Signer:
    """A private key in use, with the time it was made."""

    private: Ed25519PrivateKey
    created: str

    @property
    def public_raw(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_b64(self) -> str:
        return base64.b64encode(self.public_raw).decode("ascii")

    @property
    def key_id(self) -> str:
        return key_id(self.public_raw)

    def sign(self, head_sha256: str, prefix: bytes = MESSAGE_PREFIX) -> str:
        """The base64 signature of a chain head."""
        return base64.b64encode(self.private.sign(message(head_sha256, prefix))).decode("ascii")


def verify_signature(public_b64: str, head_sha256: str, signature_b64: str,
                     prefix: bytes = MESSAGE_PREFIX) -> str | None:
    """None if `signature_b64` is a valid signature of the head by the key; else why not."""
    try:
        public = Ed25519PublicKey.from_public_bytes(b64decode_strict(public_b64))
    except ValueError as exc:
        return f"the public key is unreadable ({exc})"
    try:
        signature = b64decode_strict(signature_b64)
    except ValueError as exc:
        return f"the signature is unreadable ({exc})"
    try:
        public.verify(signature, message(head_sha256, prefix))
    except InvalidSignature:
        return "the signature does not verify with its key"
    return None


class KeyStore:
    """The directory holding the probe's signing key (see the module docstring)."""

    def __init__(self, directory: str | Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else default_key_dir()

    def current(self) -> Signer:
        """The key in use, made on first use."""
        with self._locked():
            return self._load() or self._create()

    def rotate(self) -> tuple[Signer, Signer | None]:
        """Make a new key and retire the old one (if any): returns (new, old)."""
        with self._locked():
            old = self._load()
            new = self._create()
            if old is not None:
                retired = self.retired()
                retired[old.key_id] = {
                    "public_key": old.public_b64, "created": old.created, "retired": new.created,
                }
                self._write_json("retired.json", retired)
                # The private half of a retired key serves no purpose and could only leak.
                (self.directory / f"{old.key_id}.pem").unlink(missing_ok=True)
            return new, old

    def retired(self) -> dict[str, dict[str, str]]:
        """{key_id: {"public_key", "created", "retired"}} of the keys rotated out."""
        path = self.directory / "retired.json"
        if not path.exists():
            return {}
        data: dict[str, dict[str, str]] = json.loads(path.read_text(encoding="utf-8"))
        return data

    def _load(self) -> Signer | None:
        path = self.directory / "current.json"
        if not path.exists():
            return None
        info = json.loads(path.read_text(encoding="utf-8"))
        pem = (self.directory / f"{info['key_id']}.pem").read_bytes()
        private = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(private, Ed25519PrivateKey):
            raise FileLineError("the key is not an Ed25519 key", path)
        signer = Signer(private, info["created"])
        if signer.key_id != info["key_id"]:
            raise FileLineError(f"the key file does not hold key {info['key_id']}", path)
        return signer

    def _create(self) -> Signer:
        signer = Signer(Ed25519PrivateKey.generate(), utc_now())
        pem = signer.private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        # O_EXCL and the mode at creation: the private key is never readable by others, not
        # even for the moment between writing and a chmod.
        fd = os.open(self.directory / f"{signer.key_id}.pem",
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        self._write_json("current.json", {
            "key_id": signer.key_id, "public_key": signer.public_b64, "created": signer.created,
        })
        return signer

    def _write_json(self, name: str, data: Any) -> None:
        tmp = self.directory / f".{name}.tmp"
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        tmp.replace(self.directory / name)  # atomic: a reader sees the old or the new file

    @contextmanager
    def _locked(self) -> Iterator[None]:
        # Two processes making the first key at once would otherwise both make one.
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


# --- the database side -------------------------------------------------------------------------


def register(conn: sqlite3.Connection, signer: Signer, retired: Mapping[str, Mapping[str, str]]
             ) -> None:
    """Make sure the keys table knows the current key and every retired one (and that they
    are marked retired), inside the caller's transaction."""
    conn.execute(
        "INSERT OR IGNORE INTO keys (key_id, public_key, created) VALUES (?, ?, ?)",
        (signer.key_id, signer.public_b64, signer.created),
    )
    for kid, info in retired.items():
        conn.execute(
            "INSERT OR IGNORE INTO keys (key_id, public_key, created, retired) VALUES (?, ?, ?, ?)",
            (kid, info["public_key"], info["created"], info["retired"]),
        )
        conn.execute("UPDATE keys SET retired = ? WHERE key_id = ? AND retired IS NULL",
                     (info["retired"], kid))


def sign_run(conn: sqlite3.Connection, keys: KeyStore, signer: Signer, run_id: int,
             head_sha256: str) -> None:
    """Sign a run's chain head and store the signature (inside the caller's transaction)."""
    register(conn, signer, keys.retired())
    conn.execute(
        "INSERT INTO signatures (run_id, head_sha256, key_id, signature, created) "
        "VALUES (?, ?, ?, ?, ?)",
        (run_id, head_sha256, signer.key_id, signer.sign(head_sha256), utc_now()),
    )


def rotate_key(store: Store) -> dict[str, str | None]:
    """Make a new signing key for the store's key directory and retire the old one.

    The old public key stays in the store's `keys` table (marked retired), so the runs it
    signed still verify. Returns {"key_id": new id, "retired": old id or None}.
    """
    new, old = store.keys.rotate()
    with store.transaction() as conn:
        register(conn, new, store.keys.retired())
    return {"key_id": new.key_id, "retired": old.key_id if old else None}


def run_heads(conn: sqlite3.Connection) -> dict[int, tuple[str, str, str]]:
    """{run_id: (kind, sha256, created)} of each run's last record."""
    rows = conn.execute(
        "SELECT r.run_id, r.kind, r.sha256, r.created FROM records r JOIN ("
        " SELECT run_id, MAX(id) AS last FROM records WHERE run_id IS NOT NULL GROUP BY run_id"
        ") h ON r.id = h.last"
    )
    return {run_id: (kind, digest, created) for run_id, kind, digest, created in rows}


def check_signatures(conn: sqlite3.Connection, unsigned: Unsigned = NOTICE
                     ) -> tuple[list[Finding], list[str], Coverage]:
    """Every key and signature, that each finished run is signed, and what no signature
    covers (`results.coverage`, reported as `unsigned` says): (problems, notices, coverage).

    A finished run without a signature is a problem, unless it ended before the oldest key in
    the table was made (data from before netvigil signed runs): that is only a notice, and so
    are runs that have not ended, when a later signed head covers their records.
    """
    problems: list[Finding] = []
    keys: dict[str, tuple[str, str, str | None]] = {}
    for kid, public, created, retired in conn.execute(
        "SELECT key_id, public_key, created, retired FROM keys ORDER BY created, key_id"
    ):
        keys[kid] = (public, created, retired)
        try:
            if key_id(b64decode_strict(public)) != kid:
                problems.append(("key", f"key {kid}", "its id is not the hash of its public key"))
        except ValueError as exc:
            problems.append(("key", f"key {kid}", f"the public key is unreadable ({exc})"))
    heads = run_heads(conn)
    valid: list[SignedHead] = []
    for sid, run_id, head, kid, signature, created in conn.execute(
        "SELECT id, run_id, head_sha256, key_id, signature, created FROM signatures ORDER BY id"
    ):
        subject = f"run {run_id} (signature {sid})"
        why = _signature_problem(heads.get(run_id), head, keys.get(kid), kid, signature, created)
        if why:
            problems.append(("signature", subject, why))
        else:
            last = conn.execute("SELECT MAX(id) FROM records WHERE run_id = ?",
                                (run_id,)).fetchone()[0]
            valid.append(SignedHead(run_id, int(last), kid))
    signed = {h.run_id for h in valid}
    oldest_key = min((created for _, created, _ in keys.values()), default=None)
    used = sorted({h.key_id for h in valid})
    # The keys come with the data, so a forger could bring their own: their ids are worth
    # comparing with ones obtained independently (published by the volunteer, earlier bundles).
    notices = [f"runs are signed with {'key' if len(used) == 1 else 'keys'} {', '.join(used)}"
               ] if used else []
    legacy: dict[int, str] = {}
    for run_id, (kind, _, created) in sorted(heads.items()):
        if run_id in signed or kind != "run_end":
            continue
        if oldest_key is None or created < oldest_key:
            legacy[run_id] = "ended before this database had a signing key: unsigned itself"
        elif not any(subject.startswith(f"run {run_id} ") for _, subject, _ in problems):
            problems.append(("run", f"run {run_id}", "its chain head has no signature"))
    coverage = Coverage(valid)
    found, more = check_coverage(conn, coverage, signed, legacy, unsigned)
    problems.extend(("records", subject, what) for subject, what in found)
    return problems, notices + more, coverage


def _signature_problem(
    head: tuple[str, str, str] | None,
    signed_head: str,
    key: tuple[str, str, str | None] | None,
    kid: str,
    signature: str,
    created: str,
) -> str | None:
    if head is None:
        return "the run has no records"
    kind, digest, _ = head
    if kind != "run_end" or digest != signed_head:
        return f"it signs {signed_head}, but the run's last record has hash {digest} ({kind})"
    if key is None:
        return f"key {kid} is not in the keys"
    public, _, retired = key
    why = verify_signature(public, signed_head, signature)
    if why is None and retired is not None and created > retired:
        why = f"it was made at {created}, after key {kid} was retired at {retired}"
    return why
