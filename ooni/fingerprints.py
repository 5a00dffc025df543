"""Read OONI's blocking-fingerprints CSVs into the records `analysis.fingerprints` matches.

The files are the CSVs of ooni/blocking-fingerprints (`fingerprints_http.csv`,
`fingerprints_dns.csv`). A row that cannot be used is an error naming the file and the line.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from analysis.fingerprints import PATTERN_TYPES, Fingerprint, Fingerprints
from core.errors import FileLineError

_REQUIRED = ("name", "scope", "location_found", "pattern_type", "pattern")


def _read_csv(path: Path) -> list[Fingerprint]:
    rows: list[Fingerprint] = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in _REQUIRED if c not in (reader.fieldnames or ())]
        if missing:
            raise FileLineError(f"not a blocking-fingerprints CSV (missing {missing})", path)
        for line, row in enumerate(reader, start=2):
            rows.append(_row(path, line, row))
    return rows


def _row(path: Path, line: int, row: dict[str, str]) -> Fingerprint:
    kind = (row.get("pattern_type") or "").strip()
    if kind not in PATTERN_TYPES:
        raise FileLineError(f"unknown pattern_type {kind!r}", path, line)
    pattern = row.get("pattern") or ""
    if not pattern:
        raise FileLineError("empty pattern", path, line)
    if kind == "regexp":
        try:
            re.compile(pattern.encode("utf-8"))
        except re.error as exc:
            raise FileLineError(f"bad regexp: {exc}", path, line) from None
    confidence = (row.get("confidence_no_fp") or "").strip()
    countries = (row.get("expected_countries") or "").replace(" ", "")
    return Fingerprint(
        name=(row.get("name") or "").strip(),
        scope=(row.get("scope") or "").strip(),
        location=(row.get("location_found") or "").strip().lower(),
        pattern_type=kind,
        pattern=pattern,
        confidence=int(confidence) if confidence.isdigit() else 5,
        countries=tuple(c for c in countries.split(",") if c),
    )


def load_fingerprints(http_csv: Path | None, dns_csv: Path | None) -> Fingerprints:
    """Read OONI blocking-fingerprints CSVs (either may be None). Raises FileLineError (naming the
    file and line) on a file that is not in that format, OSError when it cannot be read."""
    http = _read_csv(Path(http_csv)) if http_csv is not None else []
    dns = _read_csv(Path(dns_csv)) if dns_csv is not None else []
    return Fingerprints(
        http=[f for f in http if f.location != "dns"] + [f for f in dns if f.location != "dns"],
        dns=[f for f in http if f.location == "dns"] + [f for f in dns if f.location == "dns"],
    )
