"""Send this probe's finished runs to a collector, as evidence bundles: `netvigil submit`.

Which runs went where is kept in the custody log (an `export` entry with "submitted": the
collector's address and the runs), so each finished run is sent once; a run still in progress
waits for the next call. Runs go in bundles of `runs_per_bundle`, fewer while the collector
answers that a bundle is too big (HTTP 413). A collector that cannot be
reached, refuses or is busy ends the call with the runs still pending: nothing is lost, the next
call sends them. Only what the bundle holds is sent (never the probe's address, which the store
never has); the collector sees the connection's address, as any server does.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests

from probes import failure_mapping
from results import custody
from results.store import Store
from services.evidence import Network, export_evidence

RUNS_PER_BUNDLE = 10  # halved while a collector finds the bundles too big (413)
MAX_ANSWER = 256 << 10


def submitted_runs(store: Store) -> set[int]:
    """Run ids that a collector has accepted, from the custody log."""
    done: set[int] = set()
    for entry in custody.read(store, "export"):
        details = entry["details"]
        if isinstance(details, dict) and details.get("submitted"):
            done.update(r for r in details.get("runs", []) if isinstance(r, int))
    return done


def pending_runs(store: Store) -> list[int]:
    """Ended runs (finished or interrupted) not accepted by a collector yet, oldest first."""
    done = submitted_runs(store)
    return sorted(r["id"] for r in store.runs()
                  if r["status"] != "running" and r["id"] not in done)


def submit(
    store: Store,
    collector_url: str,
    token: str | None = None,
    timeout: float = 60.0,
    connect_timeout: float = 10.0,
    runs_per_bundle: int = RUNS_PER_BUNDLE,
    ca_bundle: str | None = None,
    public_ranges: Sequence[Network] = (),
    fingerprints: Any = None,
) -> dict[str, Any]:
    """Send every pending run; never raises for a collector's failure. Bundles carry the
    ranges and fingerprints the runs were judged with (`export_evidence`).

    Returns {"sent": bundles accepted, "runs": run ids accepted, "pending": run ids left,
    "error": the first failure or None, "bundles": the collector's answers}.
    """
    parts = urlsplit(collector_url)
    result: dict[str, Any] = {"sent": 0, "runs": [], "bundles": [], "error": None}
    if parts.scheme not in ("http", "https") or not parts.hostname:
        result.update(error=f"collector URL {collector_url[:100]!r} is not an http:// or "
                            "https:// URL", pending=pending_runs(store))
        return result
    url = collector_url.rstrip("/") + "/v1/bundles"
    todo = pending_runs(store)
    session = requests.Session()
    session.trust_env = False  # a proxy or netrc in the environment must not stand between us
    if ca_bundle:
        session.verify = ca_bundle
    headers = {"Content-Type": "application/zip"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with tempfile.TemporaryDirectory(prefix="netvigil-submit-") as folder:
            size, start = max(1, runs_per_bundle), 0
            while start < len(todo):
                chunk = _vouched(store, todo[start:start + size], todo[start + size:])
                if not chunk:
                    break  # only runs that never ended are left: they go with a later run
                bundle = Path(folder) / f"runs-{chunk[0]}-{chunk[-1]}.zip"
                exported = export_evidence(store, bundle, run_ids=chunk,
                                           public_ranges=public_ranges,
                                           fingerprints=fingerprints)
                answer, error, status = _post(session, url, bundle.read_bytes(), headers,
                                              (connect_timeout, timeout))
                bundle.unlink()
                if answer is None and status == 413 and len(chunk) > 1:
                    size = len(chunk) // 2  # too big for this collector: fewer runs a bundle
                    continue
                if answer is None:
                    if status == 413:
                        error = f"run {chunk[0]} alone is more than the collector takes: {error}"
                    result["error"] = error
                    break
                start += len(chunk)
                custody.log(store, "export", {
                    "submitted": f"{parts.scheme}://{parts.netloc}", "runs": chunk,
                    "known": bool(answer.get("known")),
                }, {"bundle": exported["sha256"]})
                result["sent"] += 1
                result["runs"] += chunk
                result["bundles"].append(answer)
    finally:
        session.close()
    result["pending"] = pending_runs(store)
    return result


def _post(session: requests.Session, url: str, body: bytes, headers: dict[str, str],
          timeout: tuple[float, float]) -> tuple[dict[str, Any] | None, str, int | None]:
    """(the collector's JSON answer, "", status) on 200/201, else (None, why, status or None
    when there was no answer)."""
    try:
        with session.post(url, data=body, headers=headers, timeout=timeout, stream=True,
                          allow_redirects=False) as response:
            raw = response.raw.read(MAX_ANSWER, decode_content=True) or b""
            status = response.status_code
    except requests.RequestException as exc:
        return None, f"collector unreachable: {failure_mapping.classify_requests(exc)}", None
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    if status in (200, 201) and isinstance(answer, dict):
        return answer, "", status
    detail = answer.get("error") if isinstance(answer, dict) else None
    text = " ".join(str(detail or "").split())[:300]  # the collector's words: one bounded line
    return None, f"collector answered HTTP {status}{': ' + text if text else ''}", status


def _vouched(store: Store, chunk: list[int], rest: list[int]) -> list[int]:
    """`chunk`, grown with runs of `rest` until its last run has ended (so that a signed head
    closes the bundle), or cut back to its last ended run: the records of a run that never
    ended (its probe stopped) are covered only by a later run's signature, and a collector
    takes no record that no signature covers."""
    chunk, rest = list(chunk), list(rest)
    while chunk and rest and not _ended(store, chunk[-1]):
        chunk.append(rest.pop(0))
    while chunk and not _ended(store, chunk[-1]):
        chunk.pop()
    return chunk


def _ended(store: Store, run_id: int) -> bool:
    """The run has its run_end record (only `finish_run` sets the network state)."""
    run = store.run(run_id)
    return run is not None and run.get("network") is not None
