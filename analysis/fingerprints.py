"""Known blockpages and censors' DNS answers: OONI's blocking-fingerprints, matched.

The lists are the CSVs of ooni/blocking-fingerprints (`fingerprints_http.csv`,
`fingerprints_dns.csv`). `ooni.fingerprints.load_fingerprints` reads them into the records
here; this module only matches (no file is read in `analysis/`). The product never bundles the
lists, the user names them.

What a match means depends on the scope:

* `nat`, `isp`, `prod`, `inst` (and the rare `injb`, `prov`): a blockpage or a censor's answer.
  A match is positive proof of blocking (`confirmed`).
* `vbw` ("vague blocking word"): suggestive only, never proof.
* `fp`: a known false positive (a CDN CAPTCHA, a parked domain). A match is evidence AGAINST
  blocking: the page differs from the control for a reason that is not censorship.

Matching must be cheap: it runs on every cleartext response, and a naive scan of ~1,300 body
patterns costs milliseconds. Each `contains` pattern is indexed by one *interior token* (a run of
letters, digits or non-ASCII bytes with a separator on both sides inside the pattern): wherever the
pattern occurs in a body, that exact token occurs among the body's tokens. Tokenising the body once
and intersecting with the index leaves a handful of candidates to confirm with a substring test.
Patterns without an interior token are tested directly, and those with non-ASCII bytes only when
the body is not pure ASCII. Only the first `SCAN_LIMIT` bytes of a body are searched: blockpages
are small, and a hostile multi-megabyte page must not cost seconds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

SCAN_LIMIT = 64 * 1024
PATTERN_TYPES = ("full", "prefix", "contains", "regexp")
FALSE_POSITIVE = "fp"
VAGUE = "vbw"
_TOKEN = re.compile(rb"[A-Za-z0-9\x80-\xff]+")
_PREFIX_KEY = 8  # header prefix patterns are indexed by their first bytes


@dataclass(frozen=True)
class Fingerprint:
    """One row of a fingerprint list."""

    name: str
    scope: str
    location: str  # "dns", "body" or "header.<lower-case name>"
    pattern_type: str  # one of PATTERN_TYPES
    pattern: str
    confidence: int = 5  # confidence_no_fp, 0..10: how unlikely a false positive is
    countries: tuple[str, ...] = ()

    @property
    def false_positive(self) -> bool:
        """A known false-positive pattern: a match argues against blocking."""
        return self.scope == FALSE_POSITIVE

    @property
    def proof(self) -> bool:
        """A match is positive proof of blocking (not a vague word, not a false positive)."""
        return self.scope not in (FALSE_POSITIVE, VAGUE)

    @property
    def strength(self) -> float:
        """How much a match weighs as evidence of blocking, in [0, 1] (see `analysis.findings`)."""
        if not self.proof:
            return 0.5 if self.scope == VAGUE else 0.0
        return min(1.0, 0.8 + 0.02 * max(0, self.confidence))

    def matches_text(self, value: str) -> bool:
        """Test a header value (or a DNS answer) against the pattern."""
        kind = self.pattern_type
        if kind == "full":
            return value == self.pattern
        if kind == "prefix":
            return value.startswith(self.pattern)
        if kind == "contains":
            return self.pattern in value
        return re.search(self.pattern, value) is not None


class _Contains:
    """`contains` patterns, indexed by interior token (see the module docstring)."""

    def __init__(self) -> None:
        self.by_token: dict[bytes, list[tuple[bytes, Fingerprint]]] = {}
        self.ascii_scan: list[tuple[bytes, Fingerprint]] = []
        self.unicode_scan: list[tuple[bytes, Fingerprint]] = []

    def add(self, pattern: bytes, fp: Fingerprint) -> None:
        token = _interior_token(pattern)
        if token is not None:
            self.by_token.setdefault(token, []).append((pattern, fp))
        elif pattern.isascii():
            self.ascii_scan.append((pattern, fp))
        else:
            self.unicode_scan.append((pattern, fp))

    def find(self, data: bytes) -> list[Fingerprint]:
        found: list[Fingerprint] = []
        tokens = set(data.translate(_SEPARATORS).split())
        for token in tokens.intersection(self.by_token):
            found += [f for p, f in self.by_token[token] if p in data]
        found += [f for p, f in self.ascii_scan if p in data]
        if self.unicode_scan and not data.isascii():
            found += [f for p, f in self.unicode_scan if p in data]
        return found


class _Patterns:
    """The patterns of one location (the body, or one header), by pattern type."""

    def __init__(self) -> None:
        self.full: dict[bytes, list[Fingerprint]] = {}
        self.prefix: dict[bytes, list[tuple[bytes, Fingerprint]]] = {}  # by the first bytes
        self.short_prefix: list[tuple[bytes, Fingerprint]] = []
        self.contains = _Contains()
        self.regexp: list[tuple[re.Pattern[bytes], Fingerprint]] = []

    def add(self, fp: Fingerprint) -> None:
        pattern = fp.pattern.encode("utf-8")
        if fp.pattern_type == "full":
            self.full.setdefault(pattern, []).append(fp)
        elif fp.pattern_type == "prefix" and len(pattern) >= _PREFIX_KEY:
            self.prefix.setdefault(pattern[:_PREFIX_KEY], []).append((pattern, fp))
        elif fp.pattern_type == "prefix":
            self.short_prefix.append((pattern, fp))
        elif fp.pattern_type == "regexp":
            self.regexp.append((re.compile(pattern), fp))
        else:
            self.contains.add(pattern, fp)

    def find(self, data: bytes) -> list[Fingerprint]:
        found = list(self.full.get(data, ()))
        head = data[:SCAN_LIMIT]
        found += [f for p, f in self.prefix.get(head[:_PREFIX_KEY], ()) if head.startswith(p)]
        found += [f for p, f in self.short_prefix if head.startswith(p)]
        found += self.contains.find(head)
        found += [f for r, f in self.regexp if r.search(head)]
        return found


class Fingerprints:
    """Indexed fingerprint lists: `match_dns` for answers, `match_response` for HTTP responses."""

    def __init__(self, http: Iterable[Fingerprint] = (), dns: Iterable[Fingerprint] = ()) -> None:
        self.http = tuple(http)
        self.dns = tuple(dns)
        self._dns_full = {f.pattern: f for f in self.dns if f.pattern_type == "full"}
        self._dns_other = [f for f in self.dns if f.pattern_type != "full"]
        self._body = _Patterns()
        self._headers: dict[str, _Patterns] = {}
        for fp in self.http:
            if fp.location.startswith("header."):
                name = fp.location[len("header.") :]
                self._headers.setdefault(name, _Patterns()).add(fp)
            else:
                self._body.add(fp)

    def __len__(self) -> int:
        return len(self.http) + len(self.dns)

    def match_dns(self, address: str) -> Fingerprint | None:
        """The fingerprint a DNS answer matches, if any."""
        found = self._dns_full.get(address)
        if found is not None:
            return found
        return next((f for f in self._dns_other if f.matches_text(address)), None)

    def match_response(
        self, body: bytes, headers: Sequence[tuple[str, str]] = ()
    ) -> list[Fingerprint]:
        """Every fingerprint an HTTP response matches (headers, then body)."""
        found: list[Fingerprint] = []
        for name, value in headers:
            patterns = self._headers.get(name.lower())
            if patterns is not None:
                found += patterns.find(value.encode("utf-8", errors="surrogateescape"))
        if body:
            found += self._body.find(body)
        return found


def _separators() -> bytes:
    """A translation table that turns every byte outside tokens into a space."""
    table = bytearray(range(256))
    for byte in range(256):
        if not _TOKEN.fullmatch(bytes([byte])):
            table[byte] = 0x20
    return bytes(table)


_SEPARATORS = _separators()


def _interior_token(pattern: bytes) -> bytes | None:
    """The longest token of `pattern` with a separator on both sides inside the pattern."""
    best: bytes | None = None
    for m in _TOKEN.finditer(pattern):
        interior = m.start() > 0 and m.end() < len(pattern)
        if interior and (best is None or len(m.group()) > len(best)):
            best = m.group()
    return best
