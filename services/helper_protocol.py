"""The test helper's protocol and safety rules: what a request may ask, and how it is measured.

Protocol, version 1 (the client is `probes/control.py`, the HTTP server `services/helper.py`):

    POST /v1/measure   [Authorization: Bearer TOKEN]
        {"targets": [{"url": "https://x.example/", "addresses": ["203.0.113.5", ...]}, ...]}
    200 {"helper": {"version": "1", "resolver": "system" | "IP[:PORT]"},
         "measurements": [measurement_to_dict(...), one per target, in request order],
         "refused": [{"url": ..., "reason": ...}, ...]}
    GET /v1/health  ->  200 {"ok": true, "version": "1"}
    GET /v1/whoami  ->  200 {"address": "198.51.100.7"}   the caller's address as the helper sees
                        it (the probe's public address, behind NAT), so the probe can look up
                        its ASN and country locally; neither side stores it

    Errors are {"error": "one line"}: 400 (not JSON, a bad field, too many targets), 401 (token),
    404, 408 (body too slow), 411 (no Content-Length), 413 (body too big), 500, 503 (busy, with
    Retry-After).

`addresses` are what the probe's resolvers returned; the helper connects to the union of them and
its own answers, so the analysis can tell "this address is blocked for the probe" from "this
address is dead for everyone". A target the helper would not (or could not) measure still gets a
measurement, with no connections, and an entry in `refused` that says why.

Safety: the helper contacts only public addresses, so that nobody can use it to scan the network
it runs on. Private, loopback, link-local, multicast, reserved and other special-purpose addresses
(and IPv6 forms that embed IPv4: see `services/address_rules.py`) are refused wherever they come
from: the target URL's host, the probe's addresses, the helper's own resolution, a redirect.
`allow_private` lifts the rule (test labs); `public_ranges` counts chosen ranges as public.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from core.errors import ConfigError, RequestError
from core.observations import Measurement, TCPConnect, measurement_to_dict
from core.target import Target
from core.times import utc_now
from probes.config import ProbeConfig
from probes.dns_wire import parse_resolver
from probes.measure import measure
from services.address_rules import Network, is_public
from targets.loaders import normalise

VERSION = "1"
_NOT_PUBLIC = "private or special-purpose"
_HOW_TO_ALLOW = (
    "this helper measures only public addresses (it was not started with --allow-private)"
)


@dataclass(frozen=True)
class HelperConfig:
    """How the helper measures and what it accepts. Every limit bounds one resource."""

    resolver: str | None = None  # "IP[:PORT]": resolve with it instead of the system resolver
    token: str | None = None  # require "Authorization: Bearer TOKEN"
    allow_private: bool = False  # measure private/loopback/special-purpose addresses (labs only)
    public_ranges: tuple[Network, ...] = ()  # count these as public (labs)
    max_body: int = 256 * 1024  # request body, bytes (413 beyond)
    max_targets: int = 100  # per request (400 beyond)
    max_addresses: int = 16  # probe addresses per target; extra ones are ignored
    max_concurrent_requests: int = 4  # requests being measured at once (503 beyond)
    max_connections: int = 32  # open client connections (503 beyond): idle ones cost a thread
    max_connections_per_address: int = 8  # from one IPv4 address or IPv6 /64 (503 beyond)
    concurrency: int = 16  # targets measured at once within one request
    per_target_timeout: float = 60.0
    # The whole batch; targets still running then are cut off. Keep it below the client's read
    # timeout (probes/control.py waits 120 s by default), or the client gives up first.
    request_timeout: float = 100.0
    io_timeout: float = 10.0  # each socket read/write with a client (a stalled client is dropped)
    head_deadline: float = 10.0  # the whole request head, from the connection (a trickle is cut)
    body_deadline: float = 30.0  # the whole body, after the head (408 beyond)
    verbose: bool = False  # log the target URLs of each request (off: they can be sensitive)
    probe: ProbeConfig = field(
        default_factory=lambda: ProbeConfig(resolvers=(), body_cap=256 * 1024)
    )

    def __post_init__(self) -> None:
        if self.resolver is not None:
            parse_resolver(self.resolver)  # raises ValueError: a bad resolver fails at start
        for name in ("max_body", "max_targets", "max_concurrent_requests", "max_connections",
                     "max_connections_per_address", "concurrency", "per_target_timeout",
                     "request_timeout", "io_timeout", "head_deadline", "body_deadline"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"HelperConfig.{name} must be positive", name)

    def probe_config(self) -> ProbeConfig:
        """The probe settings the helper measures with: its own resolver, never the public ones."""
        if self.resolver:
            return replace(self.probe, resolvers=(self.resolver,), system_resolver=False)
        return replace(self.probe, resolvers=(), system_resolver=True)


# --- safety -------------------------------------------------------------------------------------


def address_allowed(address: str, config: HelperConfig) -> bool:
    """May the helper contact `address`? A public IP, or any IP with allow_private."""
    try:
        ip = ipaddress.ip_address(address.split("%")[0])
    except ValueError:
        return False
    return config.allow_private or is_public(ip, config.public_ranges)


def _refusal(addresses: Sequence[str]) -> str:
    shown = ", ".join(addresses[:4]) + (", ..." if len(addresses) > 4 else "")
    plural = "es are" if len(addresses) > 1 else " is"
    return f"not contacted: its address{plural} {_NOT_PUBLIC} ({shown}); {_HOW_TO_ALLOW}"


# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One target of a request: the target, the probe's addresses, why it is refused (or None)."""

    target: Target
    addresses: tuple[str, ...] = ()
    refusal: str | None = None


def parse_request(body: bytes, config: HelperConfig) -> list[Item]:
    """The targets of a request body. Raises RequestError(400) naming the first bad field."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        raise RequestError(400, "the body is not JSON") from None
    items = data.get("targets") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise RequestError(400, 'expected {"targets": [{"url": ..., "addresses": [...]}, ...]}')
    if len(items) > config.max_targets:
        raise RequestError(400, f"{len(items)} targets: at most {config.max_targets} a request")
    return [_parse_item(index, item, config) for index, item in enumerate(items)]


def _parse_item(index: int, item: Any, config: HelperConfig) -> Item:
    where = f"targets[{index}]"
    if not isinstance(item, dict) or not isinstance(item.get("url"), str):
        raise RequestError(400, f'{where}: expected {{"url": "...", "addresses": [...]}}')
    url: str = item["url"]
    if "://" not in url:  # normalise would take a bare domain; the protocol wants URLs
        raise RequestError(400, f"{where}.url: expected an http, https, tls or tcp URL")
    try:
        target = normalise(url)
    except ValueError as exc:
        raise RequestError(400, f"{where}.url: {exc}") from None
    raw = item.get("addresses", [])
    if not isinstance(raw, list) or not all(isinstance(a, str) for a in raw):
        raise RequestError(400, f"{where}.addresses: expected a list of IP addresses")
    addresses: list[str] = []
    for text in raw[: config.max_addresses]:
        try:
            address = str(ipaddress.ip_address(text))
        except ValueError:
            raise RequestError(400, f"{where}.addresses: {text[:60]!r} is not an IP address")\
                from None
        if address not in addresses:
            addresses.append(address)
    refusal = None
    literal = _ip_literal(target.hostname)
    if literal is not None and not address_allowed(literal, config):
        # Refused whole: even the probe's addresses would be asked for a private host.
        refusal = f"{literal} is a {_NOT_PUBLIC} address; {_HOW_TO_ALLOW}"
    return Item(target, tuple(addresses), refusal)


def _ip_literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        return None


# --- measuring ----------------------------------------------------------------------------------


async def measure_batch(
    items: Sequence[Item], config: HelperConfig
) -> tuple[list[Measurement], list[dict[str, str]]]:
    """Measure each item (in request order): the measurements, and what was refused and why.

    A refused or unfinished target comes back as a measurement without observations (the
    analysis treats it as an unusable control, never as "down").
    """
    probe = config.probe_config()
    limit = asyncio.Semaphore(config.concurrency)

    async def one(item: Item) -> tuple[Measurement, str | None]:
        if item.refusal is not None:
            return _empty(item.target), item.refusal
        withheld: list[str] = []

        def allowed(address: str) -> bool:
            if address_allowed(address, config):
                return True
            if address not in withheld:
                withheld.append(address)
            return False

        async with limit:
            try:
                async with asyncio.timeout(config.per_target_timeout):
                    m = await measure(item.target, probe, item.addresses, allowed)
            except TimeoutError:
                return _empty(item.target, config.per_target_timeout), (
                    f"not finished within {config.per_target_timeout:g} s "
                    "(the helper's limit per target)")
        if withheld and not m.of(TCPConnect):
            return m, _refusal(withheld)
        return m, None

    tasks = [asyncio.ensure_future(one(item)) for item in items]
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=config.request_timeout)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
    measurements: list[Measurement] = []
    refused: list[dict[str, str]] = []
    for item, task in zip(items, tasks, strict=True):
        reason: str | None
        if task.cancelled():
            m, reason = _empty(item.target, config.request_timeout), (
                f"not measured within {config.request_timeout:g} s "
                "(the helper's limit per request); send fewer targets at a time")
        else:
            m, reason = task.result()  # an exception here is a bug: the server answers 500
        measurements.append(m)
        if reason is not None:
            refused.append({"url": item.target.url, "reason": reason})
    return measurements, refused


def _empty(target: Target, runtime: float = 0.0) -> Measurement:
    return Measurement(target, utc_now(), runtime)


def reply(config: HelperConfig, measurements: Sequence[Measurement],
          refused: Sequence[dict[str, str]]) -> dict[str, Any]:
    """The JSON body of a 200 answer to /v1/measure."""
    return {
        "helper": {"version": VERSION, "resolver": config.resolver or "system"},
        "measurements": [measurement_to_dict(m) for m in measurements],
        "refused": list(refused),
    }

