"""The test helper: a control vantage point that measures what a probe asks, from its own network.

Someone on an uncensored network runs `netvigil helper serve`; probes send it the targets they
measured (`probes/control.py` has the protocol) and get back the helper's own measurements in
the same format. The helper resolves each name itself (its system resolver or `--resolver`) and
connects to the union of its own addresses and the probe's, so the analysis can tell "this
address is blocked for the probe" from "this address is dead for everyone".

It is bounded everywhere (request size, targets per request, per-step timeouts, body caps,
concurrent requests, a per-target deadline) and it will not measure private, loopback,
link-local or other special-purpose addresses unless started with `--allow-private`, so it cannot
be turned into a scanner of the network it runs on.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from probes.config import ProbeConfig
from probes.dns import parse_resolver
from probes.measure import measure
from probes.observations import Measurement, measurement_to_dict, utc_now
from targets.loaders import normalise
from targets.model import Target

VERSION = "1"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class HelperConfig:
    """How the helper measures and what it accepts."""

    resolver: str | None = None
    token: str | None = None
    allow_private: bool = False
    public_ranges: tuple[Network, ...] = ()
    max_body: int = 256 * 1024
    max_targets: int = 100
    max_addresses: int = 16
    max_concurrent_requests: int = 4
    concurrency: int = 16
    per_target_timeout: float = 60.0
    probe: ProbeConfig = field(
        default_factory=lambda: ProbeConfig(resolvers=(), body_cap=256 * 1024, ipv6=True)
    )

    def probe_config(self) -> ProbeConfig:
        """The probe settings the helper measures with (its resolver, not the public ones)."""
        if self.resolver:
            return replace(self.probe, resolvers=(self.resolver,), system_resolver=False)
        return replace(self.probe, resolvers=(), system_resolver=True)


class RequestError(Exception):
    """A request the helper refuses as a whole: HTTP status and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def address_allowed(address: str, config: HelperConfig) -> bool:
    """May the helper contact this address? Public ones, or any with --allow-private."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    if config.allow_private or any(ip in net for net in config.public_ranges):
        return True
    return ip.is_global and not ip.is_multicast


def parse_request(body: bytes, config: HelperConfig) -> list[tuple[Target, list[str], str | None]]:
    """The targets of a request: (target, probe's allowed addresses, refusal reason or None)."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise RequestError(400, "body is not JSON") from None
    items = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RequestError(400, "expected {\"targets\": [...]}")
    if len(items) > config.max_targets:
        raise RequestError(400, f"at most {config.max_targets} targets per request")
    parsed = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("url"), str):
            raise RequestError(400, f"targets[{index}]: expected {{\"url\": ..., \"addresses\"}}")
        try:
            target = Target(normalise(item["url"]).url)
        except ValueError as exc:
            raise RequestError(400, f"targets[{index}]: {exc}") from None
        addresses = item.get("addresses") or []
        if not isinstance(addresses, list) or not all(isinstance(a, str) for a in addresses):
            raise RequestError(400, f"targets[{index}]: addresses must be a list of strings")
        reason = None
        literal = _ip_literal(target.hostname)
        if literal is not None and not address_allowed(literal, config):
            reason = (f"{literal} is a private or special-purpose address "
                      "(this helper was not started with --allow-private)")
        allowed = [a for a in addresses[: config.max_addresses] if address_allowed(a, config)]
        parsed.append((target, allowed, reason))
    return parsed


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


async def measure_batch(
    items: Sequence[tuple[Target, list[str], str | None]], config: HelperConfig
) -> tuple[list[Measurement], list[dict[str, str]]]:
    """Measure each target (in request order); refused ones come back with no observations."""
    probe = config.probe_config()
    limit = asyncio.Semaphore(config.concurrency)
    refused: list[dict[str, str]] = []

    def allowed(address: str) -> bool:
        return address_allowed(address, config)

    async def one(target: Target, extra: list[str], reason: str | None) -> Measurement:
        if reason is not None:
            refused.append({"url": target.url, "reason": reason})
            return Measurement(target, utc_now(), 0.0)
        async with limit:
            try:
                return await asyncio.wait_for(
                    measure(target, probe, extra_addresses=extra, allowed=allowed),
                    config.per_target_timeout,
                )
            except TimeoutError:
                refused.append({"url": target.url,
                                "reason": f"not finished within {config.per_target_timeout} s"})
                return Measurement(target, utc_now(), config.per_target_timeout)

    results = await asyncio.gather(*(one(t, a, r) for t, a, r in items))
    return list(results), refused


class _Handler(BaseHTTPRequestHandler):
    server: HelperServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        # One line per request, without the targets (they can be sensitive).
        sys.stderr.write(f"{utc_now()} {self.command} {self.path.split('?')[0]} {args[1:2]}\n")

    def _reply(self, status: int, payload: dict[str, Any]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def do_GET(self) -> None:
        if self.path == "/v1/health":
            self._reply(200, {"ok": True, "version": VERSION})
        else:
            self._reply(404, {"error": "not found"})

    def do_POST(self) -> None:
        config = self.server.config
        try:
            if self.path != "/v1/measure":
                raise RequestError(404, "not found")
            if config.token and not hmac.compare_digest(
                self.headers.get("Authorization", ""), f"Bearer {config.token}"
            ):
                raise RequestError(401, "a valid 'Authorization: Bearer TOKEN' is required")
            length = self.headers.get("Content-Length", "")
            if not length.isdigit():
                raise RequestError(411, "Content-Length required")
            if int(length) > config.max_body:
                raise RequestError(413, f"body larger than {config.max_body} bytes")
            items = parse_request(self.rfile.read(int(length)), config)
            if not self.server.slots.acquire(blocking=False):
                raise RequestError(503, "busy: too many requests at once, retry later")
            try:
                controls, refused = asyncio.run(measure_batch(items, config))
            finally:
                self.server.slots.release()
        except RequestError as exc:
            self._reply(exc.status, {"error": str(exc)})
            return
        resolver = config.resolver or "system"
        self._reply(200, {
            "helper": {"version": VERSION, "resolver": resolver},
            "measurements": [measurement_to_dict(m) for m in controls],
            "refused": refused,
        })


class HelperServer(ThreadingHTTPServer):
    """The helper's HTTP server; `.port` is the bound port (useful with port 0)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, config: HelperConfig) -> None:
        self.config = config
        self.slots = threading.BoundedSemaphore(config.max_concurrent_requests)
        super().__init__((host, port), _Handler)

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def __enter__(self) -> HelperServer:
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.shutdown()
        self.server_close()


def make_server(host: str, port: int, config: HelperConfig) -> HelperServer:
    """A helper bound to host:port (0 picks a free port); call serve_forever or use `with`."""
    return HelperServer(host, port, config)


def serve(listen: str, config: HelperConfig) -> int:
    """Run the helper until SIGTERM or SIGINT. `listen` is HOST:PORT."""
    host, port = parse_resolver(listen) if listen.count(":") != 1 else _split(listen)
    server = make_server(host, port, config)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"helper listening on {host}:{server.port}", file=sys.stderr, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def _split(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    if not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{listen}: expected HOST:PORT")
    return host or "0.0.0.0", int(port)
