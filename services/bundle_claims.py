"""A bundle's verdicts, classified again from its signed records: claims are never taken on trust.

A verdict line of `data/verdicts.jsonl` is derived data: anyone can rewrite it and redo the
manifests. So `netvigil evidence verify` and a collector classify every claimed measurement
again, from the signed raw records alone (the measurement, its control, its run's network state
from the `run_end` record), through the very function a database's re-analysis uses
(`services.reanalyse.judge`), and compare every field: verdict, techniques, outcomes,
confidence, confirmed, reason and details. Any difference is a problem naming the measurement,
its line and the fields.

What else a verdict depends on travels in `data/analysis.json` (`analysis_context`): the
netvigil version that judged, the public ranges, and the fingerprint lists themselves with their
SHA-256. That file is not signed: the verdicts are re-derived *with the carried fingerprints*,
and the check says so, naming their hash, so that a reader can compare it with the lists they
trust. A bundle made before netvigil wrote the file is judged without fingerprints or ranges.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Sequence
from typing import Any

from analysis.fingerprints import PATTERN_TYPES, Fingerprint, Fingerprints
from core.words import counted
from results.bundle_links import VERDICTS, Loaded
from results.bundle_runs import BundleRun, bundle_runs, measurement_runs
from results.canonical import canonical_json, sha256_hex
from results.custody import tool_version
from results.rows import verdict_columns
from results.verdict_checks import verdict_differences
from results.verify import Problem, Verification
from services.campaign import CampaignOptions
from services.reanalyse import judge

ANALYSIS_FILE = "data/analysis.json"
_FINGERPRINT_FIELDS = ("name", "scope", "location", "pattern_type", "pattern", "confidence",
                       "countries")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def analysis_context(public_ranges: Sequence[Network] = (), fingerprints: Any = None
                     ) -> dict[str, Any]:
    """What a bundle's verdicts were judged with: data/analysis.json."""
    lists = None
    if fingerprints is not None:
        lists = {"http": [_fingerprint(f) for f in fingerprints.http],
                 "dns": [_fingerprint(f) for f in fingerprints.dns]}
    return {"analysis": f"netvigil {tool_version()}",
            "public_ranges": [str(n) for n in public_ranges],
            "fingerprints": lists,
            "fingerprints_sha256": sha256_hex(canonical_json(lists)) if lists else None}


def check_claims(loaded: Loaded, report: Verification) -> dict[int, dict[str, Any]]:
    """Every claimed verdict classified again from the bundle's records (see the module
    docstring); returns {record id: the fresh verdict} of each one that could be."""
    options = _options(loaded.files.get(ANALYSIS_FILE), report)
    if options is None:
        return {}
    claimed: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for n, item in loaded.verdicts:
        claimed.setdefault(item["run_id"], []).append((n, item))
    runs = bundle_runs(loaded.conn, claimed)
    fresh: dict[int, dict[str, Any]] = {}
    for run_id, lines in sorted(claimed.items()):
        derived = _judge_run(runs[run_id], loaded.numbering, options, report)
        if derived is None:
            continue
        for n, item in lines:
            want = derived[item["record_id"]]
            fresh[item["record_id"]] = want
            _compare(n, item, want, report)
    _unclaimed(loaded, claimed, report)
    report.counts["verdicts classified again"] = len(fresh)
    return fresh


def _judge_run(run: BundleRun, numbering: dict[int, int], options: CampaignOptions,
               report: Verification) -> dict[int, dict[str, Any]] | None:
    """{record id: fresh verdict} of a run's measurements, or None (a problem) when the
    bundle does not hold what judging it needs."""
    subject = f"run {run.run_id}"
    if not run.whole:
        missing = " and ".join(k for k, have in (("run_start", run.started),
                                                  ("run_end", run.ended)) if not have)
        report.problems.append(Problem(subject, f"its verdicts cannot be classified again: "
                                       f"its {missing} record is not in the bundle", VERDICTS))
        return None
    for rid, why in run.broken:
        report.problems.append(Problem(f"record {rid} ({subject})", f"cannot be rebuilt to be "
                                       f"classified again: {why}", VERDICTS))
    if run.broken:
        return None
    by_mid = {numbering[rid]: (rid, m) for rid, m in run.measurements}
    controls = {}
    for rid, mid, control in run.controls:
        # The control names its measurement by id, and ids are bound to the records only by
        # their order: the control must also be of the same host, or ids were shifted.
        if mid not in by_mid or mid in controls or (
                control.target.hostname != by_mid[mid][1].target.hostname):
            report.problems.append(Problem(f"record {rid} ({subject})", f"a control for "
                                           f"measurement {mid}, which is not a measurement of "
                                           "this run as the verdicts number them, is of "
                                           "another host, or has another control", VERDICTS))
            return None
        controls[mid] = control
    ordered = [(numbering[rid], m) for rid, m in run.measurements]
    verdicts = judge(ordered, controls.get, run.network, options)
    return {rid: v.to_dict() for (rid, _), v in zip(run.measurements, verdicts, strict=True)}


def _compare(n: int, item: dict[str, Any], want: dict[str, Any], report: Verification) -> None:
    """One claimed verdict against the fresh one: every field that differs, named."""
    # As the bundle holds it: canonical JSON writes 1.0 as 1, inside details too.
    want = json.loads(canonical_json(want))
    try:
        differ = verdict_differences(verdict_columns(item), want)
    except ValueError as exc:  # not even a verdict the store could hold
        differ = [("verdict", str(exc), want["verdict"])]
    if differ:
        fields = "; ".join(f"{name} is {item.get(name)!r}, the records give {want.get(name)!r}"
                           for name, _, _ in differ)
        report.problems.append(Problem(f"measurement {item['measurement_id']} (line {n})",
                                       f"differs from its records classified again: {fields}",
                                       VERDICTS))


def _unclaimed(loaded: Loaded, claimed: dict[int, Any], report: Verification) -> None:
    """Measurement records with no verdict line: not a claim, but said, since leaving a
    verdict out hides it as surely as changing it."""
    have = {item["record_id"] for _, item in loaded.verdicts}
    for run_id, records in sorted(measurement_runs(loaded.conn).items()):
        left = [rid for rid in records if rid not in have]
        if left:
            report.notices.append(f"run {run_id}: {counted(len(left), 'measurement record')} "
                                  f"{'has' if len(left) == 1 else 'have'} no "
                                  f"verdict in the bundle (records {_span(left)}): never "
                                  "judged, or left out of it")


def _span(ids: list[int]) -> str:
    return ", ".join(map(str, ids[:10])) + (f" and {len(ids) - 10} more" if len(ids) > 10 else "")


def _options(data: bytes | None, report: Verification) -> CampaignOptions | None:
    """The analysis settings data/analysis.json names (None, a problem, if unreadable)."""
    if data is None:
        report.notices.append(f"the bundle has no {ANALYSIS_FILE} (made before netvigil named "
                              "the analysis in bundles): its verdicts were classified again "
                              "without fingerprints or public ranges")
        return CampaignOptions()
    try:
        context = json.loads(data)
        ranges = tuple(ipaddress.ip_network(r) for r in context["public_ranges"])
        lists, digest = context["fingerprints"], context["fingerprints_sha256"]
        fingerprints = None
        if lists is not None:
            if sha256_hex(canonical_json(lists)) != digest:
                raise ValueError("fingerprints_sha256 is not the hash of the fingerprints")
            fingerprints = Fingerprints(http=[_read_fingerprint(f) for f in lists["http"]],
                                        dns=[_read_fingerprint(f) for f in lists["dns"]])
        version = str(context["analysis"])
    except (ValueError, KeyError, TypeError, AttributeError, re.error) as exc:
        report.problems.append(Problem("file", f"unreadable ({type(exc).__name__}: {exc})",
                                       ANALYSIS_FILE))
        return None
    ours = f"netvigil {tool_version()}"
    said = (f"verdicts classified again from the signed records with the bundle's own "
            f"analysis settings ({ANALYSIS_FILE}, not signed): public ranges "
            f"{', '.join(map(str, ranges)) or 'none'}; fingerprints "
            + (f"sha256 {digest} ({len(fingerprints)} entries)" if fingerprints else "none"))
    if version != ours:
        said += (f"; they were judged by {version}, this is {ours}: a difference may come from "
                 "changed rules")
    report.notices.append(said)
    return CampaignOptions(public_ranges=ranges, fingerprints=fingerprints)


def _fingerprint(f: Fingerprint) -> dict[str, Any]:
    return {name: list(f.countries) if name == "countries" else getattr(f, name)
            for name in _FINGERPRINT_FIELDS}


def _read_fingerprint(data: Any) -> Fingerprint:
    """A fingerprint from a bundle (untrusted: every field checked, a regexp compiled)."""
    if not isinstance(data, dict) or set(data) != set(_FINGERPRINT_FIELDS):
        raise ValueError(f"a fingerprint needs exactly the fields {', '.join(_FINGERPRINT_FIELDS)}")
    if not all(isinstance(data[k], str) for k in _FINGERPRINT_FIELDS[:5]) or not isinstance(
            data["confidence"], int) or not isinstance(data["countries"], list):
        raise ValueError("a fingerprint field has the wrong type")
    if data["pattern_type"] not in PATTERN_TYPES:
        raise ValueError(f"unknown pattern_type {data['pattern_type']!r}")
    if data["pattern_type"] == "regexp":
        re.compile(data["pattern"].encode("utf-8"))
    return Fingerprint(**{**data, "countries": tuple(str(c) for c in data["countries"])})
