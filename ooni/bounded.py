"""OONI files read within bounds: lines, documents and gzip inflation capped, nothing read whole.

    open_source(path, limits) -> Source      a binary file, inflated when it ends in .gz
    lines(source, limits) -> Iterator[(lineno, bytes | Oversize)]
    document(source, limits) -> bytes        the whole (bounded) document of a .json file
    check_complexity(data, limits, where)    too many JSON values for one item: OONIFormatError

OONI files come from strangers (a shared archive, a court exhibit, a colleague's export), so the
reader must not let one file decide how much memory or time it takes. Four limits (`Limits`):

- a line of a `.jsonl` is at most `line_bytes` (16 MiB). A longer line is never held: it is
  reported (an `Oversize` in its place) and skipped by reading on in small chunks;
- a `.json` document is at most `document_bytes` (16 MiB); a longer one is one error: bigger
  collections belong in JSON Lines, as OONI's own archives are;
- a `.gz` may inflate to `inflation_ratio` (100) times its compressed size, at least
  `inflation_floor` (16 MiB) and never more than `inflated_bytes` (4 GiB). Real OONI data
  compresses 5 to 20 times; a gzip bomb (one repeated byte) about 1,000 times. Past the limit
  reading stops with `Inflation`. A .gz may also hold at most one line per `gz_bytes_per_item`
  (64) compressed bytes (at least `gz_item_floor`, 1,000, lines): every real measurement carries
  times and identifiers gzip cannot squeeze that far, and each line costs the analysis far more
  than its bytes (a minimal measurement of 85 bytes takes about 0.25 ms to classify);
- one line or document holds at most `json_values` (1,000,000) opening brackets and commas: each
  becomes a Python object of 50 to 80 bytes, so a line of `[],[],...` would cost 25 times its
  size in memory. The densest real measurement in our corpus has one per 18 bytes.

Byte counts are of the inflated data, whatever its encoding.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from core.errors import OONIFormatError

MIB = 1 << 20
_SKIP_CHUNK = MIB  # how much of an oversize line is held at a time while it is skipped


@dataclass(frozen=True)
class Limits:
    """What one OONI file may cost. The defaults are generous for real data (module docstring)."""

    line_bytes: int = 16 * MIB
    document_bytes: int = 16 * MIB
    inflation_ratio: int = 100
    inflation_floor: int = 16 * MIB
    inflated_bytes: int = 4096 * MIB
    json_values: int = 1_000_000
    gz_bytes_per_item: int = 64
    gz_item_floor: int = 1000
    errors_listed: int = 100  # per file; the rest are counted in one last error

    def inflation_allowance(self, compressed: int) -> int:
        """How many bytes a .gz of `compressed` bytes may inflate to."""
        return min(self.inflated_bytes, max(self.inflation_floor,
                                            self.inflation_ratio * compressed))

    def item_allowance(self, compressed: int) -> int:
        """How many lines (measurements or not) a .gz of `compressed` bytes may hold."""
        return max(self.gz_item_floor, compressed // self.gz_bytes_per_item)


DEFAULT_LIMITS = Limits()


class Inflation(OONIFormatError):
    """A .gz inflated past its allowance: reading the file stops here."""


@dataclass(frozen=True)
class Oversize:
    """A line longer than the limit, skipped unread: it has more than `length` bytes."""

    length: int


class Source:
    """A file's bytes (inflated for .gz), counted: reading past the allowance raises Inflation."""

    def __init__(self, path: Path, limits: Limits) -> None:
        self.path = path
        raw: BinaryIO = path.open("rb")
        self._raw = raw
        self.size = os.fstat(raw.fileno()).st_size
        if path.name.lower().endswith(".gz"):
            self._file: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[assignment]
            self.allowance: int | None = limits.inflation_allowance(self.size)
            self.items: int | None = limits.item_allowance(self.size)
        else:
            self._file, self.allowance, self.items = raw, None, None
        self.read_bytes = 0

    def _counted(self, data: bytes) -> bytes:
        self.read_bytes += len(data)
        if self.allowance is not None and self.read_bytes > self.allowance:
            raise Inflation(f"{self.path}: inflates past {self.allowance:,} bytes, the most "
                            f"allowed for {self.size:,} compressed bytes: the rest is not read")
        return data

    def readline(self, size: int) -> bytes:
        return self._counted(self._file.readline(size))

    def read(self, size: int) -> bytes:
        return self._counted(self._file.read(size))

    def __enter__(self) -> Source:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._file.close()
        self._raw.close()


def open_source(path: Path, limits: Limits = DEFAULT_LIMITS) -> Source:
    """`path`'s bytes, inflated if it ends in .gz, within `limits`. Raises OSError."""
    return Source(path, limits)


def lines(
    source: Source, limits: Limits = DEFAULT_LIMITS
) -> Iterator[tuple[int, bytes | Oversize]]:
    """Each line (1-based number, bytes with its newline), or an Oversize for a line past the
    limit, which is then skipped without being held. Raises Inflation (too many bytes or, in a
    .gz, too many lines), OSError, EOFError."""
    lineno = 0
    while True:
        line = source.readline(limits.line_bytes + 1)
        if not line:
            return
        lineno += 1
        if source.items is not None and lineno > source.items:
            raise Inflation(f"{source.path}: more than {source.items:,} lines, the most allowed "
                            f"for {source.size:,} compressed bytes: the rest is not read")
        if len(line) > limits.line_bytes and not line.endswith(b"\n"):
            yield lineno, Oversize(len(line))  # reported first: skipping may hit the limit
            _skip_line(source)
        else:
            yield lineno, line


def _skip_line(source: Source) -> None:
    """Read to the end of the current line in small chunks."""
    while True:
        chunk = source.readline(_SKIP_CHUNK)
        if not chunk or chunk.endswith(b"\n"):
            return


def document(source: Source, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """The whole file, when it is at most `document_bytes`; else OONIFormatError."""
    data = source.read(limits.document_bytes + 1)
    if len(data) > limits.document_bytes:
        raise OONIFormatError(
            f"{source.path}: a .json document of more than {limits.document_bytes:,} bytes is "
            "not read whole: write such a collection as JSON Lines (.jsonl)")
    return data


def check_complexity(data: bytes, limits: Limits, where: str) -> None:
    """OONIFormatError when `data` holds more JSON values than one measurement may."""
    # Counted before parsing, so memory is never spent on it. Brackets and commas inside
    # strings count too: an overestimate, which only matters far beyond real measurements.
    values = data.count(b"[") + data.count(b"{") + data.count(b",")
    if values > limits.json_values:
        raise OONIFormatError(f"{where}: more than {limits.json_values:,} JSON values "
                              f"({values:,}): too many for one measurement, not parsed")
