"""Build and tear down the lab: client, censor router and "internet" network namespaces.

    client                  router (the censor)                    inet
    nvc0 198.18.1.2/24 ──── nvr0 198.18.1.1   nvr1 198.18.2.1 ──── nvi0 198.18.2.2/24, and /32s:
                            :8080 the transparent proxy             .10 web: ok, blocked, sni, ...
                            NFQUEUE 0: the DNS injector             .11 web2   .12 big (throttled)
                                                                    .20 the test helper :8080
                                                                    .53 the ISP's resolver (lies)
                                                                    .54 an honest resolver
                                                                    .99 forged answers (closed)

Addresses come from the benchmarking range 198.18.0.0/15 only, and nothing is attached to the
root namespace (each veth is created inside a namespace with its peer put straight into the
other), so no packet of the lab can reach a real network. Namespace names carry the pytest PID
and a random tag, so two sessions never collide. Every process is started by us, tracked by PID
and ended in `close()`, which also deletes the namespaces (and with them the veths) and
/etc/netns/<client>, and reports any namespace that would not go.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
NETVIGIL = str(Path(sys.executable).parent / "netvigil")
LAB_RANGE = "198.18.0.0/15"
CLIENT_IP, GATEWAY, ROUTER_INET, INET_IP = "198.18.1.2", "198.18.1.1", "198.18.2.1", "198.18.2.2"
WEB, WEB2, BIG, HELPER = "198.18.2.10", "198.18.2.11", "198.18.2.12", "198.18.2.20"
ISP_DNS, HONEST_DNS, FORGED = "198.18.2.53", "198.18.2.54", "198.18.2.99"
HELPER_PORT, PROXY_PORT, QUEUE = 8080, 8080, 0
CLIENT_IF, ROUTER_CLIENT_IF, ROUTER_INET_IF, INET_IF = "nvc0", "nvr0", "nvr1", "nvi0"
BLOCKPAGE_MARKER = "LAB-BLOCKPAGE-7f3a"
BIG_SIZE = 2 << 20  # the throttled download; the probe reads at most its 1 MiB body cap
READY_TIMEOUT = 20.0

#: Every name the honest resolver knows, and its address.
NAMES = {
    "ok.lab.test": WEB, "blocked.lab.test": WEB, "sni.lab.test": WEB, "nx.lab.test": WEB,
    "bogon.lab.test": WEB, "loop.lab.test": WEB, "inj.lab.test": WEB,
    "fast1.lab.test": WEB, "fast2.lab.test": WEB, "fast3.lab.test": WEB,
    "web2.lab.test": WEB2, "big.lab.test": BIG,
}
#: How the ISP's resolver lies; it answers every other name honestly.
ISP_LIES: dict[str, dict[str, Any]] = {
    "nx.lab.test": {"rcode": "NXDOMAIN"},
    "bogon.lab.test": {"addresses": ["10.10.34.36"]},  # Iran's national blockpage address
    "loop.lab.test": {"addresses": ["127.0.0.1"]},
}
BLOCKED_BY_PROXY = ("blocked.lab.test",)


class LabUnavailable(Exception):
    """The lab cannot be built on this machine (not a failure of the code under test)."""


def missing_requirements() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if not sys.platform.startswith("linux"):
        return "the censorship lab needs Linux network namespaces"
    if os.geteuid() != 0:
        return "the censorship lab needs root (network namespaces, iptables, tc)"
    for tool in ("ip", "iptables", "tc"):
        if shutil.which(tool) is None:
            return f"the censorship lab needs `{tool}` (run `make lab-deps` as root)"
    if not Path(NETVIGIL).exists():
        return f"the censorship lab needs the netvigil command at {NETVIGIL} (`make install`)"
    return None


def _environment() -> dict[str, str]:
    """Our environment without proxy settings (they would change what the probe measures)."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy")}
    env.pop("NETVIGIL_HELPER", None)
    env["PYTHONPATH"] = str(ROOT)
    return env


def run(*cmd: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise RuntimeError(f"lab: `{' '.join(cmd)}` failed ({done.returncode}): {done.stderr}")
    return done


class Lab:
    """One lab instance; use as a context manager. Scenario helpers change only the router and
    the client's link; `reset()` undoes all of them."""

    def __init__(self) -> None:
        tag = f"nv{os.getpid()}{secrets.token_hex(2)}"
        self.client, self.router, self.inet = f"{tag}-client", f"{tag}-router", f"{tag}-inet"
        self.namespaces = (self.client, self.router, self.inet)
        self.tmp = Path(tempfile.mkdtemp(prefix="netvigil-lab-"))
        self.ca = self.tmp / "ca.pem"
        self.db = self.tmp / "lab.db"
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self._made: list[str] = []

    # --- plumbing -------------------------------------------------------------------------------

    def ns(self, name: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a command inside namespace `name`."""
        return run("ip", "netns", "exec", name, *cmd, check=check)

    def start(self, what: str, name: str, *cmd: str, ready: str = "ready") -> None:
        """Start a long-running process in namespace `name` and wait until its output (kept in
        <tmp>/<what>.log) shows `ready`. `ip netns exec` execs the command: same PID."""
        self.stop(what)  # one process per role, so none escapes tracking
        log = self.tmp / f"{what}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(["ip", "netns", "exec", name, *cmd], stdout=out,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=ROOT, env=_environment())
        self.procs[what] = proc
        deadline = time.monotonic() + READY_TIMEOUT
        while ready not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = log.read_text(errors="replace")[-2000:]
                state = f"exited with {proc.returncode}" if proc.poll() is not None else (
                    f"not ready after {READY_TIMEOUT} s")
                raise RuntimeError(f"lab: {what} {state}:\n{tail}")
            time.sleep(0.02)

    def stop(self, what: str) -> None:
        """End one process we started (SIGTERM, then SIGKILL), by its PID."""
        proc = self.procs.pop(what, None)
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log(self, what: str) -> str:
        path = self.tmp / f"{what}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # --- build ----------------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        leftovers = self.close()
        if leftovers:
            raise RuntimeError(f"lab: namespaces left behind: {leftovers}")

    def _add_namespace(self, name: str) -> None:
        done = run("ip", "netns", "add", name, check=False)
        if done.returncode != 0:
            raise LabUnavailable(f"cannot create network namespaces here: {done.stderr.strip()}")
        self._made.append(name)
        self.ns(name, "ip", "link", "set", "lo", "up")
        # IPv4 only: no IPv6 link-local chatter, and the probe runs with --no-ipv6 anyway.
        self.ns(name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")

    def _build(self) -> None:
        for name in self.namespaces:
            self._add_namespace(name)
        self.ns(self.client, "ip", "link", "add", CLIENT_IF, "type", "veth", "peer", "name",
                ROUTER_CLIENT_IF, "netns", self.router)
        self.ns(self.router, "ip", "link", "add", ROUTER_INET_IF, "type", "veth", "peer", "name",
                INET_IF, "netns", self.inet)
        for name, dev, address in (
            (self.client, CLIENT_IF, f"{CLIENT_IP}/24"),
            (self.router, ROUTER_CLIENT_IF, f"{GATEWAY}/24"),
            (self.router, ROUTER_INET_IF, f"{ROUTER_INET}/24"),
            (self.inet, INET_IF, f"{INET_IP}/24"),
        ):
            self.ns(name, "ip", "addr", "add", address, "dev", dev)
            self.ns(name, "ip", "link", "set", dev, "up")
        for address in (WEB, WEB2, BIG, HELPER, ISP_DNS, HONEST_DNS, FORGED):
            self.ns(self.inet, "ip", "addr", "add", f"{address}/32", "dev", INET_IF)
        self.ns(self.client, "ip", "route", "add", "default", "via", GATEWAY)
        self.ns(self.inet, "ip", "route", "add", "default", "via", ROUTER_INET)
        self.ns(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        # `ip netns exec` bind-mounts this over /etc/resolv.conf: the client's ISP resolver.
        netns_etc = Path("/etc/netns") / self.client
        netns_etc.mkdir(parents=True, exist_ok=True)
        (netns_etc / "resolv.conf").write_text(
            f"nameserver {ISP_DNS}\noptions timeout:1 attempts:1\n")
        self._start_servers()

    def _start_servers(self) -> None:
        honest = {name: {"addresses": [address]} for name, address in NAMES.items()}
        site = {"/": {"title": "Lab site", "text": "welcome"}, "/big": {"size": BIG_SIZE}}
        other = {"/": {"title": "Second site", "text": "another site"}}
        names = sorted(NAMES)
        inet = {
            "ca_out": str(self.ca),
            "dns": [{"listen": f"{ISP_DNS}:53", "rules": {**honest, **ISP_LIES}},
                    {"listen": f"{HONEST_DNS}:53", "rules": honest}],
            "http": [{"host": WEB, "port": 80, "routes": site},
                     {"host": WEB, "port": 443, "routes": site, "tls_names": names},
                     {"host": WEB2, "port": 80, "routes": other},
                     {"host": WEB2, "port": 443, "routes": other, "tls_names": names},
                     {"host": BIG, "port": 80, "routes": site}],
        }
        router = {"proxy": [{"host": "0.0.0.0", "port": PROXY_PORT,
                             "blocked": list(BLOCKED_BY_PROXY), "title": "Access denied",
                             "text": f"This site is blocked. {BLOCKPAGE_MARKER}"}]}
        for what, name, config in (("inet", self.inet, inet), ("router", self.router, router)):
            path = self.tmp / f"{what}.json"
            path.write_text(json.dumps(config))
            self.start(f"{what}-servers", name, PYTHON, "-m", "tests.lab.serve", str(path))
        self.start("helper", self.inet, NETVIGIL, "helper", "serve", "--listen",
                   f"{HELPER}:{HELPER_PORT}", "--resolver", HONEST_DNS, "--allow-private",
                   ready="listening")

    # --- censorship -----------------------------------------------------------------------------

    def censor(self, *rules: list[str]) -> None:
        """Apply iptables rules on the router (each: the arguments after `iptables`)."""
        for rule in rules:
            self.ns(self.router, "iptables", *rule)

    def throttle(self, address: str, rate: str = "64kbit") -> None:
        """Shape traffic from `address` towards the client to `rate` (tc htb on the router)."""
        tc = ("tc",)
        dev = ("dev", ROUTER_CLIENT_IF)
        self.ns(self.router, *tc, "qdisc", "add", *dev, "root", "handle", "1:", "htb",
                "default", "10")
        self.ns(self.router, *tc, "class", "add", *dev, "parent", "1:", "classid", "1:10",
                "htb", "rate", "10gbit")
        self.ns(self.router, *tc, "class", "add", *dev, "parent", "1:", "classid", "1:20",
                "htb", "rate", rate, "ceil", rate)
        self.ns(self.router, *tc, "filter", "add", *dev, "parent", "1:", "protocol", "ip",
                "u32", "match", "ip", "src", f"{address}/32", "flowid", "1:20")

    def intercept_http(self) -> None:
        """Divert the client's port-80 traffic to the router's transparent proxy."""
        self.censor(["-t", "nat", "-A", "PREROUTING", "-i", ROUTER_CLIENT_IF, "-p", "tcp",
                     "--dport", "80", "-j", "REDIRECT", "--to-ports", str(PROXY_PORT)])

    def inject(self, name: str) -> None:
        """Forge DNS answers for `name` on the path (NFQUEUE on the router), whatever resolver
        the client asks; the real answers still arrive, second."""
        self.start("injector", self.router, PYTHON, "-m", "tests.lab.injector", "--queue",
                   str(QUEUE), "--name", name, "--forged", FORGED, "--max-seconds", "90")
        self.censor(["-A", "FORWARD", "-i", ROUTER_CLIENT_IF, "-p", "udp", "--dport", "53", "-j",
                     "NFQUEUE", "--queue-num", str(QUEUE), "--queue-bypass"])

    def link_down(self) -> None:
        """The client's own link fails (a Wi-Fi drop)."""
        self.ns(self.client, "ip", "link", "set", CLIENT_IF, "down")

    def reset(self) -> None:
        """Back to an uncensored network: no rules, no shaping, no injector, the link up."""
        for table in ("filter", "nat"):
            self.ns(self.router, "iptables", "-t", table, "-F", check=False)
        self.ns(self.router, "tc", "qdisc", "del", "dev", ROUTER_CLIENT_IF, "root", check=False)
        self.stop("injector")
        self.ns(self.client, "ip", "link", "set", CLIENT_IF, "up", check=False)
        self.ns(self.client, "ip", "route", "replace", "default", "via", GATEWAY, check=False)

    # --- the probe ------------------------------------------------------------------------------

    def run_probe(self, targets: list[str], *extra: str, timeout: float = 60) -> dict[str, Any]:
        """`netvigil run` inside the client namespace, against the lab's resolver and helper;
        its JSON output."""
        cmd = [NETVIGIL, "--db", str(self.db), "run", "--targets", *targets,
               "--resolver", ISP_DNS, "--ca-bundle", str(self.ca), "--public-range", LAB_RANGE,
               "--helper", f"http://{HELPER}:{HELPER_PORT}", "--timeout", "2", "--no-ipv6",
               "--accept-risks", "--json", *extra]
        done = subprocess.run(["ip", "netns", "exec", self.client, *cmd], capture_output=True,
                              text=True, timeout=timeout, cwd=self.tmp, env=_environment())
        if done.returncode != 0:
            raise AssertionError(f"netvigil run failed ({done.returncode}):\n"
                                 f"{done.stderr[-3000:]}\n{done.stdout[-1000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    # --- teardown -------------------------------------------------------------------------------

    def close(self) -> list[str]:
        """End our processes, delete our namespaces and files. The namespaces still there after
        (none, normally)."""
        for what in list(self.procs):
            # Keep tearing down whatever happens: the namespaces must go.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                self.stop(what)
        for name in self._made:
            run("ip", "netns", "del", name, check=False)
        shutil.rmtree(Path("/etc/netns") / self.client, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        listed = run("ip", "netns", "list", check=False).stdout.split()
        return [name for name in self._made if name in listed]
