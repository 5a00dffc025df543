"""Benchmark: what hostile OONI files cost `netvigil ooni classify` (issue 11, section 6).

    .venv/bin/python bench/hostile_ooni.py [--mib 256] [--case NAME ...] [--timeout 120]

Builds, in a temporary directory, files an adversary could hand to someone who classifies OONI
data, then reads each with the library call behind `ooni classify` (`classify_files`) in a fresh
child process, and prints one JSON object: per case the file's size, the seconds, the child's
peak resident memory and what the reader made of it (measurements read, errors and the first
error). The cases:

    long_line_gz   one line of MIB MiB in a .jsonl.gz (about 255 KB for 256 MiB)
    many_lines_gz  MIB MiB of tiny lines ("{}") in a .jsonl.gz: an inflation ratio of ~1000
    minimal_gz     MIB MiB of the smallest valid measurement (85 bytes), each costing a verdict
    document_gz    one .json.gz document of MIB MiB (a single huge JSON string)
    document_json  one plain .json document of MIB/4 MiB
    deep_nesting   a .jsonl line of 200,000 "[" (the parser's recursion, not its memory)

Nothing touches the network.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK = 1 << 20


def _gzip(path: Path, chunks: Iterator[bytes]) -> None:
    """Write `chunks` gzipped, a chunk at a time (the bench itself must stay small)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as f:
        for chunk in chunks:
            f.write(packer.compress(chunk))
        f.write(packer.flush())


def _repeat(pattern: bytes, total: int) -> Iterator[bytes]:
    block = pattern * (CHUNK // len(pattern))
    sent = 0
    while sent < total:
        piece = block[: total - sent]
        sent += len(piece)
        yield piece


def long_line_gz(folder: Path, mib: int) -> Path:
    path = folder / "long_line.jsonl.gz"
    _gzip(path, iter([b'{"test_keys": "', *_repeat(b"a", mib * CHUNK), b'"}\n']))
    return path


def many_lines_gz(folder: Path, mib: int) -> Path:
    path = folder / "many_lines.jsonl.gz"
    _gzip(path, _repeat(b"{}\n", mib * CHUNK))
    return path


def minimal_gz(folder: Path, mib: int) -> Path:
    path = folder / "minimal.jsonl.gz"
    line = json.dumps({"test_name": "x", "test_keys": {},
                       "measurement_start_time": "2024-01-01 00:00:00"}).encode() + b"\n"
    _gzip(path, _repeat(line, mib * CHUNK))
    return path


def document_gz(folder: Path, mib: int) -> Path:
    path = folder / "document.json.gz"
    _gzip(path, iter([b'{"test_keys": "', *_repeat(b"a", mib * CHUNK), b'"}']))
    return path


def document_json(folder: Path, mib: int) -> Path:
    path = folder / "document.json"
    with path.open("wb") as f:
        for chunk in iter([b'{"test_keys": "', *_repeat(b"a", mib * CHUNK // 4), b'"}']):
            f.write(chunk)
    return path


def deep_nesting(folder: Path, mib: int) -> Path:
    path = folder / "deep.jsonl"
    path.write_bytes(b"[" * 200_000 + b"\n")
    return path


CASES: dict[str, Callable[[Path, int], Path]] = {
    "long_line_gz": long_line_gz,
    "many_lines_gz": many_lines_gz,
    "minimal_gz": minimal_gz,
    "document_gz": document_gz,
    "document_json": document_json,
    "deep_nesting": deep_nesting,
}


def _classify(path: str, out: Any) -> None:
    """In the child: classify one file, send back the outcome and the peak memory."""
    from services.ooni_tools import classify_files

    start = time.perf_counter()
    try:
        rows = classify_files([path])
        errors = [r["error"] for r in rows if "error" in r]
        outcome: dict[str, Any] = {"measurements": len(rows) - len(errors),
                                   "errors": len(errors),
                                   "first_error": errors[0][:160] if errors else None}
    except BaseException as exc:  # the point of the bench: what escapes, and how
        outcome = {"raised": f"{type(exc).__name__}: {str(exc)[:120]}"}
    outcome["seconds"] = round(time.perf_counter() - start, 2)
    # VmHWM, not ru_maxrss: Linux carries the parent's peak into ru_maxrss across the exec.
    outcome["peak_rss_mb"] = _peak_mb(os.getpid())
    out.send(outcome)


def _peak_mb(pid: int) -> int | None:
    """A running process's peak resident memory (Linux), for a case that ran out of time."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    except OSError:
        pass
    return None


def run_case(path: Path, timeout: float) -> dict[str, Any]:
    """Classify `path` in a fresh process, so each peak is the case's own; a child still
    running after `timeout` seconds is stopped and reported with its peak so far."""
    ctx = multiprocessing.get_context("spawn")
    here, there = ctx.Pipe(duplex=False)
    child = ctx.Process(target=_classify, args=(str(path), there))
    start = time.perf_counter()
    child.start()
    if here.poll(timeout):
        outcome: dict[str, Any] = here.recv()
    else:
        outcome = {"raised": f"still running after {timeout:g} s: stopped",
                   "seconds": round(time.perf_counter() - start, 2),
                   "peak_rss_mb": _peak_mb(child.pid) if child.pid else None}
        child.terminate()
    child.join(10)
    return {"file_bytes": path.stat().st_size, **outcome}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="inflated size of the big cases")
    parser.add_argument("--case", action="append", choices=sorted(CASES),
                        help="run only these cases (repeatable)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per case")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.case or CASES:
            path = CASES[name](Path(tmp), args.mib)
            results[name] = run_case(path, args.timeout)
            path.unlink()
    print(json.dumps({"mib": args.mib, "cases": results,
                      "python": sys.version.split()[0]}, indent=2))


if __name__ == "__main__":
    main()
