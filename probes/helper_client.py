"""The probe's side of the test helper: send the targets we measured, get the control's view.

The helper (`services/helper.py`), run on an uncensored network, measures the same targets —
resolving them itself and connecting to the union of its own and our addresses — and answers
with its measurements in our own format. Protocol version 1 (`services/helper_protocol.py`):

    POST {helper}/v1/measure   {"targets": [{"url": "...", "addresses": ["..."]}, ...]}
    200 {"helper": {...}, "measurements": [measurement_to_dict(...), ...], "refused": [...]}

Nothing here raises for a helper problem: an unreachable, refusing or broken helper gives
`ControlResult.error` (the first problem met), and the campaign goes on with weaker controls and
says so. Controls and refusals are keyed by the probe's own spelling of each target URL.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests

from core.errors import HelperError
from core.observations import DNSQuery, Measurement, measurement_from_dict
from probes import failure_mapping

MAX_ADDRESSES = 16  # per target: the helper ignores more
MAX_REPLY = 64 << 20  # bytes read from a 200 answer (50 measurements with 256 KiB bodies fit)
MAX_ERROR_REPLY = 64 << 10  # bytes read from an error answer: only its one-line reason is used
CONNECT_TIMEOUT = 5.0
#: A batch refused for what it holds (a URL the helper will not parse, too big a body): the
#: next batch may still go through. Other errors (unreachable, 401, busy, 5xx) end the exchange.
_BATCH_ERRORS = frozenset({400, 413})


@dataclass(frozen=True)
class ControlResult:
    """What the helper said: controls by target URL, refusals, and the first error, if any."""

    controls: dict[str, Measurement] = field(default_factory=dict)
    error: str | None = None  # None when the helper answered every batch
    refused: dict[str, str] = field(default_factory=dict)  # url -> the helper's reason


def request_item(m: Measurement) -> dict[str, Any]:
    """One target of a request: its URL and every address our resolvers gave for it."""
    seen: dict[str, None] = {}
    for obs in m.observations:
        if isinstance(obs, DNSQuery):
            for address in obs.all_addresses:
                seen.setdefault(address, None)
    return {"url": m.target.url, "addresses": list(seen)[:MAX_ADDRESSES]}


def _read_capped(response: requests.Response, cap: int) -> bytes:
    data = bytearray()
    for chunk in response.iter_content(64 * 1024):  # decoded: a compressed bomb is capped too
        data += chunk
        if len(data) > cap:
            raise HelperError(f"helper reply larger than {cap} bytes")
    return bytes(data)


def _one_line(text: object, limit: int = 200) -> str:
    """Text from the helper, safe to show: one line, printable, bounded."""
    clean = " ".join("".join(c if c.isprintable() else " " for c in str(text)).split())
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


def _status_error(status: int, body: bytes) -> HelperError:
    try:
        detail = _one_line(json.loads(body)["error"])
    except Exception:  # any shape at all: the status alone still says what happened
        detail = ""
    return HelperError(f"helper answered HTTP {status}{': ' + detail if detail else ''}", status)


def _parse(body: bytes, items: list[dict[str, Any]]) -> tuple[list[Measurement], dict[str, str]]:
    """The reply to one batch; refusals keyed by our URLs (the helper may normalise them)."""
    try:
        reply = json.loads(body)
        raw = reply["measurements"]
        if not isinstance(raw, list) or len(raw) != len(items):
            raise HelperError("wrong number of measurements")
        controls = [measurement_from_dict(m) for m in raw]
        ours = {c.target.url: item["url"] for c, item in zip(controls, items, strict=True)}
        refused = {ours.get(r["url"], r["url"]): _one_line(r["reason"], 500)
                   for r in reply.get("refused") or []}
    except Exception as exc:  # untrusted data: whatever breaks, the reply is unusable
        raise HelperError(f"helper reply malformed: {_one_line(exc, 120) or type(exc).__name__}")\
            from None
    return controls, refused


def _batch(
    session: requests.Session, url: str, items: list[dict[str, Any]], token: str | None,
    timeout: float, connect_timeout: float,
) -> tuple[list[Measurement], dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # A helper that cannot be reached must cost seconds, not the whole budget that a large batch
    # may legitimately need: the helper says nothing until the batch is measured.
    limits = (min(connect_timeout, timeout), timeout)
    with session.post(url, data=json.dumps({"targets": items}), headers=headers,
                      timeout=limits, stream=True, allow_redirects=False) as response:
        if response.status_code != 200:
            raise _status_error(response.status_code, _read_capped(response, MAX_ERROR_REPLY))
        body = _read_capped(response, MAX_REPLY)
    return _parse(body, items)


def _session(ca_bundle: str | None) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # a proxy or netrc in the environment must not stand between us
    if ca_bundle:
        session.verify = ca_bundle
    return session


def _url_error(helper_url: str) -> str | None:
    parts = urlsplit(helper_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"helper URL {_one_line(helper_url, 100)!r} is not an http:// or https:// URL"
    return None


def public_address(
    helper_url: str,
    *,
    timeout: float = CONNECT_TIMEOUT,
    ca_bundle: str | None = None,
) -> tuple[str | None, str | None]:
    """(our address as the helper sees it, None) or (None, why not); never raises.

    The address is what the probe's traffic leaves from (its public address behind NAT). It is
    meant for a local ASN lookup only: callers must not store it.
    """
    why = _url_error(helper_url)
    if why:
        return None, why
    session = _session(ca_bundle)
    try:
        with session.get(helper_url.rstrip("/") + "/v1/whoami", timeout=timeout, stream=True,
                         allow_redirects=False) as response:
            body = _read_capped(response, MAX_ERROR_REPLY)
            if response.status_code != 200:
                return None, str(_status_error(response.status_code, body))
        address = json.loads(body)["address"]
        return str(ipaddress.ip_address(address)), None
    except requests.RequestException as exc:
        return None, f"helper unreachable: {failure_mapping.classify_requests(exc)}"
    except HelperError as exc:
        return None, str(exc)
    except Exception:  # untrusted reply: any shape but the right one is unusable
        return None, "helper whoami reply malformed"
    finally:
        session.close()


def fetch_controls(
    helper_url: str,
    measurements: Sequence[Measurement],
    *,
    token: str | None = None,
    timeout: float = 120.0,
    batch_size: int = 50,
    ca_bundle: str | None = None,
    connect_timeout: float = CONNECT_TIMEOUT,
) -> ControlResult:
    """Ask the helper to measure every target of `measurements`; never raises for its failures.

    `timeout` bounds the wait for each batch's answer; keep it above the helper's per-request
    limit (100 s by default). Synchronous: the campaign calls it in a thread.
    """
    error = _url_error(helper_url)
    if error:
        return ControlResult(error=error)
    url = helper_url.rstrip("/") + "/v1/measure"
    controls: dict[str, Measurement] = {}
    refused: dict[str, str] = {}
    session = _session(ca_bundle)
    try:
        for start in range(0, len(measurements), max(1, batch_size)):
            items = [request_item(m) for m in measurements[start : start + max(1, batch_size)]]
            try:
                got, why = _batch(session, url, items, token, timeout, connect_timeout)
            except HelperError as exc:
                error = error or str(exc)
                if exc.status in _BATCH_ERRORS:
                    continue
                break
            except requests.RequestException as exc:
                error = error or f"helper unreachable: {failure_mapping.classify_requests(exc)}"
                break
            # By position: the helper may normalise a URL; the probe's own spelling is the key.
            controls.update({item["url"]: c for item, c in zip(items, got, strict=True)})
            refused.update(why)
    finally:
        session.close()
    return ControlResult(controls, error, refused)
