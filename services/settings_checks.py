"""The checks behind `services.settings`: one function per option (or group of options).

Each takes what the user typed and returns the library's value, or raises a one-line
`ConfigError` that names the option. Heavy modules are imported inside the function that needs
them: `services.settings` is imported by `netvigil --help`, which should not pay for the probes.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import ConfigError, TimeFormatError
from core.times import parse_utc

if TYPE_CHECKING:
    import ssl

    from analysis.fingerprints import Fingerprints
    from core.target import Target
    from probes.config import ProbeConfig
    from probes.runner import Limits
    from services.campaign import CampaignOptions
    from services.collector_server import CollectorConfig
    from services.helper_protocol import HelperConfig
    from services.monitor import Schedule
    from services.settings import Env
    from services.vantage import NetworkOptions

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def window(since: str | None, until: str | None) -> tuple[str | None, str | None]:
    """--since and --until as given, once each is known to be an ISO 8601 time."""
    for option, value in (("--since", since), ("--until", until)):
        if value is None:
            continue
        try:
            parse_utc(value)
        except TimeFormatError:
            # "--since/--until" stays in the message: scripts and tests look for it.
            raise ConfigError(f"{option} {value!r}: not an ISO 8601 time, e.g. 2026-11-01 or "
                              "2026-11-01T18:00Z (--since/--until are UTC unless they say "
                              "otherwise)", option) from None
    return since, until


def positive(value: float, option: str) -> float:
    """`value` when it is a finite number above zero."""
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{option} {value:g}: must be a positive number", option)
    return value


def networks(specs: Sequence[str]) -> tuple[Network, ...]:
    """--public-range CIDRs (host bits allowed: 198.18.0.1/15 means 198.18.0.0/15)."""
    found = []
    for spec in specs:
        try:
            found.append(ipaddress.ip_network(spec, strict=False))
        except ValueError as exc:
            raise ConfigError(f"--public-range {spec}: {exc}", "--public-range") from None
    return tuple(found)


def fingerprints(specs: Sequence[str]) -> Fingerprints | None:
    """Every --fingerprints CSV, a folder standing for the CSV files in it, merged into one set;
    None when none is given."""
    files: list[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            files += sorted(path.glob("*.csv"))
        elif path.is_file():
            files.append(path)
        else:
            raise ConfigError(f"--fingerprints {spec}: no such file or folder", "--fingerprints")
    if not files:
        return None
    from analysis.fingerprints import Fingerprints
    from ooni.fingerprints import load_fingerprints

    http: list[Any] = []
    dns: list[Any] = []
    for path in files:
        try:
            loaded = load_fingerprints(path, None)
        except (OSError, ValueError) as exc:
            raise ConfigError(str(exc), "--fingerprints") from None
        http += loaded.http
        dns += loaded.dns
    return Fingerprints(http=http, dns=dns)


def targets(specs: Sequence[str] | None) -> tuple[Target, ...]:
    """--targets, or the bundled catalogue when none is given; every file read, all or nothing."""
    from targets.catalogue import platform_names
    from targets.loaders import load_targets

    return tuple(load_targets(list(specs) if specs else platform_names()))


def probe_config(a: Mapping[str, Any]) -> ProbeConfig:
    """How each target is measured: resolvers, DoH, CA bundle, timeouts, IPv6."""
    from probes.config import ProbeConfig, Timeouts
    from probes.dns import parse_resolver

    resolvers = tuple(a.get("resolver") or ()) or ProbeConfig().resolvers
    for spec in resolvers:
        try:
            parse_resolver(spec)
        except ValueError as exc:
            raise ConfigError(f"--resolver {spec}: {exc}", "--resolver") from None
    ca_bundle = a.get("ca_bundle")
    if ca_bundle:
        ca_file(ca_bundle, "--ca-bundle")
    doh = a.get("doh")
    if doh is not None:
        doh_url(doh)
    timeouts = Timeouts()
    if a.get("timeout") is not None:  # 0 is a value to refuse, not "no option"
        scale = positive(a["timeout"], "--timeout") / timeouts.tcp
        # The listen window is not a timeout: it is how long a second (injected) answer may
        # trail the first, a property of the censor's path, so it does not scale.
        timeouts = Timeouts(**{k: v if k == "dns_listen" else v * scale
                               for k, v in vars(timeouts).items()})
    return ProbeConfig(
        timeouts=timeouts, resolvers=resolvers, doh_url=doh,
        dns_over_tcp=bool(a.get("dns_over_tcp")), ca_bundle=ca_bundle,
        ipv6=not a.get("no_ipv6"), system_resolver=not a.get("no_system_resolver"),
    )


def ca_file(path: str, option: str) -> str:
    """`path` once it loads as a file of CA certificates (PEM), as the TLS step will load it.

    Checked before any traffic: a file that is not a CA bundle would otherwise fail every TLS
    handshake of the run as an internal error, and the run would measure nothing."""
    import ssl

    if not Path(path).is_file():
        raise ConfigError(f"{option} {path}: no such file", option)
    try:
        ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=path)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"{option} {path}: not a PEM file of CA certificates ({exc})",
                          option) from None
    return path


def doh_url(url: str) -> str:
    """--doh URL, once it is an https:// URL with a host (RFC 8484: DoH is HTTPS)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - a bad port raises only when read
    except ValueError as exc:
        raise ConfigError(f"--doh {url}: not a URL ({exc})", "--doh") from None
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise ConfigError(f"--doh {url}: expected https://HOST/PATH, e.g. "
                          "https://dns.google/dns-query", "--doh")
    return url


def limits(a: Mapping[str, Any]) -> Limits:
    """--concurrency, --rate and --per-host-rate, each named in its own message (`Limits`
    checks them too, but cannot tell which of two rates was wrong, nor refuse NaN)."""
    from probes.runner import Limits

    concurrency = a.get("concurrency", 16)
    if concurrency < 1:
        raise ConfigError(f"--concurrency {concurrency}: must be at least 1", "--concurrency")
    return Limits(concurrency, positive(a.get("rate", 50.0), "--rate"),
                  positive(a.get("per_host_rate", 4.0), "--per-host-rate"))


def network(a: Mapping[str, Any], helper_url: str | None) -> NetworkOptions | None:
    """How runs name their network (--asn, --isp, --country, --asn-table); None for not at all."""
    from probes.ipasn import check_table
    from services.vantage import NetworkOptions, parse_asn, parse_country

    def checked(option: str, parse: Any, value: Any) -> Any:
        try:
            return parse(value)
        except ValueError as exc:  # a TableError names the file and line itself
            raise ConfigError(str(exc), option) from None

    isp = a.get("isp")
    table = a.get("asn_table")
    options = NetworkOptions(
        asn=checked("--asn", parse_asn, a["asn"]) if a.get("asn") else None,
        isp=" ".join(isp.split())[:200] if isp and isp.strip() else None,
        country=checked("--country", parse_country, a["country"]) if a.get("country") else None,
        asn_table=table,
    )
    if table is not None:
        checked("--asn-table", check_table, table)
    if options == NetworkOptions():
        return None
    if table is not None and not helper_url:
        raise ConfigError("--asn-table needs a --helper to learn the public address; or declare "
                          "the network with --asn, --isp and --country", "--asn-table")
    return options


def campaign(a: Mapping[str, Any], env: Env, public_ranges: tuple[Network, ...],
             found: Fingerprints | None) -> CampaignOptions:
    """Everything a run needs besides its targets."""
    from services.campaign import CampaignOptions

    helper_url = a.get("helper") or env.helper
    return CampaignOptions(
        config=probe_config(a),
        limits=limits(a),
        public_ranges=public_ranges,
        fingerprints=found,
        check_network=not a.get("no_netcheck"),
        helper_url=helper_url,
        helper_token=env.helper_token,
        network=network(a, helper_url),
    )


def duration(text: str | None, option: str) -> float:
    """Seconds in a duration such as 90s, 15m or 1h30m (`services.monitor.parse_duration`)."""
    from services.monitor import parse_duration

    if text is None:
        return 0.0
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigError(f"{option} {text}: {exc}", option) from None


def schedule(a: Mapping[str, Any]) -> Schedule:
    """monitor's --every, --jitter and --max-runs."""
    from services.monitor import Schedule

    every = duration(a.get("every"), "--every")
    jitter = duration(a.get("jitter"), "--jitter")
    max_runs = a.get("max_runs")
    if max_runs is not None and max_runs < 1:
        raise ConfigError(f"--max-runs {max_runs}: must be at least 1", "--max-runs")
    try:
        return Schedule(every, jitter, max_runs)
    except ValueError as exc:  # a zero interval
        raise ConfigError(f"--every {a.get('every')}: {exc}", "--every") from None


def tsa_roots(path: Path | None) -> bytes | None:
    """The --tsa-root file's certificates, read and parsed before anything is sent."""
    if path is None:
        return None
    from cryptography import x509

    try:
        pem = Path(path).read_bytes()
        x509.load_pem_x509_certificates(pem)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--tsa-root {path}: not a readable PEM certificate ({exc})",
                          "--tsa-root") from None
    return pem


def listen(spec: str) -> str:
    """--listen HOST:PORT, as given, once it can be bound without a name lookup."""
    from services.http_base import parse_listen

    try:
        parse_listen(spec)
    except ValueError as exc:
        raise ConfigError(str(exc), "--listen") from None
    return spec


def server_tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    """--tls-cert and --tls-key (PEM files) loaded into a server context; None without them.

    Loaded here, before the server binds, so that a missing file, a bad PEM or a key that does
    not belong to the certificate is one line and exit 2 rather than failed handshakes later.
    """
    if not cert and not key:
        return None
    if not (cert and key):
        missing = "--tls-key" if cert else "--tls-cert"
        raise ConfigError(f"{missing}: give --tls-cert and --tls-key together", missing)
    import ssl

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    try:
        context.load_cert_chain(cert, key)
    except OSError as exc:  # ssl.SSLError is an OSError: a bad PEM or a mismatched key
        why = exc.strerror or getattr(exc, "reason", None) or str(exc)
        raise ConfigError(f"--tls-cert {cert} / --tls-key {key}: cannot load ({why}); give a "
                          "PEM certificate chain and its own private key", "--tls-cert") from None
    return context


def _loopback(listen_spec: str) -> bool:
    from services.http_base import parse_listen

    host, _ = parse_listen(listen_spec)
    return ipaddress.ip_address(host).is_loopback


def helper(a: Mapping[str, Any], env: Env, public_ranges: tuple[Network, ...],
           tls: bool = False) -> HelperConfig:
    """`helper serve`: its resolver, token ($NETVIGIL_HELPER_TOKEN) and address rules.

    A token served over plain HTTP on an address other than loopback is refused unless
    --insecure-http says a TLS reverse proxy sits in front: anyone on the path would read it.
    """
    from probes.dns import parse_resolver
    from services.helper_protocol import HelperConfig

    token = a.get("helper_token") or env.helper_token
    listen_spec = a.get("listen")
    if (token and not tls and listen_spec and not a.get("insecure_http")
            and not _loopback(listen(listen_spec))):
        raise ConfigError(f"helper serve: a --token on plain HTTP at {listen_spec} would cross "
                          "the network in clear, readable by anyone on the path; give "
                          "--tls-cert and --tls-key to serve HTTPS, or --insecure-http if a TLS "
                          "reverse proxy terminates the connection", "--insecure-http")

    resolver = a.get("resolver")
    if resolver:
        try:
            parse_resolver(resolver)
        except ValueError as exc:
            raise ConfigError(f"--resolver {resolver}: {exc}", "--resolver") from None
    return HelperConfig(resolver=resolver, token=token,
                        allow_private=bool(a.get("allow_private")), public_ranges=public_ranges)


def collection(a: Mapping[str, Any], env: Env) -> CollectorConfig:
    """`collector serve`: the folder, tokens ($NETVIGIL_COLLECTOR_TOKEN), keys and size limit."""
    from services.collector_server import CollectorConfig

    tokens = a.get("tokens") or ([env.collector_token] if env.collector_token else [])
    max_size = positive(a.get("max_size", 64.0), "--max-size")
    return CollectorConfig(folder=Path(a["dir"]), tokens=tuple(tokens),
                           allowed_keys=tuple(a.get("allow_key") or ()),
                           allow_unsigned=bool(a.get("allow_unsigned")),
                           max_body=int(max_size * (1 << 20)))
