"""Loopback fake servers for the TCP, TLS and HTTP probes, their tests and the benchmark.

Every fake listens on an ephemeral port of 127.0.0.1 (or ::1) and serves from ONE shared
background thread running its own asyncio loop, so a test can call `asyncio.run` in the main
thread, and hundreds of fakes cost one thread. Use them as context managers:

    with TCPServer("reset") as server:            # RST after the first bytes (a request)
        ... connect("127.0.0.1", server.port, ...)

    with HTTPServer({"/big": "huge", "/r": redirect("/x")}, tls=pki.good()) as server:
        server.url("/big")                         # https://127.0.0.1:PORT/big

TCPServer behaviours:
    accept          accept and hold, never read
    reset           read the first bytes, then RST (SO_LINGER 0)
    reset_at_once   RST as soon as the connection is accepted
    close           read the first bytes, then close (FIN)
    stall           read everything, never answer
    garbage         read the first bytes, answer `payload` (junk by default), then close

HTTPServer routes map a path to a `Reply`, raw body bytes, or a mode name ("huge", "drip");
`redirect(location)` builds a redirect. Unknown paths get `DEFAULT_PAGE` (title "netvigil test
page"). One request per connection; every response says Connection: close.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import socket
import ssl
import struct
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar

T = TypeVar("T")

DEFAULT_TITLE = "netvigil test page"
DEFAULT_PAGE = (
    b"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>netvigil test page</title></head>"
    b"<body><p>Hello from a loopback fake.</p></body></html>\n"
)
GARBAGE = b"\x15\x03\x00\x00\x02junk that is neither TLS nor HTTP\r\n\r\n"
_HTML = (("Content-Type", "text/html; charset=utf-8"),)
_CHUNK = 64 * 1024
#: A half-closed fake keeps reading (so the kernel sends FIN, not RST) at most this long.
_LINGER = 5.0


# --- the shared loop ----------------------------------------------------------------------------


class _Background:
    """One daemon thread running an asyncio loop for every fake server."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def loop(cls) -> asyncio.AbstractEventLoop:
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                loop.set_exception_handler(_quiet_network_errors)
                thread = threading.Thread(
                    target=loop.run_forever, name="netvigil-fakes", daemon=True
                )
                thread.start()
                cls._loop = loop
            return cls._loop

    @classmethod
    def run(cls, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, cls.loop()).result(timeout)


def _quiet_network_errors(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """Clients that reset or fail TLS on purpose are the point of these fakes: no tracebacks."""
    if isinstance(context.get("exception"), OSError):
        return
    loop.default_exception_handler(context)


def _reset(writer: asyncio.StreamWriter) -> None:
    """Abort the connection with a RST: SO_LINGER with a zero timeout, then close."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


async def _half_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Send FIN, then drain what the client still sends: closing with unread data would RST."""
    with contextlib.suppress(OSError, RuntimeError):
        if writer.can_write_eof():
            writer.write_eof()
    with contextlib.suppress(OSError, TimeoutError):
        async with asyncio.timeout(_LINGER):
            while await reader.read(_CHUNK):
                pass


class _FakeServer:
    """Start/stop plumbing shared by the fakes; subclasses implement `_serve`."""

    def __init__(
        self, host: str = "127.0.0.1", tls: ssl.SSLContext | None = None, port: int = 0
    ) -> None:
        self.host = host
        self.tls = tls
        self.port = port  # 0: an ephemeral port, known after start
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._writers: set[asyncio.StreamWriter] = set()
        self._stopping: asyncio.Event | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None  # a connection callback always runs in a task
        self._tasks.add(task)
        self._writers.add(writer)
        try:
            if self._stopping is not None and not self._stopping.is_set():
                await self._serve(reader, writer)
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the client went away or misbehaved: that is its business
        except asyncio.CancelledError:
            # We cancel handlers only when stopping; asyncio (3.11) would log a traceback for a
            # cancelled connection callback, so end normally.
            pass
        finally:
            writer.close()  # graceful: what is queued is sent, then FIN (a no-op after a RST)
            self._tasks.discard(task)
            self._writers.discard(writer)

    async def _start(self) -> None:
        self._stopping = asyncio.Event()
        self._server = await asyncio.start_server(self._handle, self.host, self.port, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()  # a connection accepted but not yet served ends at once
        if self._server is not None:
            # asyncio 3.11 leaks a connection whose accept is in flight when the server closes
            # (Server._attach asserts): stop accepting, let those accepts reach their transport,
            # and only then close.
            loop = asyncio.get_running_loop()
            for sock in self._server.sockets:
                loop.remove_reader(sock.fileno())
            for _ in range(3):
                await asyncio.sleep(0)
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # a client that stopped reading must not hold us up
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    def start(self) -> None:
        _Background.run(self._start())

    def stop(self) -> None:
        _Background.run(self._stop())

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def address(self) -> str:
        return self.host


# --- TCP ----------------------------------------------------------------------------------------

TCP_BEHAVIOURS = ("accept", "reset", "reset_at_once", "close", "stall", "garbage")


class TCPServer(_FakeServer):
    """A TCP server that misbehaves in one way (see the module docstring)."""

    def __init__(self, behaviour: str, payload: bytes = GARBAGE, host: str = "127.0.0.1") -> None:
        if behaviour not in TCP_BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; one of {TCP_BEHAVIOURS}")
        super().__init__(host)
        self.behaviour = behaviour
        self.payload = payload

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        behaviour = self.behaviour
        if behaviour == "reset_at_once":
            _reset(writer)
        elif behaviour == "accept":
            assert self._stopping is not None
            await self._stopping.wait()  # held until the server stops
        elif behaviour == "stall":
            while await reader.read(_CHUNK):
                pass
        else:
            await reader.read(_CHUNK)  # the first bytes: a ClientHello, a request
            if behaviour == "reset":
                _reset(writer)
                return
            if behaviour == "garbage":
                writer.write(self.payload)
                await writer.drain()
            await _half_close(reader, writer)


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What an HTTPServer route answers.

    mode "static" sends `body`; "huge" streams `size` bytes (1 GiB by default) from one reused
    chunk, as fast as the client reads; "drip" declares `size` bytes and sends `drip_bytes`
    every `drip_interval` seconds.
    """

    status: int = 200
    body: bytes = DEFAULT_PAGE
    headers: tuple[tuple[str, str], ...] = _HTML
    mode: str = "static"
    size: int = 1 << 30
    drip_bytes: bytes = b"<p>"
    drip_interval: float = 0.2


def redirect(location: str, status: int = 302) -> Reply:
    """A redirect to `location` (sent verbatim, so tests can send broken ones too)."""
    return Reply(status=status, body=b"", headers=(*_HTML, ("Location", location)))


def page(title: str, text: str = "", status: int = 200) -> Reply:
    """A small HTML page with `title` (already HTML-escaped by the caller if need be)."""
    html = f"<html><head><title>{title}</title></head><body>{text}</body></html>"
    return Reply(status=status, body=html.encode())


_MODES = {"huge": Reply(mode="huge"), "drip": Reply(mode="drip")}
_HUGE_CHUNK = (b"<html><head><title>Huge</title></head><body>" + b"x" * _CHUNK)[:_CHUNK]


def _as_reply(spec: Reply | bytes | str) -> Reply:
    if isinstance(spec, Reply):
        return spec
    if isinstance(spec, bytes):
        return Reply(body=spec)
    return _MODES[spec]


@dataclass(frozen=True)
class SeenRequest:
    """A request the fake received: method, target, and headers as sent."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)


class HTTPServer(_FakeServer):
    """An HTTP/1.1 server (HTTPS with `tls=`) answering from `routes`; records `requests`."""

    def __init__(
        self,
        routes: Mapping[str, Reply | bytes | str] | None = None,
        tls: ssl.SSLContext | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host, tls, port)
        self.routes = {path: _as_reply(spec) for path, spec in (routes or {}).items()}
        self.requests: list[SeenRequest] = []

    def url(self, path: str = "/") -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}{path}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = [*lines[0].split(" ", 2), "", ""][:3]
        headers = tuple(
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        )
        self.requests.append(SeenRequest(method, target, headers))
        reply = self.routes.get(target) or self.routes.get(target.split("?")[0]) or Reply()
        await self._respond(reply, writer)

    async def _respond(self, reply: Reply, writer: asyncio.StreamWriter) -> None:
        length = len(reply.body) if reply.mode == "static" else reply.size
        try:
            reason = http.HTTPStatus(reply.status).phrase
        except ValueError:
            reason = "Whatever"
        head = [f"HTTP/1.1 {reply.status} {reason}"]
        head += [f"{k}: {v}" for k, v in reply.headers]
        head += [f"Content-Length: {length}", "Connection: close", "", ""]
        writer.write("\r\n".join(head).encode("latin-1"))
        if reply.mode == "static":
            writer.write(reply.body)
        elif reply.mode in ("huge", "drip"):
            huge = reply.mode == "huge"
            sent = 0
            while sent < length and not writer.is_closing():
                chunk = _HUGE_CHUNK[: length - sent] if huge else reply.drip_bytes
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                # Always yield: over TLS, asyncio neither pauses nor fails the writes of a client
                # that left until the loop has run its connection_lost, so never starve it.
                await asyncio.sleep(0 if huge else reply.drip_interval)
        await writer.drain()
