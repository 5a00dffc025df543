"""Issue 11, section 7: every parser of what the network and other people's files send.

DNS replies, HTTP responses (`fetch` over an in-memory stream), URLs and titles from pages, OONI
measurements and files, target lists (txt, CSV, TOML) and the test helper's requests, driven by
Hypothesis with random and near-genuine inputs (a real reply, response, measurement or list with
a few bytes or fields changed). Each test names the error type its parser may raise (CONTRACTS in
`tests.fakes.fuzzing`) and bounds its allocation per input byte, never its time. Bundles and the
collector are `tests/test_untrusted_fuzz_bundles.py`.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdata
import dns.rrset
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core import html_title
from core.errors import OONIFormatError, RequestError, TargetError
from core.observations import HTTPRequest
from core.times import Clock
from ooni.read import OONIMeasurement, parse_ooni, read_ooni_file
from probes import dns_wire
from probes.config import ProbeConfig
from probes.http import MAX_HEADER_VALUE, MAX_HEADERS, fetch, normalise_url, redirect_location
from services.helper_protocol import HelperConfig, parse_request
from targets import catalogue  # noqa: F401 - imported on first use by the loaders; not work
from targets.loaders import load_targets
from tests.fakes.fuzzing import (
    CONTRACTS,
    assert_bounded,
    bounded,
    depths,
    fuzz,
    json_values,
    mutated,
    names,
)
from tests.test_ooni_reader import _measurement


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder for the files an example writes (each example overwrites the last)."""
    return tmp_path_factory.mktemp("fuzz")


# --- DNS replies ---------------------------------------------------------------------------------

QUERY = dns_wire.build_query("blocked.example", "A", query_id=0x1234)
# dnspython imports the module of each record type the first time it meets one: import cost,
# not work, and it would otherwise land in whichever example meets a type first.
dns.rdata.load_all_types(disable_dynamic_load=False)
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


# --- nesting: a parser that recurses meets a document nested deeper than Python's stack ----------



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
