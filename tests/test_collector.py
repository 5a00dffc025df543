"""The collector and `netvigil submit`: probes send evidence bundles over loopback, the collector
keeps only what verifies, indexes it once, and finds events across probes. Runs a collector
could not take stay pending. Real OONI measurements (wc05) make one probe's events."""

from __future__ import annotations

import json
import os
import socket
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import cli
from results.store import Store
from services.collector_intake import Collection
from services.collector_server import CollectorConfig, make_server
from services.events import events
from services.evidence import export_evidence
from services.submit import pending_runs, submit
from tests.conftest import import_wc05, wc05_fingerprints
from tests.test_evidence import URLS, add_run, flip_bytes

TOKEN = "s3cret-token"


@pytest.fixture
def ooni_probe(tmp_path: Path) -> Iterator[Store]:
    """A probe whose runs hold real blocking (imported OONI measurements)."""
    with Store(tmp_path / "a.db", keys=tmp_path / "keys-a") as store:
        import_wc05(store)
        yield store


@pytest.fixture
def small_probe(tmp_path: Path) -> Iterator[Store]:
    """Another probe, with its own key: three hand-made runs."""
    with Store(tmp_path / "b.db", keys=tmp_path / "keys-b") as store:
        for url in URLS:
            add_run(store, url)
        yield store


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    folder = tmp_path / "collection"
    with make_server("127.0.0.1", 0, CollectorConfig(folder=folder, tokens=(TOKEN,))) as server:
        yield f"http://127.0.0.1:{server.port}", folder


def post(url: str, data: bytes, token: str | None = TOKEN) -> requests.Response:
    headers = {"Content-Type": "application/zip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return requests.post(url + "/v1/bundles", data=data, headers=headers, timeout=30)


def test_probes_submit_once_and_the_collection_finds_their_events(
        ooni_probe: Store, small_probe: Store, collector: tuple[str, Path]) -> None:
    url, folder = collector
    own = events(ooni_probe)
    assert own
    first = submit(ooni_probe, url, token=TOKEN, runs_per_bundle=20,
                   fingerprints=wc05_fingerprints())
    runs = sorted(r["id"] for r in ooni_probe.runs())
    assert first["error"] is None and first["runs"] == runs and first["pending"] == []
    assert first["sent"] == -(-len(runs) // 20)  # bundles of at most 20 runs
    assert submit(ooni_probe, url, token=TOKEN)["sent"] == 0  # each run goes once
    second = submit(small_probe, url, token=TOKEN)
    assert second["error"] is None and second["runs"] == [1, 2, 3]

    with Collection(folder) as collection:
        status = collection.status()
        assert status["bundles"] == first["sent"] + 1
        assert len(status["probes"]) == 2  # two keys, two probes
        judged = sum(1 for m in ooni_probe.measurements(limit=None) if m["verdict"])
        assert status["points"] == judged + 3
        found = collection.events()
        # The same events as the probe's own database finds, from the bundles alone.
        assert {(e.id, e.targets, e.start) for e in own} <= {
            (e.id, e.targets, e.start) for e in found}
        # A window keeps the measurements started inside it, whatever the offset it is given in.
        times = sorted(p.started for p in collection.points())
        middle = times[len(times) // 2]
        inside = collection.points(since=middle)
        assert inside and all(p.started >= middle for p in inside)
        assert len(inside) + len(collection.points(until=times[len(times) // 2 - 1])) >= \
            len(times)
        assert collection.points(since="2999-01-01") == []
        assert collection.points(until="1999-12-31T23:00:00-05:00") == []
        assert collection.events(since="2999-01-01") == []
        origin = collection.origin(list(found[0].measurement_ids))
        assert {o["probe"] for o in origin} <= set(status["probes"])
        assert all(len(o["record_sha256"]) == 64 for o in origin)
        kept = {p.name for p in (folder / "bundles").iterdir()}
        assert kept == {f"{b['bundle']}.zip" for b in first["bundles"] + second["bundles"]}


def test_the_same_bundle_is_kept_once_and_overlaps_are_indexed_once(
        small_probe: Store, collector: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = collector
    whole, part = tmp_path / "whole.zip", tmp_path / "part.zip"
    export_evidence(small_probe, part, run_ids=[2])
    export_evidence(small_probe, whole)
    answer = post(url, part.read_bytes())
    assert answer.status_code == 201 and answer.json()["new_points"] == 1
    again = post(url, part.read_bytes())
    assert again.status_code == 200 and again.json()["known"] is True
    bigger = post(url, whole.read_bytes())
    assert bigger.status_code == 201
    assert (bigger.json()["points"], bigger.json()["new_points"]) == (3, 2)
    with Collection(folder) as collection:
        assert collection.status()["points"] == 3


def test_a_changed_byte_is_refused_and_nothing_is_kept(
        small_probe: Store, collector: tuple[str, Path], tmp_path: Path) -> None:
    url, folder = collector
    good = tmp_path / "b.zip"
    export_evidence(small_probe, good)
    with zipfile.ZipFile(good) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    name = next(n for n in files if n.endswith("data/records.jsonl"))
    files[name] = flip_bytes(files[name], len(files[name]) // 2)
    forged = tmp_path / "forged.zip"
    with zipfile.ZipFile(forged, "w") as zf:
        for n, data in files.items():
            zf.writestr(n, data)
    answer = post(url, forged.read_bytes())
    assert answer.status_code == 422
    body = answer.json()
    assert "does not verify" in body["error"]
    assert any("data/records.jsonl" in p for p in body["problems"])
    assert post(url, b"not a zip at all").status_code == 422
    assert list((folder / "bundles").iterdir()) == []
    with Collection(folder) as collection:
        assert collection.status()["points"] == 0


def test_tokens_sizes_and_keys_are_enforced(small_probe: Store, tmp_path: Path) -> None:
    bundle = tmp_path / "b.zip"
    export_evidence(small_probe, bundle)
    data = bundle.read_bytes()
    config = CollectorConfig(folder=tmp_path / "c1", tokens=(TOKEN, "other"),
                             max_body=len(data) - 1)
    with make_server("127.0.0.1", 0, config) as server:
        url = f"http://127.0.0.1:{server.port}"
        assert post(url, data, token=None).status_code == 401
        assert post(url, data, token="wrong").status_code == 401
        too_big = post(url, data, token="other")
        assert too_big.status_code == 413 and "export fewer runs" in too_big.json()["error"]
        assert requests.get(url + "/v1/health", timeout=5).json() == {"ok": True, "version": "1"}
    strict = CollectorConfig(folder=tmp_path / "c2", allowed_keys=("0" * 16,))
    with make_server("127.0.0.1", 0, strict) as server:
        refused = post(f"http://127.0.0.1:{server.port}", data, token=None)
        assert refused.status_code == 403 and "does not accept" in refused.json()["error"]


def test_bundles_shrink_until_the_collector_takes_them(tmp_path: Path) -> None:
    from tests.test_evidence import CLOCK
    from tests.test_store import CONFIG, VANTAGE, make_measurement

    with Store(tmp_path / "big.db", keys=tmp_path / "keys-big") as probe:
        for n in range(3):  # each run brings 30 kB that do not compress
            run_id = probe.begin_run(VANTAGE, CONFIG)
            probe.record_clock(run_id, CLOCK)
            probe.add_measurement(run_id, make_measurement(f"https://r{n}.example/",
                                                           body=os.urandom(30_000)))
            probe.finish_run(run_id, "ok", {})
        config = CollectorConfig(folder=tmp_path / "c", max_body=45_000)  # one run, not two
        with make_server("127.0.0.1", 0, config) as server:
            url = f"http://127.0.0.1:{server.port}"
            result = submit(probe, url, runs_per_bundle=8)
            assert result["error"] is None and result["runs"] == [1, 2, 3]
            assert result["sent"] == 3  # 3 runs: 413; 1 run: taken; then one at a time
        tiny = CollectorConfig(folder=tmp_path / "d", max_body=1000)
        with make_server("127.0.0.1", 0, tiny) as server:
            add_run(probe, "https://late.example/")
            refused = submit(probe, f"http://127.0.0.1:{server.port}")
            assert refused["error"].startswith("run 4 alone is more than the collector takes: "
                                               "collector answered HTTP 413")
            assert refused["pending"] == [4]


def test_runs_wait_while_the_collector_cannot_take_them(
        small_probe: Store, collector: tuple[str, Path]) -> None:
    url, _ = collector
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    offline = submit(small_probe, closed, token=TOKEN, connect_timeout=2)
    assert offline["error"] == "collector unreachable: connection_refused"
    assert offline["sent"] == 0 and offline["pending"] == [1, 2, 3]
    refused = submit(small_probe, url, token="wrong")
    assert refused["error"].startswith("collector answered HTTP 401: a valid 'Authorization")
    assert pending_runs(small_probe) == [1, 2, 3]
    assert submit(small_probe, url, token=TOKEN)["pending"] == []
    # a new run is the only one sent next time
    add_run(small_probe, "https://late.example/")
    assert submit(small_probe, url, token=TOKEN)["runs"] == [4]


def test_the_commands(small_probe: Store, collector: tuple[str, Path], monkeypatch,
                      capsys) -> None:
    url, folder = collector
    db = str(small_probe.path)
    monkeypatch.setenv("NETVIGIL_COLLECTOR_TOKEN", TOKEN)
    assert cli.main(["--db", db, "submit", "--collector", url, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["runs"] == [1, 2, 3]
    assert cli.main(["--db", db, "submit", "--collector", url]) == 0
    assert capsys.readouterr().out.strip() == "submitted 0 runs in 0 bundles, 0 pending"
    assert cli.main(["collector", "status", "--dir", str(folder), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert (status["bundles"], status["points"], len(status["probes"])) == (1, 3, 1)
    assert cli.main(["collector", "events", "--dir", str(folder), "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)
    assert cli.main(["collector", "events", "--dir", str(folder), "--since", "yesterday"]) == 2
    assert "--since/--until" in capsys.readouterr().err
    for chart, name in (("timeline", "t.png"), ("reachability", "r.svg")):
        out = folder.parent / name
        assert cli.main(["collector", "plot", "--dir", str(folder), "--chart", chart,
                         "--out", str(out)]) == 0
        assert out.read_bytes()[:4] in (b"\x89PNG", b"<?xm")
    assert cli.main(["collector", "plot", "--dir", str(folder), "--out", "x.pdf"]) == 2
    monkeypatch.delenv("NETVIGIL_COLLECTOR", raising=False)
    assert cli.main(["--db", db, "submit"]) == 2
    assert cli.main(["collector", "status", "--dir", str(folder / "nope")]) == 2
    assert "no collection there" in capsys.readouterr().err
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    add_run(small_probe, "https://late.example/")
    assert cli.main(["--db", db, "submit", "--collector", closed]) == 1
    assert "1 pending; collector unreachable" in capsys.readouterr().out


def test_a_zip_bomb_is_refused_unread(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("b/bagit.txt", b"BagIt-Version: 1.0\n")
        zf.writestr("b/data/records.jsonl", b"\0" * (8 << 20))  # 8 MiB of zeros: ~8 kB packed
    data = bomb.read_bytes()
    assert len(data) < 64 << 10
    config = CollectorConfig(folder=tmp_path / "c", max_unpacked=4 << 20)
    with make_server("127.0.0.1", 0, config) as server:
        answer = post(f"http://127.0.0.1:{server.port}", data, token=None)
    assert answer.status_code == 422
    assert "would unpack to 8388627 bytes" in answer.json()["problems"][0]


def test_a_damaged_or_encrypted_member_is_a_problem_not_a_crash(
        small_probe: Store, tmp_path: Path) -> None:
    from services.evidence import check_bundle

    good = tmp_path / "b.zip"
    export_evidence(small_probe, good)
    raw = bytearray(good.read_bytes())
    # Mark records.jsonl "encrypted" (general purpose flag bit 0) in its central directory entry:
    # reading it would need a password.
    at = raw.find(b"PK\x01\x02")
    while at >= 0:
        length = int.from_bytes(raw[at + 28:at + 30], "little")
        if raw[at + 46:at + 46 + length].endswith(b"records.jsonl"):
            raw[at + 8] |= 1
        at = raw.find(b"PK\x01\x02", at + 4)
    encrypted = tmp_path / "enc.zip"
    encrypted.write_bytes(bytes(raw))
    report = check_bundle(encrypted)
    assert not report.ok
    assert any(p.file and p.file.endswith("records.jsonl") and "encrypted" in p.what
               for p in report.problems), \
        report.problems


def test_monitor_sends_each_run_to_the_collector(tmp_path: Path, collector: tuple[str, Path],
                                                 monkeypatch, capsys) -> None:
    from tests.fakes.dns_server import FakeDNSServer, Rule
    from tests.fakes.servers import HTTPServer, page

    url, folder = collector
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("NETVIGIL_COLLECTOR_TOKEN", TOKEN)
    db = tmp_path / "mon.db"
    with FakeDNSServer({"ok.test": Rule(addresses=["127.0.0.1"])}) as dns, \
            HTTPServer({"/": page("Plain")}) as web:
        assert cli.main(["--db", str(db), "monitor", "--every", "1s", "--max-runs", "2",
                         "--targets", f"http://ok.test:{web.port}/", "--resolver", dns.address,
                         "--no-system-resolver", "--no-ipv6", "--no-netcheck", "--timeout", "1",
                         "--accept-risks", "--collector", url]) == 0
    log = capsys.readouterr().err
    assert "submitted 1 run in 1 bundle, 0 pending" in log
    with Collection(folder) as collection:
        status = collection.status()
    assert (status["bundles"], status["points"]) == (2, 2)


def test_submit_carries_the_fingerprints_its_verdicts_were_judged_with(
        tmp_path: Path, collector: tuple[str, Path], monkeypatch, capsys) -> None:
    """A probe that judged with fingerprints must be able to submit: the bundle carries them."""
    from tests.conftest import CORPUS, import_wc05

    url, folder = collector
    monkeypatch.setenv("NETVIGIL_COLLECTOR_TOKEN", TOKEN)
    with Store(tmp_path / "judged.db") as store:
        import_wc05(store)
    db = str(tmp_path / "judged.db")
    assert cli.main(["--db", db, "submit", "--collector", url]) == 1  # verdicts would not follow
    assert "--fingerprints" in capsys.readouterr().err
    assert cli.main(["--db", db, "submit", "--collector", url, "--json",
                     "--fingerprints", str(CORPUS / "fingerprints")]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert sent["pending"] == [] and sent["sent"] >= 1
    assert cli.main(["collector", "status", "--dir", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["points"] == 50  # every wc05 measurement indexed
