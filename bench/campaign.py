"""Campaign benchmark on loopback fakes: wall time, CPU time, CPU ms per target and peak RSS.

The fakes (a DNS server and HTTP/HTTPS servers with a test CA) run in a child process, so the
CPU and memory figures are the probe's alone. Every target has its own name, resolved by the
fake DNS server to 127.0.0.1; a third of them are HTTPS. Nothing leaves loopback.

    .venv/bin/python bench/campaign.py                # 300 targets, default limits
    .venv/bin/python bench/campaign.py --targets 600 --concurrency 64 --rate 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.observations import HTTPRequest
from core.target import Target
from probes.config import ProbeConfig, Timeouts
from probes.runner import Limits
from results.store import Store
from services.campaign import CampaignOptions, run

DOMAIN = "bench.test"


def _serve_fakes(conn: Connection, n: int, ca_path: str) -> None:
    """Child process: start the fakes, report their ports, serve until told to stop."""
    from tests.fakes.certs import FakePKI
    from tests.fakes.dns_server import FakeDNSServer, Rule
    from tests.fakes.servers import HTTPServer, page

    pki = FakePKI()
    Path(ca_path).write_bytes(pki.ca_pem)
    names = [f"t{i}.{DOMAIN}" for i in range(n)]
    rules = {name: Rule(addresses=["127.0.0.1"]) for name in names}
    body = page("benchmark page", "<p>" + "lorem ipsum " * 800 + "</p>")
    with FakeDNSServer(rules) as dns, HTTPServer({"/": body}) as plain, HTTPServer(
        {"/": body}, tls=pki.good(*names)
    ) as secure:
        conn.send((dns.address, plain.port, secure.port))
        conn.recv()  # block until the parent is done


def _targets(n: int, http_port: int, https_port: int) -> list[Target]:
    out = []
    for i in range(n):
        if i % 3 == 0:
            out.append(Target(f"https://t{i}.{DOMAIN}:{https_port}/"))
        else:
            out.append(Target(f"http://t{i}.{DOMAIN}:{http_port}/"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=Limits().concurrency)
    parser.add_argument("--rate", type=float, default=Limits().rate)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        ca_path = str(Path(tmp) / "ca.pem")
        parent, child = mp.Pipe()
        fakes = mp.get_context("fork").Process(target=_serve_fakes,
                                                args=(child, args.targets, ca_path))
        fakes.start()
        try:
            dns_address, http_port, https_port = parent.recv()
            targets = _targets(args.targets, http_port, https_port)
            options = CampaignOptions(
                config=ProbeConfig(
                    timeouts=Timeouts(dns=5, dns_listen=0.2, tcp=5, tls=5, http=10, http_body=10),
                    resolvers=(dns_address,), system_resolver=False, ipv6=False,
                    ca_bundle=ca_path,
                ),
                limits=Limits(args.concurrency, args.rate, per_host_rate=Limits().per_host_rate),
                check_network=False,
            )
            cpu0 = time.process_time()
            wall0 = time.perf_counter()
            with Store(Path(tmp) / "bench.db") as store:
                result = asyncio.run(run(targets, store, options))
            wall = time.perf_counter() - wall0
            cpu = time.process_time() - cpu0
        finally:
            parent.send("stop")
            fakes.join(10)
    rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    fetched = sum(
        1 for r in result.results
        if (hops := r.measurement.of(HTTPRequest)) and hops[-1].status == 200
    )
    verdicts: dict[str, int] = {}
    for r in result.results:
        verdicts[r.verdict.verdict] = verdicts.get(r.verdict.verdict, 0) + 1
    figures = {
        "targets": args.targets,
        "concurrency": args.concurrency,
        "rate_per_s": args.rate,
        "wall_s": round(wall, 2),
        "cpu_s": round(cpu, 2),
        "cpu_ms_per_target": round(1000 * cpu / args.targets, 2),
        "peak_rss_mib": round(rss_mib, 1),
        "fetched_200": fetched,
        "verdicts": verdicts,
    }
    if args.json:
        print(json.dumps(figures))
    else:
        for key, value in figures.items():
            print(f"{key:>18}: {value}")
    return 0 if fetched == args.targets else 1


if __name__ == "__main__":
    sys.exit(main())
