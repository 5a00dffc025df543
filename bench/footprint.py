"""The footprint of one campaign of the bundled catalogue: wall time, CPU seconds, peak RSS.

What a volunteer's Raspberry Pi pays every 15 minutes. Nothing here reaches the real Internet:

1. `python -c "import cli"`: the interpreter and every import, the fixed cost of each process.
2. Offline namespace (root only): the real `netvigil run` of the whole catalogue with default
   options, inside a fresh network namespace with no interface but a downed loopback and no
   route at all (checked before anything runs). Every DNS lookup and connect fails at once,
   so this is the overhead floor: startup, the network checks, the store, the analysis.
3. Loopback fakes (bench/campaign.py, fakes in a child process): as many targets as the
   catalogue holds, each really resolved, connected, fetched (a third over TLS), stored and
   judged: the realistic CPU and RSS of the campaign itself.
4. Repeated runs (`--repeat N`, through services.monitor on the same fakes): the process's RSS
   after each run, to show that months of monitoring do not grow it.

Processes are measured with os.wait4 (their own rusage, including the interpreter's start).

    sudo .venv/bin/python bench/footprint.py          # all variants
    .venv/bin/python bench/footprint.py --repeat 0    # without root: variants 1 and 3 only
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.campaign import _serve_fakes, _targets
from probes.config import ProbeConfig, Timeouts
from probes.runner import Limits
from services import campaign
from services.campaign import CampaignOptions
from services.monitor import Schedule, monitor
from targets.catalogue import load_catalogue
from targets.loaders import load_targets

ROOT = Path(__file__).resolve().parents[1]
Row = dict[str, Any]


def _measure(argv: list[str], env: dict[str, str] | None = None,
             timeout: float = 600) -> tuple[int, float, resource.struct_rusage, str]:
    """Run argv; (exit status, wall seconds, its rusage, stdout). Output goes through files, so
    a large JSON cannot fill a pipe while we wait."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        began = time.perf_counter()
        child = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=err)
        deadline = began + timeout
        while True:
            pid, status, usage = os.wait4(child.pid, os.WNOHANG)
            if pid:
                break
            if time.perf_counter() > deadline:
                child.kill()
            time.sleep(0.02)
        wall = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            sys.stderr.write(err.read()[-2000:])
        return child.returncode, wall, usage, out.read()


def _row(variant: str, targets: int | str, network: str, wall: float, cpu: float,
         rss_kib: float) -> Row:
    return {"variant": variant, "targets": targets, "network": network, "wall_s": round(wall, 2),
            "cpu_s": round(cpu, 2), "peak_rss_mib": round(rss_kib / 1024, 1)}


def startup() -> Row:
    code, wall, usage, _ = _measure([sys.executable, "-c", "import cli"])
    if code != 0:
        raise SystemExit("python -c 'import cli' failed")
    return _row("python + imports", "-", "-", wall, usage.ru_utime + usage.ru_stime,
                usage.ru_maxrss)


def _ip(*args: str) -> str:
    return subprocess.run(["ip", *args], check=True, capture_output=True, text=True).stdout


def offline(tmp: Path) -> Row | None:
    """The real `netvigil run` of the catalogue in a namespace with no route; None if skipped."""
    if os.geteuid() != 0 or shutil.which("ip") is None:
        print("offline namespace: skipped (needs root and iproute2 to create a network namespace)",
              file=sys.stderr)
        return None
    name = f"netvigil-fp-{os.getpid()}"
    _ip("netns", "add", name)
    try:
        # Safety first: only a loopback, down, and no route of any kind, or nothing runs.
        links = [line.split(":")[1].strip() for line in _ip("-n", name, "-o", "link").splitlines()]
        routes = _ip("-n", name, "route", "show", "table", "all")
        routes += _ip("-n", name, "-6", "route", "show", "table", "all")
        if links != ["lo"] or routes.strip():
            raise SystemExit(f"namespace {name} is not isolated: links {links}, routes {routes!r}")
        env = {k: v for k, v in os.environ.items() if k != "NETVIGIL_HELPER"}  # no control
        argv = ["ip", "netns", "exec", name, sys.executable, "-m", "cli",
                "--db", str(tmp / "offline.db"), "run", "--accept-risks", "--json"]
        code, wall, usage, out = _measure(argv, env=env)
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
    if code != 0:
        raise SystemExit(f"netvigil run in the namespace exited with {code}")
    run = json.loads(out)["run"]
    return _row("offline namespace: netvigil run", run["measurements"], run["network"], wall,
                usage.ru_utime + usage.ru_stime, usage.ru_maxrss)


def loopback(n: int) -> Row:
    """bench/campaign.py with n targets: the campaign alone (after imports), probe process only."""
    code, _, _, out = _measure([sys.executable, str(ROOT / "bench" / "campaign.py"),
                                "--targets", str(n), "--json"])
    if code != 0:
        raise SystemExit("bench/campaign.py failed")
    fig = json.loads(out)
    network = "ok" if fig["fetched_200"] == n else f"ok ({fig['fetched_200']} of {n} fetched)"
    return _row("loopback fakes: the campaign", n, network, fig["wall_s"], fig["cpu_s"],
                fig["peak_rss_mib"] * 1024)


def _rss_kib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024


def repeated(n: int, runs: int, tmp: Path) -> list[float]:
    """Current RSS (MiB) after each of `runs` monitor runs of n targets on loopback fakes."""
    parent, child = mp.Pipe()
    ca_path = str(tmp / "ca.pem")
    fakes = mp.get_context("fork").Process(target=_serve_fakes, args=(child, n, ca_path))
    fakes.start()
    after: list[float] = []
    try:
        dns_address, http_port, https_port = parent.recv()
        options = CampaignOptions(
            config=ProbeConfig(timeouts=Timeouts(dns=5, dns_listen=0.2), resolvers=(dns_address,),
                               system_resolver=False, ipv6=False, ca_bundle=ca_path),
            limits=Limits(), check_network=False,
        )

        async def job(*args: Any) -> campaign.CampaignResult:
            result = await campaign.run(*args)
            after.append(round(_rss_kib() / 1024, 1))
            return result

        monitor(_targets(n, http_port, https_port), tmp / "repeat.db", options,
                Schedule(every=0.001, max_runs=runs), log=lambda _: None,
                sleep=lambda _: None, job=job)
    finally:
        parent.send("stop")
        fakes.join(10)
    return after


def _print(rows: list[Row], rss_runs: list[float]) -> None:
    header = f"{'variant':<34} {'targets':>7} {'network':<14} {'wall s':>7} {'CPU s':>6} " \
             f"{'peak RSS MiB':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['variant']:<34} {r['targets']!s:>7} {r['network']:<14} {r['wall_s']:>7} "
              f"{r['cpu_s']:>6} {r['peak_rss_mib']:>12}")
    if rss_runs:
        print(f"\nRSS after each of {len(rss_runs)} monitor runs (MiB): "
              + ", ".join(str(x) for x in rss_runs))
    print("\nThe offline namespace has no route: every DNS lookup and connect fails at once, so "
          "its row is the\noverhead floor (start, network checks, store, analysis). The "
          "loopback row is the campaign itself\nwith every target resolved, connected and "
          "fetched (excluding the interpreter's start: add the\nfirst row). On a real network "
          "the wall time is set by round trips and the rate limit, not CPU.")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5, metavar="N",
                        help="monitor runs for the RSS-over-time check (0: skip)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    n = len(load_targets([p.name for p in load_catalogue()]))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        # The risk-notice acceptance, the run-signing key and any other user file go to the
        # temporary folder, for this process and its children: a benchmark leaves nothing.
        os.environ.update(XDG_CONFIG_HOME=str(tmp / "config"), XDG_DATA_HOME=str(tmp / "data"),
                          NETVIGIL_KEYS=str(tmp / "keys"))
        rows = [startup()]
        floor = offline(tmp)
        if floor is not None:
            rows.append(floor)
        rows.append(loopback(n))
        rss_runs = repeated(n, args.repeat, tmp) if args.repeat > 0 else []
    if args.json:
        print(json.dumps({"rows": rows, "rss_after_runs_mib": rss_runs}))
    else:
        _print(rows, rss_runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
