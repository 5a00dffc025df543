"""The risk notice a volunteer must accept before the first run, and where acceptance is kept.

Measuring censorship can be risky where it is done: the traffic looks like visits to blocked
sites. The notice says what the probe does and what it keeps; acceptance is asked once,
interactively, or given with `--accept-risks` / `NETVIGIL_ACCEPT_RISKS=1` for unattended installs.
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

NOTICE = """\
netvigil: before your first measurement, please read this.

What it does: from this computer, netvigil looks up, connects to and downloads the front pages
of the sites and apps in its list (social networks, messengers, news, circumvention tools) and
of any you give it, and records what happened (DNS answers, connection failures, certificates,
page titles and hashes) in a local database.

The risk: anyone watching your network (your ISP, your employer, the state) can see that this
computer tried to reach those sites, and some of them are blocked or illegal to visit in some
countries. In some places running a censorship measurement tool can itself carry legal or
personal risk. Only run netvigil if you understand and accept this.

What it keeps: measurements stay on this computer. Your public IP address is not stored. Nothing
is uploaded unless you export or submit it yourself.
"""

ENV_ACCEPT = "NETVIGIL_ACCEPT_RISKS"


def _marker(config_dir: Path | None = None) -> Path:
    base = config_dir or platformdirs.user_config_path("netvigil")
    return base / "accepted-risks"


def accepted(config_dir: Path | None = None) -> bool:
    """True when the notice was accepted before, or the environment accepts it."""
    if os.environ.get(ENV_ACCEPT, "").strip().lower() in ("1", "true", "yes"):
        return True
    return _marker(config_dir).exists()


def accept(config_dir: Path | None = None) -> Path:
    """Remember that the notice was accepted; returns the marker file."""
    marker = _marker(config_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("accepted\n")
    return marker
