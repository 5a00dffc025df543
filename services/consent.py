"""The risk notice a volunteer must accept before the first run, and where acceptance is kept.

Measuring censorship can be risky where it is done: the traffic looks like visits to blocked
sites. The notice says what the probe does and what it keeps; acceptance is asked once,
interactively, or given with `--accept-risks` / `NETVIGIL_ACCEPT_RISKS=1` for unattended installs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import platformdirs

from core.errors import ConfigError

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

#: Read with the other NETVIGIL_* defaults by `services.settings.Env`.
ENV_ACCEPT = "NETVIGIL_ACCEPT_RISKS"
QUESTION = "Type 'yes' to accept and continue: "

#: Shows the notice and asks the question: the answer, or None when nobody can answer (no
#: terminal on stdin, as under systemd).
Ask = Callable[[str, str], "str | None"]


def _marker(config_dir: Path | None = None) -> Path:
    base = config_dir or platformdirs.user_config_path("netvigil")
    return base / "accepted-risks"


def accept(config_dir: Path | None = None) -> Path:
    """Remember that the notice was accepted; returns the marker file."""
    marker = _marker(config_dir)
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text("accepted\n")
    return marker


def ensure(accepted_now: bool, env_accepts: bool, ask: Ask, config_dir: Path | None = None) -> None:
    """Go on only once the notice is accepted: by `--accept-risks` (`accepted_now`, remembered),
    by the environment (`env_accepts`), before, or now by answering `ask`. ConfigError otherwise.
    """
    if accepted_now:
        accept(config_dir)
        return
    if env_accepts or _marker(config_dir).exists():
        return
    answer = ask(NOTICE, QUESTION)
    if answer is None:
        raise ConfigError(f"risk notice not accepted: rerun with --accept-risks or {ENV_ACCEPT}=1",
                          "--accept-risks")
    if answer.strip().lower() != "yes":
        raise ConfigError("risk notice not accepted; nothing was measured", "--accept-risks")
    accept(config_dir)
