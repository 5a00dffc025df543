"""The `netvigil` command: declare the arguments, call one library function, print the result.

Everything else lives below: `services.settings` builds the configuration from the arguments and
the NETVIGIL_* environment, `services.actions*` do the work, `presentation.console` prints
(a table for people or JSON with `--json` on stdout; progress, notices and errors on stderr).
`main` maps the exception tree (`core.errors`) to one line on stderr and an exit status: 2 for
bad input, 1 for the rest.

Library modules are imported inside each command, so that `netvigil --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from core.errors import ConfigError, NetvigilError, Terminated
from core.verdicts import BLOCKED, DOWN, INSUFFICIENT, OK
from presentation import views
from presentation.console import Output
from services.settings import (
    ENV_COLLECTOR,
    ENV_COLLECTOR_TOKEN,
    ENV_HELPER,
    ENV_HELPER_TOKEN,
    Settings,
    default_db,
)

Handler = Callable[[argparse.Namespace, Settings, Output], int]
#: A command whose action word may be left out: `netvigil measurements --run 3` lists.
DEFAULT_ACTIONS = {"measurements": "list"}


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is a ConfigError: one line, exit 2, through `main`."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.partition(" ")[2]  # "netvigil evidence" -> "evidence"
        raise ConfigError(f"{command + ': ' if command else ''}{message} (see {self.prog} --help)")


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions as written, and every option's default shown after its help.

    Like argparse.ArgumentDefaultsHelpFormatter, but quiet where there is nothing to show
    (None, False, an empty list) and where the help already says its default in its own words.
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (not action.option_strings or "default:" in text or default is argparse.SUPPRESS
                or default in (None, False, [])):
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _command(sub: argparse._SubParsersAction[_Parser], name: str, help: str,
             examples: Sequence[str], parents: Sequence[_Parser] = (),
             handler: Handler | None = None, description: str | None = None) -> _Parser:
    """A (sub)command with its help, examples and, for a leaf, the handler that runs it."""
    parser: _Parser = sub.add_parser(name, help=help, parents=list(parents),
                                     description=description or help[:1].upper() + help[1:] + ".",
                                     formatter_class=_HelpFormatter,
                                     epilog=_examples(*examples))
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def _actions(parser: _Parser) -> argparse._SubParsersAction[_Parser]:
    return parser.add_subparsers(dest="action", required=True, metavar="ACTION")


def _flag_parent(*flags: tuple[str, dict[str, object]]) -> _Parser:
    parent = _Parser(add_help=False)
    for name, options in flags:
        parent.add_argument(name, **options)  # type: ignore[arg-type]
    return parent


def _parser() -> _Parser:
    p = _Parser(
        prog="netvigil", formatter_class=_HelpFormatter,
        description="Measure Internet blocking and shutdowns from this vantage point.",
        epilog=_examples("netvigil run --accept-risks",
                         "netvigil run --targets telegram signal --json > run.json",
                         "netvigil measurements --verdict blocked"),
    )
    p.add_argument("--db", type=Path, default=default_db(),
                   help="SQLite database (default: %(default)s)")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # --db is accepted before or after the command (`netvigil analyze --db lab.db`).
    db = _flag_parent(("--db", {"type": Path, "default": argparse.SUPPRESS,
                                "help": "SQLite database"}))
    js = _flag_parent(("--json", {"action": "store_true", "help": "JSON on stdout, for scripts"}))
    window = _flag_parent(
        ("--since", {"metavar": "TIME", "help": "ISO 8601, UTC unless it says otherwise"}),
        ("--until", {"metavar": "TIME", "help": "the end of the window, as --since"}))
    ranges = _flag_parent(("--public-range", {"action": "append", "default": [], "metavar": "CIDR",
                                              "help": "count addresses in CIDR as public (labs)"}))
    prints = _flag_parent(("--fingerprints", {"action": "append", "default": [], "metavar": "PATH",
                                              "help": "blockpage/DNS fingerprints: an OONI-format "
                                                      "CSV or a folder of them"}))
    judge = _Parser(add_help=False, parents=[ranges, prints])
    _measuring(sub, db, js, judge)
    _stored(sub, db, js, window, judge, prints)
    _evidence(sub, db, js, window, judge)
    _remote(sub, db, js, window, ranges, judge)
    return p


def _campaign_options(judge: _Parser) -> _Parser:
    """The options of `run` and `monitor`."""
    c = _Parser(add_help=False, parents=[judge])
    c.add_argument("--targets", nargs="+", metavar="T",
                   help="platform names, category:NAME, URLs, domains or files (txt, CSV, TOML)")
    c.add_argument("--resolver", action="append", metavar="IP[:PORT]",
                   help="resolver to query directly (repeatable; default 8.8.8.8 1.1.1.1 9.9.9.9)")
    c.add_argument("--doh", metavar="URL", help="also resolve over DNS over HTTPS at URL")
    c.add_argument("--dns-over-tcp", action="store_true", help="query resolvers over TCP")
    c.add_argument("--ca-bundle", metavar="PEM", help="verify certificates against this bundle")
    c.add_argument("--helper", metavar="URL",
                   help=f"test helper that measures the control (default: ${ENV_HELPER}; "
                        f"token: ${ENV_HELPER_TOKEN})")
    c.add_argument("--asn", metavar="AS64500",
                   help="declare this network's AS number (recorded with each run)")
    c.add_argument("--isp", metavar="NAME", help="declare this network's ISP name")
    c.add_argument("--country", metavar="CC", help="declare this network's country (two letters)")
    c.add_argument("--asn-table", type=Path, metavar="FILE",
                   help="look up ASN, AS name and country of the public address the --helper "
                        "sees, in this ip2asn table (iptoasn.com TSV, may be .gz); the address "
                        "itself is never stored")
    c.add_argument("--concurrency", type=int, default=16, metavar="N",
                   help="targets measured at the same time")
    c.add_argument("--rate", type=float, default=50.0, metavar="R",
                   help="target starts per second")
    c.add_argument("--per-host-rate", type=float, default=4.0, metavar="R",
                   help="connections per second to any one host")
    c.add_argument("--timeout", type=float, metavar="S",
                   help="scale every step's timeout so a TCP connect gets S seconds")
    c.add_argument("--no-ipv6", action="store_true", help="skip AAAA queries and IPv6 addresses")
    c.add_argument("--no-system-resolver", action="store_true",
                   help="only query the --resolver servers, not getaddrinfo (closed test networks)")
    c.add_argument("--no-netcheck", action="store_true",
                   help="skip the local network checks (offline tests)")
    c.add_argument("--accept-risks", action="store_true", help="accept the risk notice")
    return c


def _tsa_options(parser: argparse.ArgumentParser, when: str, required: bool = False) -> None:
    parser.add_argument("--tsa", metavar="URL", required=required,
                        help=f"{when}send run heads not yet stamped to this RFC 3161 "
                             "time-stamping authority (only a hash is sent; heads stay queued "
                             "while it cannot be reached)")
    parser.add_argument("--tsa-root", type=Path, metavar="PEMFILE",
                        help="the authority's root certificate, when its answers carry only its "
                             "own")
    parser.add_argument("--tsa-timeout", type=float, default=10.0, metavar="S",
                        help="seconds to wait for the authority (default: %(default)s)")


def _measuring(sub: argparse._SubParsersAction[_Parser], db: _Parser, js: _Parser,
               judge: _Parser) -> None:
    c = _campaign_options(judge)
    _command(sub, "run", "measure targets and store the results", parents=[db, c, js],
             description="Run one campaign: DNS, TCP, TLS and HTTP to every target; store and "
                         "judge.",
             examples=["netvigil run                       # the bundled platform catalogue",
                       "netvigil run --targets whatsapp https://example.org/ --resolver 9.9.9.9",
                       "netvigil run --targets ir.csv --concurrency 32 --json",
                       "netvigil run --asn AS64500 --isp 'Example Telecom' --country KE",
                       "netvigil run --helper https://th.example/ --asn-table "
                       "ip2asn-combined.tsv.gz"],
             handler=cmd_run)
    mo = _command(
        sub, "monitor", "run campaigns on a schedule until stopped (unattended probes)",
        parents=[db, c], handler=cmd_monitor,
        description="Repeat the campaign every DURATION (start to start), each wait moved at "
                    "random by up to --jitter, until SIGTERM or Ctrl-C (the run in progress is "
                    "kept and marked interrupted) or --max-runs. One line per run on stderr.",
        examples=["netvigil monitor --every 15m --jitter 2m --accept-risks",
                  "netvigil monitor --every 1h --max-runs 24 --targets telegram signal",
                  "netvigil monitor --every 15m --tsa https://tsa.example/tsr --tsa-root root.pem"])
    mo.add_argument("--every", required=True, metavar="DURATION",
                    help="time between the starts of two runs: 90s, 15m, 1h30m")
    mo.add_argument("--jitter", metavar="DURATION",
                    help="move each wait by up to +-DURATION at random (default: none)")
    mo.add_argument("--max-runs", type=int, metavar="N",
                    help="stop after N runs (default: until stopped)")
    _tsa_options(mo, "after each run, ")
    mo.add_argument("--collector", metavar="URL",
                    help=f"after each run, send ended runs to this collector (default: "
                         f"${ENV_COLLECTOR}; token: ${ENV_COLLECTOR_TOKEN})")


def _stored(sub: argparse._SubParsersAction[_Parser], db: _Parser, js: _Parser, window: _Parser,
            judge: _Parser, prints: _Parser) -> None:
    t = _actions(_command(sub, "targets", "show the bundled catalogue",
                          examples=["netvigil targets list", "netvigil targets list --json"]))
    _command(t, "list", "list the bundled platforms", parents=[js], handler=cmd_targets_list,
             examples=["netvigil targets list --json"])

    m = _actions(_command(sub, "measurements", "list stored measurements, or show one",
                          examples=["netvigil measurements --run 3 --verdict blocked",
                                    "netvigil measurements show 42 --json"]))
    ml = _command(m, "list", "list stored measurements (the default action)", parents=[db, js],
                  handler=cmd_measurements_list,
                  examples=["netvigil measurements list --run 3 --verdict blocked"])
    ml.add_argument("--run", type=int, metavar="N", help="only run N")
    ml.add_argument("--target", metavar="URL|HOST", help="only this target URL or hostname")
    ml.add_argument("--verdict", choices=[OK, BLOCKED, DOWN, INSUFFICIENT],
                    help="only measurements with this verdict")
    ml.add_argument("--limit", type=int, default=200, metavar="N",
                    help="show at most N, the newest")
    ms = _command(m, "show", "one measurement with every observation", parents=[db, js],
                  handler=cmd_measurements_show, examples=["netvigil measurements show 42"])
    ms.add_argument("id", type=int, metavar="ID")

    x = _command(sub, "export", "write measurements as JSONL, CSV, OONI or Parquet",
                 parents=[db], handler=cmd_export,
                 examples=["netvigil export --format csv --out runs.csv",
                           "netvigil export --format jsonl --run 3 > run3.jsonl",
                           "netvigil export --format ooni --out ooni.jsonl",
                           "netvigil export --format parquet --out m.parquet"])
    x.add_argument("--format", choices=["jsonl", "csv", "ooni", "parquet"], default="jsonl",
                   help="jsonl (every observation), csv (one row each), ooni (web_connectivity), "
                        "parquet (one typed row each, with the run's network and vantage; "
                        "needs --out)")
    x.add_argument("--run", type=int, metavar="N", help="only run N (default: every run)")
    x.add_argument("--out", type=Path, help="file to write (default: stdout)")

    a = _command(sub, "analyze", "recompute verdicts for stored runs", parents=[db, judge, js],
                 handler=cmd_analyze,
                 examples=["netvigil --db lab.db analyze --public-range 198.18.0.0/15"])
    a.add_argument("--run", type=int, metavar="N", help="only run N (default: every run)")

    e = _command(sub, "events", "blocking and outage events over time",
                 parents=[db, window, js], handler=cmd_events,
                 description="Group stored verdicts into events: what, where, from when to "
                             "when, how.",
                 examples=["netvigil events",
                           "netvigil events --since 2026-11-01 --kind outage --json",
                           "netvigil events --target telegram.org"])
    e.add_argument("--target", metavar="URL|HOST", help="only events of this target")
    e.add_argument("--kind", choices=["blocking", "outage"], help="only events of this kind")

    pl = _actions(_command(sub, "plot", "timeline and reachability plots (PNG or SVG)",
                           examples=["netvigil plot timeline --out timeline.png",
                                     "netvigil plot reachability --out reach.png"]))
    out = _flag_parent(("--out", {"type": Path, "required": True,
                                  "metavar": "FILE.png|FILE.svg",
                                  "help": "the chart to write; its suffix chooses PNG or SVG"}))
    tl = _command(pl, "timeline", "measurements and events over time, a row per target",
                  parents=[db, window, out], handler=cmd_plot_timeline,
                  examples=["netvigil plot timeline --out timeline.png",
                            "netvigil plot timeline --since 2026-11-01 --target x.com --out x.svg"])
    tl.add_argument("--target", metavar="URL|HOST", help="only this target")
    tl.add_argument("--title", help="the chart's title")
    rp = _command(pl, "reachability", "the reachable share per network over time",
                  parents=[db, window, out], handler=cmd_plot_reachability,
                  examples=["netvigil plot reachability --since 2026-11-01 --out reach.png",
                            "netvigil plot reachability --bin 5m --out reach.svg"])
    rp.add_argument("--bin", default="1h", metavar="DURATION",
                    help="width of a time bin, whole minutes: 5m, 1h (default: %(default)s)")

    o = _actions(_command(
        sub, "ooni", "classify or import OONI measurement files",
        description="Read OONI measurements (.json, .jsonl, .gz, or folders of them).",
        examples=["netvigil ooni classify 2024-*.jsonl.gz --fingerprints ./fingerprints/",
                  "netvigil ooni import ./ooni-data/ --db research.db"]))
    files = _Parser(add_help=False, parents=[prints, js])
    files.add_argument("files", nargs="+", metavar="FILE")
    _command(o, "classify", "our verdict beside OONI's, for each measurement",
             parents=[db, files], handler=cmd_ooni_classify,
             examples=["netvigil ooni classify measurement.json --json"])
    _command(o, "import", "store OONI measurements as runs", parents=[db, files],
             handler=cmd_ooni_import, examples=["netvigil ooni import ./ooni-data/ --db r.db"])

    rp = _command(sub, "report", "write an evidence report for lawyers (HTML or PDF)",
                  parents=[db, window], handler=cmd_report,
                  description="An expert-report layout: findings with what, where, when, how, "
                              "how sure, the controls that rule out a local fault, and exhibits "
                              "with record hashes.",
                  examples=["netvigil report --since 2026-11-01 --until 2026-11-30 --out case.pdf",
                            "netvigil report --event 3f2a9c0d1e4b5a67 --out event.html "
                            "--redact-vantage"])
    rp.add_argument("--event", metavar="ID", help="one event (see netvigil events)")
    rp.add_argument("--out", type=Path, required=True, metavar="FILE.html|FILE.pdf",
                    help="the report to write; its suffix chooses HTML or PDF")
    rp.add_argument("--redact-vantage", action="store_true",
                    help="leave out the vantage point's network (ASN, ISP, resolver addresses)")
    rp.add_argument("--lang", default="en", help="report language (a catalogue in "
                    "presentation/locale)")


def _evidence(sub: argparse._SubParsersAction[_Parser], db: _Parser, js: _Parser,
              window: _Parser, judge: _Parser) -> None:
    v = _command(sub, "verify", "check every hash, link, signature and derived row of a database",
                 parents=[db, judge, js], handler=cmd_verify,
                 description="Exit 0 when everything holds; otherwise exit 1 and name what fails.",
                 examples=["netvigil verify", "netvigil verify --db lab.db --public-range "
                                              "198.18.0.0/15 --json"])
    v.add_argument("--no-reclassify", action="store_true",
                   help="do not judge the verdicts again (hashes, signatures and rows only)")
    v.add_argument("--record-custody", action="store_true",
                   help="log this check in the custody log (not possible on a read-only "
                        "database; without it the database is only read)")

    ev = _actions(_command(
        sub, "evidence", "export an evidence bundle, or verify one without the database",
        examples=["netvigil evidence export --since 2026-11-01 --until 2026-11-08 --out case.zip",
                  "netvigil evidence verify case.zip",
                  "netvigil evidence custody --json",
                  "netvigil evidence timestamp --tsa https://tsa.example/tsr"]))
    ex = _command(ev, "export", "write a bundle of signed records, for one event, runs or a window",
                  parents=[db, window, judge, js], handler=cmd_evidence_export,
                  examples=["netvigil evidence export --since 2026-11-01 --out case.zip",
                            "netvigil evidence export --event 3f2a9c0d1e4b5a67 --out event.zip",
                            "netvigil evidence export --run 3 --run 4 --out runs.zip"])
    ex.add_argument("--out", type=Path, required=True, metavar="FILE.zip",
                    help="the bundle to write")
    ex.add_argument("--event", metavar="ID", help="one event (see netvigil events)")
    ex.add_argument("--run", type=int, action="append", metavar="N", help="repeatable")
    vb = _command(ev, "verify", "check a bundle on its own, without the database",
                  parents=[db, js], handler=cmd_evidence_verify,
                  examples=["netvigil evidence verify case.zip --json"])
    vb.add_argument("bundle", type=Path, metavar="FILE.zip")
    vb.add_argument("--allow-unsigned", action="store_true",
                    help="accept records no signature covers (reported as unsigned)")
    _command(ev, "custody", "who did what with the data, and when", parents=[db, js],
             handler=cmd_evidence_custody, examples=["netvigil evidence custody --json"])
    ts = _command(ev, "timestamp", "stamp run heads at an RFC 3161 authority", parents=[db, js],
                  handler=cmd_evidence_timestamp,
                  examples=["netvigil evidence timestamp --tsa https://tsa.example/tsr "
                            "--tsa-root tsa-root.pem"])
    _tsa_options(ts, "", required=True)

    k = _actions(_command(
        sub, "key", "show or rotate the signing key",
        description="The key that signs each run carries no identity; publish its id so others "
                    "can tell your signatures from a forger's.",
        examples=["netvigil key show", "netvigil key rotate"]))
    _command(k, "show", "the key's id and public key", parents=[db, js], handler=cmd_key_show,
             examples=["netvigil key show --json"])
    _command(k, "rotate", "retire the key and make a new one", parents=[db, js],
             handler=cmd_key_rotate, examples=["netvigil key rotate"])


def _remote(sub: argparse._SubParsersAction[_Parser], db: _Parser, js: _Parser, window: _Parser,
            ranges: _Parser, judge: _Parser) -> None:
    su = _command(
        sub, "submit", "send ended runs to a collector, as evidence bundles",
        parents=[db, judge, js],
        handler=cmd_submit,
        description="Each ended run is sent once (the custody log remembers where it went); "
                    "runs a collector could not take stay pending for the next call. The "
                    f"token, if the collector wants one, comes from ${ENV_COLLECTOR_TOKEN}.",
        examples=["netvigil submit --collector https://collector.example/",
                  f"{ENV_COLLECTOR_TOKEN}=s3cret netvigil submit --collector "
                  "http://10.0.0.5:8090 --json"])
    su.add_argument("--collector", metavar="URL", help=f"default: ${ENV_COLLECTOR}")
    su.add_argument("--ca-bundle", metavar="PEM", help="verify the collector's certificate "
                    "against this bundle")
    su.add_argument("--runs-per-bundle", type=int, default=10, metavar="N",
                    help="runs in one bundle (default: %(default)s; fewer while the collector "
                         "finds a bundle too big)")
    su.add_argument("--timeout", type=float, default=60.0, metavar="S",
                    help="seconds to wait for the collector's answer to one bundle")

    co = _actions(_command(
        sub, "collector", "run a collector for many probes' bundles, or read what it collected",
        description="serve: accept evidence bundles over HTTP (each is verified in full before "
                    "it is kept). events, status, plot: read the collection folder, across "
                    "probes.",
        examples=["netvigil collector serve --listen 0.0.0.0:8090 --dir /srv/collection",
                  "netvigil collector status --dir /srv/collection --json"]))
    folder = _flag_parent(("--dir", {"type": Path, "required": True, "metavar": "DIR",
                                     "help": "the collection folder"}))
    cs = _command(co, "serve", "accept bundles over HTTP", parents=[folder],
                  handler=cmd_collector_serve,
                  examples=["netvigil collector serve --listen 0.0.0.0:8090 --dir "
                            "/srv/collection --token s3cret"])
    cs.add_argument("--listen", default="127.0.0.1:8090", metavar="HOST:PORT",
                    help="address and port to serve on")
    cs.add_argument("--token", dest="tokens", action="append", default=[],
                    help=f"accept this bearer token (repeatable; or ${ENV_COLLECTOR_TOKEN}); "
                         "none: anyone may submit")
    cs.add_argument("--allow-key", action="append", default=[], metavar="KEYID",
                    help="accept only runs signed by these keys (repeatable)")
    cs.add_argument("--allow-unsigned", action="store_true",
                    help="keep bundles holding records no signature covers (those records "
                         "are not indexed)")
    cs.add_argument("--max-size", type=float, default=64.0, metavar="MIB",
                    help="the largest bundle accepted (default: %(default)s MiB)")
    ce = _command(co, "events", "events across every probe", parents=[folder, window, js],
                  handler=cmd_collector_events,
                  examples=["netvigil collector events --dir /srv/collection --kind outage "
                            "--since 2026-11-01"])
    ce.add_argument("--kind", choices=["blocking", "outage"], help="only events of this kind")
    _command(co, "status", "bundles, probes and networks collected", parents=[folder, js],
             handler=cmd_collector_status,
             examples=["netvigil collector status --dir /srv/collection --json"])
    cp = _command(co, "plot", "a chart of the collection", parents=[folder, window],
                  handler=cmd_collector_plot,
                  examples=["netvigil collector plot --dir /srv/collection --chart reachability "
                            "--out r.png"])
    cp.add_argument("--chart", choices=["timeline", "reachability"], default="timeline",
                    help="timeline: measurements and events over time; reachability: the "
                         "reachable share per network (default: %(default)s)")
    cp.add_argument("--out", type=Path, required=True, metavar="FILE.png|FILE.svg",
                    help="the chart to write; its suffix chooses PNG or SVG")

    h = _actions(_command(
        sub, "helper", "run the test helper (a control on an uncensored network)",
        description="Serve controls: measure the targets a probe sends, from this network.",
        examples=["netvigil helper serve --listen 0.0.0.0:8443 --tls-cert fullchain.pem "
                  "--tls-key privkey.pem --token s3cret"]))
    hs = _command(h, "serve", "measure what probes send, from this network", parents=[ranges],
                  handler=cmd_helper_serve,
                  examples=["netvigil helper serve --listen 0.0.0.0:8443 --tls-cert fullchain.pem "
                            "--tls-key privkey.pem --token s3cret",
                            "netvigil helper serve --listen 198.18.0.10:8080 --allow-private"
                            "   # a test lab"])
    hs.add_argument("--listen", default="127.0.0.1:8080", metavar="HOST:PORT",
                    help="address and port to serve on (0.0.0.0 to publish the helper)")
    hs.add_argument("--resolver", metavar="IP[:PORT]", help="resolve with this server, not the "
                    "system resolver")
    hs.add_argument("--token", dest="helper_token",
                    help=f"require 'Authorization: Bearer TOKEN' (or ${ENV_HELPER_TOKEN})")
    hs.add_argument("--tls-cert", metavar="PEM", help="serve HTTPS with this certificate "
                    "chain (with --tls-key), so the token never travels in clear")
    hs.add_argument("--tls-key", metavar="PEM", help="the certificate's private key")
    hs.add_argument("--insecure-http", action="store_true",
                    help="allow --token over plain HTTP on a public address (only behind a TLS "
                         "reverse proxy)")
    hs.add_argument("--allow-private", action="store_true",
                    help="also measure private, loopback and special-purpose addresses (labs "
                         "only)")


# --- one call into the library per action, then output -----------------------------------------

def cmd_run(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_run, campaign

    result = actions_run.run(s, out.ask, out.progress)
    out.warning(views.control_warning(result.control))
    out.show(result.to_dict(), lambda: views.run_view(
        result, campaign.explain_network(result.network)))
    lost = actions_run.lost_targets(result, len(s.targets))
    if lost:  # targets not measured are results lost: say so, and fail the command
        out.error(lost)
        return 1
    return 0


def cmd_monitor(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_run

    actions_run.watch(s, out.ask, out.log)
    return 0


def cmd_targets_list(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    found = actions.platforms()
    out.show(views.targets_json(found), lambda: [views.targets_table(found)])
    return 0


def cmd_measurements_list(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    rows, total = actions.measurements(s, args.run, args.target, args.verdict, args.limit)
    out.show(rows, lambda: [views.measurements_table(rows, total)])
    if total > len(rows):
        out.message(views.more_measurements(len(rows), total))
    return 0


def cmd_measurements_show(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    row = actions.measurement(s, args.id)
    out.show(row, lambda: views.describe_view(row))
    return 0


def cmd_export(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    done = actions.export(s, args.format, args.out, out.stream, args.run)
    if done:
        out.message(done)
    return 0


def cmd_analyze(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    changed = actions.analyze(s, args.run)
    out.show(changed, [views.line(views.analyze_line(changed))])
    return 0


def cmd_events(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    found = actions.events(s, args.target, args.kind)
    out.show([e.to_dict() for e in found], lambda: [views.events_table(found)])
    return 0


def cmd_plot_timeline(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    out.message(actions.plot_timeline(s, args.out, args.target, args.title))
    return 0


def cmd_plot_reachability(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    out.message(actions.plot_reachability(s, args.out, args.bin))
    return 0


def cmd_ooni_classify(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    rows = actions.ooni_classify(s, args.files)
    out.show(rows, lambda: [views.ooni_table(rows)])
    return 0


def cmd_ooni_import(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    counts = actions.ooni_import(s, args.files)
    out.show(counts, lambda: views.ooni_import_view(counts, s.db))
    return 0


def cmd_report(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions

    out.message(actions.report(s, args.out, args.event, args.redact_vantage, args.lang))
    return 0


def _verification(report: Any, what: str, out: Output) -> int:
    """Exit 1 when anything fails."""
    out.show(report.to_dict(), lambda: views.verification_view(report, what))
    return 0 if report.ok else 1


def cmd_verify(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_evidence

    return _verification(actions_evidence.verify(s, not args.no_reclassify, args.record_custody),
                         str(s.db), out)


def cmd_evidence_verify(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_evidence

    return _verification(actions_evidence.check_bundle(args.bundle, args.allow_unsigned),
                         str(args.bundle), out)


def cmd_evidence_export(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_evidence

    summary = actions_evidence.export(s, args.out, args.event, args.run)
    if s.as_json:
        out.json(summary)
    else:
        out.message(f"wrote {args.out}; {summary['custody']}")
    return 0


def cmd_evidence_custody(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_evidence

    entries = actions_evidence.custody(s)
    out.show(entries, lambda: views.custody_lines(entries))
    return 0


def cmd_evidence_timestamp(args: argparse.Namespace, s: Settings, out: Output) -> int:
    """Exit 1 while any run head is left waiting."""
    from services import actions_evidence

    result = actions_evidence.timestamp(s)
    out.show(result, lambda: views.timestamp_view(result))
    return 0 if result["pending"] == 0 else 1


def cmd_key_show(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_evidence

    info = actions_evidence.key(s)
    out.show(info, lambda: views.key_lines(info))
    return 0


def cmd_key_rotate(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_evidence

    info = actions_evidence.key(s, rotate=True)
    out.show(info, lambda: views.key_lines(info))
    return 0


def cmd_submit(args: argparse.Namespace, s: Settings, out: Output) -> int:
    """Exit 1 when the collector could not take everything."""
    from services import actions_remote

    result = actions_remote.submit(s, args.runs_per_bundle, args.timeout, args.ca_bundle)
    out.show(result, lambda: [views.line(views.submit_line(result))])
    return 1 if result["error"] else 0


def cmd_collector_serve(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_remote

    return actions_remote.serve_collector(s)


def cmd_collector_events(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_remote

    found = actions_remote.collection_events(s, args.dir, args.kind)
    out.show([e.to_dict() for e in found], lambda: [views.events_table(found)])
    return 0


def cmd_collector_status(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_remote

    status = actions_remote.collection_status(args.dir)
    out.show(status, lambda: [views.line(views.collection_line(status))])
    return 0


def cmd_collector_plot(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_remote

    out.message(actions_remote.plot_collection(s, args.dir, args.chart, args.out))
    return 0


def cmd_helper_serve(args: argparse.Namespace, s: Settings, out: Output) -> int:
    from services import actions_remote

    return actions_remote.serve_helper(s)


# --- the entry point -----------------------------------------------------------------------------

def implied_action(argv: Sequence[str]) -> list[str]:
    """`argv` with the action word a command implies when it is left out (DEFAULT_ACTIONS)."""
    args = list(argv)
    at = 0
    while at < len(args) and args[at].startswith("-"):
        at += 1 if "=" in args[at] or args[at] in ("-h", "--help") else 2  # skip --db PATH
    if at < len(args) and args[at] in DEFAULT_ACTIONS:
        following = args[at + 1] if at + 1 < len(args) else None
        if following is None or (following.startswith("-") and following not in ("-h", "--help")):
            args.insert(at + 1, DEFAULT_ACTIONS[args[at]])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status. Every NetvigilError ends here as one line on stderr."""
    out = Output()
    try:
        args = _parser().parse_args(implied_action(sys.argv[1:] if argv is None else argv))
        settings = Settings.from_args(args)
        out.as_json = settings.as_json
        handler: Handler = args.handler
        return handler(args, settings, out)
    except NetvigilError as exc:
        out.error(str(exc))
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM: the run is ended interrupted, signed
        out.message("interrupted: every finished measurement is stored")
        return exc.exit_code if isinstance(exc, Terminated) else 130
    except BrokenPipeError:  # `netvigil ... | head` is fine
        out.silence()
        return 0


if __name__ == "__main__":
    sys.exit(main())
