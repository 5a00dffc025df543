"""A bag's BagIt conformance (RFC 8493), as netvigil writes bags: the declaration, both
manifests in netvigil's exact form, every file listed and matching its SHA-256, the
Payload-Oxum. `check_files` says whether the bag is well formed enough for its data files to
be read at all (`results.bundle_verify` reads them; `results.bagit` writes bags).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from results.bag_reader import READ_ERRORS, Bag, split_lines
from results.problems import Problem, Verification

MANIFEST, TAGMANIFEST = "manifest-sha256.txt", "tagmanifest-sha256.txt"
BAGIT_TXT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"
_LINE = re.compile(r"([0-9a-f]{64})  (\S+)")


def manifest_text(entries: dict[str, str]) -> bytes:
    """A BagIt manifest that `sha256sum -c` also reads: "<sha256>  <path>" lines, sorted."""
    return "".join(f"{digest}  {path}\n" for path, digest in sorted(entries.items())).encode()


def check_files(bag: Bag, report: Verification) -> bool:
    """Every file against the manifests (what `sha256sum -c` does), and the Payload-Oxum; False
    if the bag is not well formed (then nothing in it is read: what would vouch for it?). A
    file whose hash differs is still read, to name what changed in it."""
    sound = True
    digests: dict[str, str] = {}
    for path in sorted(bag):  # each file inflated once, a piece at a time
        try:
            digests[path] = bag.sha256(path)
        except READ_ERRORS as exc:  # damaged, an unknown method, encrypted
            report.problems.append(Problem("file", f"unreadable: {exc}", path))
            bag.drop(path)
            sound = False
    if "bagit.txt" not in bag or bag.size("bagit.txt") != len(BAGIT_TXT) \
            or bag["bagit.txt"] != BAGIT_TXT:
        report.problems.append(Problem("file", "missing, or not the BagIt declaration",
                                       "bagit.txt"))
        sound = False
    listed: dict[str, dict[str, str]] = {}
    for name in (MANIFEST, TAGMANIFEST):
        listed[name], well_formed = read_manifest(bag, name, report)
        sound = sound and well_formed
    for path in sorted(bag):
        if path == TAGMANIFEST:
            continue
        name = MANIFEST if path.startswith("data/") else TAGMANIFEST
        want = listed[name].get(path)
        if want is None:
            report.problems.append(Problem("file", f"not listed in {name}", path))
            sound = False
            continue
        have = digests[path]
        if have != want:
            report.problems.append(Problem("file", f"its SHA-256 is {have}, {name} says {want}",
                                           path))
            if name == TAGMANIFEST:
                # Nothing vouches for the tag manifest: its line may be what changed.
                report.problems.append(Problem("file", f"its entry for {path} does not match "
                                               "that file", TAGMANIFEST))
    for name, entries in listed.items():
        for path in entries:
            if path not in bag:
                report.problems.append(Problem(f"entry {path}", "names a file the bundle "
                                               "does not hold", name))
                sound = False
    payload = [bag.size(path) for path in bag if path.startswith("data/")]
    oxum = f"{sum(payload)}.{len(payload)}"
    if bag_info(bag).get("Payload-Oxum") != oxum:
        report.problems.append(Problem("Payload-Oxum", f"differs from the payload ({oxum})",
                                       "bag-info.txt"))
    return sound


def read_manifest(bag: Mapping[str, bytes], name: str, report: Verification
              ) -> tuple[dict[str, str], bool]:
    """(path -> SHA-256 of a manifest, whether it is exactly as netvigil writes it)."""
    data = bag.get(name)
    if data is None:
        report.problems.append(Problem("file", "missing", name))
        return {}, False
    entries: dict[str, str] = {}
    bad = False
    for n, line in enumerate(split_lines(data), 1):
        match = _LINE.fullmatch(line.decode("utf-8", "replace"))
        if match is None or match[2] in entries:
            report.problems.append(Problem(f"line {n}", "is not '<sha256>  <path>' of a file "
                                           "listed once", name))
            bad = True
            continue
        entries[match[2]] = match[1]
    # Written sorted, two spaces, one line each: any other text means it was edited.
    if not bad and manifest_text(entries) != data:
        report.problems.append(Problem("file", "not in the form netvigil writes it", name))
        bad = True
    return entries, not bad


def bag_info(files: Mapping[str, bytes]) -> dict[str, str]:
    """The "Key: value" lines of bag-info.txt."""
    info = {}
    for line in files.get("bag-info.txt", b"").decode("utf-8", "replace").split("\n"):
        key, sep, value = line.partition(": ")
        if sep:
            info[key] = value
    return info
