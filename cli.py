"""The `netvigil` command: parse arguments, call one library function, print the result.

Results go to stdout (a table for people, or JSON with `--json` for scripts); progress, notices
and errors go to stderr. Bad input ends with a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from analysis.fingerprints import Fingerprints
from core.errors import ConfigError, TargetError
from core.verdicts import BLOCKED, DOWN, INSUFFICIENT, OK
from ooni.fingerprints import load_fingerprints
from probes.config import ProbeConfig, Timeouts
from probes.dns import parse_resolver
from probes.ipasn import check_table
from probes.runner import Limits
from results.export import export_csv, export_jsonl, export_ooni
from results.store import Store
from services import campaign, consent, monitor
from services.events import events as find_events
from services.events import points as event_points
from services.events import reachability_bins
from services.ooni_tools import classify_files, import_files
from services.reanalyse import reanalyse
from services.vantage import NetworkOptions, parse_asn, parse_country
from targets.catalogue import load_catalogue
from targets.loaders import load_targets

err = Console(stderr=True)
out = Console()

_ORDER = {BLOCKED: 0, DOWN: 1, INSUFFICIENT: 2, OK: 3}
_STYLE = {BLOCKED: "bold red", DOWN: "yellow", INSUFFICIENT: "dim", OK: "green"}


def _tsa_options(parser: argparse.ArgumentParser, when: str) -> None:
    parser.add_argument("--tsa", metavar="URL",
                        help=f"{when}send run heads not yet stamped to this RFC 3161 "
                             "time-stamping authority (only a hash is sent; heads stay queued "
                             "while it cannot be reached)")
    parser.add_argument("--tsa-root", type=Path, metavar="PEMFILE",
                        help="the authority's root certificate, when its answers carry only its "
                             "own")
    parser.add_argument("--tsa-timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for the authority (default 10)")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    p = argparse.ArgumentParser(
        prog="netvigil",
        description="Measure Internet blocking and shutdowns from this vantage point.",
        formatter_class=fmt,
        epilog=_examples(
            "netvigil run --accept-risks",
            "netvigil run --targets telegram signal --json > run.json",
            "netvigil measurements --verdict blocked",
        ),
    )
    p.add_argument("--db", type=Path, help="SQLite database (default: %(default)s)",
                   default=Store.default_path())
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # --db is accepted before or after the command (`netvigil analyze --db lab.db`).
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", type=Path, default=argparse.SUPPRESS, help="SQLite database")

    # The campaign options, shared by `run` and `monitor`.
    c = argparse.ArgumentParser(add_help=False)
    c.add_argument("--targets", nargs="+", metavar="T",
                   help="platform names, category:NAME, URLs, domains or files (txt, CSV, TOML)")
    c.add_argument("--resolver", action="append", metavar="IP[:PORT]",
                   help="resolver to query directly (repeatable; default 8.8.8.8 1.1.1.1 9.9.9.9)")
    c.add_argument("--doh", metavar="URL", help="also resolve over DNS over HTTPS at URL")
    c.add_argument("--dns-over-tcp", action="store_true", help="query resolvers over TCP")
    c.add_argument("--ca-bundle", metavar="PEM", help="verify certificates against this bundle")
    c.add_argument("--helper", metavar="URL",
                   help="test helper that measures the control (default: $NETVIGIL_HELPER)")
    c.add_argument("--asn", metavar="AS64500",
                   help="declare this network's AS number (recorded with each run)")
    c.add_argument("--isp", metavar="NAME", help="declare this network's ISP name")
    c.add_argument("--country", metavar="CC", help="declare this network's country (two letters)")
    c.add_argument("--asn-table", type=Path, metavar="FILE",
                   help="look up ASN, AS name and country of the public address the --helper "
                        "sees, in this ip2asn table (iptoasn.com TSV, may be .gz); the address "
                        "itself is never stored")
    c.add_argument("--concurrency", type=int, default=16, metavar="N")
    c.add_argument("--rate", type=float, default=50.0, help="target starts per second")
    c.add_argument("--per-host-rate", type=float, default=4.0)
    c.add_argument("--timeout", type=float, metavar="S",
                   help="scale every step's timeout so a TCP connect gets S seconds")
    c.add_argument("--no-ipv6", action="store_true", help="skip AAAA queries and IPv6 addresses")
    c.add_argument("--public-range", action="append", default=[], metavar="CIDR",
                   help="count addresses in CIDR as public (test labs)")
    c.add_argument("--fingerprints", action="append", default=[], metavar="PATH",
                   help="blockpage/DNS fingerprints: an OONI-format CSV or a folder of them")
    c.add_argument("--no-system-resolver", action="store_true",
                   help="only query the --resolver servers, not getaddrinfo (closed test networks)")
    c.add_argument("--no-netcheck", action="store_true",
                   help="skip the local network checks (offline tests)")
    c.add_argument("--accept-risks", action="store_true", help="accept the risk notice")
    r = sub.add_parser(
        "run", parents=[db, c], help="measure targets and store the results",
        formatter_class=fmt,
        description="Run one campaign: DNS, TCP, TLS and HTTP to every target; store and judge.",
        epilog=_examples(
            "netvigil run                       # the bundled platform catalogue",
            "netvigil run --targets whatsapp https://example.org/ --resolver 9.9.9.9",
            "netvigil run --targets ir.csv --concurrency 32 --json",
            "netvigil run --asn AS64500 --isp 'Example Telecom' --country KE",
            "netvigil run --helper https://th.example/ --asn-table ip2asn-combined.tsv.gz",
        ),
    )
    r.add_argument("--json", action="store_true", help="one JSON object on stdout")

    mo = sub.add_parser(
        "monitor", parents=[db, c], formatter_class=fmt,
        help="run campaigns on a schedule until stopped (unattended probes)",
        description="Repeat the campaign every DURATION (start to start), each wait moved at "
        "random by up to --jitter, until SIGTERM or Ctrl-C (the run in progress is kept and "
        "marked interrupted) or --max-runs. One line per run on stderr.",
        epilog=_examples(
            "netvigil monitor --every 15m --jitter 2m --accept-risks",
            "netvigil monitor --every 1h --max-runs 24 --targets telegram signal",
            "netvigil monitor --every 15m --tsa https://tsa.example/tsr --tsa-root root.pem",
        ),
    )
    mo.add_argument("--every", type=_duration, required=True, metavar="DURATION",
                    help="time between the starts of two runs: 90s, 15m, 1h30m")
    mo.add_argument("--jitter", type=_duration, default=0.0, metavar="DURATION",
                    help="move each wait by up to +-DURATION at random (default: none)")
    mo.add_argument("--max-runs", type=int, metavar="N",
                    help="stop after N runs (default: until stopped)")
    _tsa_options(mo, "after each run, ")
    mo.add_argument("--collector", metavar="URL",
                    help="after each run, send ended runs to this collector (default: "
                         "$NETVIGIL_COLLECTOR; token: $NETVIGIL_COLLECTOR_TOKEN)")

    t = sub.add_parser("targets", help="show the bundled catalogue", formatter_class=fmt,
                       epilog=_examples("netvigil targets list", "netvigil targets list --json"))
    t.add_argument("action", choices=["list"])
    t.add_argument("--json", action="store_true")

    m = sub.add_parser("measurements", parents=[db], help="list stored measurements, or show one",
                       formatter_class=fmt, epilog=_examples(
                           "netvigil measurements --run 3 --verdict blocked",
                           "netvigil measurements show 42 --json"))
    m.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    m.add_argument("id", nargs="?", type=int)
    m.add_argument("--run", type=int)
    m.add_argument("--target")
    m.add_argument("--verdict", choices=[OK, BLOCKED, DOWN, INSUFFICIENT])
    m.add_argument("--limit", type=int, default=200)
    m.add_argument("--json", action="store_true")

    x = sub.add_parser("export", parents=[db], help="write measurements as JSONL or CSV",
                       formatter_class=fmt,
                       epilog=_examples("netvigil export --format csv --out runs.csv",
                                        "netvigil export --format jsonl --run 3 > run3.jsonl",
                                        "netvigil export --format ooni --out ooni.jsonl",
                                        "netvigil export --format parquet --out m.parquet"))
    x.add_argument("--format", choices=["jsonl", "csv", "ooni", "parquet"], default="jsonl",
                   help="jsonl (every observation), csv (one row each), ooni (web_connectivity), "
                        "parquet (one typed row each, with the run's network and vantage; "
                        "needs --out)")
    x.add_argument("--run", type=int)
    x.add_argument("--out", type=Path, help="file to write (default: stdout)")

    a = sub.add_parser("analyze", parents=[db], help="recompute verdicts for stored runs",
                       formatter_class=fmt,
                       epilog=_examples(
                           "netvigil --db lab.db analyze --public-range 198.18.0.0/15"))
    a.add_argument("--run", type=int)
    a.add_argument("--public-range", action="append", default=[], metavar="CIDR")
    a.add_argument("--fingerprints", action="append", default=[], metavar="PATH")
    a.add_argument("--json", action="store_true")
    e = sub.add_parser(
        "events", parents=[db], help="blocking and outage events over time",
        formatter_class=fmt,
        description="Group stored verdicts into events: what, where, from when to when, how.",
        epilog=_examples(
            "netvigil events",
            "netvigil events --since 2026-11-01 --kind outage --json",
            "netvigil events --target telegram.org",
        ),
    )
    _window(e)
    e.add_argument("--target", metavar="URL|HOST")
    e.add_argument("--kind", choices=["blocking", "outage"])
    e.add_argument("--json", action="store_true")

    pl = sub.add_parser(
        "plot", parents=[db], help="timeline and reachability plots (PNG or SVG)",
        formatter_class=fmt,
        epilog=_examples(
            "netvigil plot timeline --out timeline.png",
            "netvigil plot timeline --since 2026-11-01 --target x.com --out x.svg",
            "netvigil plot reachability --out reach.png",
        ),
    )
    pl.add_argument("kind", choices=["timeline", "reachability"])
    pl.add_argument("--out", type=Path, required=True, metavar="FILE.png|FILE.svg")
    _window(pl)
    pl.add_argument("--target", metavar="URL|HOST")
    pl.add_argument("--title")

    v = sub.add_parser(
        "verify", parents=[db], formatter_class=fmt,
        help="check every hash, link, signature and derived row of a database",
        description="Exit 0 when everything holds; otherwise exit 1 and name what fails.",
        epilog=_examples("netvigil verify", "netvigil verify --db lab.db --public-range "
                         "198.18.0.0/15 --json"),
    )
    v.add_argument("--no-reclassify", action="store_true",
                   help="do not judge the verdicts again (hashes, signatures and rows only)")
    v.add_argument("--public-range", action="append", default=[], metavar="CIDR")
    v.add_argument("--fingerprints", action="append", default=[], metavar="PATH")
    v.add_argument("--json", action="store_true")

    ev = sub.add_parser(
        "evidence", parents=[db], formatter_class=fmt,
        help="export an evidence bundle, or verify one without the database",
        epilog=_examples(
            "netvigil evidence export --since 2026-11-01 --until 2026-11-08 --out case.zip",
            "netvigil evidence export --event 3f2a9c0d1e4b5a67 --out event.zip",
            "netvigil evidence verify case.zip",
            "netvigil evidence custody --json",
            "netvigil evidence timestamp --tsa https://tsa.example/tsr --tsa-root tsa-root.pem",
        ),
    )
    ev.add_argument("action", choices=["export", "verify", "custody", "timestamp"])
    ev.add_argument("bundle", nargs="?", type=Path, metavar="FILE.zip", help="for verify")
    ev.add_argument("--out", type=Path, metavar="FILE.zip", help="for export")
    ev.add_argument("--event", metavar="ID")
    ev.add_argument("--run", type=int, action="append", metavar="N")
    _tsa_options(ev, "for timestamp: ")
    _window(ev)
    ev.add_argument("--json", action="store_true")

    k = sub.add_parser(
        "key", parents=[db], formatter_class=fmt, help="show or rotate the signing key",
        description="The key that signs each run carries no identity; publish its id so others "
                    "can tell your signatures from a forger's.",
        epilog=_examples("netvigil key show", "netvigil key rotate"),
    )
    k.add_argument("action", choices=["show", "rotate"])
    k.add_argument("--json", action="store_true")

    rp = sub.add_parser(
        "report", parents=[db], formatter_class=fmt,
        help="write an evidence report for lawyers (HTML or PDF)",
        description="An expert-report layout: findings with what, where, when, how, how sure, "
                    "the controls that rule out a local fault, and exhibits with record hashes.",
        epilog=_examples(
            "netvigil report --since 2026-11-01 --until 2026-11-30 --out case.pdf",
            "netvigil report --event 3f2a9c0d1e4b5a67 --out event.html --redact-vantage",
        ),
    )
    rp.add_argument("--event", metavar="ID", help="one event (see netvigil events)")
    _window(rp)
    rp.add_argument("--out", type=Path, required=True, metavar="FILE.html|FILE.pdf")
    rp.add_argument("--redact-vantage", action="store_true",
                    help="leave out the vantage point's network (ASN, ISP, resolver addresses)")
    rp.add_argument("--lang", default="en", help="report language (a catalogue in "
                    "presentation/locale)")

    o = sub.add_parser(
        "ooni", parents=[db], help="classify or import OONI measurement files",
        formatter_class=fmt,
        description="Read OONI measurements (.json, .jsonl, .gz, or folders of them).",
        epilog=_examples(
            "netvigil ooni classify 2024-*.jsonl.gz --fingerprints ./fingerprints/",
            "netvigil ooni classify measurement.json --json",
            "netvigil ooni import ./ooni-data/ --db research.db",
        ),
    )
    o.add_argument("action", choices=["classify", "import"])
    o.add_argument("files", nargs="+", metavar="FILE")
    o.add_argument("--fingerprints", action="append", default=[], metavar="PATH")
    o.add_argument("--json", action="store_true")

    su = sub.add_parser(
        "submit", parents=[db], formatter_class=fmt,
        help="send ended runs to a collector, as evidence bundles",
        description="Each ended run is sent once (the custody log remembers where it went); "
                    "runs a collector could not take stay pending for the next call. The "
                    "token, if the collector wants one, comes from $NETVIGIL_COLLECTOR_TOKEN.",
        epilog=_examples(
            "netvigil submit --collector https://collector.example/",
            "NETVIGIL_COLLECTOR_TOKEN=s3cret netvigil submit --collector http://10.0.0.5:8090 "
            "--json",
        ),
    )
    su.add_argument("--collector", metavar="URL", help="default: $NETVIGIL_COLLECTOR")
    su.add_argument("--ca-bundle", metavar="PEM", help="verify the collector's certificate "
                    "against this bundle")
    su.add_argument("--runs-per-bundle", type=int, default=10, metavar="N",
                    help="runs in one bundle (default 10; fewer while the collector finds a "
                         "bundle too big)")
    su.add_argument("--timeout", type=float, default=60.0, metavar="S",
                    help="seconds to wait for the collector's answer to one bundle")
    su.add_argument("--json", action="store_true")

    co = sub.add_parser(
        "collector", formatter_class=fmt,
        help="run a collector for many probes' bundles, or read what it collected",
        description="serve: accept evidence bundles over HTTP (each is verified in full before "
                    "it is kept). events, status: read the collection folder, across probes.",
        epilog=_examples(
            "netvigil collector serve --listen 0.0.0.0:8090 --dir /srv/collection --token s3cret",
            "netvigil collector events --dir /srv/collection --kind outage --since 2026-11-01",
            "netvigil collector status --dir /srv/collection --json",
            "netvigil collector plot --dir /srv/collection --chart reachability --out r.png",
        ),
    )
    co.add_argument("action", choices=["serve", "events", "status", "plot"])
    co.add_argument("--dir", type=Path, required=True, metavar="DIR",
                    help="the collection folder (created when missing)")
    co.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT")
    co.add_argument("--token", action="append", default=[],
                    help="for serve: accept this bearer token (repeatable; or "
                         "NETVIGIL_COLLECTOR_TOKEN); none: anyone may submit")
    co.add_argument("--allow-key", action="append", default=[], metavar="KEYID",
                    help="for serve: accept only runs signed by these keys (repeatable)")
    co.add_argument("--max-size", type=float, default=64.0, metavar="MIB",
                    help="for serve: the largest bundle accepted (default 64 MiB)")
    co.add_argument("--kind", choices=["blocking", "outage"], help="for events")
    _window(co)
    co.add_argument("--chart", choices=["timeline", "reachability"], default="timeline",
                    help="for plot: measurements and events over time (default), or the "
                         "reachable share per network")
    co.add_argument("--out", type=Path, metavar="FILE.png|FILE.svg", help="for plot")
    co.add_argument("--json", action="store_true")

    h = sub.add_parser(
        "helper", help="run the test helper (a control on an uncensored network)",
        formatter_class=fmt,
        description="Serve controls: measure the targets a probe sends, from this network.",
        epilog=_examples(
            "netvigil helper serve --listen 0.0.0.0:8080 --token s3cret",
            "netvigil helper serve --listen 198.18.0.10:8080 --allow-private   # a test lab",
        ),
    )
    h.add_argument("action", choices=["serve"])
    h.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT")
    h.add_argument("--resolver", metavar="IP[:PORT]", help="resolve with this server, not the "
                   "system resolver")
    h.add_argument("--token",
                   help="require 'Authorization: Bearer TOKEN' (or NETVIGIL_HELPER_TOKEN)")
    h.add_argument("--allow-private", action="store_true",
                   help="also measure private, loopback and special-purpose addresses (labs only)")
    h.add_argument("--public-range", action="append", default=[], metavar="CIDR")
    return p


def _duration(text: str) -> float:
    try:
        return monitor.parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _window(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--since", metavar="TIME", help="ISO 8601, UTC unless it says otherwise")
    parser.add_argument("--until", metavar="TIME")


def _networks(specs: Sequence[str]) -> tuple[Any, ...]:
    nets = []
    for spec in specs:
        try:
            nets.append(ipaddress.ip_network(spec, strict=False))
        except ValueError as exc:
            raise ConfigError(f"--public-range {spec}: {exc}") from None
    return tuple(nets)


def _fingerprints(specs: Sequence[str]) -> Fingerprints | None:
    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files += sorted(path.glob("*.csv"))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"--fingerprints {spec}: no such file or folder")
    if not files:
        return None
    http: list[Any] = []
    dns: list[Any] = []
    for path in files:
        try:
            loaded = load_fingerprints(path, None)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc)) from None
        http += loaded.http
        dns += loaded.dns
    return Fingerprints(http=http, dns=dns)


def _probe_config(args: argparse.Namespace) -> ProbeConfig:
    resolvers = tuple(args.resolver) if args.resolver else ProbeConfig().resolvers
    for spec in resolvers:
        try:
            parse_resolver(spec)
        except ValueError as exc:
            raise ConfigError(f"--resolver {spec}: {exc}") from None
    if args.ca_bundle and not Path(args.ca_bundle).is_file():
        raise ConfigError(f"--ca-bundle {args.ca_bundle}: no such file")
    timeouts = Timeouts()
    if args.timeout:
        scale = args.timeout / timeouts.tcp
        # The listen window is not a timeout: it is how long a second (injected) answer may
        # trail the first, a property of the censor's path, so it does not scale.
        timeouts = Timeouts(**{k: v if k == "dns_listen" else v * scale
                               for k, v in vars(timeouts).items()})
    return ProbeConfig(
        timeouts=timeouts, resolvers=resolvers, doh_url=args.doh,
        dns_over_tcp=args.dns_over_tcp, ca_bundle=args.ca_bundle, ipv6=not args.no_ipv6,
        system_resolver=not args.no_system_resolver,
    )


def _ensure_consent(args: argparse.Namespace) -> None:
    if args.accept_risks:
        consent.accept()
        return
    if consent.accepted():
        return
    err.print(consent.NOTICE)
    if not sys.stdin.isatty():
        raise ConfigError("risk notice not accepted: rerun with --accept-risks "
                         f"or {consent.ENV_ACCEPT}=1")
    answer = input("Type 'yes' to accept and continue: ").strip().lower()
    if answer != "yes":
        raise ConfigError("risk notice not accepted; nothing was measured")
    consent.accept()


def _campaign(args: argparse.Namespace) -> tuple[list[Any], campaign.CampaignOptions]:
    try:
        targets = load_targets(args.targets or [p.name for p in load_catalogue()])
    except TargetError as exc:
        raise ConfigError(str(exc)) from None
    options = campaign.CampaignOptions(
        config=_probe_config(args),
        limits=Limits(args.concurrency, args.rate, args.per_host_rate),
        public_ranges=_networks(args.public_range),
        fingerprints=_fingerprints(args.fingerprints),
        check_network=not args.no_netcheck,
        helper_url=args.helper or os.environ.get("NETVIGIL_HELPER") or None,
        helper_token=os.environ.get("NETVIGIL_HELPER_TOKEN"),
        network=_network_options(args),
    )
    return targets, options


def _network_options(args: argparse.Namespace) -> NetworkOptions | None:
    """How runs name their network (--asn, --isp, --country, --asn-table), checked up front."""
    try:
        network = NetworkOptions(
            asn=parse_asn(args.asn) if args.asn else None,
            isp=" ".join(args.isp.split())[:200] if args.isp and args.isp.strip() else None,
            country=parse_country(args.country) if args.country else None,
            asn_table=args.asn_table,
        )
        if args.asn_table is not None:
            check_table(args.asn_table)
    except ValueError as exc:  # TableError included: it names the file and line
        raise ConfigError(str(exc)) from None
    if network == NetworkOptions():
        return None
    if network.asn_table is not None and not (args.helper or os.environ.get("NETVIGIL_HELPER")):
        raise ConfigError("--asn-table needs a --helper to learn the public address; or declare "
                         "the network with --asn, --isp and --country")
    return network


def cmd_run(args: argparse.Namespace) -> int:
    targets, options = _campaign(args)
    _ensure_consent(args)
    with Store(args.db) as store, Progress(
        TextColumn("measuring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.description}"), console=err, transient=True,
    ) as bar:
        task = bar.add_task("", total=len(targets))

        def advance(m: Any) -> None:
            bar.update(task, advance=1, description=m.target.hostname)

        try:
            result = asyncio.run(campaign.run(targets, store, options, advance))
        except KeyboardInterrupt:
            err.print("[yellow]interrupted:[/] every finished measurement is stored")
            return 130
    if result.control not in ("helper", "none"):
        print(f"netvigil: warning: {result.control}; verdicts use weaker controls",
              file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    else:
        _print_run(result)
    return 0


def _print_run(result: campaign.CampaignResult) -> None:
    if result.network == campaign.NETWORK_OK:
        _print_table(result)
    counts = ", ".join(f"{n} {k}" for k, n in sorted(_count(result)))
    out.print(f"network: [bold]{result.network}[/] ({campaign.explain_network(result.network)})")
    out.print(f"local check: {result.network_detail}")
    out.print(f"verdicts: {counts or 'none'}; stored in run {result.run_id} "
              f"(details: netvigil measurements --run {result.run_id})")


def _print_table(result: campaign.CampaignResult) -> None:
    table = Table(title=f"run {result.run_id}: {len(result.results)} targets")
    for col in ("target", "verdict", "techniques", "reason"):
        table.add_column(col, overflow="fold")
    rows = sorted(result.results,
                  key=lambda r: (_ORDER[r.verdict.verdict], r.measurement.target.url))
    for r in rows:
        v = r.verdict
        table.add_row(r.measurement.target.url, f"[{_STYLE[v.verdict]}]{v.verdict}[/]",
                      ",".join(v.techniques), v.reason)
    out.print(table)


def _count(result: campaign.CampaignResult) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    for r in result.results:
        counts[r.verdict.verdict] = counts.get(r.verdict.verdict, 0) + 1
    return list(counts.items())


def cmd_monitor(args: argparse.Namespace) -> int:
    targets, options = _campaign(args)
    try:
        schedule = monitor.Schedule(args.every, args.jitter, args.max_runs)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    _ensure_consent(args)
    stop = threading.Event()
    steps: list[Any] = []
    if args.tsa:  # stamp first, so the bundle sent next carries the tokens
        from services.timestamps import stamp_pending

        url, timeout, roots = args.tsa, args.tsa_timeout, _tsa_roots(args)
        steps.append(lambda store: _stamp_line(
            stamp_pending(store, url, timeout=timeout, roots_pem=roots)))
    collector = args.collector or os.environ.get("NETVIGIL_COLLECTOR")
    if collector:
        from services.submit import submit

        token = os.environ.get("NETVIGIL_COLLECTOR_TOKEN")
        steps.append(lambda store: _submit_line(submit(store, collector, token=token)))

    def after_run(store: Store) -> str | None:
        return "; ".join(step(store) for step in steps) or None

    restore = monitor.stop_on_signals(stop)
    try:
        monitor.monitor(targets, args.db, options, schedule, stop=stop,
                        after_run=after_run if steps else None)
    finally:
        restore()
    return 0


def cmd_targets(args: argparse.Namespace) -> int:
    platforms = load_catalogue()
    if args.json:
        print(json.dumps([{"name": p.name, "category": p.category, "description": p.description,
                           "endpoints": list(p.endpoints)} for p in platforms], indent=2))
        return 0
    table = Table(title=f"{len(platforms)} platforms")
    for col in ("name", "category", "endpoints", "description"):
        table.add_column(col, overflow="fold")
    for p in platforms:
        table.add_row(p.name, p.category, str(len(p.endpoints)), p.description)
    out.print(table)
    return 0


def cmd_measurements(args: argparse.Namespace) -> int:
    with Store(args.db) as store:
        if args.action == "show":
            if args.id is None:
                raise ConfigError("measurements show: give a measurement ID")
            row = store.measurement(args.id)
            if row is None:
                raise ConfigError(f"measurement {args.id}: not found in {args.db}")
            print(json.dumps(row, indent=2, default=str) if args.json else _describe(row))
            return 0
        rows = store.measurements(run_id=args.run, target=args.target, verdict=args.verdict,
                                  limit=args.limit)
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    table = Table(title=f"{len(rows)} measurements")
    for col in ("id", "run", "started", "target", "verdict", "techniques", "reason"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(str(row["id"]), str(row["run_id"]), row["started"], row["target_url"],
                      row["verdict"] or "", row["techniques"] or "", row["reason"] or "")
    out.print(table)
    return 0


def _describe(row: dict[str, Any]) -> str:
    lines = [f"measurement {row['id']} (run {row['run_id']}): {row['target_url']}",
             f"  started {row['started']}, {row['runtime']:.2f} s",
             f"  verdict {row['verdict']} [{row['techniques'] or '-'}] {row['reason'] or ''}"]
    for obs in row.get("observations", []):
        step = obs.get("step", "?")
        lines.append(f"  {obs['t0']:7.3f}s {step:4} {_what(step, obs)}  "
                     f"[{obs.get('failure') or 'ok'}]")
    return "\n".join(lines)


def _what(step: str, o: dict[str, Any]) -> str:
    if step == "dns":
        return (f"{o['engine']} {o['resolver'] or 'system'} {o['query_type']} {o['hostname']}"
                f" -> {_answers(o)}")
    if step == "tcp":
        return f"connect {o['address']}:{o['port']}"
    if step == "tls":
        return (f"handshake {o['address']}:{o['port']} sni={o['sni']} ({o['purpose']}) "
                f"{o.get('version') or ''}")
    if step == "http":
        return f"GET {o['url']} via {o['address']} -> {o.get('status')} {o.get('title') or ''}"
    return step


def _answers(obs: dict[str, Any]) -> str:
    responses = obs.get("responses", [])
    sets = [",".join(r.get("addresses", [])) or r.get("rcode", "?") for r in responses]
    return " | ".join(sets) or "-"


def cmd_export(args: argparse.Namespace) -> int:
    if args.format == "parquet":
        return _export_parquet(args)
    writer = {"jsonl": export_jsonl, "csv": export_csv, "ooni": export_ooni}[args.format]
    with Store(args.db) as store:
        if args.out is None:
            writer(store, sys.stdout, run_id=args.run)
        else:
            with open(args.out, "w", newline="", encoding="utf-8") as fh:
                writer(store, fh, run_id=args.run)
            err.print(f"wrote {args.out}")
    return 0


def _export_parquet(args: argparse.Namespace) -> int:
    from results.export_parquet import export_parquet

    if args.out is None:
        raise ConfigError("export --format parquet: give --out FILE.parquet (Parquet is binary)")
    with Store(args.db) as store:
        try:
            rows = export_parquet(store, args.out, run_id=args.run)
        except ImportError:
            raise ConfigError("Parquet export needs pyarrow: pip install 'netvigil[parquet]'") \
                from None
    err.print(f"wrote {args.out} ({rows} measurements)")
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    with Store(args.db) as store:
        changed = reanalyse(store, run_id=args.run, public_ranges=_networks(args.public_range),
                            fingerprints=_fingerprints(args.fingerprints))
    if args.json:
        print(json.dumps(changed, indent=2))
    else:
        out.print(f"recomputed {changed['measurements']} verdicts in {changed['runs']} runs; "
                  f"{changed['changed']} changed")
    return 0


def cmd_events(args: argparse.Namespace) -> int:
    with Store(args.db) as store:
        try:
            found = find_events(store, args.since, args.until, args.target, args.kind)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    return _print_events(found, args.json)


def _print_events(found: Sequence[Any], as_json: bool) -> int:
    if as_json:
        print(json.dumps([e.to_dict() for e in found], indent=2))
        return 0
    table = Table(title=f"{len(found)} events")
    for col in ("id", "kind", "targets", "network", "start (UTC)", "end (UTC)", "how",
                "pattern", "confidence"):
        table.add_column(col, overflow="fold")
    for ev in found:
        network = " ".join(x for x in (ev.asn, ev.country) if x) or ", ".join(ev.vantage_points)
        pattern = f"{ev.pattern} {ev.window}" if ev.window else ev.pattern
        table.add_row(ev.id, ev.kind, "\n".join(ev.targets), network, ev.start[:16],
                      (ev.end or "ongoing")[:16], ", ".join(ev.outcomes or ev.techniques),
                      pattern, f"{ev.confidence:.2f}")
    out.print(table)
    return 0


def _draw(out: Path | None, draw: Any) -> int:
    """Write to `out` the chart `draw(presentation.plots, fmt)` returns, turning a missing
    matplotlib or a bad value into a one-line error."""
    if out is None or out.suffix.lower() not in (".png", ".svg"):
        raise ConfigError(f"--out {out or ''}: use a .png or .svg file name")
    try:
        from presentation import plots
        from presentation.plot_style import output_format

        image = draw(plots, output_format(out))
    except ImportError:
        raise ConfigError("plots need matplotlib: pip install 'netvigil[plot]'") from None
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    out.write_bytes(image)
    err.print(f"wrote {out}")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    with Store(args.db) as store:
        if args.kind == "timeline":
            return _draw(args.out, lambda plots, fmt: plots.plot_timeline(
                event_points(store, args.since, args.until, args.target),
                find_events(store, args.since, args.until, args.target), fmt, args.title))
        return _draw(args.out, lambda plots, fmt: plots.plot_reachability(
            reachability_bins(store, args.since, args.until), fmt))


def _print_report(report: Any, as_json: bool, what: str) -> int:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        for problem in report.problems:
            out.print(f"[red]FAIL[/] {problem}", highlight=False, markup=True)
        for notice in report.notices:
            out.print(f"note: {notice}", highlight=False)
        counts = ", ".join(f"{n} {k}" for k, n in report.counts.items())
        verdict = "[green]all holds[/]" if report.ok else f"[red]{len(report.problems)} problems[/]"
        out.print(f"{what}: {verdict} ({counts})")
    return 0 if report.ok else 1


def cmd_verify(args: argparse.Namespace) -> int:
    from services.evidence import verify_database

    with Store(args.db) as store:
        report = verify_database(store, reclassify=not args.no_reclassify,
                                 public_ranges=_networks(args.public_range),
                                 fingerprints=_fingerprints(args.fingerprints))
    return _print_report(report, args.json, str(args.db))


def cmd_evidence(args: argparse.Namespace) -> int:
    from services.evidence import check_bundle, custody_log, export_evidence

    if args.action == "verify":
        if args.bundle is None:
            raise ConfigError("evidence verify: give the bundle, e.g. netvigil evidence verify "
                             "case.zip")
        return _print_report(check_bundle(args.bundle), args.json, str(args.bundle))
    with Store(args.db) as store:
        if args.action == "timestamp":
            return _timestamp(store, args)
        if args.action == "custody":
            entries = custody_log(store)
            if args.json:
                print(json.dumps(entries, indent=2, default=str))
            else:
                for e in entries:
                    out.print(f"{e['time']}  {e['action']:10} {json.dumps(e['details'])}",
                              highlight=False, markup=False)
            return 0
        if args.out is None:
            raise ConfigError("evidence export: --out FILE.zip is required")
        measurement_ids = None
        if args.event:
            found = [e for e in find_events(store, args.since, args.until) if e.id == args.event]
            if not found:
                raise ConfigError(f"--event {args.event}: no such event (see netvigil events)")
            measurement_ids = list(found[0].measurement_ids)
        try:
            summary = export_evidence(store, args.out, run_ids=args.run, since=args.since,
                                      until=args.until, measurement_ids=measurement_ids)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if args.json:
        print(json.dumps(summary, indent=2, default=str))
    else:
        err.print(f"wrote {args.out}")
    return 0


def _tsa_roots(args: argparse.Namespace) -> bytes | None:
    """The --tsa-root file's certificates, checked before anything is sent."""
    from cryptography import x509

    if args.tsa_root is None:
        return None
    try:
        pem = args.tsa_root.read_bytes()
        x509.load_pem_x509_certificates(pem)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{args.tsa_root}: not a readable PEM certificate ({exc})") from None
    return pem


def _stamp_line(result: dict[str, Any]) -> str:
    first = f"; first error: {result['errors'][0]['error']}" if result["errors"] else ""
    return (f"timestamps: {result['stamped']} stamped, {result['pending']} waiting "
            f"({result['unreachable']} unreachable, {result['failed']} refused or bad){first}")


def _timestamp(store: Store, args: argparse.Namespace) -> int:
    """Stamp pending run heads; exit 1 while any head is left waiting."""
    from services.timestamps import stamp_pending

    if not args.tsa:
        raise ConfigError("evidence timestamp: --tsa URL is required, e.g. netvigil evidence "
                         "timestamp --tsa https://tsa.example/tsr")
    result = stamp_pending(store, args.tsa, timeout=args.tsa_timeout, roots_pem=_tsa_roots(args))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for e in result["errors"]:
            err.print(f"run {e['run_id']}: {e['error']}", highlight=False, markup=False)
        out.print(_stamp_line(result), highlight=False, markup=False)
    return 0 if result["pending"] == 0 else 1


def cmd_key(args: argparse.Namespace) -> int:
    from services.evidence import current_key, rotate_key

    with Store(args.db) as store:
        info: dict[str, Any] = dict(rotate_key(store) if args.action == "rotate"
                                    else current_key(store))
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            out.print(f"{key}: {value}", highlight=False)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from core.errors import ReportError
    from services.report import ReportOptions, write_report

    try:
        with Store(args.db) as store:
            path = write_report(store, args.out, ReportOptions(
                event=args.event, since=args.since, until=args.until,
                redact_vantage=args.redact_vantage, lang=args.lang))
    except ReportError as exc:
        raise ConfigError(str(exc)) from None
    err.print(f"wrote {path}")
    return 0


def cmd_ooni(args: argparse.Namespace) -> int:
    fingerprints = _fingerprints(args.fingerprints)
    if args.action == "import":
        with Store(args.db) as store:
            counts = import_files(args.files, store, fingerprints)
        if args.json:
            print(json.dumps(counts, indent=2))
        else:
            out.print(f"imported {counts['measurements']} measurements into "
                      f"{counts['runs']} runs of {args.db}")
            for error in counts["errors"]:
                print(f"netvigil: skipped: {error}", file=sys.stderr)
        return 0
    rows = classify_files(args.files, fingerprints)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = Table(title=f"{len(rows)} OONI measurements")
    for col in ("file", "input", "verdict", "techniques", "OONI", "reason"):
        table.add_column(col, overflow="fold")
    for row in rows:
        if "error" in row:
            table.add_row(Path(row["file"]).name, "", "[red]error[/]", "", "", row["error"])
            continue
        ooni = f"blocking={row['ooni_blocking']} accessible={row['ooni_accessible']}"
        table.add_row(Path(row["file"]).name, row["input"] or "",
                      f"[{_STYLE[row['verdict']]}]{row['verdict']}[/]",
                      ",".join(row["techniques"]), ooni, row["reason"])
    out.print(table)
    return 0


def cmd_helper(args: argparse.Namespace) -> int:
    from services.helper_server import HelperConfig, serve

    if args.resolver:
        try:
            parse_resolver(args.resolver)
        except ValueError as exc:
            raise ConfigError(f"--resolver {args.resolver}: {exc}") from None
    config = HelperConfig(
        resolver=args.resolver,
        token=args.token or os.environ.get("NETVIGIL_HELPER_TOKEN"),
        allow_private=args.allow_private,
        public_ranges=_networks(args.public_range),
    )
    return serve(args.listen, config)


def _submit_line(result: dict[str, Any]) -> str:
    line = (f"submitted {len(result['runs'])} runs in {result['sent']} bundles, "
            f"{len(result['pending'])} pending")
    return line + (f"; {result['error']}" if result["error"] else "")


def cmd_submit(args: argparse.Namespace) -> int:
    from services.submit import submit

    collector = args.collector or os.environ.get("NETVIGIL_COLLECTOR")
    if not collector:
        raise ConfigError("submit: give --collector URL (or set NETVIGIL_COLLECTOR)")
    if args.runs_per_bundle < 1:
        raise ConfigError("--runs-per-bundle must be at least 1")
    with Store(args.db) as store:
        result = submit(store, collector, token=os.environ.get("NETVIGIL_COLLECTOR_TOKEN"),
                        timeout=args.timeout, runs_per_bundle=args.runs_per_bundle,
                        ca_bundle=args.ca_bundle)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        out.print(_submit_line(result), highlight=False, markup=False)
    return 1 if result["error"] else 0


def _plot_collection(collection: Any, args: argparse.Namespace) -> int:
    if args.chart == "timeline":
        return _draw(args.out, lambda plots, fmt: plots.plot_timeline(
            collection.points(args.since, args.until),
            collection.events(None, args.since, args.until), fmt,
            "netvigil collection: measurements and events"))
    return _draw(args.out, lambda plots, fmt: plots.plot_reachability(
        collection.reachability(args.since, args.until), fmt))


def cmd_collector(args: argparse.Namespace) -> int:
    from services.collector_intake import Collection
    from services.collector_server import CollectorConfig, serve

    if args.action == "serve":
        env_token = os.environ.get("NETVIGIL_COLLECTOR_TOKEN")
        try:
            config = CollectorConfig(
                folder=args.dir, tokens=tuple(args.token or ([env_token] if env_token else [])),
                allowed_keys=tuple(args.allow_key), max_body=int(args.max_size * (1 << 20)))
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        return serve(args.listen, config)
    if not (args.dir / "collection.db").is_file():
        raise ConfigError(f"--dir {args.dir}: no collection there (collection.db is missing)")
    with Collection(args.dir) as collection:
        if args.action == "events":
            try:
                found = collection.events(args.kind, args.since, args.until)
            except ValueError as exc:
                raise ConfigError(f"--since/--until: {exc}") from None
            return _print_events(found, args.json)
        if args.action == "plot":
            return _plot_collection(collection, args)
        status = collection.status()
    if args.json:
        print(json.dumps(status, indent=2))
    else:
        out.print(f"{status['bundles']} bundles ({status['bytes']} bytes, last received "
                  f"{status['last_received'] or 'never'}), {status['points']} judged "
                  f"measurements from {len(status['probes'])} probes on "
                  f"{len(status['networks'])} networks: {', '.join(status['networks'])}",
                  highlight=False, markup=False)
    return 0


COMMANDS = {"run": cmd_run, "monitor": cmd_monitor, "targets": cmd_targets,
            "events": cmd_events, "plot": cmd_plot, "report": cmd_report,
            "verify": cmd_verify, "evidence": cmd_evidence, "key": cmd_key,
            "measurements": cmd_measurements, "export": cmd_export, "analyze": cmd_analyze,
            "ooni": cmd_ooni, "helper": cmd_helper, "submit": cmd_submit,
            "collector": cmd_collector}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"netvigil: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `netvigil ... | head` is fine
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
