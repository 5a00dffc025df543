"""Benchmark: what hostile evidence bundles cost the checker (issue 11, sections 3 and 6).

    .venv/bin/python bench/hostile_bundles.py [--only NAME] [--timeout 60] [--modes lib,cli]

Builds small zips that inflate to much more than they weigh, or nest JSON deeply, and has each
checked three ways, each in a fresh process so that its peak memory is its own:

- lib: `services.evidence.check_bundle`, the function `netvigil evidence verify` calls;
- cli: `netvigil evidence verify FILE` as a subprocess (exit code);
- collector: `netvigil collector serve` on 127.0.0.1, the bundle POSTed to it (HTTP status);
  its peak RSS, and what it still holds once the answer is sent.

Prints one line per case and mode: wall seconds, peak RSS in MiB, outcome, first problem.
A child is stopped after --timeout seconds, or when it passes --max-rss-mib (reported as such).
Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import io
import json
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BAGIT = b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _bag(data: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A bag whose manifests, tag manifest and Payload-Oxum are all right: only the content
    of its data files is hostile, so nothing structural stops the check early."""
    def manifest(entries: dict[str, bytes]) -> bytes:
        return "".join(f"{hashlib.sha256(d).hexdigest()}  {p}\n"
                       for p, d in sorted(entries.items())).encode()

    tags = {"bagit.txt": BAGIT,
            "bag-info.txt": f"Payload-Oxum: {sum(map(len, data.values()))}.{len(data)}\n"
                            .encode(),
            "manifest-sha256.txt": manifest(data)}
    files = {**data, **tags, "tagmanifest-sha256.txt": manifest(tags)}
    return _zip({f"b/{p}": d for p, d in files.items()}, method)


def _nested_keys(depth: int) -> bytes:
    return b"[\n" + b"[" * depth + b"\n]\n"


def _padded(data: dict[str, bytes]) -> dict[str, bytes]:
    """`data` and a body of random bytes, so that the zip is heavy enough for its size limit
    to let the hostile part be read."""
    body = random.Random(11).randbytes(64 << 10)
    return {**data, f"data/bodies/{hashlib.sha256(body).hexdigest()}": body}


def _records(count: int) -> bytes:
    """Lines shaped like records, each id and hash following the last (the hashes are not
    those of their content: only the chain check, once they are all loaded, would say so)."""
    return b"".join(b'{"id":%d,"run_id":null,"kind":"x","created":"","canonical":"",'
                    b'"sha256":"%064x","prev_sha256":"%064x"}\n' % (i, i, i - 1)
                    for i in range(1, count + 1))


CASES: dict[str, Callable[[], bytes]] = {
    # The zips: bagit.txt and millions of "1\n" lines, no manifests.
    "lines-4k": lambda: _zip({"b/bagit.txt": BAGIT, "b/data/records.jsonl": b"1\n" * 2_000_000}),
    "lines-16k": lambda: _zip({"b/bagit.txt": BAGIT,
                               "b/data/records.jsonl": b"1\n" * 8_000_000}),
    # The same lines in a bag whose manifests all check.
    "bag-17k": lambda: _bag({"data/records.jsonl": b"1\n" * 8_400_000}),
    # bzip2 inflates further than deflate: 100 MB of lines in under 4 kB.
    "bzip2-bag": lambda: _bag({"data/records.jsonl": b"1\n" * 50_000_000}, zipfile.ZIP_BZIP2),
    # Within the size limit: a million lines shaped like records.
    "bag-record-lines": lambda: _bag({"data/records.jsonl": _records(1_000_000)}),
    # Deeply nested JSON: a records line of 200,000 "[", keys.json 100,000 deep.
    "nested-records": lambda: _bag(_padded({"data/records.jsonl": b"[" * 200_000 + b"\n"})),
    "nested-keys": lambda: _bag(_padded({"data/records.jsonl": b"",
                                         "data/keys.json": _nested_keys(100_000)})),
    # Not a zip at all: what starting the process costs, for comparison.
    "not-a-zip": lambda: b"not a zip",
}

# The call alone is timed, after the imports; the peak RSS includes them (~60 MiB).
LIB = ("import json, resource, sys, time; sys.path.insert(0, {root!r}); "
       "from services.evidence import check_bundle; "
       "rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024; t = time.monotonic(); "
       "r = check_bundle(sys.argv[1]); "
       "print(json.dumps({{'call_s': round(time.monotonic() - t, 2), "
       "'rss_after_imports_mib': round(rss, 1), 'ok': r.ok, 'problems': len(r.problems), "
       "'first': str(r.problems[0]) if r.problems else ''}}))")


def _limit(max_rss_mib: int) -> Callable[[], None]:
    def apply() -> None:  # address space, a little above the RSS we allow: a runaway child
        cap = (max_rss_mib + 1024) << 20  # gets MemoryError instead of taking the machine
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    return apply


def _run(argv: list[str], timeout: float, max_rss_mib: int) -> tuple[float, float, str]:
    """(wall seconds, peak RSS MiB, stdout+stderr tail) of a child process."""
    began = time.monotonic()
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             preexec_fn=_limit(max_rss_mib), cwd=ROOT)
    try:
        out, _ = child.communicate(timeout=timeout)
        text = out.decode("utf-8", "replace")
        note = f"exit {child.returncode}"
    except subprocess.TimeoutExpired:
        child.kill()
        out, _ = child.communicate()
        text, note = "", f"killed after {timeout:.0f} s"
    wall = time.monotonic() - began
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return wall, rss, f"{note}; {text.strip().splitlines()[-1][:160] if text.strip() else ''}"


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _status_kib(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def _collector(zip_path: Path, timeout: float, max_rss_mib: int) -> str:
    port = _port()
    with tempfile.TemporaryDirectory() as folder:
        server = subprocess.Popen(
            [str(ROOT / ".venv/bin/netvigil"), "collector", "serve", "--dir", folder,
             "--listen", f"127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, preexec_fn=_limit(max_rss_mib), cwd=ROOT)
        try:
            assert server.stderr is not None
            server.stderr.readline()  # "collector listening on ..."
            idle = _status_kib(server.pid, "VmRSS")
            body = zip_path.read_bytes()
            began = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request("POST", "/v1/bundles", body,
                             {"Content-Type": "application/zip"})
                answer = conn.getresponse()
                status, text = str(answer.status), answer.read().decode("utf-8", "replace")
            except (TimeoutError, OSError) as exc:
                status, text = "no answer", f"{type(exc).__name__}: {exc}"
            wall = time.monotonic() - began
            time.sleep(0.2)
            alive = server.poll() is None
            peak = _status_kib(server.pid, "VmHWM") if alive else float("nan")
            after = _status_kib(server.pid, "VmRSS") if alive else float("nan")
            try:
                detail = json.loads(text)
                first = (detail.get("problems") or [detail.get("error", "")])[0]
            except ValueError:
                first = text[:160]
            return (f"{wall:7.2f} s  peak {peak:7.1f} MiB (idle {idle:.0f}, after {after:.0f})"
                    f"  HTTP {status}; {str(first)[:160]}")
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=sorted(CASES))
    parser.add_argument("--modes", default="lib,cli,collector")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--max-rss-mib", type=int, default=4096)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # one measurement in a fresh process: RUSAGE_CHILDREN is then its own
        mode, path, timeout = args.child
        if mode == "collector":
            print(_collector(Path(path), float(timeout), args.max_rss_mib))
            return
        argv = ([sys.executable, "-c", LIB.format(root=str(ROOT)), path] if mode == "lib" else
                [str(ROOT / ".venv/bin/netvigil"), "evidence", "verify", path])
        wall, rss, note = _run(argv, float(timeout), args.max_rss_mib)
        print(f"{wall:7.2f} s  peak {rss:7.1f} MiB  {note}")
        return
    with tempfile.TemporaryDirectory() as folder:
        for name in args.only or CASES:
            path = Path(folder) / f"{name}.zip"
            path.write_bytes(CASES[name]())
            for mode in args.modes.split(","):
                done = subprocess.run(
                    [sys.executable, __file__, "--max-rss-mib", str(args.max_rss_mib),
                     "--child", mode, str(path), str(args.timeout)],
                    capture_output=True, text=True, check=False)
                line = (done.stdout.strip() or done.stderr.strip()[-300:])
                print(f"{name:15} {path.stat().st_size / 1024:6.1f} KiB  {mode:9} {line}",
                      flush=True)


if __name__ == "__main__":
    main()
