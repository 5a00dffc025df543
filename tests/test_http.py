"""The HTTP probe against loopback fakes: plain and over TLS, well-behaved and hostile."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import time
from pathlib import Path

import pytest

from core import failures
from core.html_title import extract_title
from core.observations import HTTPRequest, observation_from_dict, observation_to_dict
from core.times import Clock
from probes import http, tcp, tls
from probes.config import ProbeConfig, Timeouts
from tests.fakes.certs import FakePKI
from tests.fakes.servers import (
    DEFAULT_PAGE,
    DEFAULT_TITLE,
    HTTPServer,
    Reply,
    TCPServer,
    page,
    redirect,
)

CONFIG = ProbeConfig(timeouts=Timeouts(http=2.0, http_body=2.0))
SNI = "example.test"


def _fetch(
    port: int,
    url: str,
    config: ProbeConfig = CONFIG,
    tls_bundle: str | None = None,
) -> HTTPRequest:
    """Connect to 127.0.0.1:`port` (TLS with `tls_bundle`), GET `url`, close, return the record."""

    async def main() -> HTTPRequest:
        clock = Clock()
        connect, stream = await tcp.connect("127.0.0.1", port, clock, 2.0)
        assert connect.failure is None and stream is not None
        try:
            if tls_bundle is not None:
                obs, tls_stream = await tls.handshake(
                    stream, "127.0.0.1", port, SNI, clock, 2.0, ca_bundle=tls_bundle
                )
                assert tls_stream is not None, obs.failure
                stream = tls_stream
            return await http.fetch(stream, url, "127.0.0.1", port, clock, config)
        finally:
            await stream.close()

    return asyncio.run(main())


def _get(server: HTTPServer, path: str = "/", config: ProbeConfig = CONFIG) -> HTTPRequest:
    return _fetch(server.port, server.url(path), config)


def _scripted(payload: bytes, config: ProbeConfig = CONFIG) -> HTTPRequest:
    """GET from a peer that answers exactly `payload`, then closes."""
    with TCPServer("garbage", payload=payload) as server:
        return _fetch(server.port, f"http://127.0.0.1:{server.port}/", config)


def test_ok_page_with_title() -> None:
    with HTTPServer() as server:
        obs = _get(server, "/index.html")
        seen = server.requests[0]
    assert obs.failure is None
    assert obs.status == 200
    assert obs.title == DEFAULT_TITLE
    assert obs.body == DEFAULT_PAGE
    assert obs.body_length == len(DEFAULT_PAGE)
    assert obs.body_sha256 == hashlib.sha256(DEFAULT_PAGE).hexdigest()
    assert obs.body_truncated is False
    assert obs.location is None
    assert obs.header("content-type") == "text/html; charset=utf-8"
    assert ("Content-Type", "text/html; charset=utf-8") in obs.headers  # original case
    assert obs.goodput is None or obs.goodput > 0
    assert (obs.url, obs.address, obs.port, obs.method) == (
        server.url("/index.html"),
        "127.0.0.1",
        server.port,
        "GET",
    )
    assert 0 <= obs.t0 <= obs.t
    # What we recorded is what the server received.
    assert seen.target == "/index.html"
    assert seen.headers == obs.request_headers
    assert seen.header("Host") == f"127.0.0.1:{server.port}"
    assert seen.header("User-Agent") == CONFIG.user_agent
    assert seen.header("Accept-Encoding") == "identity"
    assert seen.header("Connection") == "close"


def test_host_header_omits_the_default_port() -> None:
    def host(url: str) -> str:
        return dict(http.request_headers(url, CONFIG))["Host"]

    assert host("http://example.com:80/") == "example.com"
    assert host("https://example.com:443/x") == "example.com"
    assert host("https://example.com:8443/x") == "example.com:8443"
    assert host("http://[::1]:8080/") == "[::1]:8080"


@pytest.mark.parametrize(
    ("location", "expected"),
    [
        ("/next?a=1", "http://127.0.0.1:{port}/next?a=1"),
        ("https://example.org/", "https://example.org/"),
        ("//example.org/a b", "http://example.org/a%20b"),
    ],
)
def test_redirect_location_is_absolute(location: str, expected: str) -> None:
    with HTTPServer({"/r": redirect(location, status=301)}) as server:
        obs = _get(server, "/r")
    assert obs.failure is None
    assert obs.status == 301
    assert obs.location == expected.format(port=server.port)


@pytest.mark.parametrize("location", ["", "   ", "http://[::1", "ftp://example.org/", "http://"])
def test_unusable_redirect_location(location: str) -> None:
    with HTTPServer({"/r": redirect(location)}) as server:
        obs = _get(server, "/r")
    assert obs.status == 302
    assert obs.failure == failures.HTTP_INVALID_REDIRECT
    assert obs.location is None


def test_huge_body_is_capped_fast() -> None:
    with HTTPServer({"/big": "huge"}) as server:
        started = time.monotonic()
        obs = _get(server, "/big")
        elapsed = time.monotonic() - started
    assert obs.failure is None
    assert obs.status == 200
    assert obs.body_truncated is True
    assert len(obs.body) == CONFIG.body_cap < 1.2 * (1 << 20)
    assert obs.body_length >= len(obs.body)
    assert obs.body_sha256 == hashlib.sha256(obs.body).hexdigest()
    assert obs.title == "Huge"
    assert obs.goodput is not None and obs.goodput > 0
    assert elapsed < 3.0


def test_drip_body_times_out_with_the_partial_body() -> None:
    config = ProbeConfig(timeouts=Timeouts(http=2.0, http_body=0.5))
    with HTTPServer({"/drip": "drip"}) as server:
        started = time.monotonic()
        obs = _get(server, "/drip", config)
        elapsed = time.monotonic() - started
    assert obs.failure == failures.GENERIC_TIMEOUT
    assert obs.status == 200
    assert obs.body.startswith(b"<p>")  # a few drips, not the declared 1 GiB
    assert obs.body_length == len(obs.body) < 100
    assert obs.body_truncated is True
    assert obs.body_sha256 == hashlib.sha256(obs.body).hexdigest()
    assert 0.45 <= elapsed < 2.0


@pytest.mark.parametrize(
    ("behaviour", "expected"),
    [
        ("reset", failures.CONNECTION_RESET),  # RST once the request arrived
        ("close", failures.EOF_ERROR),  # FIN before any response
        ("garbage", failures.HTTP_PROTOCOL_ERROR),  # bytes that are not HTTP
    ],
)
def test_broken_peers(behaviour: str, expected: str) -> None:
    with TCPServer(behaviour) as server:
        obs = _fetch(server.port, f"http://127.0.0.1:{server.port}/")
    assert obs.failure == expected
    assert obs.status is None
    assert obs.body == b"" and obs.body_sha256 is None


def test_stall_before_headers_times_out() -> None:
    config = ProbeConfig(timeouts=Timeouts(http=0.3, http_body=5.0))
    with TCPServer("stall") as server:
        started = time.monotonic()
        obs = _fetch(server.port, f"http://127.0.0.1:{server.port}/", config)
        elapsed = time.monotonic() - started
    assert obs.failure == failures.GENERIC_TIMEOUT
    assert obs.status is None
    assert 0.25 <= elapsed < 2.0


@pytest.mark.parametrize(
    "payload",
    [
        b"HTTP/1.1 abc\r\n\r\n",  # looks like HTTP, is not
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ],
)
def test_malformed_responses(payload: bytes) -> None:
    assert _scripted(payload).failure == failures.HTTP_PROTOCOL_ERROR


def test_close_in_the_middle_of_the_body_is_eof() -> None:
    obs = _scripted(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
    assert obs.failure == failures.EOF_ERROR
    assert obs.status == 200
    assert obs.body == b"short" and obs.body_truncated is True


def test_close_in_the_middle_of_the_head_is_eof() -> None:
    obs = _scripted(b"HTTP/1.1 200 OK\r\nContent-")
    assert obs.failure == failures.EOF_ERROR
    assert obs.status is None


@pytest.mark.parametrize(
    ("payload", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", b"hello"),
        (b"HTTP/1.0 200 OK\r\n\r\nuntil the close", b"until the close"),
        (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n"
            b"Content-Length: 2\r\n\r\nok",
            b"ok",
        ),
    ],
)
def test_framings(payload: bytes, body: bytes) -> None:
    obs = _scripted(payload)
    assert obs.failure is None
    assert obs.status == 200
    assert obs.body == body and obs.body_length == len(body)
    assert obs.body_truncated is False


def test_headers_are_bounded() -> None:
    headers = tuple((f"X-Header-{i}", str(i)) for i in range(150))
    reply = Reply(body=b"ok", headers=(("X-Big", "v" * 20000), *headers))
    with HTTPServer({"/": reply}) as server:
        obs = _get(server)
    assert obs.failure is None
    assert len(obs.headers) == http.MAX_HEADERS
    assert obs.headers[0] == ("X-Big", "v" * http.MAX_HEADER_VALUE)


def test_title_through_the_server() -> None:
    routes = {
        "/esc": page("  A &amp;\n\t B  "),
        "/plain": Reply(body=b"<title>not html</title>", headers=(("Content-Type", "text/plain"),)),
    }
    with HTTPServer(routes) as server:
        assert _get(server, "/esc").title == "A & B"
        assert _get(server, "/plain").title is None


def test_extract_title_is_bounded() -> None:
    assert extract_title(b"<html><body>no title</body></html>") is None
    assert extract_title(b"<TITLE lang='en'>Upper</TITLE>") == "Upper"
    assert extract_title(b"<titlefoo>x</titlefoo><title>real</title>") == "real"
    assert extract_title(b"<title>unclosed") is None
    assert extract_title(b"<title>" + b"x" * 1000 + b"</title>") == "x" * 300
    assert extract_title(b"<title>caf\xe9</title>", "text/html; charset=latin-1") == "café"
    assert extract_title(b"<title>caf\xc3\xa9</title>", "text/html; charset=bogus") == "café"
    late = b" " * (300 * 1024) + b"<title>too late</title>"
    assert extract_title(late) is None


def test_https_end_to_end(tmp_path: Path) -> None:
    pki = FakePKI()
    bundle = pki.write_ca_bundle(tmp_path)
    with HTTPServer({"/big": "huge"}, tls=pki.good()) as server:
        obs = _fetch(server.port, f"https://{SNI}:{server.port}/", tls_bundle=bundle)
        big = _fetch(server.port, f"https://{SNI}:{server.port}/big", tls_bundle=bundle)
        seen = server.requests[0]
    assert obs.failure is None
    assert obs.status == 200 and obs.title == DEFAULT_TITLE and obs.body == DEFAULT_PAGE
    assert seen.header("Host") == f"{SNI}:{server.port}"
    assert big.failure is None and big.body_truncated and len(big.body) == CONFIG.body_cap


def test_rejects_urls_it_cannot_request() -> None:
    async def main(url: str) -> None:
        with TCPServer("accept") as server:
            _, stream = await tcp.connect("127.0.0.1", server.port, Clock(), 2.0)
            assert stream is not None
            try:
                await http.fetch(stream, url, "127.0.0.1", server.port, Clock(), CONFIG)
            finally:
                await stream.close()

    for url in ("ftp://example.org/", "/relative", "http:///nohost"):
        with pytest.raises(ValueError):
            asyncio.run(main(url))


def test_http_request_round_trips_through_dicts() -> None:
    with HTTPServer({"/r": redirect("/next")}) as server:
        obs = _get(server)
        hop = _get(server, "/r")
    for record in (obs, hop):
        again = observation_from_dict(observation_to_dict(record))
        assert again == record
    assert isinstance(again, HTTPRequest) and again.location == hop.location
    first = observation_from_dict(observation_to_dict(obs))
    assert isinstance(first, HTTPRequest) and first.body == DEFAULT_PAGE


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://Example.COM", "http://example.com/"),
        ("https://user:pw@example.com:8443/a b?q=ü#f", "https://example.com:8443/a%20b?q=%C3%BC#f"),
        ("http://bücher.example/", "http://xn--bcher-kva.example/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x"),
        ("http://exa mple.com/", None),
        ("http://bad..name/", None),
        ("http://.lead/", None),
        ("http://fqdn.example./", "http://fqdn.example./"),
        ("http://[zz::1]/", None),
        ("http://example.com:99999/", None),
        ("http://example.com/\x00", None),
        ("mailto:someone@example.com", None),
    ],
)
def test_normalise_url(url: str, expected: str | None) -> None:
    assert http.normalise_url(url) == expected


def test_scheme_only_location_is_not_the_base() -> None:
    base = "http://example.com/here"
    assert http.redirect_location(base, "http://") is None
    assert http.redirect_location(base, "http:other") is None
    assert http.redirect_location(base, "../up") == "http://example.com/up"


class ScriptedStream:
    """A ByteStream that returns scripted chunks, or raises scripted exceptions, in order."""

    def __init__(self, *script: bytes | BaseException) -> None:
        self.script = list(script)
        self.written = b""

    async def read(self, max_bytes: int) -> bytes:
        item = self.script.pop(0) if self.script else b""
        if isinstance(item, BaseException):
            raise item
        return item

    async def write(self, data: bytes) -> None:
        self.written += data

    async def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionResetError(), failures.CONNECTION_RESET),
        (
            ssl.SSLError(1, "[SSL: DECRYPTION_FAILED_OR_BAD_RECORD_MAC] bad record"),
            failures.SSL_FAILED_HANDSHAKE,
        ),
    ],
)
def test_failure_in_the_middle_of_the_body_keeps_the_partial_body(
    error: BaseException, expected: str
) -> None:
    stream = ScriptedStream(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\npart", error)
    url = "http://example.com/"
    obs = asyncio.run(http.fetch(stream, url, "192.0.2.1", 80, Clock(), CONFIG))
    assert stream.written.startswith(b"GET / HTTP/1.1\r\nHost: example.com\r\n")
    assert obs.failure == expected
    assert obs.status == 200
    assert obs.body == b"part" and obs.body_truncated is True
