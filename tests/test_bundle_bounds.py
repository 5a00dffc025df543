"""Checking a bundle is bounded (issue 11, section 3; section 6 for nested JSON in bundles).

Each test performs the attack: zips of a few kilobytes that inflate to millions of lines, bags
whose manifests all check but whose data files are hostile, JSON nested far deeper than the
stack. The check must refuse them with a problem that says why, in `verify_bundle`, in
`netvigil evidence verify` and in a collector (422, never 500), within a memory bound that does
not grow with what the zip claims. Timing figures are in bench/hostile_bundles.py, not here.
"""

from __future__ import annotations

import hashlib
import io
import random
import tracemalloc
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import cli
from results.bag_manifests import BAGIT_TXT
from results.bag_reader import BagLimits, parse_json
from results.bundle_verify import verify_bundle
from results.problems import MAX_PROBLEMS, Problem, Verification
from services.collector_server import CollectorConfig, make_server
from services.evidence import check_bundle
from tests.test_collector import post


def zip_of(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method, compresslevel=9) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def manifest(entries: dict[str, bytes]) -> bytes:
    return "".join(f"{hashlib.sha256(d).hexdigest()}  {p}\n"
                   for p, d in sorted(entries.items())).encode()


def bag(data: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED,
        padded: bool = False) -> bytes:
    """A bag whose manifests, tag manifest and Payload-Oxum all check: only its data files are
    hostile. `padded` adds a body of random bytes, so that the zip weighs enough for its size
    limit to let the rest be read."""
    if padded:
        body = random.Random(3).randbytes(64 << 10)
        data = {**data, f"data/bodies/{hashlib.sha256(body).hexdigest()}": body}
    tags = {"bagit.txt": BAGIT_TXT,
            "bag-info.txt": f"Payload-Oxum: {sum(map(len, data.values()))}.{len(data)}\n"
                            .encode(),
            "manifest-sha256.txt": manifest(data)}
    files = {**data, **tags, "tagmanifest-sha256.txt": manifest(tags)}
    return zip_of({f"b/{p}": d for p, d in files.items()}, method)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    (tmp_path / name).write_bytes(data)
    return tmp_path / name


def peak_bytes(work: Callable[[], Any]) -> tuple[Any, int]:
    """What `work()` returns, and the most memory Python allocated meanwhile."""
    tracemalloc.start()
    try:
        return work(), tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def texts(report: Verification) -> list[str]:
    return [str(p) for p in report.problems]


# The issue's zips: bagit.txt and millions of "1\n" lines (4 kB: 12.8 s and 770 MB before).
ISSUE_4K = {"b/bagit.txt": BAGIT_TXT, "b/data/records.jsonl": b"1\n" * 2_000_000}


def test_the_issues_4k_zip_is_refused_before_it_is_inflated(tmp_path: Path) -> None:
    path = write(tmp_path, "4k.zip", zip_of(ISSUE_4K))
    assert path.stat().st_size < 5000
    report, peak = peak_bytes(lambda: check_bundle(path))
    [problem] = texts(report)
    assert problem.startswith("bundle: it would unpack to 4000054 bytes in 2 files, beyond "
                              f"the limit of {100 * path.stat().st_size} bytes (100 times its")
    assert peak < 5 << 20  # before: every line, and a problem for each, in memory


def test_a_bzip2_member_is_held_to_the_same_ratio(tmp_path: Path) -> None:
    path = write(tmp_path, "bz.zip", bag({"data/records.jsonl": b"1\n" * 5_000_000},
                                         zipfile.ZIP_BZIP2))
    report = verify_bundle(path)
    assert len(report.problems) == 1 and "would unpack to 10000" in report.problems[0].what


def test_the_absolute_cap_holds_whatever_the_ratio(tmp_path: Path) -> None:
    path = write(tmp_path, "b.zip", bag({"data/records.jsonl": b""}, padded=True))
    report = verify_bundle(path, max_unpacked=1000)
    assert "at most 1000)" in report.problems[0].what


def test_a_zip_listing_too_many_files_is_refused_before_it_is_listed(tmp_path: Path) -> None:
    path = write(tmp_path, "many.zip", zip_of({f"b/data/{i}": b"" for i in range(30)}))
    report = verify_bundle(path, limits=BagLimits(max_members=10))
    [problem] = report.problems
    assert problem.what.startswith("it lists 30 files in ") and "limit of 10 files" in problem.what


def test_a_bag_without_manifests_is_not_read(tmp_path: Path) -> None:
    """The issue's zip, small enough to pass the size limit: its lines are never parsed."""
    path = write(tmp_path, "bare.zip", zip_of({"b/bagit.txt": BAGIT_TXT,
                                               "b/data/records.jsonl": b"1\n" * 500}))
    called = []
    report = verify_bundle(path, derived=lambda loaded, rep: called.append(loaded))
    assert set(texts(report)) == {
        "manifest-sha256.txt: file: missing", "tagmanifest-sha256.txt: file: missing",
        "data/records.jsonl: file: not listed in manifest-sha256.txt",
        "bagit.txt: file: not listed in tagmanifest-sha256.txt",
        "bag-info.txt: Payload-Oxum: differs from the payload (1000.1)"}
    assert "the bag is not well formed: its data files were not read" in report.notices
    assert not called


def test_a_well_formed_bag_of_bad_lines_stops_at_20(tmp_path: Path) -> None:
    path = write(tmp_path, "lines.zip", bag({"data/records.jsonl": b"1\n" * 200_000},
                                            padded=True))
    called = []
    report, peak = peak_bytes(
        lambda: verify_bundle(path, derived=lambda loaded, rep: called.append(loaded)))
    lines = [p for p in report.problems if p.subject.startswith("line ")]
    assert len(lines) == 20 and lines[0].what.startswith("needs exactly the fields id, ")
    assert Problem("file", "not read past line 20: 20 bad lines",
                   "data/records.jsonl") in report.problems
    assert not called  # nothing is derived from a file that was not read to its end
    assert peak < 20 << 20


def test_a_data_file_may_hold_lines_in_proportion_to_the_zip(tmp_path: Path) -> None:
    records = b"".join(b'{"id":%d,"run_id":null,"kind":"x","created":"","canonical":"",'
                       b'"sha256":"%064x","prev_sha256":"%064x"}\n' % (i, i, i - 1)
                       for i in range(1, 41))
    path = write(tmp_path, "r.zip", bag({"data/records.jsonl": records}, padded=True))
    limits = BagLimits(min_items=25, bytes_per_item=1 << 30)
    report = verify_bundle(path, limits=limits)
    assert Problem("line 26", "more than 25 lines, the limit for a bundle of this size: not "
                   "read further", "data/records.jsonl") in report.problems
    assert not any("chain" in p.what or p.subject.startswith("record ")
                   for p in report.problems)  # nothing was checked past the refusal
    assert BagLimits().items(path.stat().st_size) == path.stat().st_size // 16


def test_a_line_longer_than_the_limit_is_not_read(tmp_path: Path) -> None:
    path = write(tmp_path, "long.zip", bag({"data/records.jsonl": b"1" * 5000 + b"\n"},
                                           padded=True))
    report = verify_bundle(path, limits=BagLimits(max_line=1000))
    assert Problem("line 1", "longer than 1000 bytes: not read further",
                   "data/records.jsonl") in report.problems


def test_the_defaults_leave_room_for_a_genuine_10000_measurement_bundle() -> None:
    """bench/collector.py's 10,000 measurements (200 copies of wc05): a 7,323,979-byte zip
    unpacking to 79,535,832 bytes, 39,601 lines in its records, the longest 16,480 bytes."""
    limits, weight = BagLimits(), 7_323_979
    assert limits.unpacked(weight) >= 9 * 79_535_832
    assert limits.items(weight) >= 11 * 39_601
    assert limits.max_line >= 60 * 16_480
    assert limits.max_members >= 5000 * 17


# --- nested JSON ---------------------------------------------------------------------------


NESTED = {
    "records": ({"data/records.jsonl": b"[" * 200_000 + b"\n"},
                "data/records.jsonl: line 1: nested too deeply"),
    "keys": ({"data/records.jsonl": b"", "data/keys.json": b"[\n" + b"[" * 100_000 + b"\n]\n"},
             "data/keys.json: line 2: nested too deeply"),
    "records inside": ({"data/records.jsonl": b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"\n"},
                       "data/records.jsonl: line 1: nested too deeply"),
}


@pytest.mark.parametrize("case", sorted(NESTED))
def test_deeply_nested_json_is_a_problem_not_a_recursion_error(tmp_path: Path,
                                                               case: str) -> None:
    data, expected = NESTED[case]
    path = write(tmp_path, "n.zip", bag(data, padded=True))
    report = check_bundle(path)
    assert expected in texts(report)


def test_parse_json_says_nested_too_deeply() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        parse_json("[" * 100_000)
    assert parse_json(b"[[1]]") == [[1]]


def test_evidence_verify_refuses_them_without_a_traceback(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name, data in (("16k.zip", zip_of({"b/bagit.txt": BAGIT_TXT,
                                           "b/data/records.jsonl": b"1\n" * 8_000_000})),
                       ("nested.zip", bag(NESTED["records"][0], padded=True))):
        assert cli.main(["evidence", "verify", str(write(tmp_path, name, data))]) == 1
    out = capsys.readouterr()
    assert "would unpack to 16000054 bytes" in out.out + out.err
    assert "line 1: nested too deeply" in out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_a_collector_answers_422_with_the_reason(tmp_path: Path) -> None:
    config = CollectorConfig(folder=tmp_path / "c")
    with make_server("127.0.0.1", 0, config) as server:
        url = f"http://127.0.0.1:{server.port}"
        bomb = post(url, zip_of({"b/bagit.txt": BAGIT_TXT,
                                 "b/data/records.jsonl": b"1\n" * 8_000_000}), token=None)
        nested = post(url, bag(NESTED["keys"][0], padded=True), token=None)
    assert bomb.status_code == 422
    assert "would unpack to 16000054 bytes" in bomb.json()["problems"][0]
    assert nested.status_code == 422
    assert "data/keys.json: line 2: nested too deeply" in nested.json()["problems"]


# --- the problem list ----------------------------------------------------------------------


def test_the_problem_list_keeps_the_first_100_then_counts_the_rest() -> None:
    report = Verification()
    report.problems.extend(Problem(f"line {n}", "bad") for n in range(1, 201))
    report.problems.append(Problem("line 201", "bad"))
    report.problems += [Problem("line 202", "bad")]
    assert len(report.problems) == MAX_PROBLEMS + 1 and not report.ok
    assert str(report.problems[99]) == "line 100: bad"
    assert str(report.problems[-1]) == "problems beyond the first 100: 102 more, not listed"
    assert report.problems.total == 202  # type: ignore[attr-defined]
    given = Verification(problems=[Problem("x", "y")] * 150)
    assert len(given.problems) == 101 and given.to_dict()["problems"][-1]["what"] == \
        "50 more, not listed"
