"""Bounded JSON-over-HTTP/1.1 servers on the standard library: what the test helper
(`services.helper_server`) and the collector (`services.collector_server`) share.

Bounded everywhere: open connections, overall (`max_connections`) and per client address
(`max_connections_per_address`), 503 beyond, answered from the accepting thread; each socket read
or write (`io_timeout`); the whole request head (`head_deadline`) and body (`body_deadline`),
however slowly they trickle in (`services.http_limits`); request bodies (the caller's limit, 413);
and the work done at once (`slots`, 503 with Retry-After). One connection, one request, one log
line; every answer is JSON, errors are {"error": "one line"}. Client-controlled text never forges
a log line. `serve` runs a server until SIGTERM or SIGINT.
"""

from __future__ import annotations

import hmac
import io
import ipaddress
import json
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from core.errors import ConfigError, RequestError
from core.times import utc_now
from presentation.safe_text import printable
from services.http_limits import RETRY_AFTER, Admission, DeadlineReader, ServerLimits

#: An early refusal (401, 404, 413) reads and discards at most this much of the unread body
#: first: closing a socket with unread data makes the kernel send a reset, and the client would
#: see "connection reset" instead of our answer.
DRAIN_CAP = 1 << 20
__all__ = ["RETRY_AFTER", "BoundedServer", "JSONHandler", "log_line", "parse_listen", "serve"]


def log_line(name: str, line: str) -> None:
    """One line on stderr, stamped and named; what a terminal would obey is shown escaped (a
    request's path is anyone's text), as everywhere we print (`presentation.safe_text`)."""
    sys.stderr.write(f"{utc_now()} {name}: {printable(line)}\n")
    sys.stderr.flush()


class JSONHandler(BaseHTTPRequestHandler):
    """The request side: JSON answers, the log line, bounded body reads, bearer tokens."""

    server: BoundedServer
    protocol_version = "HTTP/1.1"
    sys_version = ""

    def setup(self) -> None:
        self._started = time.monotonic()
        self._note = ""
        self._unread: int | None = None  # body bytes not read yet (None: not known yet)
        config = self.server.config
        if isinstance(self.request, ssl.SSLSocket):
            # TLS (BoundedServer.tls): the handshake first, bounded like every read. A plain
            # HTTP client or a failed handshake ends here, as one line in the server's log.
            self.request.settimeout(config.io_timeout)
            self.request.do_handshake()
        super().setup()
        # Every read and write with the client: a stalled client is dropped, not waited for.
        self.connection.settimeout(config.io_timeout)
        # ... and a trickling one too: all reads of the head end by its deadline (then the body's,
        # see parse_request). The socket's own file is closed first, or the socket would stay
        # open (referenced) after the connection ends.
        self.rfile.close()
        self._reader = DeadlineReader(self.connection, config.io_timeout,
                                      self._started + config.head_deadline)
        self.rfile = io.BufferedReader(self._reader)

    def parse_request(self) -> bool:
        # Called by http.server once the request line is read; it reads the headers. Whatever is
        # read after them (the body, or what is drained of it) is bounded by the body's deadline.
        parsed = super().parse_request()
        self._reader.deadline = time.monotonic() + self.server.config.body_deadline
        return parsed

    # --- answers and the log ---

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass  # one line of our own per request, in reply

    def log_message(self, format: str, *args: Any) -> None:
        # What http.server reports itself: timeouts, bad request lines.
        log_line(self.server.log_name, format % args)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server's own refusals (bad request line, unknown method) in our JSON shape.
        self.reply(code, {"error": message or HTTPStatus(code).phrase})

    def reply(self, status: int, payload: dict[str, Any],
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
        log_line(self.server.log_name, f"{getattr(self, 'command', None) or '-'} {path} "
                 f"{status}{self._note} {time.monotonic() - self._started:.2f}s")

    def refuse(self, exc: RequestError) -> None:
        """Answer a refused request, after draining what is left of its body."""
        headers = (("Retry-After", str(exc.retry_after)),) if exc.retry_after else ()
        self.drain()
        self.reply(exc.status, {"error": str(exc)}, headers)

    # --- checks and the body ---

    def require_token(self, tokens: tuple[str, ...]) -> None:
        """RequestError 401 unless the request carries one of `tokens` (none: anyone)."""
        if not tokens:
            return
        given = self.headers.get("Authorization", "").encode("utf-8", "replace")
        # Every token is compared, in constant time each, so timing tells nothing.
        matches = [hmac.compare_digest(given, f"Bearer {t}".encode("utf-8", "replace"))
                   for t in tokens]
        if not any(matches):
            raise RequestError(401, "a valid 'Authorization: Bearer TOKEN' header is required")

    def declared_length(self) -> int | None:
        if "Transfer-Encoding" in self.headers:
            return None
        text = self.headers.get("Content-Length", "")
        # ASCII digits only ("²".isdigit() is true), and short enough to be a sane number.
        return int(text) if text.isascii() and text.isdigit() and len(text) < 19 else None

    def read_body(self, limit: int, too_big: str) -> bytes:
        """The whole body: 411 without a Content-Length, 413 (with `too_big`) beyond `limit`,
        408 if it stalls, 400 if it is cut short."""
        length = self.declared_length()
        if length is None:
            raise RequestError(411, "a Content-Length header is required (no chunked bodies)")
        if length > limit:
            raise RequestError(413, f"the body is larger than {limit} bytes; {too_big}")
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

    def drain(self) -> None:
        """Discard a bounded part of an unread body before an early answer (see DRAIN_CAP)."""
        left = self._unread
        if left is None:
            left = self.declared_length() or 0
        left = min(left, DRAIN_CAP)
        try:
            while left > 0:
                chunk = self.rfile.read(min(left, 64 * 1024))
                if not chunk:
                    break
                left -= len(chunk)
        except OSError:
            pass


class BoundedServer(ThreadingHTTPServer):
    """A threaded server with a cap on connections and on concurrent work (`slots`). `.port` is
    the bound port (useful with port 0); as a context manager it serves from a background thread
    until the block ends."""

    daemon_threads = True  # a stuck client thread must not keep the process alive at exit
    request_queue_size = 64
    log_name = "server"

    def __init__(self, host: str, port: int, config: Any,
                 handler: type[JSONHandler], tls: ssl.SSLContext | None = None) -> None:
        limits: ServerLimits = config
        self.config = config
        self.tls = tls  # a server-side context: serve HTTPS (see get_request)
        self.slots = threading.BoundedSemaphore(config.max_concurrent_requests)
        self.admission = Admission(limits.max_connections, limits.max_connections_per_address)
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind asks getfqdn(host): a DNS lookup we neither need nor want.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), self.port

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def get_request(self) -> tuple[Any, Any]:
        request, client_address = super().get_request()
        if self.tls is not None:
            # The handshake waits for the client's first read in the handler's thread (under
            # its io_timeout, see JSONHandler.setup), never here: a client that connects and
            # stays silent must not hold up the accepting thread.
            request = self.tls.wrap_socket(request, server_side=True,
                                           do_handshake_on_connect=False)
        return request, client_address

    def process_request(self, request: Any, client_address: Any) -> None:
        busy = self.admission.admit(client_address[0])
        if busy is not None:
            try:  # answered from the accepting thread, so keep it tiny and bounded
                request.settimeout(1.0)
                request.sendall(busy)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.admission.release(client_address[0])
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.admission.release(client_address[0])

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback naming the client's address; one line is enough.
        error = sys.exc_info()[1]
        log_line(self.log_name, f"connection error: {type(error).__name__}")

    def __enter__(self) -> BoundedServer:
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05},
                         name=self.log_name, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()


def parse_listen(spec: str) -> tuple[str, int]:
    """"HOST:PORT" or "[IPv6]:PORT" -> (host, port). The host must be an IP address (or
    localhost): binding never needs a name lookup. Raises ConfigError."""
    host, sep, port = spec.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # a bare IPv6 address is ambiguous: its last group could be the port
    if host == "localhost":
        host = "127.0.0.1"
    valid = bool(sep) and port.isdigit() and int(port) <= 65535
    try:
        ipaddress.ip_address(host)
    except ValueError:
        valid = False
    if not valid:
        raise ConfigError(f"--listen {spec!r}: expected IP:PORT, e.g. 127.0.0.1:8080, "
                          "0.0.0.0:8080 or [::]:8080", "--listen")
    return host, int(port)


def serve(name: str, listen: str, make: Any, describe: str = "") -> int:
    """Run `make(host, port)` (a BoundedServer) on `listen` until SIGTERM or SIGINT.

    Prints "NAME listening on HOST:PORT (DESCRIBE)" to stderr once it accepts connections.
    Returns the exit status: 2 for a bad `listen`, 1 if the address cannot be bound, else 0.
    """
    try:
        host, port = parse_listen(listen)
        server = make(host, port)
    except ValueError as exc:
        print(f"netvigil {name}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"netvigil {name}: cannot listen on {listen}: {exc.strerror or exc}",
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
    extra = f" ({describe})" if describe else ""
    print(f"{name} listening on {shown}:{server.port}{extra}", file=sys.stderr, flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print(f"{name} stopped", file=sys.stderr, flush=True)
    return 0
