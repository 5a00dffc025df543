"""What each command shows people: lines and tables as plain data, without I/O.

`presentation.console` renders a view (to a terminal, or a pipe); scripts get JSON instead. Every
function here takes the library's result and returns text, so the wording is tested without a
terminal and kept in one place (the monitor's log uses the same summary lines).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.failures import in_words
from core.verdicts import BLOCKED, DOWN, INSUFFICIENT, OK
from core.words import counted

_ORDER = {BLOCKED: 0, DOWN: 1, INSUFFICIENT: 2, OK: 3}
_STYLE = {BLOCKED: "bold red", DOWN: "yellow", INSUFFICIENT: "dim", OK: "green"}


@dataclass(frozen=True)
class Styled:
    """Text in a style ("bold red"). Text is never read as markup: a bracket in a blockpage's
    title or a file name prints as it is."""

    text: str
    style: str = ""


Cell = str | Styled


@dataclass(frozen=True)
class Line:
    """One line of text made of parts; `stderr` for notices beside the result."""

    parts: tuple[Cell, ...]
    stderr: bool = False

    @property
    def text(self) -> str:
        return "".join(p if isinstance(p, str) else p.text for p in self.parts)


def line(*parts: Cell, stderr: bool = False) -> Line:
    return Line(parts, stderr)


@dataclass(frozen=True)
class Table:
    """A table for people: a title, column names and rows of cells."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


View = list[Line | Table]


def verdict_cell(verdict: str) -> Styled:
    """A verdict, coloured by what it means."""
    return Styled(verdict, _STYLE.get(verdict, ""))


# --- run ---------------------------------------------------------------------------------------

def run_view(result: Any, explain: str) -> View:
    """A campaign's result (`services.campaign.CampaignResult`): its verdicts, when the network
    worked, then what the local check saw and where the run is stored."""
    view: View = []
    if result.network == "ok":
        rows = sorted(result.results, key=lambda r: (_ORDER.get(r.verdict.verdict, 9),
                                                     r.measurement.target.url))
        view.append(Table(f"run {result.run_id}: {counted(len(result.results), 'target')}",
                          ("target", "verdict", "techniques", "reason"),
                          tuple((r.measurement.target.url, verdict_cell(r.verdict.verdict),
                                 ",".join(r.verdict.techniques), in_words(r.verdict.reason))
                                for r in rows)))
    counts: dict[str, int] = {}
    for r in result.results:
        counts[r.verdict.verdict] = counts.get(r.verdict.verdict, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    view += [line("network: ", Styled(result.network, "bold"), f" ({explain})"),
             line(f"local check: {result.network_detail}"),
             line(f"verdicts: {summary or 'none'}; stored in run {result.run_id} "
                  f"(details: netvigil measurements --run {result.run_id})")]
    return view


def control_warning(control: str) -> str | None:
    """A warning when the run's control was not the helper it was asked for."""
    if control in ("helper", "none"):
        return None
    return f"{control}; verdicts use weaker controls"


# --- stored data -------------------------------------------------------------------------------

def targets_table(platforms: Sequence[Any]) -> Table:
    return Table(counted(len(platforms), "platform"),
                 ("name", "category", "endpoints", "description"),
                 tuple((p.name, p.category, str(len(p.endpoints)), p.description)
                       for p in platforms))


def targets_json(platforms: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": p.name, "category": p.category, "description": p.description,
             "endpoints": list(p.endpoints)} for p in platforms]


def measurements_table(rows: Sequence[Mapping[str, Any]], total: int | None = None) -> Table:
    """The stored measurements listed; `total`, when more match than are listed, says so."""
    title = counted(len(rows), "measurement")
    if total is not None and total > len(rows):
        title = f"{len(rows)} of {total} measurements (the newest)"
    return Table(title,
                 ("id", "run", "started", "target", "verdict", "techniques", "reason"),
                 tuple((str(r["id"]), str(r["run_id"]), r["started"], r["target_url"],
                        r["verdict"] or "", r["techniques"] or "", in_words(r["reason"] or ""))
                       for r in rows))


def more_measurements(shown: int, total: int) -> str:
    """The hint when a listing stopped at its limit."""
    return (f"showing the newest {shown} of {total} measurements: --limit {total} lists them "
            "all (with --run, --target or --verdict to narrow them)")


def describe(row: Mapping[str, Any]) -> str:
    """One stored measurement and each of its observations, a line each."""
    return "\n".join(describe_lines(row))


def describe_view(row: Mapping[str, Any]) -> View:
    """`describe` for the console: a Line per line, so a newline inside a page title or a URL
    is shown as one and cannot start a line of its own."""
    return [line(text) for text in describe_lines(row)]


def describe_lines(row: Mapping[str, Any]) -> list[str]:
    lines = [f"measurement {row['id']} (run {row['run_id']}): {row['target_url']}",
             f"  started {row['started']}, {row['runtime']:.2f} s",
             f"  verdict {row['verdict']} [{row['techniques'] or '-'}] "
             f"{in_words(row['reason'] or '')}"]
    for obs in row.get("observations", []):
        step = obs.get("step", "?")
        lines.append(f"  {obs['t0']:7.3f}s {step:4} {what(step, obs)}  "
                     f"[{obs.get('failure') or 'ok'}]")
    return lines


def what(step: str, o: Mapping[str, Any]) -> str:
    """What one observation did, in a few words."""
    if step == "dns":
        return (f"{o['engine']} {o['resolver'] or 'system'} {o['query_type']} {o['hostname']}"
                f" -> {answers(o)}")
    if step == "tcp":
        return f"connect {o['address']}:{o['port']}"
    if step == "tls":
        return (f"handshake {o['address']}:{o['port']} sni={o['sni']} ({o['purpose']}) "
                f"{o.get('version') or ''}")
    if step == "http":
        return f"GET {o['url']} via {o['address']} -> {o.get('status')} {o.get('title') or ''}"
    return step


def answers(obs: Mapping[str, Any]) -> str:
    """A DNS query's answers: the addresses of each response, or its rcode."""
    sets = [",".join(r.get("addresses", [])) or r.get("rcode", "?")
            for r in obs.get("responses", [])]
    return " | ".join(sets) or "-"


def analyze_line(changed: Mapping[str, int]) -> str:
    return (f"recomputed {counted(changed['measurements'], 'verdict')} in "
            f"{counted(changed['runs'], 'run')}; "
            f"{changed['changed']} changed")


def events_table(found: Sequence[Any]) -> Table:
    rows = []
    for ev in found:
        network = " ".join(x for x in (ev.asn, ev.country) if x) or ", ".join(ev.vantage_points)
        pattern = f"{ev.pattern} {ev.window}" if ev.window else ev.pattern
        rows.append((ev.id, ev.kind, "\n".join(ev.targets), network, ev.start[:16],
                     (ev.end or "ongoing")[:16], ", ".join(ev.outcomes or ev.techniques),
                     pattern, f"{ev.confidence:.2f}"))
    return Table(counted(len(found), "event"), ("id", "kind", "targets", "network", "start (UTC)",
                                          "end (UTC)", "how", "pattern", "confidence"),
                 tuple(rows))


# --- evidence ----------------------------------------------------------------------------------

def verification_view(report: Any, what: str) -> View:
    """A verification (`core`'s report of a database or bundle): each problem, notes, a verdict."""
    view: View = [line(Styled("FAIL", "red"), f" {problem}") for problem in report.problems]
    view += [line(f"note: {notice}") for notice in report.notices]
    counts = ", ".join(f"{n} {k}" for k, n in report.counts.items())
    verdict = (Styled("all holds", "green") if report.ok
               else Styled(counted(len(report.problems), "problem"), "red"))
    return [*view, line(f"{what}: ", verdict, f" ({counts})")]


def custody_lines(entries: Iterable[Mapping[str, Any]]) -> View:
    return [line(f"{e['time']}  {e['action']:10} {json.dumps(e['details'])}") for e in entries]


def key_lines(info: Mapping[str, Any]) -> View:
    return [line(f"{key}: {value}") for key, value in info.items()]


def stamp_line(result: Mapping[str, Any]) -> str:
    """What a round of RFC 3161 stamping did (also a line of the monitor's log)."""
    first = f"; first error: {result['errors'][0]['error']}" if result["errors"] else ""
    return (f"timestamps: {result['stamped']} stamped, {result['pending']} waiting "
            f"({result['unreachable']} unreachable, {result['failed']} refused or bad){first}")


def timestamp_view(result: Mapping[str, Any]) -> View:
    errors = [line(f"run {e['run_id']}: {e['error']}", stderr=True) for e in result["errors"]]
    return [*errors, line(stamp_line(result))]


def submit_line(result: Mapping[str, Any]) -> str:
    """What one submission to a collector did (also a line of the monitor's log)."""
    line = (f"submitted {counted(len(result['runs']), 'run')} in "
            f"{counted(result['sent'], 'bundle')}, "
            f"{len(result['pending'])} pending")
    return line + (f"; {result['error']}" if result["error"] else "")


# --- OONI and the collector --------------------------------------------------------------------

def ooni_import_view(counts: Mapping[str, Any], db: Path) -> View:
    return [line(f"imported {counted(counts['measurements'], 'measurement')} into "
                 f"{counted(counts['runs'], 'run')} "
                 f"of {db}"),
            *(line(f"netvigil: skipped: {error}", stderr=True) for error in counts["errors"])]


def ooni_table(rows: Sequence[Mapping[str, Any]]) -> Table:
    cells: list[tuple[Cell, ...]] = []
    for row in rows:
        if "error" in row:
            cells.append((Path(row["file"]).name, "", Styled("error", "red"), "", "",
                          row["error"]))
            continue
        ooni = f"blocking={row['ooni_blocking']} accessible={row['ooni_accessible']}"
        cells.append((Path(row["file"]).name, row["input"] or "", verdict_cell(row["verdict"]),
                      ",".join(row["techniques"]), ooni, row["reason"]))
    return Table(counted(len(rows), "OONI measurement"),
                 ("file", "input", "verdict", "techniques", "OONI", "reason"), tuple(cells))


def collection_line(status: Mapping[str, Any]) -> str:
    return (f"{counted(status['bundles'], 'bundle')} ({counted(status['bytes'], 'byte')}, "
            f"last received "
            f"{status['last_received'] or 'never'}), "
            f"{counted(status['points'], 'judged measurement')} "
            f"from {counted(len(status['probes']), 'probe')} on "
            f"{counted(len(status['networks']), 'network')}: "
            f"{', '.join(status['networks'])}")
