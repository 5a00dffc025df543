"""The collector's HTTP server: probes submit evidence bundles, researchers read the collection.

Protocol, version 1 (the client is `services.submit`):

    POST /v1/bundles   [Authorization: Bearer TOKEN]   body: an evidence bundle (zip)
        201 {"bundle": sha256, "known": false, "probes": [...], "runs", "points", "new_points"}
        200 the same with "known": true when this very bundle was received before
        422 {"error": "the bundle does not verify: ...", "problems": ["file: subject: what", ...]}
        403 {"error": "runs signed by key(s) this collector does not accept: ..."}
    GET /v1/health  ->  200 {"ok": true, "version": "1"}

    Other errors are {"error": "one line"}: 401 (token), 404, 408 (body too slow), 411 (no
    Content-Length), 413 (body too big), 500, 503 (busy, with Retry-After).

Every bundle is checked in full before it is kept (`services.collector_intake`), at most
`max_concurrent_requests` at a time: checking is CPU work. The collector logs one line per
request, without the client's address. Reading the collection (events across probes) is done
where it lies, with `netvigil collector events --dir DIR`: the HTTP side accepts, it does not
publish.
"""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import BundleRejected, ConfigError, RequestError
from services.collector_intake import Collection
from services.http_base import RETRY_AFTER, BoundedServer, JSONHandler
from services.http_base import serve as serve_http

VERSION = "1"
MAX_PROBLEMS = 20  # problems listed in a 422 answer


@dataclass(frozen=True)
class CollectorConfig:
    """Where bundles go, who may send them, and the limits."""

    folder: Path
    tokens: tuple[str, ...] = ()  # accepted bearer tokens; none: anyone may submit
    allowed_keys: tuple[str, ...] = ()  # accepted signing key ids; none: any key
    allow_unsigned: bool = False  # keep bundles with unsigned records (never indexing those)
    max_body: int = 64 << 20  # bytes per bundle (413 beyond)
    max_unpacked: int = 1 << 30  # bytes a bundle may inflate to (422 beyond: a zip bomb)
    max_concurrent_requests: int = 2  # bundles being checked at once (503 beyond)
    max_connections: int = 16
    max_connections_per_address: int = 4  # from one IPv4 address or IPv6 /64 (503 beyond)
    io_timeout: float = 30.0  # each socket read/write (a bundle is large: be patient)
    head_deadline: float = 10.0  # the whole request head, from the connection (a few hundred bytes)
    body_deadline: float = 600.0  # the whole body (408 beyond): 64 MiB needs ~1 Mbit/s

    def __post_init__(self) -> None:
        for name in ("max_body", "max_unpacked", "max_concurrent_requests", "max_connections",
                     "max_connections_per_address", "io_timeout", "head_deadline",
                     "body_deadline"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"{name} must be positive, not {getattr(self, name)!r}", name)


class _Handler(JSONHandler):
    server: CollectorServer
    server_version = f"netvigil-collector/{VERSION}"

    def do_GET(self) -> None:
        if self.path == f"/v{VERSION}/health":
            self.reply(200, {"ok": True, "version": VERSION})
        else:
            self.reply(404, {"error": f"not found; the collector serves GET /v{VERSION}/health "
                                      f"and POST /v{VERSION}/bundles"})

    def do_POST(self) -> None:
        try:
            status, payload = self._receive()
        except RequestError as exc:
            self.refuse(exc)
            return
        except BundleRejected as exc:
            self._note = " rejected"
            problems = [str(p) for p in exc.problems[:MAX_PROBLEMS]]
            self.reply(422 if exc.problems else 403,
                       {"error": str(exc), **({"problems": problems} if problems else {})})
            return
        except Exception:  # a bug: answer 500 rather than drop the connection without a word
            traceback.print_exc(file=sys.stderr)
            self.reply(500, {"error": "internal error in the collector"})
            return
        self.reply(status, payload)

    def _receive(self) -> tuple[int, dict[str, Any]]:
        config = self.server.config
        if self.path != f"/v{VERSION}/bundles":
            raise RequestError(404, f"not found; POST /v{VERSION}/bundles")
        self.require_token(config.tokens)
        body = self.read_body(config.max_body, "export fewer runs at a time")
        if not self.server.slots.acquire(blocking=False):
            raise RequestError(503, "busy: too many bundles at once, retry later", RETRY_AFTER)
        try:
            added = self.server.collection.add(body)
        finally:
            self.server.slots.release()
        self._note = f" bundle={added.sha256[:16]} points={added.points} new={added.new_points}"
        return (200 if added.known else 201), added.to_dict()


class CollectorServer(BoundedServer):
    """The collector's HTTP server over one collection folder."""

    log_name = "collector"
    config: CollectorConfig

    def __init__(self, host: str, port: int, config: CollectorConfig) -> None:
        self.collection = Collection(config.folder, config.allowed_keys, config.max_unpacked,
                                     config.allow_unsigned)
        super().__init__(host, port, config, _Handler)

    def server_close(self) -> None:
        super().server_close()
        self.collection.close()

    def __enter__(self) -> CollectorServer:
        super().__enter__()
        return self


def make_server(host: str, port: int, config: CollectorConfig) -> CollectorServer:
    """A collector bound to host:port (port 0 picks a free one); serve_forever(), or `with`."""
    return CollectorServer(host, port, config)


def serve(listen: str, config: CollectorConfig) -> int:
    """Run the collector on `listen` ("HOST:PORT") until SIGTERM or SIGINT; the exit status."""
    access = "token required" if config.tokens else "open to any probe"
    return serve_http("collector", listen, lambda host, port: make_server(host, port, config),
                      f"into {config.folder}, {access}")
