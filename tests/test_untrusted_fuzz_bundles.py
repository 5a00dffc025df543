"""Issue 11, section 7: evidence bundles and the collector's intake, driven by Hypothesis.

Any zip, and genuine bundles (the library's own export) with a member changed, removed, added
or a JSON line replaced: `verify_bundle` reports, never raises, and passes no change;
`Collection.add` raises only BundleRejected and keeps nothing changed. Allocation is bounded
per byte of the bundle (tracemalloc), never time. Helpers: `tests.fakes.fuzzing`.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.errors import BundleRejected
from results.bundle_verify import verify_bundle
from results.store import Store
from results.verify import Verification
from services.collector_intake import Added, Collection
from services.evidence import export_evidence
from tests.fakes.fuzzing import (
    CONTRACTS,
    assert_bounded,
    bounded,
    depths,
    fuzz,
    json_values,
    mutated,
    names,
    zip_bytes,
)
from tests.test_evidence import URLS, add_run


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """The members of a genuine bundle: three signed runs, exported by the library."""
    folder = tmp_path_factory.mktemp("genuine")
    with Store(folder / "p.db", keys=folder / "keys") as store:
        for url in URLS:
            add_run(store, url)
        export_evidence(store, folder / "b.zip")
    with zipfile.ZipFile(folder / "b.zip") as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the files an example writes (each example overwrites the last)."""
    return tmp_path_factory.mktemp("fuzz")


@st.composite
def damaged(draw: st.DrawFn, members: dict[str, bytes]) -> dict[str, bytes]:
    """A genuine bundle with one member changed, removed, added, or a JSON line replaced."""
    changed = dict(members)
    name = draw(st.sampled_from(sorted(members)))
    kind = draw(st.sampled_from(["bytes", "json line", "remove", "add"]))
    if kind == "bytes":
        changed[name] = draw(mutated(members[name], most=3))
    elif kind == "json line":
        lines = members[name].split(b"\n")
        at = draw(st.integers(0, len(lines) - 1))
        lines[at] = json.dumps(draw(json_values)).encode()
        changed[name] = b"\n".join(lines)
    elif kind == "remove":
        del changed[name]
    else:
        root = name.split("/")[0]
        changed[f"{root}/{draw(st.sampled_from(['data/', '']))}{draw(names)}"] = \
            draw(st.binary(max_size=100))
    return changed


#: Changing the tag manifest's own bytes without changing what it says (its last newline) is
#: not a forgery: BagIt covers every file but that one.
UNCOVERED = "tagmanifest-sha256.txt"


def _verify(data: bytes, path: Path) -> tuple[Verification | BaseException, int]:
    path.write_bytes(data)
    return bounded(lambda: verify_bundle(path))


@fuzz(40)
@given(data=st.data())
def test_a_damaged_genuine_bundle_never_verifies_and_never_crashes(
        data: st.DataObject, genuine: dict[str, bytes], scratch: Path) -> None:
    """verify_bundle raises nothing (contract: problems are reported) and passes no change."""
    members = data.draw(damaged(genuine))
    bundle = zip_bytes(members)
    report, peak = _verify(bundle, scratch / "damaged.zip")
    assert isinstance(report, Verification)
    changed = {n for n in set(members) | set(genuine) if members.get(n) != genuine.get(n)}
    if changed and not all(n.endswith(UNCOVERED) for n in changed):
        assert not report.ok, changed
    assert_bounded(peak, sum(map(len, members.values())), floor=2 << 20, per_byte=200)


@fuzz(40)
@given(members=st.dictionaries(
    st.sampled_from(["b/bagit.txt", "b/manifest-sha256.txt", "b/tagmanifest-sha256.txt",
                     "b/bag-info.txt", "b/data/records.jsonl", "b/data/keys.json", "../x",
                     "/abs", "b/data/verdicts.jsonl"]) | names,
    st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()), max_size=6),
    raw=st.none() | st.binary(max_size=200))
def test_any_zip_is_checked_without_crashing(members: dict[str, bytes], raw: bytes | None,
                                             scratch: Path) -> None:
    """verify_bundle raises nothing for any zip, or for bytes that are no zip at all."""
    data = raw if raw is not None else zip_bytes(members)
    report, peak = _verify(data, scratch / "any.zip")
    assert isinstance(report, Verification) and not report.ok
    assert_bounded(peak, len(data) + sum(map(len, members.values())), floor=1 << 20,
                   per_byte=200)


@pytest.fixture(scope="module")
def collection(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Collection]:
    with Collection(tmp_path_factory.mktemp("collection")) as kept:
        yield kept


@fuzz(30)
@given(data=st.data())
def test_a_collector_takes_a_bundle_or_rejects_it(data: st.DataObject,
                                                  genuine: dict[str, bytes],
                                                  collection: Collection) -> None:
    """Collection.add raises only BundleRejected, and keeps nothing that was changed."""
    members = data.draw(damaged(genuine) | st.just(genuine))
    bundle = data.draw(st.just(zip_bytes(members)) | st.binary(max_size=300))
    result, peak = bounded(lambda: collection.add(bundle),
                           CONTRACTS["services.collector_intake.Collection.add"])
    changed = {n for n in set(members) | set(genuine) if members.get(n) != genuine.get(n)}
    if isinstance(result, Added):
        assert not changed or all(n.endswith(UNCOVERED) for n in changed)
    else:
        assert isinstance(result, BundleRejected)
    assert_bounded(peak, len(bundle) + sum(map(len, members.values())), floor=4 << 20,
                   per_byte=200)


# --- nesting: a records.jsonl line nested deeper than Python's stack ----------------------------

def _deep_records(genuine: dict[str, bytes], depth: int) -> bytes:
    """The genuine bundle with a first records.jsonl line of `depth` open brackets."""
    members = {name: (b"[" * depth + b"\n" + data if name.endswith("/data/records.jsonl")
                      else data) for name, data in genuine.items()}
    return zip_bytes(members)


@fuzz(10)
@given(depth=depths)
@example(depth=3000)
def test_deep_json_in_a_bundle_is_a_problem(depth: int, genuine: dict[str, bytes],
                                            scratch: Path) -> None:
    """verify_bundle: a reported problem, never a RecursionError."""
    report, _ = _verify(_deep_records(genuine, depth), scratch / "deep.zip")
    assert isinstance(report, Verification) and not report.ok


@fuzz(5)
@given(depth=depths)
@example(depth=3000)
def test_deep_json_in_a_bundle_is_rejected_by_a_collector(depth: int, genuine: dict[str, bytes],
                                                          collection: Collection) -> None:
    """Collection.add: BundleRejected (a 422), never a RecursionError (a 500)."""
    with pytest.raises(BundleRejected):
        collection.add(_deep_records(genuine, depth))
