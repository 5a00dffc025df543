"""Which autonomous system (ASN, name) and country an IP address belongs to, from a local table.

The table is an "ip2asn" file as iptoasn.com publishes it (public domain, rebuilt hourly from
BGP announcements): one range per line, tab-separated, in address order,

    range_start  range_end  AS_number  country_code  AS_description
    1.0.0.0      1.0.0.255  13335      US            CLOUDFLARENET

IPv4, IPv6 or both ("combined") in one file, plain or gzip-compressed (.gz). AS number 0 marks
an unrouted range. A lookup streams the file and stops past the address: nothing is loaded into
memory, so a Raspberry Pi can use the full table (about 500,000 lines, 1.3 s at worst on one
x86 core, gzipped). A line that cannot be read is named with its file and line.

Nothing here touches the network: the address to look up comes from elsewhere (the test
helper's /v1/whoami), and the table is the user's download. `table_digest` says which table a
lookup used, so a reader can fetch the same one.
"""

from __future__ import annotations

import gzip
import hashlib
import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from core.errors import TableError
from core.words import counted

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class ASInfo:
    """An address's network, as the table gives it."""

    asn: int  # 0: the range is not routed
    country: str | None  # ISO 3166 alpha-2, None when the table says "None" or "ZZ"
    name: str | None  # the AS description (usually the ISP or organisation)

    @property
    def label(self) -> str:
        """'AS64500'."""
        return f"AS{self.asn}"


def _open(path: Path) -> IO[str]:
    raw = path.read_bytes()[:2] if path.stat().st_size >= 2 else b""
    if raw == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", errors="replace", newline="")
    return path.open("r", encoding="utf-8", errors="replace", newline="")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of every range line: blank lines and # comments are skipped."""
    try:
        handle = _open(path)
    except OSError as exc:
        raise TableError(f"{path}: cannot read the ASN table ({exc.strerror or exc})") from None
    with handle:
        try:
            for n, line in enumerate(handle, 1):
                text = line.rstrip("\r\n")
                if text.strip() and not text.startswith("#"):
                    yield n, text
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise TableError(f"{path}: the ASN table is damaged ({exc})") from None


def _rows(path: Path) -> Iterator[tuple[int, IPAddress, IPAddress, ASInfo]]:
    """(line number, start, end, info) for every range of the table, checked as it is read."""
    for n, text in _lines(path):
        yield (n, *_parse(path, n, text))


def _parse(path: Path, n: int, text: str) -> tuple[IPAddress, IPAddress, ASInfo]:
    fields = text.split("\t")
    if len(fields) < 4:
        got = counted(len(fields), "field")
        raise TableError(f"{path}:{n}: expected range_start, range_end, AS_number, country_code "
                         f"and AS_description separated by tabs, got {got}")
    try:
        start, end = ipaddress.ip_address(fields[0]), ipaddress.ip_address(fields[1])
    except ValueError as exc:
        raise TableError(f"{path}:{n}: {exc}") from None
    if start.version != end.version or start > end:  # type: ignore[operator]
        raise TableError(f"{path}:{n}: {fields[0]} .. {fields[1]} is not a range")
    if not fields[2].isdigit() or int(fields[2]) >= 2**32:
        raise TableError(f"{path}:{n}: AS number {fields[2][:20]!r} is not a number below 2^32")
    country = fields[3].strip().upper()
    valid_country = len(country) == 2 and country.isalpha() and country != "ZZ"
    name = fields[4].strip() if len(fields) > 4 else ""
    if name.lower() == "not routed":
        name = ""
    return start, end, ASInfo(int(fields[2]), country if valid_country else None, name or None)


def lookup(path: Path, address: str | IPAddress) -> ASInfo | None:
    """The network of `address` in the table at `path`: None when no range holds it (or only an
    unrouted one). TableError, naming the file and line, for a table that cannot be read."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    wanted, path = int(ip), Path(path)
    # Most lines are passed over: only their first field is read, with the C parser (a few
    # hundred nanoseconds a line, against microseconds for ipaddress). The candidate is the last
    # range that starts at or below the address; only it is parsed and checked in full.
    candidate: tuple[int, str] | None = None
    for n, text in _lines(path):
        first = text.split("\t", 1)[0]
        if (":" in first) != (family == socket.AF_INET6):  # "::ffff:1.2.3.4" is IPv6
            continue
        try:
            start = int.from_bytes(socket.inet_pton(family, first), "big")
        except OSError:
            _parse(path, n, text)  # a TableError that says what is wrong, if it can tell
            raise TableError(f"{path}:{n}: {first[:60]!r} is not an address") from None
        if start > wanted:
            break  # ranges come in address order: no later one can hold it
        candidate = (n, text)
    if candidate is None:
        return None
    _, end, info = _parse(path, *candidate)
    return info if info.asn and ip <= end else None  # type: ignore[operator]


def check_table(path: Path, lines: int = 100) -> None:
    """Read the first `lines` ranges, so that a wrong file fails before any measurement."""
    for n, *_ in _rows(Path(path)):
        if n >= lines:
            break


def table_digest(path: Path) -> str:
    """The SHA-256 of the table file as it is on disk."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
