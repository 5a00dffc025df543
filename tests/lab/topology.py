"""Build and tear down the lab: client, censor router and "internet" namespaces.

    client  nvc0 198.18.1.2/24 ─── nvr0 198.18.1.1  router  nvr1 198.18.2.1 ─── nvi0  inet
                                                                                198.18.2.2/24 +
        .10 web (ok, sni, fast*)   .11 web2   .12 big (throttled)   .20 test helper
        .53 the ISP resolver (lies about nx/bogon, slow on inj)   .54 an honest resolver

Addresses come from the benchmarking range 198.18.0.0/15 only, and nothing is attached to the
root namespace, so no packet of the lab can reach a real network. Every process is tracked by
PID and ended in `close()`, which also deletes the namespaces and /etc/netns entries.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
WEB, WEB2, BIG, HELPER = "198.18.2.10", "198.18.2.11", "198.18.2.12", "198.18.2.20"
ISP_DNS, HONEST_DNS, GATEWAY = "198.18.2.53", "198.18.2.54", "198.18.1.1"
FORGED = "198.18.2.99"
HELPER_PORT = 8080
BLOCKPAGE_MARKER = "LAB-BLOCKPAGE-7f3a"
BIG_SIZE = 512 * 1024

NAMES = {
    "ok.lab.test": WEB, "sni.lab.test": WEB, "fast1.lab.test": WEB, "fast2.lab.test": WEB,
    "fast3.lab.test": WEB, "web2.lab.test": WEB2, "big.lab.test": BIG,
    "nx.lab.test": WEB, "bogon.lab.test": WEB, "inj.lab.test": WEB,
}


def missing_requirements() -> str | None:
    """Why the lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the censorship lab needs root (network namespaces, iptables)"
    for tool in ("ip", "iptables", "tc"):
        if shutil.which(tool) is None:
            return f"the censorship lab needs `{tool}` (run `make lab-deps` as root)"
    return None


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=30)


class Lab:
    """One lab instance; use as a context manager."""

    def __init__(self) -> None:
        tag = f"nv{os.getpid() % 100000}"
        self.client, self.router, self.inet = f"{tag}c", f"{tag}r", f"{tag}i"
        self.tmp = Path(tempfile.mkdtemp(prefix="netvigil-lab-"))
        self.ca = self.tmp / "ca.pem"
        self.procs: list[subprocess.Popen[str]] = []
        self.injector: subprocess.Popen[str] | None = None

    # --- plumbing -------------------------------------------------------------------------

    def ns(self, name: str, *cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return _run("ip", "netns", "exec", name, *cmd, check=check)

    def _start(self, name: str, *cmd: str) -> subprocess.Popen[str]:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen(["ip", "netns", "exec", name, *cmd], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, text=True, cwd=ROOT, env=env)
        self.procs.append(proc)
        return proc

    def _wait_ready(self, proc: subprocess.Popen[str], what: str, timeout: float = 20) -> None:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if "ready" in line or "listening" in line:
                return
            if proc.poll() is not None:
                raise RuntimeError(f"lab: {what} exited with {proc.returncode}")
        raise RuntimeError(f"lab: {what} not ready after {timeout} s")

    # --- build ----------------------------------------------------------------------------

    def __enter__(self) -> Lab:
        try:
            self._build()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _build(self) -> None:
        for name in (self.client, self.router, self.inet):
            _run("ip", "netns", "add", name)
            self.ns(name, "ip", "link", "set", "lo", "up")
        # veth pairs created inside the namespaces: nothing touches the root namespace.
        self.ns(self.client, "ip", "link", "add", "nvc0", "type", "veth", "peer", "name", "nvr0",
                "netns", self.router)
        self.ns(self.router, "ip", "link", "add", "nvr1", "type", "veth", "peer", "name", "nvi0",
                "netns", self.inet)
        self.ns(self.client, "ip", "addr", "add", "198.18.1.2/24", "dev", "nvc0")
        self.ns(self.router, "ip", "addr", "add", f"{GATEWAY}/24", "dev", "nvr0")
        self.ns(self.router, "ip", "addr", "add", "198.18.2.1/24", "dev", "nvr1")
        self.ns(self.inet, "ip", "addr", "add", "198.18.2.2/24", "dev", "nvi0")
        for address in (WEB, WEB2, BIG, HELPER, ISP_DNS, HONEST_DNS):
            self.ns(self.inet, "ip", "addr", "add", f"{address}/32", "dev", "nvi0")
        for name, dev in ((self.client, "nvc0"), (self.router, "nvr0"), (self.router, "nvr1"),
                          (self.inet, "nvi0")):
            self.ns(name, "ip", "link", "set", dev, "up")
        self.ns(self.client, "ip", "route", "add", "default", "via", GATEWAY)
        self.ns(self.inet, "ip", "route", "add", "default", "via", "198.18.2.1")
        self.ns(self.router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        netns_etc = Path("/etc/netns") / self.client
        netns_etc.mkdir(parents=True, exist_ok=True)
        (netns_etc / "resolv.conf").write_text(f"nameserver {ISP_DNS}\noptions timeout:1\n")
        self._start_servers()

    def _dns_rules(self, honest: bool) -> dict[str, Any]:
        rules: dict[str, Any] = {name: {"addresses": [ip]} for name, ip in NAMES.items()}
        if not honest:
            rules["nx.lab.test"] = {"rcode": "NXDOMAIN"}
            rules["bogon.lab.test"] = {"addresses": ["10.10.34.36"]}
            # The real answer is a little slow, so an on-path forgery wins the race.
            rules["inj.lab.test"] = {"addresses": [WEB], "delay": 0.15}
        return rules

    def _start_servers(self) -> None:
        tls_names = [n for n in NAMES if NAMES[n] in (WEB, WEB2)]
        page = {"/": {"title": "Lab site", "text": "welcome"}, "/big": {"size": BIG_SIZE}}
        config = {
            "ca_out": str(self.ca),
            "dns": [
                {"listen": f"{ISP_DNS}:53", "rules": self._dns_rules(False)},
                {"listen": f"{HONEST_DNS}:53", "rules": self._dns_rules(True)},
            ],
            "http": [
                {"host": WEB, "port": 80, "routes": page},
                {"host": WEB, "port": 443, "routes": page, "tls_names": tls_names},
                {"host": WEB2, "port": 80, "routes": {"/": {"title": "Second site"}}},
                {"host": WEB2, "port": 443, "routes": {"/": {"title": "Second site"}},
                 "tls_names": tls_names},
                {"host": BIG, "port": 80, "routes": page},
            ],
        }
        inet_cfg = self.tmp / "inet.json"
        inet_cfg.write_text(json.dumps(config))
        servers = self._start(self.inet, sys.executable, "-m", "tests.lab.serve", str(inet_cfg))
        self._wait_ready(servers, "inet servers")
        blockpage = {"http": [{"host": "0.0.0.0", "port": 8080, "routes": {"/": {
            "title": "Access denied", "text": f"This site is blocked. {BLOCKPAGE_MARKER}"}}}]}
        router_cfg = self.tmp / "router.json"
        router_cfg.write_text(json.dumps(blockpage))
        proxy = self._start(self.router, sys.executable, "-m", "tests.lab.serve", str(router_cfg))
        self._wait_ready(proxy, "blockpage proxy")
        helper = self._start(self.inet, str(VENV_BIN / "netvigil"), "helper", "serve",
                             "--listen", f"{HELPER}:{HELPER_PORT}", "--resolver", HONEST_DNS,
                             "--allow-private")
        self._wait_ready_stderr(helper)

    def _wait_ready_stderr(self, proc: subprocess.Popen[str]) -> None:
        # The helper says "listening" on stderr; poll its health endpoint from the inet side.
        deadline = time.monotonic() + 20
        url = f"http://{HELPER}:{HELPER_PORT}/v1/health"
        probe = ("import urllib.request,sys;"
                 f"sys.exit(0 if urllib.request.urlopen('{url}', timeout=1).status == 200 else 1)")
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"lab: helper exited with {proc.returncode}")
            if self.ns(self.inet, sys.executable, "-c", probe, check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise RuntimeError("lab: helper not ready")

    # --- censorship -----------------------------------------------------------------------

    def censor(self, *rules: list[str]) -> None:
        """Apply iptables rules on the router (each a list of arguments after `iptables`)."""
        for rule in rules:
            self.ns(self.router, "iptables", *rule)

    def throttle(self, address: str, rate: str = "256kbit") -> None:
        """Limit traffic from `address` towards the client (tc htb on the router)."""
        dev = "nvr0"
        self.ns(self.router, "tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb",
                "default", "10")
        self.ns(self.router, "tc", "class", "add", "dev", dev, "parent", "1:", "classid",
                "1:10", "htb", "rate", "10gbit")
        self.ns(self.router, "tc", "class", "add", "dev", dev, "parent", "1:", "classid",
                "1:20", "htb", "rate", rate, "ceil", rate)
        self.ns(self.router, "tc", "filter", "add", "dev", dev, "parent", "1:", "protocol",
                "ip", "u32", "match", "ip", "src", f"{address}/32", "flowid", "1:20")

    def inject(self, name: str) -> None:
        """Start the on-path DNS injector on the router for `name`."""
        self.injector = self._start(self.router, sys.executable, "-m", "tests.lab.injector",
                                    "nvr0", name, FORGED)
        self._wait_ready(self.injector, "injector")

    def link_down(self) -> None:
        self.ns(self.client, "ip", "link", "set", "nvc0", "down")

    def reset(self) -> None:
        """Back to an uncensored network: no rules, no shaping, link up, no injector."""
        self.ns(self.router, "iptables", "-F", check=False)
        self.ns(self.router, "iptables", "-t", "nat", "-F", check=False)
        self.ns(self.router, "tc", "qdisc", "del", "dev", "nvr0", "root", check=False)
        self.ns(self.client, "ip", "link", "set", "nvc0", "up", check=False)
        self.ns(self.client, "ip", "route", "replace", "default", "via", GATEWAY, check=False)
        if self.injector is not None:
            self._end(self.injector)
            self.injector = None

    # --- the probe ------------------------------------------------------------------------

    def run_probe(self, targets: list[str], *extra: str, timeout: float = 120) -> dict[str, Any]:
        """`netvigil run` inside the client namespace; its JSON output."""
        db = self.tmp / "lab.db"
        cmd = [str(VENV_BIN / "netvigil"), "--db", str(db), "run", "--targets", *targets,
               "--resolver", ISP_DNS, "--ca-bundle", str(self.ca), "--public-range",
               "198.18.0.0/15", "--helper", f"http://{HELPER}:{HELPER_PORT}", "--timeout", "2",
               "--no-ipv6", "--accept-risks", "--json", *extra]
        done = subprocess.run(["ip", "netns", "exec", self.client, *cmd], capture_output=True,
                              text=True, timeout=timeout, cwd=self.tmp)
        if done.returncode != 0:
            raise AssertionError(f"netvigil run failed ({done.returncode}): {done.stderr[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    # --- teardown -------------------------------------------------------------------------

    def _end(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        for proc in self.procs:
            self._end(proc)
        for name in (self.client, self.router, self.inet):
            _run("ip", "netns", "del", name, check=False)
        shutil.rmtree(Path("/etc/netns") / self.client, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
