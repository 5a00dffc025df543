"""Findings: single pieces of evidence of interference, and how they add up to a confidence.

Each stage analysis (DNS, TCP, TLS, HTTP, throttling) returns `Finding`s: an outcome string from
the vocabulary (`dns.bogon`, `tls.sni_filtered`, `http.blockpage:<name>`, ...), a strength in
[0, 1], whether it is positive proof, and one sentence naming the evidence.

Strength, by the kind of evidence (the constants below):

* PROOF (0.95): positive proof without any comparison (a second DNS answer to one query, a
  handshake that completes with a harmless SNI but not with the target's). Fingerprint matches
  use the list's own rating: 0.8 + 0.02 x confidence_no_fp (0.9 for the usual 5, 1.0 for 10).
* EXACT (0.8): the control made the very same step (same address, port, name) and it worked.
* BOGON (0.85): a private or reserved answer where the control resolved the name publicly.
* HOST (0.6): the control did not make that exact step but reached the site end to end (a hop
  after a redirect, which OONI's test helper does not measure step by step).
* INCONSISTENT (0.6): answers disjoint from the control's and not vouched for by a valid
  certificate; +0.15 when the probe's own encrypted resolver agrees with the control, +0.1 when
  an ASN lookup shows no shared network.
* DIFF (0.6): a cleartext page that differs from the control's beyond the thresholds; +0.15
  with a vague blocking word in it.
* A reset, EOF or timeout after the HTTP request was sent: 0.7 (`http_analysis.HTTP_FAILURE`).
  Throttling: 0.6, or 0.75 when both the run's reference and the control agree (`throttle`).
* A DNS refusal weighs 0.1 more when the probe's own encrypted resolver resolved the name, and a
  bogon for a name the control found not to exist weighs BOGON - 0.1.
* Timeouts weigh TIMEOUT_DISCOUNT (0.1) less than resets and refusals: a lost packet can cause
  one, while a reset or a refusal is an answer.

A verdict's confidence combines the strongest finding per outcome as independent evidence:
1 - prod(1 - s). Two outcomes at 0.8 give 0.96; a lone host-level timeout gives 0.5.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

PROOF = 0.95
EXACT = 0.8
BOGON = 0.85
HOST = 0.6
INCONSISTENT = 0.6
DIFF = 0.6
TIMEOUT_DISCOUNT = 0.1


@dataclass(frozen=True)
class Finding:
    """One piece of evidence of interference."""

    outcome: str  # "stage.outcome", e.g. "dns.bogon", "http.blockpage:ooni.ir_1"
    strength: float
    text: str
    confirmed: bool = False

    @property
    def stage(self) -> str:
        """The technique this finding belongs to: the part of the outcome before the dot."""
        return self.outcome.split(".", 1)[0]


def strongest(findings: Iterable[Finding]) -> list[Finding]:
    """One finding per outcome (proof first, then the strongest), proof first, then by strength:
    the order in which a reason names them."""
    best: dict[str, Finding] = {}
    for f in findings:
        kept = best.get(f.outcome)
        if kept is None or (f.confirmed, f.strength) > (kept.confirmed, kept.strength):
            best[f.outcome] = f
    return sorted(best.values(), key=lambda f: (not f.confirmed, -f.strength, f.outcome))


def combine(strengths: Iterable[float]) -> float:
    """Independent evidence combined: 1 - prod(1 - s), in [0, 1], rounded to two decimals."""
    miss = math.prod(1.0 - min(1.0, max(0.0, s)) for s in strengths)
    return round(1.0 - miss, 2)


def timed(strength: float, failure_kind: str) -> float:
    """`strength`, discounted when the failure is a timeout (see TIMEOUT_DISCOUNT)."""
    return round(strength - TIMEOUT_DISCOUNT, 2) if failure_kind == "timeout" else strength
