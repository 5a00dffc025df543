"""What a run records about its vantage point: software, time zone, and its network (ISP, ASN,
country), never its public address.

A court needs to know where a measurement was made: which ISP's network, which ASN, which
country. Two ways to say it, both opt-in, since a volunteer's network is sensitive:

- declared by the probe's operator (`--asn AS64500 --isp "Example Telecom" --country KE`), which
  also works in a shutdown, when nothing outside can be reached;
- looked up (`--asn-table ip2asn.tsv.gz`): the test helper tells the probe the address its
  traffic arrives from (GET /v1/whoami), and a local ip2asn table maps it to the ASN, the AS
  name and the country. The address is used for that lookup and dropped; the record says which
  table (its SHA-256) gave the answer.

Declared values win over looked-up ones, key by key, and the record says which came from where:

    {"asn": "AS64500", "network_name": "EXAMPLE-AS", "country": "KE",
     "network_source": {"declared": ["country"], "looked_up": ["asn", "network_name"],
                        "table_sha256": "9f86...", "address_from": "test helper"}}

A lookup that fails (no helper reachable, an address no range holds) is recorded as
`network_error`, and the run goes on.
"""

from __future__ import annotations

import asyncio
import os
import platform
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import ConfigError, TableError
from probes.helper_client import public_address
from probes.ipasn import ASInfo, lookup, table_digest

VERSION = "0.1.0"

_ASN = re.compile(r"(?i)^(?:AS)?(\d{1,10})$")


def parse_asn(text: str) -> str:
    """'AS64500' from 'AS64500', 'as64500' or '64500'; ConfigError with an example otherwise."""
    match = _ASN.match(text.strip())
    if not match or not 0 < int(match.group(1)) < 2**32:
        raise ConfigError(f"--asn {text!r}: give an AS number such as AS64500", "--asn")
    return f"AS{int(match.group(1))}"


def parse_country(text: str) -> str:
    """'KE' from 'ke'; ConfigError unless two letters (ISO 3166-1 alpha-2)."""
    code = text.strip().upper()
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        raise ConfigError(f"--country {text!r}: give a two-letter country code such as KE",
                          "--country")
    return code


@dataclass(frozen=True)
class NetworkOptions:
    """How a run names its network: declared values, and an ip2asn table for lookups."""

    asn: str | None = None  # "AS64500"
    isp: str | None = None
    country: str | None = None  # "KE"
    asn_table: Path | None = None

    def declared(self) -> dict[str, str]:
        """The declared values under their vantage keys."""
        pairs = {"asn": self.asn, "network_name": self.isp, "country": self.country}
        return {k: v for k, v in pairs.items() if v}


def vantage(
    network: NetworkOptions | None = None, helper_url: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """The run's vantage record. Blocking (it may ask the helper, waiting up to `timeout`
    seconds): call it in a thread."""
    record: dict[str, Any] = {
        "tool": "netvigil",
        "version": VERSION,
        "python": platform.python_version(),
        "os": sys.platform,
        "machine": platform.machine(),
        # Reports give times in UTC and in the vantage point's local time, as a court needs.
        "timezone": local_timezone(),
    }
    if network is not None:
        record.update(network_identity(network, helper_url, timeout))
    return record


async def vantage_async(
    network: NetworkOptions | None = None, helper_url: str | None = None, timeout: float = 5.0
) -> dict[str, Any]:
    """`vantage` off the event loop."""
    return await asyncio.to_thread(vantage, network, helper_url, timeout)


def network_identity(
    network: NetworkOptions, helper_url: str | None, timeout: float = 5.0
) -> dict[str, Any]:
    """The vantage keys that name the network (see the module docstring)."""
    declared = network.declared()
    record: dict[str, Any] = dict(declared)
    source: dict[str, Any] = {"declared": sorted(declared), "looked_up": []}
    wanted = {"asn", "network_name", "country"} - set(declared)
    if network.asn_table is not None and wanted:
        found, error = _look_up(network.asn_table, helper_url, timeout)
        if found is not None:
            looked = {"asn": found.label, "network_name": found.name, "country": found.country}
            for key in sorted(wanted):
                if looked[key]:
                    record[key] = looked[key]
                    source["looked_up"].append(key)
            source["table_sha256"] = table_digest(network.asn_table)
            source["address_from"] = "test helper"
        if error:
            record["network_error"] = error
    if source["declared"] or source["looked_up"]:
        record["network_source"] = source
    return record


def _look_up(table: Path, helper_url: str | None, timeout: float
             ) -> tuple[ASInfo | None, str | None]:
    """(ASInfo or None, why not) for this probe's public address."""
    if not helper_url:
        return None, "no test helper to tell the probe its public address (--helper)"
    address, error = public_address(helper_url, timeout=timeout)
    if address is None:
        return None, f"public address unknown: {error}"
    try:
        found = lookup(table, address)
    except TableError as exc:
        return None, str(exc)
    # The address itself goes no further than this function.
    if found is None:
        return None, "the ASN table has no routed range for the probe's public address"
    return found, None


def local_timezone() -> str | None:
    """The IANA name of this machine's time zone ($TZ, else the /etc/localtime link), if known."""
    name = os.environ.get("TZ", "").lstrip(":")
    if not name:
        try:
            link = os.readlink("/etc/localtime")
        except OSError:
            return None
        name = link.split("zoneinfo/", 1)[1] if "zoneinfo/" in link else ""
    return name or None
