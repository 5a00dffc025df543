"""The test helper's HTTP server: a control vantage point that measures what a probe asks.

Someone on an uncensored network runs `netvigil helper serve`; probes send it the targets they
measured (`probes/control.py`) and get back the helper's own measurements in the same format.
The protocol, the safety rules and the batch measurement are in `services/helper_protocol.py`;
this module is the HTTP side: the limits on clients, the one log line per request, and `serve`.

Bounded everywhere: open connections (`max_connections`, 503 beyond), each socket read or write
(`io_timeout`), request bodies (413), targets per request (400), requests being measured at once
(503 with Retry-After), and the time per target and per request (the protocol module).
Built on the standard library's ThreadingHTTPServer: each connection has a thread, and each
request measures its batch with its own `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import signal
import socket
import socketserver
import sys
import threading
import time
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from probes.observations import utc_now
from services.helper_protocol import (
    VERSION,
    HelperConfig,
    RequestError,
    measure_batch,
    parse_request,
    reply,
)

__all__ = ["VERSION", "HelperConfig", "HelperServer", "make_server", "parse_listen", "serve"]

#: An early refusal (401, 404, 413) reads and discards at most this much of the unread body
#: first: closing a socket with unread data makes the kernel send a reset, and the client would
#: see "connection reset" instead of our answer.
DRAIN_CAP = 1 << 20
RETRY_AFTER = 5  # seconds, in a 503 "busy" answer
_BUSY_BODY = b'{"error": "busy: too many connections, retry later"}'
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
         b"Retry-After: %d\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s"
         % (RETRY_AFTER, len(_BUSY_BODY), _BUSY_BODY))


def _log(line: str) -> None:
    # Client-controlled text (a path, a bad request line) must not forge extra log lines.
    clean = "".join(c if c.isprintable() else "?" for c in line)
    sys.stderr.write(f"{utc_now()} helper: {clean}\n")
    sys.stderr.flush()


class _Handler(BaseHTTPRequestHandler):
    server: HelperServer
    protocol_version = "HTTP/1.1"
    server_version = f"netvigil-helper/{VERSION}"
    sys_version = ""

    def setup(self) -> None:
        self._started = time.monotonic()
        self._note = ""
        self._unread: int | None = None  # body bytes not read yet (None: not known yet)
        super().setup()
        # Every read and write with the client: a stalled client is dropped, not waited for.
        self.connection.settimeout(self.server.config.io_timeout)

    # --- answers and the log ---

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line of our own per request, in _reply

    def log_message(self, format: str, *args: Any) -> None:
        _log(format % args)  # what http.server reports itself: timeouts, bad request lines

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (bad request line, unknown method) in our JSON shape.
        self._reply(code, {"error": message or HTTPStatus(code).phrase})

    def _reply(self, status: int, payload: dict[str, Any],
               headers: tuple[tuple[str, str], ...] = ()) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # one request per connection: simple, bounded
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(body)
        except OSError:
            self._note += " (client gone before the answer)"
        path = (getattr(self, "path", "") or "-").split("?")[0][:100]
        _log(f"{getattr(self, 'command', None) or '-'} {path} {status}{self._note} "
             f"{time.monotonic() - self._started:.2f}s")

    # --- routes ---

    def do_GET(self) -> None:
        if self.path == "/v1/health":
            self._reply(200, {"ok": True, "version": VERSION})
        elif self.path == "/v1/whoami":
            # The caller's own address, as this helper sees it, so the probe can name its network
            # (ASN, country) from a local table. The helper keeps no record of it.
            self._reply(200, {"address": str(self.client_address[0])})
        else:
            self._reply(404, {"error": f"not found; the helper serves GET /v{VERSION}/health, "
                                       f"GET /v{VERSION}/whoami and POST /v{VERSION}/measure"})

    def do_POST(self) -> None:
        try:
            status, payload = 200, self._measure()
            headers: tuple[tuple[str, str], ...] = ()
        except RequestError as exc:
            status, payload = exc.status, {"error": str(exc)}
            headers = (("Retry-After", str(exc.retry_after)),) if exc.retry_after else ()
            self._drain()
        except Exception:  # a bug: answer 500 rather than drop the connection without a word
            traceback.print_exc(file=sys.stderr)
            status, payload, headers = 500, {"error": "internal error in the helper"}, ()
        self._reply(status, payload, headers)

    def _measure(self) -> dict[str, Any]:
        config = self.server.config
        if self.path != f"/v{VERSION}/measure":
            raise RequestError(404, f"not found; POST /v{VERSION}/measure")
        if config.token and not hmac.compare_digest(
            self.headers.get("Authorization", "").encode("utf-8", "replace"),
            f"Bearer {config.token}".encode("utf-8", "replace"),
        ):
            raise RequestError(401, "a valid 'Authorization: Bearer TOKEN' header is required")
        length = self._declared_length()
        if length is None:
            raise RequestError(411, "a Content-Length header is required (no chunked bodies)")
        if length > config.max_body:
            raise RequestError(413, f"the body is larger than {config.max_body} bytes; "
                                    "send fewer targets at a time")
        items = parse_request(self._read(length), config)
        if not self.server.slots.acquire(blocking=False):
            raise RequestError(503, "busy: too many requests at once, retry later", RETRY_AFTER)
        try:
            measurements, refused = asyncio.run(measure_batch(items, config))
        finally:
            self.server.slots.release()
        self._note = f" targets={len(items)} refused={len(refused)}"
        if config.verbose:
            self._note += " urls=" + ",".join(item.target.url for item in items)
        return reply(config, measurements, refused)

    # --- the body ---

    def _declared_length(self) -> int | None:
        if "Transfer-Encoding" in self.headers:
            return None
        text = self.headers.get("Content-Length", "")
        # ASCII digits only ("²".isdigit() is true), and short enough to be a sane number.
        return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None

    def _read(self, length: int) -> bytes:
        try:
            body = self.rfile.read(length)
        except OSError:  # the socket timeout: a client that stalls mid-body
            self.close_connection = True
            raise RequestError(408, "the body did not arrive in time") from None
        finally:
            self._unread = 0
        if len(body) < length:
            raise RequestError(400, "the body is shorter than its Content-Length")
        return body

    def _drain(self) -> None:
        """Discard a bounded part of an unread body before an early answer (see DRAIN_CAP)."""
        left = self._unread
        if left is None:
            left = self._declared_length() or 0
        left = min(left, DRAIN_CAP)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 64 * 1024))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass


class HelperServer(ThreadingHTTPServer):
    """The helper's HTTP server. `.port` is the bound port (useful with port 0); as a context
    manager it serves from a background thread until the block ends."""

    daemon_threads = True  # a stuck client thread must not keep the process alive at exit
    request_queue_size = 64

    def __init__(self, host: str, port: int, config: HelperConfig) -> None:
        self.config = config
        self.slots = threading.BoundedSemaphore(config.max_concurrent_requests)
        self.connections = threading.BoundedSemaphore(config.max_connections)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks getfqdn(host): a DNS lookup we neither need nor want.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.port

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.acquire(blocking=False):
            try:  # answered from the accepting thread, so keep it tiny and bounded
                request.settimeout(1.0)
                request.sendall(_BUSY)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.connections.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback naming the client's address; one line is enough.
        error = sys.exc_info()[1]
        _log(f"connection error: {type(error).__name__}")

    def __enter__(self) -> HelperServer:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         name="helper", daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()


def make_server(host: str, port: int, config: HelperConfig) -> HelperServer:
    """A helper bound to host:port (port 0 picks a free one); serve_forever(), or use `with`."""
    return HelperServer(host, port, config)


def parse_listen(spec: str) -> tuple[str, int]:
    """"HOST:PORT" or "[IPv6]:PORT" -> (host, port). The host must be an IP address (or
    localhost): binding never needs a name lookup. Raises ValueError."""
    host, sep, port = spec.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address is ambiguous: its last group could be the port
    if host == "localhost":
        host = "127.0.0.1"
    try:
        ipaddress.ip_address(host)
        if not sep or not port.isdigit() or int(port) > 65535:
            raise ValueError
    except ValueError:
        raise ValueError(f"--listen {spec!r}: expected IP:PORT, e.g. 127.0.0.1:8080, "
                         "0.0.0.0:8080 or [::]:8080") from None
    return host, int(port)


def serve(listen: str, config: HelperConfig) -> int:
    """Run the helper on `listen` ("HOST:PORT") until SIGTERM or SIGINT; the exit status.

    Prints "helper listening on HOST:PORT" to stderr once it accepts connections.
    2: a bad `listen`; 1: the address cannot be bound; 0: a clean stop.
    """
    try:
        host, port = parse_listen(listen)
        server = make_server(host, port, config)
    except ValueError as exc:
        print(f"netvigil helper: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"netvigil helper: cannot listen on {listen}: {exc.strerror or exc}",
              file=sys.stderr)
        return 1

    def stop(signum: int, frame: FrameType | None) -> None:
        # shutdown() waits for serve_forever to return: it must not run in serve_forever's thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():  # signals need the main thread
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, stop)
    shown = f"[{host}]" if ":" in host else host
    mode = ", private addresses allowed" if config.allow_private else ""
    print(f"helper listening on {shown}:{server.port} (resolver: {config.resolver or 'system'}"
          f"{mode})", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("helper stopped", file=sys.stderr, flush=True)
    return 0
