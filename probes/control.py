"""The probe's side of the test helper: send the targets we measured, get the control's view.

The helper (`services/helper.py`), run on an uncensored network, measures the same targets —
resolving them itself and connecting to the union of its own and our addresses — and answers
with its measurements in our own format. Protocol (version 1):

    POST {helper}/v1/measure   {"targets": [{"url": "...", "addresses": ["..."]}, ...]}
    200 {"helper": {...}, "measurements": [measurement_to_dict(...), ...], "refused": [...]}

Nothing here raises for a helper problem: an unreachable or broken helper gives `error`, and the
campaign goes on with weaker controls and says so.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import requests

from probes import failures
from probes.observations import DNSQuery, Measurement, measurement_from_dict

MAX_ADDRESSES = 16
MAX_REPLY = 64 << 20
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True)
class ControlResult:
    """What the helper said: controls by target URL, refusals, and the first error, if any."""

    controls: dict[str, Measurement] = field(default_factory=dict)
    error: str | None = None
    refused: dict[str, str] = field(default_factory=dict)


def request_item(m: Measurement) -> dict[str, Any]:
    """One target of a request: its URL and every address our resolvers gave for it."""
    seen: dict[str, None] = {}
    for obs in m.observations:
        if isinstance(obs, DNSQuery):
            for address in obs.all_addresses:
                seen.setdefault(address, None)
    return {"url": m.target.url, "addresses": list(seen)[:MAX_ADDRESSES]}


def _read_capped(response: requests.Response) -> bytes:
    data = bytearray()
    for chunk in response.iter_content(64 * 1024):
        data += chunk
        if len(data) > MAX_REPLY:
            raise ValueError(f"reply larger than {MAX_REPLY} bytes")
    return bytes(data)


def _batch(
    session: requests.Session, url: str, items: list[dict[str, Any]], token: str | None,
    timeout: float,
) -> tuple[list[Measurement], dict[str, str]]:
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    # A helper that cannot be reached (a shutdown) must cost seconds, not the whole budget
    # that a large batch may legitimately need to be measured.
    limits = (min(CONNECT_TIMEOUT, timeout), timeout)
    with session.post(url, data=json.dumps({"targets": items}), headers=headers,
                      timeout=limits, stream=True, allow_redirects=False) as response:
        body = _read_capped(response)
        if response.status_code != 200:
            try:
                detail = json.loads(body).get("error", "")
            except (ValueError, AttributeError):
                detail = ""
            raise _HelperError(f"helper answered HTTP {response.status_code} {detail}".strip())
    try:
        reply = json.loads(body)
        controls = [measurement_from_dict(m) for m in reply["measurements"]]
        refused = {r["url"]: r["reason"] for r in reply.get("refused", [])}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise _HelperError(f"helper reply malformed: {type(exc).__name__}") from None
    return controls, refused


class _HelperError(Exception):
    pass


def fetch_controls(
    helper_url: str,
    measurements: Sequence[Measurement],
    *,
    token: str | None = None,
    timeout: float = 120.0,
    batch_size: int = 50,
    ca_bundle: str | None = None,
) -> ControlResult:
    """Ask the helper to measure every target of `measurements`; never raises for its failures."""
    url = helper_url.rstrip("/") + "/v1/measure"
    controls: dict[str, Measurement] = {}
    refused: dict[str, str] = {}
    error: str | None = None
    session = requests.Session()
    session.trust_env = False  # a proxy in the environment must not stand between us
    if ca_bundle:
        session.verify = ca_bundle
    try:
        for start in range(0, len(measurements), batch_size):
            items = [request_item(m) for m in measurements[start : start + batch_size]]
            try:
                got, why = _batch(session, url, items, token, timeout)
            except _HelperError as exc:
                error = str(exc)
                break
            except requests.RequestException as exc:
                error = f"helper unreachable: {failures.classify_requests(exc)}"
                break
            except ValueError as exc:
                error = f"helper reply refused: {exc}"
                break
            if len(got) != len(items):
                error = "helper reply malformed: wrong number of measurements"
                break
            # By position: the helper may normalise a URL; the probe's own spelling is the key.
            controls.update({item["url"]: c for item, c in zip(items, got, strict=True)})
            refused.update(why)
    finally:
        session.close()
    return ControlResult(controls, error, refused)
