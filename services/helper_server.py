"""The test helper's HTTP server: a control vantage point that measures what a probe asks.

Someone on an uncensored network runs `netvigil helper serve`; probes send it the targets they
measured (`probes/control.py`) and get back the helper's own measurements in the same format.
The protocol, the safety rules and the batch measurement are in `services/helper_protocol.py`;
the bounded HTTP server is `services/http_base.py`; this module is the helper's routes and
`serve`. With a certificate (`helper serve --tls-cert/--tls-key`) it serves HTTPS itself, so a
probe's bearer token never crosses the network in clear.

Bounded everywhere: open connections, overall and per client address (503 beyond), each socket
read or write (`io_timeout`), the whole head and body of a request (`head_deadline`,
`body_deadline`), request bodies (413), targets per request (400), requests being measured at once
(503 with Retry-After), and the time per target and per request (the protocol module).
Each request measures its batch with its own `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import ssl
import sys
import traceback
from typing import Any

from core.errors import RequestError
from services.helper_protocol import VERSION, HelperConfig, measure_batch, parse_request, reply
from services.http_base import RETRY_AFTER, BoundedServer, JSONHandler, parse_listen
from services.http_base import serve as serve_http

__all__ = ["VERSION", "HelperConfig", "HelperServer", "make_server", "parse_listen", "serve"]


class _Handler(JSONHandler):
    server: HelperServer
    server_version = f"netvigil-helper/{VERSION}"

    def do_GET(self) -> None:
        if self.path == "/v1/health":
            self.reply(200, {"ok": True, "version": VERSION})
        elif self.path == "/v1/whoami":
            # The caller's own address, as this helper sees it, so the probe can name its network
            # (ASN, country) from a local table. The helper keeps no record of it.
            self.reply(200, {"address": str(self.client_address[0])})
        else:
            self.reply(404, {"error": f"not found; the helper serves GET /v{VERSION}/health, "
                                      f"GET /v{VERSION}/whoami and POST /v{VERSION}/measure"})

    def do_POST(self) -> None:
        try:
            payload = self._measure()
        except RequestError as exc:
            self.refuse(exc)
            return
        except Exception:  # a bug: answer 500 rather than drop the connection without a word
            traceback.print_exc(file=sys.stderr)
            self.reply(500, {"error": "internal error in the helper"})
            return
        self.reply(200, payload)

    def _measure(self) -> dict[str, Any]:
        config = self.server.config
        if self.path != f"/v{VERSION}/measure":
            raise RequestError(404, f"not found; POST /v{VERSION}/measure")
        self.require_token((config.token,) if config.token else ())
        body = self.read_body(config.max_body, "send fewer targets at a time")
        items = parse_request(body, config)
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


class HelperServer(BoundedServer):
    """The helper's HTTP server (see `services.http_base.BoundedServer`)."""

    log_name = "helper"
    config: HelperConfig

    def __init__(self, host: str, port: int, config: HelperConfig,
                 tls: ssl.SSLContext | None = None) -> None:
        super().__init__(host, port, config, _Handler, tls)

    def __enter__(self) -> HelperServer:
        super().__enter__()
        return self


def make_server(host: str, port: int, config: HelperConfig,
                tls: ssl.SSLContext | None = None) -> HelperServer:
    """A helper bound to host:port (port 0 picks a free one); serve_forever(), or use `with`.
    With `tls` (a server-side context holding the certificate), it serves HTTPS."""
    return HelperServer(host, port, config, tls)


def serve(listen: str, config: HelperConfig, tls: ssl.SSLContext | None = None) -> int:
    """Run the helper on `listen` ("HOST:PORT") until SIGTERM or SIGINT; the exit status.

    Prints "helper listening on HOST:PORT" to stderr once it accepts connections.
    2: a bad `listen`; 1: the address cannot be bound; 0: a clean stop.
    """
    mode = ", private addresses allowed" if config.allow_private else ""
    scheme = "https" if tls is not None else "http"
    return serve_http("helper", listen, lambda host, port: make_server(host, port, config, tls),
                      f"{scheme}, resolver: {config.resolver or 'system'}{mode}")
