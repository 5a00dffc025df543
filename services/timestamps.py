"""Trusted timestamps of run heads from an RFC 3161 authority: what `netvigil evidence
timestamp` calls.

`stamp_pending` queues the head of every ended run that has no timestamp yet, then sends each
queued head to the authority over HTTP(S) (RFC 3161, section 3.4). A probe measuring a shutdown
cannot reach any authority, so an unreachable one is normal: the heads stay queued, with the
attempt and the error counted, and go out on a later call. Nothing here raises on a network
failure, and nothing is sent when there is nothing to stamp.
"""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cryptography import x509

from results import tsa_tokens as T
from results.store import Store

DEFAULT_TIMEOUT = 10.0
MAX_ANSWER = 1 << 20  # a TimeStampResp is a few kB; anything far larger is not one


def stamp_pending(
    store: Store,
    tsa_url: str,
    timeout: float = DEFAULT_TIMEOUT,
    roots_pem: bytes | str | Path | None = None,
) -> dict[str, Any]:
    """Queue unstamped run heads and send every queued one to `tsa_url`.

    `roots_pem` is the authority's root certificate (PEM bytes, or a file), needed when its
    answers carry only its own certificate, as most do. Returns {"queued": newly queued,
    "sent", "stamped", "failed" (refused or a bad answer), "unreachable", "pending" (left to
    stamp), "errors": [{"run_id", "error"}]}.
    """
    if isinstance(roots_pem, str | Path):
        roots_pem = Path(roots_pem).read_bytes()
    if roots_pem is not None:
        x509.load_pem_x509_certificates(roots_pem)  # a bad file fails here, not per answer
    queued = T.queue_finished(store, tsa_url)
    todo = T.pending(store)
    result: dict[str, Any] = {"queued": queued, "sent": 0, "stamped": 0, "failed": 0,
                              "unreachable": 0, "errors": []}
    for n, (row_id, run_id, head) in enumerate(todo):
        request = T.build_request(head)
        result["sent"] += 1
        answer, error = _post(tsa_url, request.as_bytes(), timeout)
        if answer is None:
            # Unreachable: the heads after this one would be too; all wait for the next call.
            T.record_failures(store, [other for other, _, _ in todo[n:]], tsa_url, "queued",
                              error)
            result["unreachable"] = len(todo) - n
            result["errors"].append({"run_id": run_id, "error": error})
            break
        try:
            stamp = T.accept(request, head, answer, roots_pem)
        except (T.TimestampError, ValueError) as exc:
            T.record_failures(store, [row_id], tsa_url, "failed", str(exc))
            result["failed"] += 1
            result["errors"].append({"run_id": run_id, "error": str(exc)})
            continue
        T.record_stamp(store, row_id, run_id, head, tsa_url, stamp)
        result["stamped"] += 1
    result["pending"] = len(T.pending(store))
    return result


def _post(url: str, query: bytes, timeout: float) -> tuple[bytes | None, str]:
    """(the answer, "") or (None, why the authority could not be reached)."""
    request = urllib.request.Request(url, data=query, method="POST",
                                     headers={"Content-Type": T.CONTENT_TYPE})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            if response.status != 200:
                return None, f"HTTP {response.status}"
            return response.read(MAX_ANSWER), ""
    except urllib.error.HTTPError as exc:
        return None, f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        return None, f"{type(exc).__name__}: {reason}"
