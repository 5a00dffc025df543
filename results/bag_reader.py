"""Reading an evidence bundle's zip within bounds, before anything in it is trusted.

A bundle may come from anyone (a collector is open to strangers), and a zip is a promise of
sizes: a few kilobytes can inflate to gigabytes (a "zip bomb"), hold millions of lines, or JSON
nested deeper than a parser's stack. `open_bag` refuses a zip whose directory asks for more than
`BagLimits` allow, in proportion to what the zip weighs, before a byte of it is inflated; `Bag`
then reads its members on demand, streams data files line by line (`Bag.lines`) with a bound on
each line and on the number of lines, and hashes them as they stream. `parse_json` parses one
value and turns a nesting that would exhaust the stack into a plain `ValueError`.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from results.problems import Problem, Verification

#: Bytes a bundle may unpack to, whatever it weighs (its limit in proportion to it is below).
MAX_UNPACKED = 4 << 30

#: What inflating a member may raise: damaged, an unknown method, encrypted, a bad CRC.
READ_ERRORS = (zipfile.BadZipFile, zlib.error, OSError, EOFError, NotImplementedError,
               RuntimeError)


@dataclass(frozen=True)
class BagLimits:
    """How much reading a bundle may cost, mostly in proportion to the zip's own size.

    Genuine bundles are far from these: a 10,000-measurement bundle (bench/collector.py) weighs
    7.3 MB and unpacks to 79.5 MB (10.9 times; its records 15 times), with 17 members and 39,601
    lines in its largest file (one per 112 bytes of zip), the longest 16 kB.
    """

    max_unpacked: int = MAX_UNPACKED  # bytes unpacked, at most, whatever the zip weighs
    max_ratio: int = 100  # bytes unpacked per byte of zip (deflate reaches 1,032; bzip2 far more)
    max_members: int = 100_000  # files in the zip (each costs ~600 bytes to list)
    member_directory_bytes: int = 160  # central directory bytes per member allowed (names)
    max_line: int = 1 << 20  # bytes in one line of a data file
    bytes_per_item: int = 16  # lines of one data file: one per this many bytes of zip, ...
    min_items: int = 1_000  # ... and at least this many
    max_file_problems: int = 20  # bad lines in one data file before it is not read further

    def unpacked(self, zip_bytes: int) -> int:
        """Bytes a zip of `zip_bytes` may unpack to."""
        return min(self.max_unpacked, self.max_ratio * zip_bytes)

    def items(self, zip_bytes: int) -> int:
        """Lines one data file of a zip of `zip_bytes` may hold."""
        return max(self.min_items, zip_bytes // self.bytes_per_item)


class NestingError(ValueError):
    """JSON nested deeper than the parser's stack: a hostile value, not a bundle's."""


class LimitExceeded(ValueError):
    """A data file holds more, or longer, lines than `BagLimits` allow: `line` is where."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(why)
        self.line = line


def parse_json(text: str | bytes) -> Any:
    """`json.loads`, with a nesting too deep for the stack a `NestingError` (a ValueError)."""
    try:
        return json.loads(text)
    except RecursionError:
        raise NestingError("nested too deeply") from None


def directory_size(path: str | Path) -> tuple[int, int] | None:
    """(members, central directory bytes) as the zip's end record states them, read before
    `zipfile` lists every member (which costs memory per member); None if there is none."""
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        tail_at = max(0, size - (22 + 0xFFFF))  # the end record, and a comment of up to 64 kB
        fh.seek(tail_at)
        tail = fh.read()
        at = tail.rfind(b"PK\x05\x06")
        if at < 0 or len(tail) - at < 22:
            return None
        members = int.from_bytes(tail[at + 10:at + 12], "little")
        directory = int.from_bytes(tail[at + 12:at + 16], "little")
        locator = tail[at - 20:at] if at >= 20 else b""
        if locator[:4] == b"PK\x06\x07":  # zip64: the true figures are in its own end record
            fh.seek(int.from_bytes(locator[8:16], "little"))
            record = fh.read(56)
            if record[:4] == b"PK\x06\x06" and len(record) == 56:
                members = int.from_bytes(record[32:40], "little")
                directory = int.from_bytes(record[40:48], "little")
        return members, directory


def refuse_directory(path: str | Path, limits: BagLimits) -> Problem | None:
    """Why the zip's directory is too large to list, or None."""
    stated = directory_size(path)
    if stated is None:
        return None  # not a zip: `zipfile` says so
    members, directory = stated
    if members > limits.max_members or \
            directory > limits.max_members * limits.member_directory_bytes:
        return Problem("bundle", f"it lists {members} files in {directory} bytes, beyond the "
                       f"limit of {limits.max_members} files: not read")
    return None


class Bag(Mapping[str, bytes]):
    """The files of the one bag in a zip, by path inside the bag, read when asked for (each
    bounded by its stated size: `zipfile` stops there, and a member that would inflate further
    fails its CRC check). The zip must stay open while the bag is used."""

    def __init__(self, zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo],
                 max_items: int, limits: BagLimits) -> None:
        self.zf, self.infos, self.max_items, self.limits = zf, infos, max_items, limits

    def __getitem__(self, path: str) -> bytes:
        return self.zf.read(self.infos[path])

    def __contains__(self, path: object) -> bool:  # Mapping's would read the file
        return path in self.infos

    def __iter__(self) -> Iterator[str]:
        return iter(self.infos)

    def __len__(self) -> int:
        return len(self.infos)

    def size(self, path: str) -> int:
        """The stated size of a file, in bytes (what reading it returns, at most)."""
        return self.infos[path].file_size

    def drop(self, path: str) -> None:
        """Forget a file that cannot be read: it is then missing, as it would be unpacked."""
        del self.infos[path]

    def sha256(self, path: str) -> str:
        """The SHA-256 of a file, inflated a piece at a time; raises `READ_ERRORS`."""
        digest = hashlib.sha256()
        with self.zf.open(self.infos[path]) as fh:
            for piece in iter(lambda: fh.read(1 << 20), b""):
                digest.update(piece)
        return digest.hexdigest()

    def lines(self, path: str) -> Iterator[bytes]:
        """The lines of a file without their "\\n", inflated one at a time; raises
        `LimitExceeded` at a line longer than `max_line` bytes or past `max_items` lines."""
        longest = self.limits.max_line
        with self.zf.open(self.infos[path]) as fh:
            for n, line in enumerate(iter(lambda: fh.readline(longest + 1), b""), 1):
                if n > self.max_items:
                    raise LimitExceeded(n, f"more than {self.max_items} lines, the limit for "
                                        "a bundle of this size: not read further")
                if len(line) > longest:
                    raise LimitExceeded(n, f"longer than {longest} bytes: not read further")
                yield line.removesuffix(b"\n")


def open_bag(zf: zipfile.ZipFile, zip_bytes: int, report: Verification,
             limits: BagLimits) -> Bag | None:
    """The zip's one bag, or None (with the problems) if its files would unpack to more than
    `limits` allow for a zip of `zip_bytes`, or it is not one folder holding each file once."""
    infos = zf.infolist()
    unpacked = sum(i.file_size for i in infos)
    allowed = limits.unpacked(zip_bytes)
    if unpacked > allowed or len(infos) > limits.max_members:
        report.problems.append(Problem(
            "bundle", f"it would unpack to {unpacked} bytes in {len(infos)} files, beyond the "
            f"limit of {allowed} bytes ({limits.max_ratio} times its {zip_bytes} bytes, at most "
            f"{limits.max_unpacked}) and {limits.max_members} files: not read"))
        return None
    members = [i for i in infos if not i.filename.endswith("/")]
    roots = {i.filename.split("/", 1)[0] for i in members}
    if len(roots) != 1 or any("/" not in i.filename for i in members):
        report.problems.append(Problem("bundle", "not one bag: the zip must hold one folder"))
        return None
    files: dict[str, zipfile.ZipInfo] = {}
    twice = False
    for info in members:
        rel = info.filename.split("/", 1)[1]
        if rel in files:
            # Which copy a tool unpacks differs from tool to tool: the bag is ambiguous.
            report.problems.append(Problem("file", "appears twice in the zip", rel))
            twice = True
            continue
        files[rel] = zf.getinfo(info.filename)
    return None if twice else Bag(zf, files, limits.items(zip_bytes), limits)


#: The lines of a file: its bytes, or a function that reads them afresh at each call.
Lines = bytes | Callable[[], Iterable[bytes]]


def split_lines(data: bytes) -> Iterator[bytes]:
    """The lines of `data` without their "\n" (none after a last "\n"), one at a time."""
    return (line.removesuffix(b"\n") for line in io.BytesIO(data))


def items(data: Lines, jsonl: bool) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value or a str saying why not) of a JSONL file, or of a JSON array
    written as netvigil writes it (one element per line), so a bad line is named. `data` is the
    file, or reads its lines (twice for an array: its frame first)."""
    lines: Callable[[], Iterable[bytes]] = \
        (lambda: split_lines(data)) if isinstance(data, bytes) else data
    if jsonl:
        for n, line in enumerate(lines(), 1):
            yield n, parsed(line)
        return
    count, first, last = 0, b"", b""
    for count, line in enumerate(lines(), 1):
        first, last = (line, line) if count == 1 else (first, line)
    if count == 1 and first == b"[]":
        return
    if count < 3 or first != b"[" or last != b"]":
        yield 1, "not a JSON array with one element per line"
        return
    for n, line in enumerate(lines(), 1):
        if 1 < n < count:  # every element but the last ends with a comma
            yield n, parsed(line.removesuffix(b",") if n < count - 1 else line)


def parsed(line: bytes) -> Any:
    """One JSON value, or a str saying why the line is not one."""
    try:
        return parse_json(line.decode("utf-8"))
    except NestingError:
        return "nested too deeply"
    except ValueError as exc:
        return f"not JSON: {exc}"
