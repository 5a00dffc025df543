"""Issue 11, section 5: text from outside cannot drive the terminal or rich's markup.

Each hostile string is planted where an attacker would put it (a bundle's member names, a
collection's vantage fields, an OONI file's input and page title, a run's vantage and target)
and the command that prints it is run the way a user would. Wanted, for each: the exit status a
harmless string gets, no traceback, no control character a terminal obeys (ESC, BEL, CSI, C1,
bidi overrides) on stdout or stderr, and the text still visible, escaped.
"""

from __future__ import annotations

import base64
import io
import json
import re
import zipfile
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import requests

import cli
from core.observations import HTTPRequest, Measurement
from presentation.console import Output
from presentation.safe_text import printable
from presentation.views import Styled, Table, line
from results.store import Store
from services.collector_intake import Collection
from services.collector_server import CollectorConfig, make_server
from services.evidence import export_evidence, reclassifier
from services.http_base import log_line
from tests.test_evidence import CLOCK
from tests.test_ooni_reader import _measurement
from tests.test_store import CONFIG, VANTAGE, make_measurement

HOSTILE = {
    "close-tag": "[/]",
    "conceal": "[conceal]",
    "style": "[bold red]x",
    "osc-title-and-clear": "\x1b]0;t\x07\x1b[2J",
    "c1-csi": "\x9b2J",
    "bidi-override": "\u202eevil\u202c",
}
HARMLESS = "plain"
#: What no output may hold: C0 controls but newline, DEL, C1, bidi embeddings/overrides/isolates.
OBEYED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
#: On a terminal rich may colour (SGR: ESC [ ... m); any other escape sequence is an attack.
NOT_SGR = re.compile(r"\x1b(?!\[[0-9;]*m)")


@pytest.fixture(autouse=True)
def _wide(monkeypatch: pytest.MonkeyPatch) -> None:
    # A table folds long cells at the console's width; wide, each cell stays on one line, so
    # the escaped text can be looked for as a whole.
    monkeypatch.setenv("COLUMNS", "1000")


def assert_clean(*streams: str, terminal: bool = False) -> None:
    for stream in streams:
        assert "Traceback" not in stream
        found = (NOT_SGR if terminal else OBEYED).search(stream)
        if terminal:
            found = found or OBEYED.search(re.sub(r"\x1b\[[0-9;]*m", "", stream))
        assert found is None, repr(stream)


def shown(text: str) -> tuple[str, ...]:
    """How `text` may appear, escaped: as it was, upper-cased (a country code is) or in a file's
    name (which cannot hold a slash)."""
    return printable(text), printable(text.upper()), printable(file_name(text))


def file_name(text: str) -> str:
    return text.replace("/", "_")


# --- the scenarios: plant a string, return the command that prints it --------------------------

def _bundle(tmp: Path, vantage: dict[str, Any] | None = None, url: str = "https://news.example/",
            title: str | None = None) -> Path:
    """A genuine bundle (the library's own export) of one probe with two blocked runs."""
    db = tmp / "probe.db"
    with Store(db, keys=tmp / "keys") as store:
        for path in ("", "b"):
            run_id = store.begin_run(vantage or VANTAGE, CONFIG)
            store.record_clock(run_id, CLOCK)
            m = make_measurement(url + path)
            if title is not None:
                m = with_title(m, title)
            store.add_measurement(run_id, m)
            for mid, verdict in reclassifier(store)(run_id).items():
                store.set_verdict(mid, verdict)
            store.finish_run(run_id, "ok", {"counts": {}})
        export_evidence(store, tmp / "bundle.zip")
    return tmp / "bundle.zip"


def with_title(m: Measurement, title: str) -> Measurement:
    steps = tuple(replace(o, title=title) if isinstance(o, HTTPRequest) else o
                  for o in m.observations)
    return replace(m, observations=steps)


def hostile_vantage(text: str) -> dict[str, Any]:
    return {**VANTAGE, "country": text, "isp": text, "vantage_id": text}


def rewrite_zip(source: Path, target: Path, change: Callable[[str, bytes], bytes],
                extra: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w") as new:
        for info in old.infolist():
            new.writestr(info.filename, change(info.filename, old.read(info)))
        for name, data in extra.items():
            new.writestr(name, data)
    return target


def evidence_verify(tmp: Path, text: str) -> list[str]:
    """A member named data/TEXT, and a manifest line naming data/TEXT/listed (missing)."""
    bundle = _bundle(tmp)
    root = zipfile.ZipFile(bundle).namelist()[0].split("/")[0]

    def add_to_manifest(name: str, data: bytes) -> bytes:
        if name.endswith("/manifest-sha256.txt"):
            return data + f"{'0' * 64}  data/{text}.listed\n".encode()
        return data

    forged = rewrite_zip(bundle, tmp / "forged.zip", add_to_manifest,
                         {f"{root}/data/{text}": b"planted"})
    return ["evidence", "verify", str(forged)]


def _collection(tmp: Path, text: str) -> Path:
    folder = tmp / "collection"
    with Collection(folder) as collection:
        collection.add(_bundle(tmp, hostile_vantage(text)).read_bytes())
    return folder


def collector_status(tmp: Path, text: str) -> list[str]:
    return ["collector", "status", "--dir", str(_collection(tmp, text))]


def collector_events(tmp: Path, text: str) -> list[str]:
    return ["collector", "events", "--dir", str(_collection(tmp, text))]


def events(tmp: Path, text: str) -> list[str]:
    """A run from a network whose vantage fields and target URL carry the text."""
    _bundle(tmp, hostile_vantage(text), url=f"https://news.example/{text}")
    return ["--db", str(tmp / "probe.db"), "events"]


def _ooni_file(tmp: Path, text: str) -> Path:
    """An OONI measurement whose input and page title carry the text, in a file named by it."""
    data = _measurement()
    data["input"] = f"http://blocked.example/{text}"
    body = f"<html><title>{text}</title></html>".encode()
    data["test_keys"]["requests"][0]["response"]["body"] = {
        "format": "base64", "data": base64.b64encode(body).decode()}
    path = tmp / f"{file_name(text)}.json"
    path.write_text(json.dumps(data))
    return path


def ooni_classify(tmp: Path, text: str) -> list[str]:
    return ["ooni", "classify", str(_ooni_file(tmp, text))]


def ooni_import(tmp: Path, text: str) -> list[str]:
    """One good measurement and one the reader refuses; the refusal names the file."""
    good = _ooni_file(tmp, text)
    bad = tmp / f"bad {file_name(text)}.json"
    bad.write_text(json.dumps({"test_name": text}))
    return ["--db", str(tmp / "o.db"), "ooni", "import", str(good), str(bad)]


def measurements_list(tmp: Path, text: str) -> list[str]:
    assert cli.main(["--db", str(tmp / "o.db"), "ooni", "import",
                     str(_ooni_file(tmp, text))]) == 0
    return ["--db", str(tmp / "o.db"), "measurements", "list"]


def measurements_show(tmp: Path, text: str) -> list[str]:
    """A measurement of our own whose page title is the text (what a blockpage may say)."""
    _bundle(tmp, title=text)
    return ["--db", str(tmp / "probe.db"), "measurements", "show", "1"]


def error_line(tmp: Path, text: str) -> list[str]:
    """`main`'s one error line, quoting what it was given."""
    return ["--db", str(tmp / "e.db"), "events", "--since", text]


SCENARIOS: dict[str, Callable[[Path, str], list[str]]] = {
    "evidence verify": evidence_verify, "collector status": collector_status,
    "collector events": collector_events, "events": events, "ooni classify": ooni_classify,
    "ooni import": ooni_import, "measurements list": measurements_list,
    "measurements show": measurements_show, "error": error_line}


def run(tmp: Path, scenario: str, text: str, capsys: pytest.CaptureFixture[str]
        ) -> tuple[int, str, str]:
    tmp.mkdir()
    argv = SCENARIOS[scenario](tmp, text)
    capsys.readouterr()  # what building the scenario printed
    code = cli.main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("kind", HOSTILE)
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_hostile_text_is_shown_escaped_and_obeyed_by_nothing(
        scenario: str, kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    expected, _, _ = run(tmp_path / "harmless", scenario, HARMLESS, capsys)
    code, out, err = run(tmp_path / "hostile", scenario, HOSTILE[kind], capsys)
    assert code == expected, err
    assert_clean(out, err)
    assert any(form in out + err for form in shown(HOSTILE[kind])), out + err


@pytest.mark.parametrize("scenario", ["evidence verify", "collector events", "measurements show"])
def test_on_a_terminal_only_colours_are_sent(scenario: str, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then writes as to a terminal, with styles
    text = "".join(HOSTILE.values())
    code, out, err = run(tmp_path / "t", scenario, text, capsys)
    assert_clean(out, err, terminal=True)
    if scenario == "evidence verify":
        assert code == 1 and "\x1b[" in out  # the red FAIL: a terminal was written to


def test_a_collector_keeps_hostile_vantage_fields_and_its_readers_still_work(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = "".join(HOSTILE.values())
    folder = tmp_path / "collection"
    hostile = _bundle(tmp_path / "a", hostile_vantage(text))
    genuine = _bundle(tmp_path / "b", url="https://chat.example/")
    with make_server("127.0.0.1", 0, CollectorConfig(folder=folder)) as server:
        url = f"http://127.0.0.1:{server.port}/v1/bundles"
        for bundle in (hostile, genuine):  # the second probe is not locked out by the first
            answer = requests.post(url, data=bundle.read_bytes(), timeout=30,
                                   headers={"Content-Type": "application/zip"})
            assert answer.status_code == 201, answer.text
    for argv in (["collector", "status", "--dir", str(folder)],
                 ["collector", "events", "--dir", str(folder)]):
        assert cli.main(argv) == 0
        out, err = capsys.readouterr()
        assert_clean(out, err)
        assert printable(text.upper()) in out
        assert "chat.example" in out or "2 probes" in out
    assert cli.main(["collector", "status", "--dir", str(folder), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)  # JSON keeps the text exactly, escaped by JSON
    assert any(text.upper() in network for network in status["networks"])


# --- every path of the one output helper ---------------------------------------------------------

def test_printable_escapes_what_a_terminal_obeys_and_nothing_else() -> None:
    assert printable("\x1b]0;t\x07\x1b[2J") == "\\x1b]0;t\\x07\\x1b[2J"
    assert printable("\x9b2J\x7f\x00\t\r") == "\\x9b2J\\x7f\\x00\\x09\\x0d"
    assert printable("\u202eevil\u2066\u2069\u202a") == "\\u202eevil\\u2066\\u2069\\u202a"
    assert printable("a\nb") == "a\\x0ab" and printable("a\nb", newlines=True) == "a\nb"
    assert printable("\u2028") == "\\u2028"
    assert printable("bad\udcffname") == "bad\\udcffname"  # surrogateescape: would not encode
    # Ordinary text of any script stays as it is: Persian, accents, an emoji with a joiner.
    fine = "سانسور اینترنت é [/] 👩\u200d💻 \\x1b"
    assert printable(fine) == fine


def test_every_output_path_escapes(capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    text = "".join(HOSTILE.values())
    out = Output()
    out.render([line(Styled(text, "red"), text), line(text, stderr=True),
                Table(text, (text, "b"), ((text, Styled(text, "green")),))])
    out.text(text)
    out.message(text)
    out.log(text)
    out.warning(text)
    out.error(text)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert out.ask(text, "? ") is None
    with out.progress(1) as advance:
        advance(text)
    log_line("collector", text)
    captured = capsys.readouterr()
    assert_clean(captured.out, captured.err)
    escaped = printable(text)
    assert captured.out.count(escaped) == 7  # two in the line, title, header, two cells, text
    assert captured.err.count(escaped) == 7  # a line, message, log, warning, error, ask, log_line


def test_a_line_stays_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    forged = "x\nbundle.zip: all holds"
    Output().render([line(Styled("FAIL", "red"), f" {forged}")])
    Output().error(forged)
    captured = capsys.readouterr()
    assert captured.out == "FAIL x\\x0abundle.zip: all holds\n"
    assert captured.err == "netvigil: error: x\\x0abundle.zip: all holds\n"


def test_the_progress_bar_takes_a_target_that_looks_like_markup(
        capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # a live bar, drawn as on a terminal
    with Output().progress(2) as advance:
        advance("https://x.example/[/]")
        advance("https://x.example/[conceal]\x1b[2J")
    err = capsys.readouterr().err
    # The live bar moves the cursor and clears its own line; the target cannot clear the screen.
    assert "\x1b[2J" not in err and "https://x.example/[conceal]\\x1b[2J" in err
