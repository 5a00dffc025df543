"""Issue 11, section 7: every parser of untrusted input, driven by Hypothesis.

Each parser has a contract: what it may raise when its input is bad (named in CONTRACTS and in
each test), and that its work is bounded by its input. The generated inputs are both random and
near-genuine (a real reply, response, measurement, list or bundle with a few bytes or fields
changed), so the parsers are exercised past their first check. Work is measured as allocation
(tracemalloc's peak) and output size, each against a generous bound that grows with the input,
never as wall-clock time. The whole file runs in well under a minute.
"""

from __future__ import annotations

import asyncio
import gzip
import io
import json
import tracemalloc
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.rcode
import dns.rdata
import dns.rrset
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from core import html_title
from core.errors import BundleRejected, OONIFormatError, RequestError, TargetError
from core.observations import HTTPRequest
from core.times import Clock
from ooni.read import OONIMeasurement, parse_ooni, read_ooni_file
from probes import dns_wire
from probes.config import ProbeConfig
from probes.http import MAX_HEADER_VALUE, MAX_HEADERS, fetch, normalise_url, redirect_location
from results.bundle_verify import verify_bundle
from results.store import Store
from results.verify import Verification
from services.collector_intake import Added, Collection
from services.evidence import export_evidence
from services.helper_protocol import HelperConfig, parse_request
from targets import catalogue  # noqa: F401 - imported on first use by the loaders; not work
from targets.loaders import load_targets
from tests.test_evidence import URLS, add_run
from tests.test_ooni_reader import _measurement

#: What each parser may raise for bad input; anything else escaping is a bug.
CONTRACTS: dict[str, tuple[type[BaseException], ...]] = {
    "probes.dns_wire.read_reply/to_response": (),  # garbage is None
    "probes.http.fetch": (),  # every peer's answer is an observation
    "probes.http.normalise_url/redirect_location": (),  # unusable is None
    "core.html_title.extract_title": (),
    "ooni.read.parse_ooni": (OONIFormatError,),
    "ooni.read.read_ooni_file": (),  # each bad item is yielded as an OONIFormatError
    "targets.loaders.load_targets": (TargetError,),
    "results.bundle_verify.verify_bundle": (),  # problems are reported, never raised
    "services.helper_protocol.parse_request": (RequestError,),
    "services.collector_intake.Collection.add": (BundleRejected,),
}

FUZZ = settings(deadline=None, database=None, print_blob=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

T = TypeVar("T")


def fuzz(examples: int) -> settings:
    """FUZZ with `examples` examples: as many as keep the whole file under a minute."""
    return settings(FUZZ, max_examples=examples)


def bounded(run: Callable[[], T], allowed: tuple[type[BaseException], ...] = ()
            ) -> tuple[T | BaseException, int]:
    """`run()` (or the allowed exception it raised) and the peak of what it allocated."""
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    tracemalloc.reset_peak()
    before = tracemalloc.get_traced_memory()[0]
    try:
        result: T | BaseException = run()
    except allowed as exc:
        result = exc
    finally:
        peak = tracemalloc.get_traced_memory()[1] - before
        if started:
            tracemalloc.stop()
    return result, peak


def assert_bounded(peak: int, size: int, floor: int, per_byte: int) -> None:
    assert peak <= floor + per_byte * size, f"{peak} bytes allocated for {size} bytes of input"


@st.composite
def mutated(draw: st.DrawFn, data: bytes, most: int = 4) -> bytes:
    """`data` with up to `most` bytes flipped, runs inserted or deleted, or its tail cut."""
    out = bytearray(data)
    for _ in range(draw(st.integers(0, most))):
        at = draw(st.integers(0, len(out)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if kind == "flip" and at < len(out):
            out[at] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            out[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif kind == "delete":
            del out[at:at + draw(st.integers(1, 16))]
        else:
            del out[at:]
    return bytes(out)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)


# --- DNS replies ---------------------------------------------------------------------------------

QUERY = dns_wire.build_query("blocked.example", "A", query_id=0x1234)
# dnspython imports the module of each record type the first time it meets one: import cost,
# not work, and it would otherwise land in whichever example meets a type first.
dns.rdata.load_all_types(disable_dynamic_load=False)
names = st.from_regex(r"[a-z0-9-]{1,12}(\.[a-z0-9-]{1,12}){0,3}", fullmatch=True)
records = st.one_of(st.tuples(st.just("A"), st.ip_addresses(v=4).map(str)),
                    st.tuples(st.just("AAAA"), st.ip_addresses(v=6).map(str)),
                    st.tuples(st.just("CNAME"), names.map(lambda name: name + ".")))


@st.composite
def dns_replies(draw: st.DrawFn) -> bytes:
    """An answer to QUERY as a resolver (or an injector) writes it, then damaged a little."""
    reply = dns.message.make_response(QUERY)
    reply.set_rcode(draw(st.sampled_from([dns.rcode.NOERROR, dns.rcode.NXDOMAIN,
                                          dns.rcode.SERVFAIL, dns.rcode.REFUSED])))
    for rdtype, value in draw(st.lists(records, max_size=8)):
        ttl = draw(st.integers(0, 2**31 - 1))
        reply.answer.append(dns.rrset.from_text("blocked.example.", ttl, "IN", rdtype, value))
    return draw(mutated(reply.to_wire()))


def other_class_reply() -> bytes:
    """An answer to QUERY whose A record is of class 5, not IN (found by this suite: reading
    it raised AttributeError, and a UDP query lost the reply)."""
    reply = dns.message.make_response(QUERY)
    reply.answer.append(dns.rrset.from_text("blocked.example.", 30, "IN", "A", "192.0.2.1"))
    wire = bytearray(reply.to_wire())
    at = wire.rindex(b"\x00\x01\x00\x01\x00\x00\x00\x1e")  # type A, class IN, TTL 30
    wire[at + 2:at + 4] = b"\x00\x05"
    return bytes(wire)


def test_an_answer_of_another_class_holds_no_address() -> None:
    reply = dns_wire.read_reply(QUERY, other_class_reply())
    assert reply is not None  # an answer to our question, as an injector may send it
    response = dns_wire.to_response(reply, 0.0)
    assert response.addresses == () and response.ttl is None
    assert dns_wire.response_failure(response, "A") == "dns_no_answer"


@fuzz(200)
@given(wire=st.one_of(dns_replies(), st.binary(max_size=512),
                      st.binary(max_size=500).map(lambda tail: QUERY.to_wire()[:12] + tail)))
@example(wire=other_class_reply())
def test_dns_replies_are_a_reply_or_garbage(wire: bytes) -> None:
    """read_reply and to_response raise nothing (contract: garbage is None)."""
    reply, peak = bounded(lambda: dns_wire.read_reply(QUERY, wire))
    assert reply is None or isinstance(reply, dns.message.Message)
    assert_bounded(peak, len(wire), floor=64 << 10, per_byte=400)
    try:  # what dnspython accepts even when it answers another question
        parsed = reply or dns.message.from_wire(wire, ignore_trailing=True)
    except Exception:
        return
    response = dns_wire.to_response(parsed, 0.0)
    # Each address or name needs a record of at least 11 bytes on the wire.
    assert len(response.addresses) + len(response.cnames) <= len(wire) // 11
    dns_wire.response_failure(response, "A")


# --- HTTP responses ------------------------------------------------------------------------------

#: Charsets a page may name, Python's non-text codecs among them (a page is not a friend).
CHARSETS = ["utf-8", "latin-1", "utf-16", "utf-7", "shift_jis", "cp1256", "rot13", "base64",
            "hex", "zlib", "bz2", "uu", "quopri", "undefined", "idna", "punycode",
            "unicode_escape", "no-such-charset", ""]
header_names = st.from_regex(rb"[A-Za-z0-9-]{1,20}", fullmatch=True)
header_values = st.binary(max_size=40).map(lambda v: v.replace(b"\r", b"").replace(b"\n", b""))


@st.composite
def http_responses(draw: st.DrawFn) -> bytes:
    """A response head and body, framed by length, chunks or the close, then damaged."""
    status = draw(st.sampled_from([100, 200, 204, 301, 302, 307, 403, 451, 500])
                  | st.integers(0, 999))
    head = [b"HTTP/1.1 %d %s" % (status, draw(header_values))]
    if status < 200 and draw(st.booleans()):  # an informational response before the real one
        head = [b"HTTP/1.1 100 Continue", b"", b"HTTP/1.1 200 OK"]
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=6))
    charset = draw(st.sampled_from(CHARSETS))
    headers.append((b"Content-Type", b"text/html; charset=" + charset.encode()))
    if draw(st.booleans()):
        headers.append((b"Location", draw(header_values)))
    title = draw(st.binary(max_size=60))
    body = draw(st.binary(max_size=200)) + b"<title>" + title + b"</title>" + \
        draw(st.binary(max_size=800))
    framing = draw(st.sampled_from(["length", "wrong length", "chunked", "close"]))
    if framing == "length":
        headers.append((b"Content-Length", b"%d" % len(body)))
    elif framing == "wrong length":
        headers.append((b"Content-Length", b"%d" % draw(st.integers(0, 5000))))
    elif framing == "chunked":
        headers.append((b"Transfer-Encoding", b"chunked"))
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    lines = head + [name + b": " + value for name, value in headers]
    return draw(mutated(b"\r\n".join(lines) + b"\r\n\r\n" + body, most=2))


class Replay:
    """A ByteStream that answers with `data`, `chunk` bytes a read at most, then closes."""

    def __init__(self, data: bytes, chunk: int) -> None:
        self.data, self.chunk, self.at, self.reads = data, chunk, 0, 0

    async def read(self, max_bytes: int) -> bytes:
        self.reads += 1
        piece = self.data[self.at:self.at + min(max_bytes, self.chunk)]
        self.at += len(piece)
        return piece

    async def write(self, data: bytes) -> None:
        pass

    async def close(self) -> None:
        pass


HTTP_CONFIG = ProbeConfig(body_cap=512)


@fuzz(150)
@given(data=st.one_of(http_responses(), st.binary(max_size=300),
                      st.binary(max_size=300).map(lambda tail: b"HTTP/1.1 " + tail)),
       chunk=st.sampled_from([1, 7, 4096]))
@example(data=b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=rot13\r\n\r\n"
              b"<title>x</title>", chunk=4096)
def test_http_responses_are_recorded_never_raised(data: bytes, chunk: int) -> None:
    """fetch raises nothing for a valid URL (contract: the peer's answer is an observation);
    body, headers and title are capped; each read before the close returns a byte."""
    stream = Replay(data, chunk)
    result, peak = bounded(lambda: asyncio.run(fetch(
        stream, "http://blocked.example/", "192.0.2.1", 80, Clock(), HTTP_CONFIG)))
    assert isinstance(result, HTTPRequest)
    assert len(result.body) <= HTTP_CONFIG.body_cap and result.body_length <= len(data)
    assert len(result.headers) <= MAX_HEADERS
    assert all(len(value) <= MAX_HEADER_VALUE for _, value in result.headers)
    assert result.title is None or len(result.title) <= html_title.MAX_TITLE
    assert result.location is None or result.location.startswith(("http://", "https://"))
    assert stream.reads <= len(data) + 2
    assert_bounded(peak, len(data), floor=256 << 10, per_byte=200)


@fuzz(200)
@given(text=st.text(max_size=120) | st.from_regex(r"(https?:)?//?[^\s]{0,40}(/[^\s]{0,30})?"),
       base=st.sampled_from(["http://blocked.example/a/b", "https://[2001:db8::1]:8443/"]))
def test_urls_from_a_page_are_usable_or_none(text: str, base: str) -> None:
    """normalise_url and redirect_location raise nothing (contract: unusable is None)."""
    for url in (normalise_url(text), redirect_location(base, text)):
        if url is not None:
            assert url.startswith(("http://", "https://"))
            assert not any(c.isspace() or ord(c) < 0x20 or c == "\x7f" for c in url)


@fuzz(200)
@given(body=st.binary(max_size=2000) | st.builds(
           lambda before, title, after: before + b"<TITLE " + title + b"</title" + after,
           st.binary(max_size=50), st.binary(max_size=400), st.binary(max_size=50)),
       content_type=st.none() | st.sampled_from(CHARSETS).map(lambda c: f"text/html; charset={c}")
       | st.text(max_size=40))
@example(body=b"<title>" + b"x" * 2_000_000 + b"</title>", content_type=None)
def test_page_titles_are_bounded(body: bytes, content_type: str | None) -> None:
    """extract_title raises nothing; the title and the work are bounded by its search limit."""
    title, peak = bounded(lambda: html_title.extract_title(body, content_type))
    assert title is None or (isinstance(title, str) and len(title) <= html_title.MAX_TITLE)
    searched = min(len(body), html_title.SEARCH_LIMIT)
    assert_bounded(peak, searched, floor=64 << 10, per_byte=12)


# --- OONI measurements ---------------------------------------------------------------------------

TEMPLATE = _measurement()


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            found += _paths(inner, (*prefix, index))
    return found


TEMPLATE_PATHS = _paths(TEMPLATE)


@st.composite
def ooni_measurements(draw: st.DrawFn) -> Any:
    """The synthetic web_connectivity measurement with a few fields replaced or removed."""
    data = json.loads(json.dumps(TEMPLATE))
    for path in draw(st.lists(st.sampled_from(TEMPLATE_PATHS), max_size=4)):
        holder = data
        try:
            for key in path[:-1]:
                holder = holder[key]
            if draw(st.booleans()) and isinstance(holder, dict):
                holder.pop(path[-1], None)
            else:
                holder[path[-1]] = draw(json_values)
        except (KeyError, IndexError, TypeError):  # an earlier change removed the way there
            continue
    return data


@fuzz(150)
@given(data=ooni_measurements() | json_values)
def test_ooni_measurements_read_or_raise_a_format_error(data: Any) -> None:
    """parse_ooni raises only OONIFormatError, in one line."""
    size = len(json.dumps(data))
    result, peak = bounded(lambda: parse_ooni(data), CONTRACTS["ooni.read.parse_ooni"])
    if isinstance(result, OONIFormatError):
        assert "\n" not in str(result)
    else:
        assert isinstance(result, OONIMeasurement)
    assert_bounded(peak, size, floor=128 << 10, per_byte=200)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@fuzz(60)
@given(items=st.lists(ooni_measurements() | json_values, max_size=4),
       suffix=st.sampled_from([".json", ".jsonl", ".json.gz", ".jsonl.gz"]),
       damage=st.booleans(), noise=st.binary(max_size=200))
def test_ooni_files_yield_items_and_never_raise(items: list[Any], suffix: str, damage: bool,
                                                noise: bytes, scratch: Path) -> None:
    """read_ooni_file raises nothing: each item is a measurement or an OONIFormatError."""
    text = ("\n".join(json.dumps(i) for i in items) if suffix.startswith(".jsonl")
            else json.dumps(items)).encode()
    raw = text + noise if damage else text
    data = gzip.compress(raw) if suffix.endswith(".gz") else raw
    if damage and suffix.endswith(".gz"):
        data = data[: len(data) * 3 // 4]
    path = scratch / f"m{suffix}"
    path.write_bytes(data)
    found, peak = bounded(lambda: list(read_ooni_file(path)))
    assert isinstance(found, list)
    assert all(isinstance(i, (OONIMeasurement, OONIFormatError)) for i in found)
    assert len(found) <= raw.count(b"\n") + max(len(items), 1)
    assert_bounded(peak, len(raw), floor=512 << 10, per_byte=200)


# --- target lists --------------------------------------------------------------------------------

list_lines = st.one_of(
    st.sampled_from(["https://news.example/", "http://a.example/x?y=1", "chat.example",
                     "tcp://198.51.100.7:443", "tls://[2001:db8::1]:443", "# a comment", "",
                     "xn--bcher-kva.example", "https://xn--zz.example/", "http://[::1%eth0]/"]),
    st.text(max_size=60))


@fuzz(80)
@given(lines=st.lists(list_lines, max_size=12), kind=st.sampled_from(["txt", "csv"]))
def test_target_lists_load_or_name_the_line(lines: list[str], kind: str, scratch: Path) -> None:
    """load_targets raises only TargetError (one line) for a txt or Citizen Lab CSV list."""
    if kind == "csv":
        lines = ["url,category_code,category_description,date_added,source,notes",
                 *(f"{line},NEWS,News,2020-01-01,,x" for line in lines)]
    path = scratch / f"list.{kind}"
    text = "\n".join(lines)
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result, peak = bounded(lambda: load_targets([str(path)], catalogue=[]),
                           CONTRACTS["targets.loaders.load_targets"])
    if isinstance(result, TargetError):
        assert "\n" not in str(result)
    else:
        assert len(result) <= len(lines)  # type: ignore[arg-type]
    assert_bounded(peak, len(text.encode("utf-8", "surrogatepass")), floor=256 << 10,
                   per_byte=300)


toml_strings = st.text(max_size=30).map(json.dumps)
toml_values = st.one_of(toml_strings, st.integers().map(str),
                        st.lists(toml_strings, max_size=3).map(lambda v: f"[{', '.join(v)}]"),
                        st.text(max_size=20))


@st.composite
def toml_catalogues(draw: st.DrawFn) -> str:
    """Platform tables with right or wrong keys and values, and a little raw noise."""
    tables = []
    for _ in range(draw(st.integers(0, 3))):
        fields = {"name": draw(st.sampled_from(['"news"', '"x-y"']) | toml_values),
                  "category": draw(st.sampled_from(['"news"', '"messaging"']) | toml_values),
                  "description": draw(st.just('"a site"') | toml_values),
                  "endpoints": draw(st.just('["https://news.example/"]') | toml_values)}
        keys = draw(st.lists(st.sampled_from([*fields, "extra"]), unique=True, max_size=5))
        tables.append("[[platform]]\n" + "".join(
            f"{key} = {fields.get(key, draw(toml_values))}\n" for key in keys))
    return "\n".join(tables) + draw(st.just("") | st.text(max_size=30))


@fuzz(80)
@given(text=toml_catalogues())
def test_toml_target_files_load_or_name_the_line(text: str, scratch: Path) -> None:
    """load_targets raises only TargetError (one line) for a TOML catalogue."""
    path = scratch / "platforms.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    result, peak = bounded(lambda: load_targets([str(path)], catalogue=[]),
                           CONTRACTS["targets.loaders.load_targets"])
    if isinstance(result, TargetError):
        assert "\n" not in str(result)
    assert_bounded(peak, len(text.encode("utf-8", "surrogatepass")), floor=256 << 10,
                   per_byte=400)


# --- requests to the helper ----------------------------------------------------------------------

HELPER = HelperConfig(max_targets=5, max_addresses=3)
helper_urls = st.sampled_from(["https://news.example/", "http://10.0.0.1/",
                               "tcp://198.51.100.7:443"]) | st.text(max_size=30)
helper_addresses = st.lists(st.ip_addresses().map(str) | st.text(max_size=20), max_size=5)
helper_items = st.one_of(
    st.fixed_dictionaries({"url": helper_urls, "addresses": helper_addresses}), json_values)


@fuzz(150)
@given(body=st.one_of(
    st.lists(helper_items, max_size=7).map(lambda items: json.dumps({"targets": items}).encode()),
    st.binary(max_size=300), json_values.map(lambda v: json.dumps(v).encode())))
def test_helper_requests_parse_or_are_refused_with_400(body: bytes) -> None:
    """parse_request raises only RequestError(400); what it accepts respects the limits."""
    result, peak = bounded(lambda: parse_request(body, HELPER),
                           CONTRACTS["services.helper_protocol.parse_request"])
    if isinstance(result, RequestError):
        assert result.status == 400 and "\n" not in str(result)
    else:
        assert isinstance(result, list) and len(result) <= HELPER.max_targets
        assert all(len(item.addresses) <= HELPER.max_addresses for item in result)
    assert_bounded(peak, len(body), floor=128 << 10, per_byte=300)


# --- evidence bundles and the collector ----------------------------------------------------------

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


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


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



# --- nesting: a parser that recurses meets a document nested deeper than Python's stack ----------

depths = st.integers(1, 5000) | st.sampled_from([1000, 3000])


@fuzz(15)
@given(depth=depths | st.just(200_000))
def test_deep_json_in_a_helper_request_is_a_400(depth: int) -> None:
    """parse_request: RequestError(400), whatever the depth."""
    with pytest.raises(RequestError) as refused:
        parse_request(b'{"targets": ' + b"[" * depth, HELPER)
    assert refused.value.status == 400


@fuzz(15)
@given(depth=depths | st.just(200_000), suffix=st.sampled_from([".json", ".jsonl"]))
def test_deep_json_in_an_ooni_file_is_a_format_error(depth: int, suffix: str,
                                                     scratch: Path) -> None:
    """read_ooni_file: one OONIFormatError for the deep item, nothing raised."""
    path = scratch / f"deep{suffix}"
    path.write_text("[" * depth + "]" * depth + "\n")
    found = list(read_ooni_file(path))
    assert all(isinstance(item, OONIFormatError) for item in found)
    assert len(found) == (0 if depth == 1 and suffix == ".json" else 1)  # "[]": no measurement


@pytest.mark.xfail(strict=True, raises=RecursionError,
                   reason="issue 11 section 6: deep TOML nesting, being fixed on branch holes")
@fuzz(10)
@given(depth=depths)
@example(depth=3000)
def test_deep_toml_in_a_target_file_is_a_target_error(depth: int, scratch: Path) -> None:
    """load_targets: TargetError naming the file and line, whatever the depth."""
    path = scratch / "deep.toml"
    path.write_text("[[platform]]\nname = " + "[\n" * depth + "]\n" * depth)
    with pytest.raises(TargetError):
        load_targets([str(path)], catalogue=[])


def _deep_records(genuine: dict[str, bytes], depth: int) -> bytes:
    """The genuine bundle with a first records.jsonl line of `depth` open brackets."""
    members = {name: (b"[" * depth + b"\n" + data if name.endswith("/data/records.jsonl")
                      else data) for name, data in genuine.items()}
    return zip_bytes(members)


@pytest.mark.xfail(strict=True, raises=RecursionError,
                   reason="issue 11 section 6: deep JSON in a bundle, being fixed on branch bounds")
@fuzz(10)
@given(depth=depths)
@example(depth=3000)
def test_deep_json_in_a_bundle_is_a_problem(depth: int, genuine: dict[str, bytes],
                                            scratch: Path) -> None:
    """verify_bundle: a reported problem, never a RecursionError."""
    report, _ = _verify(_deep_records(genuine, depth), scratch / "deep.zip")
    assert isinstance(report, Verification) and not report.ok


@pytest.mark.xfail(strict=True, raises=RecursionError,
                   reason="issue 11 section 6: deep JSON in a bundle, being fixed on branch bounds")
@fuzz(5)
@given(depth=depths)
@example(depth=3000)
def test_deep_json_in_a_bundle_is_rejected_by_a_collector(depth: int, genuine: dict[str, bytes],
                                                          collection: Collection) -> None:
    """Collection.add: BundleRejected (a 422), never a RecursionError (a 500)."""
    with pytest.raises(BundleRejected):
        collection.add(_deep_records(genuine, depth))
