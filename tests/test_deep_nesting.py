"""Deeply nested TOML and JSON from outside is a clean error, never a RecursionError (issue 11, 6).

Python's parsers recurse once (json) or two or three times (tomllib) per level of nesting, so a
few thousand brackets raise RecursionError: a traceback instead of `FILE:LINE: what is wrong`.
Each test below hands over such a document where netvigil takes one from a user or a peer: a
targets file and a platform catalogue (TargetError naming file and line), a request to the test
helper (400, not 500), and a collector's answer to `netvigil submit` (a failure, runs kept).
OONI files are covered in tests/test_ooni_bounds.py; bundles by the bundle checks' own tests.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from core.errors import RequestError, TargetError
from results.store import Store
from services.helper_protocol import HelperConfig, parse_request
from services.helper_server import make_server
from services.submit import pending_runs, submit
from targets.catalogue import load_catalogue
from targets.loaders import load_targets
from tests.test_evidence import URLS, add_run

DEEP = 3000


def _platform_with(value: str) -> str:
    return ('# a platform whose endpoints are nested 3,000 deep\n[[platform]]\nname = "x"\n'
            f'category = "news"\ndescription = "[[[ not nesting # nor this"\nendpoints = {value}\n')


def test_a_targets_file_nested_3000_deep_is_a_target_error_with_file_and_line(tmp_path: Path):
    path = tmp_path / "deep.toml"
    path.write_text(_platform_with("[\n" * DEEP + '"https://a.example/"\n' + "]\n" * DEEP))
    with pytest.raises(TargetError) as caught:
        load_targets([str(path)])
    error = caught.value
    assert str(error) == f"{path}:{6 + DEEP - 1}: TOML error: values nested too deeply"
    assert (error.path, error.line) == (str(path), 6 + DEEP - 1)  # the innermost bracket
    with pytest.raises(TargetError, match="nested too deeply"):
        load_catalogue(path)  # the same file given as a catalogue (`--catalogue`)


def test_inline_tables_nested_on_one_line_name_that_line(tmp_path: Path):
    path = tmp_path / "inline.toml"
    path.write_text(_platform_with("[" + "{a=" * 400 + "1" + "}" * 400 + "]"))  # 1,603 bytes
    with pytest.raises(TargetError) as caught:
        load_targets([str(path)])
    assert str(caught.value) == f"{path}:6: TOML error: values nested too deeply"


def test_nesting_the_parser_can_take_is_judged_as_before(tmp_path: Path):
    path = tmp_path / "shallow.toml"
    path.write_text(_platform_with("[" * 20 + '"https://a.example/"' + "]" * 20))
    with pytest.raises(TargetError, match=r"shallow.toml:6: x: endpoint \[\[.* is not a string"):
        load_targets([str(path)])


@pytest.mark.parametrize("body", [b"[" * 200_000, b'{"targets": ' + b"[" * 200_000,
                                  b'{"targets": [{"url": "http://a.test/", "x": '
                                  + b"[" * 200_000 + b"]" * 200_000 + b"}]}"])
def test_the_helper_answers_400_to_a_request_nested_too_deeply(body: bytes):
    with pytest.raises(RequestError) as caught:
        parse_request(body, HelperConfig())
    assert caught.value.status == 400
    with make_server("127.0.0.1", 0, HelperConfig(max_body=1 << 20)) as server:
        reply = requests.post(f"http://127.0.0.1:{server.port}/v1/measure", data=body,
                              timeout=10)
        health = requests.get(f"http://127.0.0.1:{server.port}/v1/health", timeout=5)
    assert reply.status_code == 400 and reply.json()["error"] == "the body is not JSON"
    assert health.status_code == 200


class _DeepAnswer(http.server.BaseHTTPRequestHandler):
    """A hostile collector: takes the bundle, answers 201 with JSON nested 200,000 deep."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        body = b"[" * 200_000
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hostile_collector() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DeepAnswer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_submit_to_a_collector_answering_deep_json_fails_cleanly(tmp_path: Path,
                                                                 hostile_collector: str):
    with Store(tmp_path / "probe.db", keys=tmp_path / "keys") as store:
        add_run(store, URLS[0])
        result = submit(store, hostile_collector)
        assert result["error"] == "collector answered HTTP 201"
        assert result["sent"] == 0 and pending_runs(store) == [1]  # kept for a real collector
