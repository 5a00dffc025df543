"""Files of OONI measurements read item by item, within bounds, never raising.

    read_ooni_file(path, limits=DEFAULT_LIMITS) -> Iterator[OONIMeasurement | OONIFormatError]

A file is `.json` (one measurement, or a list of them) or `.jsonl` (one per line), either gzipped
as `.gz`. Each measurement goes through `ooni.read.parse_ooni`; each one that cannot be read is
yielded as an OONIFormatError naming the file (and line, or list index) in its place, and reading
goes on. The bytes come through `ooni.bounded`: an oversize line is one error and is skipped, a
.gz that inflates too far or a .json document too big ends the file with one error, and only the
first `limits.errors_listed` errors of a file are yielded (then one that counts the rest; the
one that ends the file always is), so
neither memory nor the list of errors grows with what a stranger's file holds.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.errors import OONIFormatError
from ooni.bounded import (
    DEFAULT_LIMITS,
    Inflation,
    Limits,
    Oversize,
    check_complexity,
    document,
    lines,
    open_source,
)
from ooni.read import OONIMeasurement, parse_ooni

__all__ = ["DEFAULT_LIMITS", "Limits", "read_ooni_file"]


def _one(item: Any, where: str) -> OONIMeasurement | OONIFormatError:
    try:
        return parse_ooni(item)
    except OONIFormatError as exc:
        return OONIFormatError(f"{where}: {exc}")


def _loads(text: str, where: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as exc:
        raise OONIFormatError(f"{where}: not valid JSON: {exc}") from None


def read_ooni_file(
    path: Path, limits: Limits = DEFAULT_LIMITS
) -> Iterator[OONIMeasurement | OONIFormatError]:
    """Every measurement in `path` (.json with one measurement or a list, .jsonl, either
    gzipped as .gz). Each item that cannot be read is yielded as an OONIFormatError in its place;
    nothing is raised, not even for a file that cannot be opened (one error is yielded).

    Within `limits` (`ooni.bounded`): an oversize line is one error and is skipped; a .gz that
    inflates too far, or a .json document too big, ends the file with one error. Only the first
    `limits.errors_listed` errors of a file are yielded, then one that counts the rest."""
    path = Path(path)
    errors = 0
    for item in _items(path, limits):
        if isinstance(item, OONIFormatError) and not isinstance(item, Inflation):
            errors += 1
            if errors > limits.errors_listed:
                continue  # counted, not kept: a file of garbage lines costs no memory
        yield item
    if errors > limits.errors_listed:
        yield OONIFormatError(f"{path}: {errors - limits.errors_listed:,} more items could "
                              f"not be read (only the first {limits.errors_listed} are listed)")


def _items(path: Path, limits: Limits) -> Iterator[OONIMeasurement | OONIFormatError]:
    base = path.name.lower().removesuffix(".gz")
    try:
        with open_source(path, limits) as source:
            if base.endswith(".jsonl"):
                for lineno, line in lines(source, limits):
                    yield from _line(line, f"{path}:{lineno}", limits)
                return
            data = document(source, limits)
        yield from _document(data, str(path), limits)
    except OONIFormatError as exc:  # inflated too far, a document too big: the file ends here
        yield exc
    except (OSError, EOFError, zlib.error) as exc:
        yield OONIFormatError(f"{path}: cannot read: {exc}")


def _line(
    line: bytes | Oversize, where: str, limits: Limits
) -> Iterator[OONIMeasurement | OONIFormatError]:
    """The measurement on one line; nothing for a blank line."""
    if isinstance(line, Oversize):
        yield OONIFormatError(f"{where}: a line of more than {line.length - 1:,} bytes, the "
                              "most one measurement may have: skipped")
        return
    if not line.strip():
        return
    try:
        check_complexity(line, limits, where)
        yield _one(_loads(_text(line, where), where), where)
    except OONIFormatError as exc:
        yield exc


def _text(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OONIFormatError(f"{where}: cannot read: {exc}") from None


def _document(
    data: bytes, where: str, limits: Limits
) -> Iterator[OONIMeasurement | OONIFormatError]:
    try:
        check_complexity(data, limits, where)
        parsed = json.loads(_text(data, where))
    except OONIFormatError as exc:
        yield exc
        return
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # a .json file that is really JSON Lines
            for lineno, line in enumerate(data.splitlines(), start=1):
                yield from _line(line, f"{where}:{lineno}", limits)
            return
        yield OONIFormatError(f"{where}: not valid JSON: {exc}")
        return
    except RecursionError:
        yield OONIFormatError(f"{where}: not valid JSON: nested too deeply")
        return
    items = parsed if isinstance(parsed, list) else [parsed]
    for i, item in enumerate(items):
        yield _one(item, f"{where}[{i}]" if isinstance(parsed, list) else where)
