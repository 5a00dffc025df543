"""Writing a BagIt bag (RFC 8493) into a zip: payload files hashed as they stream, tag files,
the manifests. What goes in the bag is `results.bundle_export`'s business; this module only
knows the bag's layout, so that the same data always gives the same bytes.
"""

from __future__ import annotations

import hashlib
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, Any

from results.bag_manifests import BAGIT_TXT, MANIFEST, TAGMANIFEST, manifest_text
from results.canonical import canonical_json, sha256_hex

_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same data gives the same zip


class BagWriter:
    """Writes members under one root folder and remembers each file's SHA-256."""

    def __init__(self, zf: zipfile.ZipFile, root: str) -> None:
        self.zf, self.root = zf, root
        self.payload: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.octets = 0

    @contextmanager
    def stream(self, path: str) -> Iterator[Hashing]:
        """A payload file written a piece at a time (records, verdicts: larger than memory)."""
        info = zipfile.ZipInfo(f"{self.root}/{path}", _ZIP_TIME)
        info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
        digest = hashlib.sha256()
        with self.zf.open(info, "w") as fh:
            writer = Hashing(fh, digest)
            yield writer
            self.octets += writer.count
        self.payload[path] = digest.hexdigest()

    def add(self, path: str, data: bytes, tag: bool = False) -> None:
        """A whole file: a payload file, or with `tag` a tag file (outside data/)."""
        if tag:
            info = zipfile.ZipInfo(f"{self.root}/{path}", _ZIP_TIME)
            info.compress_type, info.external_attr = zipfile.ZIP_DEFLATED, 0o644 << 16
            self.zf.writestr(info, data)
            self.tags[path] = sha256_hex(data)
            return
        with self.stream(path) as fh:
            fh.write(data)

    def finish(self, info: Mapping[str, str], readme: str) -> None:
        """The tag files, once every payload file is written: bagit.txt, bag-info.txt (`info`
        with the Payload-Oxum added), the payload manifest, README.txt and the tag manifest."""
        info = {**info, "Payload-Oxum": f"{self.octets}.{len(self.payload)}"}
        self.add("bagit.txt", BAGIT_TXT, tag=True)
        self.add("bag-info.txt", "".join(f"{k}: {v}\n" for k, v in info.items()).encode(),
                 tag=True)
        self.add(MANIFEST, manifest_text(self.payload), tag=True)
        self.add("README.txt", readme.encode("utf-8"), tag=True)
        info_zip = zipfile.ZipInfo(f"{self.root}/{TAGMANIFEST}", _ZIP_TIME)
        info_zip.external_attr = 0o644 << 16
        self.zf.writestr(info_zip, manifest_text(self.tags), zipfile.ZIP_DEFLATED)


class Hashing:
    """A file being written that counts and hashes what goes through it."""

    def __init__(self, fh: IO[bytes], digest: Any) -> None:
        self.fh, self.digest, self.count = fh, digest, 0

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        self.count += len(data)
        return self.fh.write(data)


def json_list(items: Iterable[dict[str, Any]]) -> bytes:
    """A JSON array with one canonical element per line (readable, and every byte counts)."""
    lines = [canonical_json(item).decode("utf-8") for item in items]
    return ("[\n" + ",\n".join(lines) + "\n]\n").encode("utf-8") if lines else b"[]\n"
