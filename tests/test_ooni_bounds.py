"""Hostile OONI files (issue 11, section 6): each attack performed, each cost bounded.

The headline attack is run as it was reported: a 255 KB `.jsonl.gz` holding one 256 MiB line,
read through `classify_files` (the library call behind `netvigil ooni classify`) in a fresh
process, whose time and peak memory are measured. Before the bounds it took 633 MB; now the
line is reported with its file and line, skipped without being held, and reading stops where the
file has inflated a hundred times its size. The other tests use small `Limits`, so each bound is
seen to hold exactly at its edge, and the batch to go on around what was refused.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.errors import OONIFormatError
from ooni.bounded import MIB, Limits
from ooni.read import OONIMeasurement
from ooni.read_file import read_ooni_file
from tests.test_ooni_reader import _measurement

ROOT = Path(__file__).resolve().parent.parent
GOOD = json.dumps(_measurement()).encode()


def _gzip_stream(path: Path, chunks: Iterator[bytes]) -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)  # 31: a gzip header, as .gz files have
    with path.open("wb") as f:
        for chunk in chunks:
            f.write(packer.compress(chunk))
        f.write(packer.flush())


def _kinds(items: list[Any]) -> list[str]:
    return ["M" if isinstance(i, OONIMeasurement) else "E" for i in items]


# The peak is VmHWM, this process's own: ru_maxrss would keep pytest's from before the exec.
_ATTACK = """
import json, re, sys, time
sys.path.insert(0, sys.argv[2])
from services.ooni_tools import classify_files
start = time.perf_counter()
rows = classify_files([sys.argv[1]])
with open("/proc/self/status") as f:
    peak = int(re.search(r"VmHWM:\\s+(\\d+)", f.read()).group(1)) / 1024
print(json.dumps({"seconds": time.perf_counter() - start, "rows": rows, "peak_mb": peak}))
"""


def test_a_255_kb_gzip_of_one_256_mib_line_is_refused_in_bounded_memory(tmp_path: Path):
    path = tmp_path / "bomb.jsonl.gz"
    huge = b"a" * MIB
    _gzip_stream(path, iter([GOOD, b"\n", b'{"test_keys": "', *([huge] * 256), b'"}\n',
                             GOOD, b"\n"]))
    assert path.stat().st_size < 300_000
    out = subprocess.run([sys.executable, "-c", _ATTACK, str(path), str(ROOT)],
                         capture_output=True, text=True, timeout=120, check=True)
    result = json.loads(out.stdout)
    rows = result["rows"]
    assert "error" not in rows[0] and rows[0]["verdict"]  # what came before is read
    assert rows[1]["error"].startswith(f"{path}:2: a line of more than 16,777,216 bytes")
    assert "inflates past" in rows[2]["error"] and len(rows) == 3
    assert result["peak_mb"] < 200, result["peak_mb"]  # was 633 MB
    assert result["seconds"] < 10


@pytest.mark.parametrize("name", ["m.jsonl", "m.jsonl.gz"])
def test_an_oversize_line_is_reported_and_skipped_and_the_file_goes_on(tmp_path: Path, name):
    limits = Limits(line_bytes=len(GOOD) + 1, inflation_floor=10 * MIB)
    data = b"\n".join([GOOD, b" " * (3 * len(GOOD)) + GOOD, GOOD, b"x" * 5000]) + b"\n"
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    items = list(read_ooni_file(path, limits))
    assert _kinds(items) == ["M", "E", "M", "E"]
    assert str(items[1]).startswith(f"{path}:2: a line of more than {len(GOOD) + 1:,} bytes")
    assert str(items[3]).startswith(f"{path}:4: a line of more than")
    # A line exactly at the limit (newline included) is no oversize line.
    exact = tmp_path / "exact.jsonl"
    exact.write_bytes(GOOD + b"\n")
    assert _kinds(list(read_ooni_file(exact, Limits(line_bytes=len(GOOD) + 1)))) == ["M"]


def test_a_gzip_that_inflates_past_its_ratio_ends_with_one_error(tmp_path: Path):
    path = tmp_path / "ratio.jsonl.gz"
    _gzip_stream(path, iter([GOOD, b"\n", b" " * (4 * MIB), b"\n", GOOD, b"\n"]))
    size = path.stat().st_size
    limits = Limits(inflation_ratio=50, inflation_floor=0)
    items = list(read_ooni_file(path, limits))
    assert _kinds(items) == ["M", "E"]
    assert str(items[1]) == (f"{path}: inflates past {50 * size:,} bytes, the most allowed for "
                             f"{size:,} compressed bytes: the rest is not read")
    # The absolute cap holds whatever the ratio; a generous one reads everything.
    capped = list(read_ooni_file(path, Limits(inflation_ratio=10_000, inflation_floor=0,
                                              inflated_bytes=MIB)))
    assert "inflates past 1,048,576 bytes" in str(capped[-1])
    assert _kinds(list(read_ooni_file(path, Limits(inflation_ratio=10_000)))) == ["M", "M"]


def test_a_gzip_of_countless_tiny_lines_stops_at_its_line_allowance(tmp_path: Path):
    path = tmp_path / "lines.jsonl.gz"
    _gzip_stream(path, iter([b"{}\n" * (4 * MIB)]))  # 12 MiB, 4 million items, 12 KB
    size = path.stat().st_size
    items = list(read_ooni_file(path))
    allowed = max(1000, size // 64)
    assert len(items) == 100 + 1 + 1
    assert str(items[-2]).startswith(f"{path}: more than {allowed:,} lines, the most allowed")
    assert str(items[-1]) == (f"{path}: {allowed - 100:,} more items could not be read "
                              "(only the first 100 are listed)")


def test_only_the_first_errors_of_a_file_are_listed_then_counted(tmp_path: Path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"{}\n" * 250 + GOOD + b"\n")
    items = list(read_ooni_file(path, Limits(errors_listed=20)))
    assert _kinds(items) == ["E"] * 20 + ["M", "E"]
    assert str(items[-1]) == (f"{path}: 230 more items could not be read "
                              "(only the first 20 are listed)")


@pytest.mark.parametrize("name", ["big.json", "big.json.gz"])
def test_a_json_document_past_its_limit_is_one_error_and_never_read_whole(tmp_path: Path, name):
    data = b'{"test_keys": "' + b"a" * (2 * MIB) + b'"}'
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    (error,) = read_ooni_file(path, Limits(document_bytes=MIB))
    assert str(error) == (f"{path}: a .json document of more than 1,048,576 bytes is not read "
                          "whole: write such a collection as JSON Lines (.jsonl)")
    small = tmp_path / f"small-{name}"
    listed = json.dumps([_measurement()]).encode()
    small.write_bytes(gzip.compress(listed) if name.endswith(".gz") else listed)
    assert _kinds(list(read_ooni_file(small, Limits(document_bytes=len(listed))))) == ["M"]


def test_a_line_of_too_many_json_values_is_refused_before_it_is_parsed(tmp_path: Path):
    path = tmp_path / "values.jsonl"
    path.write_bytes(b"[" + b"[]," * 5000 + b"[]]\n" + GOOD + b"\n")
    items = list(read_ooni_file(path, Limits(json_values=2000)))
    assert _kinds(items) == ["E", "M"]
    assert str(items[0]) == (f"{path}:1: more than 2,000 JSON values (10,002): too many for one "
                             "measurement, not parsed")


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json", "deep.jsonl.gz", "deep.json.gz"])
def test_deeply_nested_json_is_an_error_item_not_a_recursion_error(tmp_path: Path, name):
    data = b"[" * 200_000 + b"\n" + (GOOD + b"\n" if ".jsonl" in name else b"")
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    items = list(read_ooni_file(path))
    assert isinstance(items[0], OONIFormatError) and "not valid JSON" in str(items[0])
    assert str(items[0]).startswith(f"{path}:1: " if ".jsonl" in name else f"{path}: ")
    assert _kinds(items) == (["E", "M"] if ".jsonl" in name else ["E"])


def test_a_line_that_is_not_utf8_costs_that_line_only(tmp_path: Path):
    path = tmp_path / "latin.jsonl"
    path.write_bytes(GOOD + b"\n" + b'{"input": "caf\xe9"}\n' + GOOD + b"\n")
    items = list(read_ooni_file(path))
    assert _kinds(items) == ["M", "E", "M"]
    assert str(items[1]).startswith(f"{path}:2: cannot read: 'utf-8' codec")
