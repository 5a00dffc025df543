"""Settings: what a command was asked to do, built once from its arguments and the environment.

`cli.py` only declares options; `Settings.from_args` turns the parsed arguments and the NETVIGIL_*
environment into the library's configuration, in this one place, and checks every value before
anything is measured, sent or written. A bad value is a `ConfigError` naming its option (exit
status 2, one line); a bad targets file is a `TargetError` naming its file and line.

What it builds (a field is left at its default when the command has no such option):

    db, as_json          the database, and whether the command answers in JSON
    env                  NETVIGIL_HELPER, _HELPER_TOKEN, _COLLECTOR, _COLLECTOR_TOKEN, _ACCEPT_RISKS
    public_ranges        --public-range CIDRs (test labs)
    fingerprints         --fingerprints files and folders, merged into one set
    since, until         --since/--until, checked as ISO 8601 times (kept as given)
    targets, campaign    run/monitor: the targets and `CampaignOptions` (resolvers, timeouts,
                         limits, helper, the network's name)
    accept_risks         --accept-risks (the environment's answer is `env.accept_risks`)
    schedule             monitor: --every, --jitter, --max-runs
    tsa                  --tsa, --tsa-timeout, --tsa-root (the root checked before anything is sent)
    collector            submit/monitor: --collector, else $NETVIGIL_COLLECTOR
    helper, collection   helper serve / collector serve: their server configurations
    listen               --listen HOST:PORT, checked
    server_tls           helper serve: --tls-cert/--tls-key loaded into a server context

The checks themselves live in `services.settings_checks`; the heavy modules they need (the probe
configuration, the fingerprint loader, the target loaders) are imported only when a command uses
them, so that `netvigil --help` stays fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError
from services import consent
from services import settings_checks as checks

if TYPE_CHECKING:
    import ssl

    from analysis.fingerprints import Fingerprints
    from core.target import Target
    from services.campaign import CampaignOptions
    from services.collector_server import CollectorConfig
    from services.helper_protocol import HelperConfig
    from services.monitor import Schedule

#: The environment variables a command reads, and what each stands for.
ENV_HELPER = "NETVIGIL_HELPER"
ENV_HELPER_TOKEN = "NETVIGIL_HELPER_TOKEN"
ENV_COLLECTOR = "NETVIGIL_COLLECTOR"
ENV_COLLECTOR_TOKEN = "NETVIGIL_COLLECTOR_TOKEN"
ENV_ACCEPT_RISKS = consent.ENV_ACCEPT
_YES = ("1", "true", "yes")


def default_db() -> Path:
    """The database when --db is not given: $NETVIGIL_DB, else the user's data directory."""
    from results.paths import default_db_path  # platformdirs only: cheap enough for --help

    return default_db_path()


@dataclass(frozen=True)
class Env:
    """The NETVIGIL_* defaults of the environment, read in this one place (empty means unset)."""

    helper: str | None = None
    helper_token: str | None = None
    collector: str | None = None
    collector_token: str | None = None
    accept_risks: bool = False

    @classmethod
    def read(cls, environ: Mapping[str, str] | None = None) -> Env:
        """The defaults in `environ` (the process environment when None)."""
        source = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            return source.get(name, "").strip() or None

        return cls(helper=get(ENV_HELPER), helper_token=get(ENV_HELPER_TOKEN),
                   collector=get(ENV_COLLECTOR), collector_token=get(ENV_COLLECTOR_TOKEN),
                   accept_risks=(get(ENV_ACCEPT_RISKS) or "").lower() in _YES)


@dataclass(frozen=True)
class Tsa:
    """An RFC 3161 time-stamping authority: where, how long to wait, which root to trust."""

    url: str
    timeout: float = 10.0
    roots_pem: bytes | None = None


@dataclass(frozen=True)
class Settings:
    """A command's configuration; see the module docstring for each field."""

    db: Path
    as_json: bool = False
    env: Env = field(default_factory=Env)
    public_ranges: tuple[checks.Network, ...] = ()
    fingerprints: Fingerprints | None = None
    since: str | None = None
    until: str | None = None
    targets: tuple[Target, ...] = ()
    campaign: CampaignOptions | None = None
    accept_risks: bool = False
    schedule: Schedule | None = None
    tsa: Tsa | None = None
    collector: str | None = None
    helper: HelperConfig | None = None
    collection: CollectorConfig | None = None
    listen: str | None = None
    server_tls: ssl.SSLContext | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace | Mapping[str, Any],
                  environ: Mapping[str, str] | None = None) -> Settings:
        """Settings from parsed arguments (a Namespace or a dict of option values, by `dest`)
        and the environment (the process's when None). Raises ConfigError or TargetError."""
        a: Mapping[str, Any] = vars(args) if isinstance(args, argparse.Namespace) else args
        env = Env.read(environ)
        since, until = checks.window(a.get("since"), a.get("until"))
        public_ranges = checks.networks(a.get("public_range") or ())
        fingerprints = checks.fingerprints(a.get("fingerprints") or ())
        targets: tuple[Target, ...] = ()
        campaign = None
        if "targets" in a:  # run and monitor
            targets = checks.targets(a["targets"])
            campaign = checks.campaign(a, env, public_ranges, fingerprints)
        server_tls = checks.server_tls(a.get("tls_cert"), a.get("tls_key"))
        tsa = None
        if a.get("tsa"):
            tsa = Tsa(a["tsa"], checks.positive(a.get("tsa_timeout", 10.0), "--tsa-timeout"),
                      checks.tsa_roots(a.get("tsa_root")))
        return cls(
            db=Path(a["db"]) if a.get("db") is not None else default_db(),
            as_json=bool(a.get("json")),
            env=env,
            public_ranges=public_ranges,
            fingerprints=fingerprints,
            since=since,
            until=until,
            targets=targets,
            campaign=campaign,
            accept_risks=bool(a.get("accept_risks")),
            schedule=checks.schedule(a) if "every" in a else None,
            tsa=tsa,
            collector=(a.get("collector") or env.collector) if "collector" in a else None,
            helper=(checks.helper(a, env, public_ranges, server_tls is not None)
                    if "helper_token" in a else None),
            collection=checks.collection(a, env) if "tokens" in a else None,
            listen=checks.listen(a["listen"]) if a.get("listen") else None,
            server_tls=server_tls,
        )

    def require_collector(self, command: str) -> str:
        """The collector's URL; a ConfigError saying how to give one when there is none."""
        if not self.collector:
            raise ConfigError(f"{command}: give --collector URL (or set {ENV_COLLECTOR})",
                              "--collector")
        return self.collector
